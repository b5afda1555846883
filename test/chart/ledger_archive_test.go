package chart

import (
	"slices"
	"strings"
	"testing"
)

// TestLedgerArchiveValues checks the chart's ledger archive: off by
// default (no --ledger-archive-dir, no volume: nothing leaves the live
// ledger), and with an existing claim or any volume source, mounted where
// the flag points.
func TestLedgerArchiveValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, values string
		// wantVolume is the key of the archive volume's source; empty
		// when there must be no archive.
		wantVolume string
	}{
		{name: "default-no-archive", values: ""},
		{name: "existing-claim", values: "ledger: {archive: {existingClaim: quill-archive}}\n", wantVolume: "persistentVolumeClaim"},
		{name: "volume-source", values: "ledger: {archive: {volume: {nfs: {server: nfs.example, path: /quill}}, mountPath: /archive}}\n", wantVolume: "nfs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			spec := nested[map[string]any](t, find(t, render(t, tc.values), "Deployment", "").Object, "spec", "template", "spec")
			c := nested[[]any](t, spec, "containers")[0].(map[string]any)
			args := stringsOf(nested[[]any](t, c, "args"))
			var dirArg string
			for _, a := range args {
				if strings.HasPrefix(a, "--ledger-archive-dir=") {
					dirArg = strings.TrimPrefix(a, "--ledger-archive-dir=")
				}
			}
			if !slices.Contains(args, "--ledger-seal-after=1m") || !slices.Contains(args, "--ledger-migrate=true") {
				t.Errorf("args %v lack the ledger's seal-after and migrate defaults", args)
			}
			var mountPath string
			for _, m := range nested[[]any](t, c, "volumeMounts") {
				if mm := m.(map[string]any); mm["name"] == "ledger-archive" {
					mountPath, _ = mm["mountPath"].(string)
				}
			}
			var source map[string]any
			for _, v := range nested[[]any](t, spec, "volumes") {
				if vm := v.(map[string]any); vm["name"] == "ledger-archive" {
					source = vm
				}
			}
			if tc.wantVolume == "" {
				if dirArg != "" || mountPath != "" || source != nil {
					t.Fatalf("default chart has archive flag %q, mount %q, volume %v; want none (retention off)", dirArg, mountPath, source)
				}
				return
			}
			if dirArg == "" || dirArg != mountPath {
				t.Fatalf("--ledger-archive-dir=%q but the archive is mounted at %q", dirArg, mountPath)
			}
			if source == nil || source[tc.wantVolume] == nil {
				t.Fatalf("archive volume %v; want a %s source", source, tc.wantVolume)
			}
		})
	}
}

func TestLedgerArchiveValuesRejected(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, values, want string }{
		{name: "relative-mount-path", values: "ledger: {archive: {existingClaim: c, mountPath: archive}}\n", want: "at '/ledger/archive/mountPath'"},
		{name: "bad-seal-after", values: "ledger: {sealAfter: soon}\n", want: "at '/ledger/sealAfter'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := helm("template", releaseName, env.Root+"/charts/quill", "-f", valuesFile(t, tc.values))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v; want the values schema refusing them with %q", err, tc.want)
			}
		})
	}
}
