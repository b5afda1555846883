package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditReportRefusals checks the refusals `quillctl audit report`
// makes before it reads a kubeconfig: each prints one line, exits 1 and
// leaves an existing --out file as it was. Reports themselves are tested
// against a real API server in test/e2e.
func TestAuditReportRefusals(t *testing.T) {
	t.Parallel()
	// A kubeconfig that cannot be read: every case must fail before it.
	noCluster := []string{"--kubeconfig", "absent-kubeconfig"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no-issuer", args: []string{}, want: `"issuer" not set`},
		{name: "bad-format", args: []string{"--issuer", "ca", "--format", "xml"}, want: `invalid report options: --format "xml": use csv or json`},
		{name: "zero-chunk", args: []string{"--issuer", "ca", "--chunk-size", "0"}, want: "invalid report options: --chunk-size must be positive"},
		{name: "bad-kind", args: []string{"--issuer", "ca", "--kind", "Issuer"}, want: `invalid report options: --kind "Issuer": use QuillIssuer or QuillClusterIssuer`},
		{name: "namespace-of-cluster-issuer", args: []string{"--issuer", "ca", "--namespace", "team-a"}, want: "--namespace applies to --kind QuillIssuer"},
		{name: "bad-since", args: []string{"--issuer", "ca", "--since", "yesterday"}, want: "yesterday"},
		{name: "out-exists", args: []string{"--issuer", "ca", "--out", "report.csv"}, want: "output file exists: report.csv (pass --force to replace it)"},
		{name: "no-kubeconfig", args: []string{"--issuer", "ca", "--out", "new.csv"}, want: "reading the kubeconfig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			existing := filepath.Join(dir, "report.csv")
			if err := os.WriteFile(existing, []byte("kept\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			r := run(t, dir, nil, append(append([]string{"audit", "report"}, tt.args...), noCluster...)...)
			if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, tt.want) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 1, no output and one line containing %q", r.code, r.stdout, r.stderr, tt.want)
			}
			if b, err := os.ReadFile(existing); err != nil || string(b) != "kept\n" {
				t.Errorf("the existing report.csv was changed: %q %v", b, err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("a refused report left %d files in its folder, want only report.csv", len(entries))
			}
		})
	}
}
