package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testSet is a manifest set over a temporary folder.
func testSet(t *testing.T, files map[string]string) (manifestSet, string) {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "config", "things")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return manifestSet{source: "config/things", template: "things.yaml", gate: ".Values.things.enabled",
		kinds: map[string]string{"ClusterRole": "", "MutatingAdmissionPolicy": ".Values.things.mutating"}}, root
}

func TestManifestSet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		files   map[string]string
		want    []string
		wantErr error
	}{
		{
			name: "comments-kept-labels-added-gates-nested",
			files: map[string]string{
				"b.yaml": "# Role B.\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: b\n  labels: {team: pki}\nrules: [] # none\n",
				"a.yaml": "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingAdmissionPolicy\nmetadata:\n  name: a\nspec:\n  x: >\n    folded}}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  annotations:\n    why: because\n  name: c\nrules: []",
			},
			want: []string{
				"{{- if .Values.things.enabled }}\n{{- if .Values.things.mutating }}\n---\n# Source: config/things/a.yaml\n",
				"metadata:\n  name: a\n  labels:\n    {{- include \"quill.labels\" . | nindent 4 }}\nspec:\n  x: >\n    folded}}}\n{{- end }}\n",
				"metadata:\n  name: c\n  annotations:\n    why: \"because\"\n  labels:\n",
				"# Source: config/things/b.yaml\n# Role B.\n",
				"  labels:\n    team: \"pki\"\n    {{- include \"quill.labels\" . | nindent 4 }}\nrules: [] # none\n{{- end }}\n",
			},
		},
		{name: "kind-not-allowed", files: map[string]string{"x.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n"}, wantErr: errManifestKind},
		{name: "namespaced", files: map[string]string{"x.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: x\n  namespace: y\n"}, wantErr: errManifestMeta},
		{name: "no-name", files: map[string]string{"x.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {}\n"}, wantErr: errManifestMeta},
		{name: "flow-metadata", files: map[string]string{"x.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: x}\n"}, wantErr: errManifestMeta},
		{name: "template-delimiters", files: map[string]string{"x.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: '{{ x }}'\n"}, wantErr: errTemplating},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			set, root := testSet(t, tt.files)
			out, err := set.render(root)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestRepositoryManifests: the real folders render, and every document of
// them is in the chart.
func TestRepositoryManifests(t *testing.T) {
	t.Parallel()
	for _, set := range manifestSets {
		out, err := set.render(filepath.Join("..", ".."))
		if err != nil {
			t.Fatal(err)
		}
		srcs, _ := filepath.Glob(filepath.Join("..", "..", set.source, "*.yaml"))
		docs := 0
		for _, s := range srcs {
			data, _ := os.ReadFile(s)
			docs += strings.Count(string(data), "\n---\n") + 1
		}
		if got := strings.Count(string(out), "\n---\n"); got != docs {
			t.Errorf("%s: %d documents rendered, %d in the sources", set.source, got, docs)
		}
	}
}
