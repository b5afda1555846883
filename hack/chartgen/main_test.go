package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestValuesSchema(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		values  string
		path    []string // where to look in the schema's properties
		want    map[string]any
		wantErr error
	}{
		{name: "string-with-description", values: "# The tag.\n# Empty means appVersion.\ntag: \"\"\n", path: []string{"tag"},
			want: map[string]any{"type": "string", "default": "", "description": "The tag. Empty means appVersion."}},
		{name: "integer-with-keywords", values: "# +schema: {\"minimum\": 1}\nreplicas: 2\n", path: []string{"replicas"},
			want: map[string]any{"type": "integer", "default": float64(2), "minimum": float64(1)}},
		{name: "boolean", values: "on: true\n", path: []string{"on"}, want: map[string]any{"type": "boolean", "default": true}},
		{name: "nested-object-is-closed", values: "a:\n  b: 1\n", path: []string{"a"},
			want: map[string]any{"type": "object", "additionalProperties": false, "properties": map[string]any{
				"b": map[string]any{"type": "integer", "default": float64(1)},
			}}},
		{name: "free-form-object", values: "# +schema: {\"additionalProperties\": true}\nres:\n  limits: {cpu: 1}\n", path: []string{"res"},
			want: map[string]any{"type": "object", "additionalProperties": true}},
		{name: "array-items-from-first-element", values: "keys: [a, b]\n", path: []string{"keys"},
			want: map[string]any{"type": "array", "items": map[string]any{"type": "string", "default": "a"}, "default": []any{"a", "b"}}},
		{name: "empty-array-with-items", values: "# +schema: {\"items\": {\"type\": \"string\"}}\nargs: []\n", path: []string{"args"},
			want: map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "default": []any{}}},
		{name: "null-with-type", values: "# +schema: {\"type\": [\"integer\", \"null\"]}\nmax: null\n", path: []string{"max"},
			want: map[string]any{"type": []any{"integer", "null"}, "default": nil}},
		{name: "null-without-type", values: "max: null\n", wantErr: errNoType},
		{name: "bad-marker", values: "# +schema: {nope\nx: 1\n", wantErr: errBadMarker},
		{name: "not-a-mapping", values: "- a\n", wantErr: errNotAMapping},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := valuesSchema([]byte(tt.values))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s map[string]any
			if err := json.Unmarshal(out, &s); err != nil {
				t.Fatal(err)
			}
			if s["additionalProperties"] != false {
				t.Error("the top level allows unknown values")
			}
			var got any = s
			for _, p := range tt.path {
				got = got.(map[string]any)["properties"].(map[string]any)[p]
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

const testCRD = `---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  annotations:
    controller-gen.kubebuilder.io/version: v0.23.0
  name: widgets.quill.dev
spec:
  group: quill.dev
  names:
    kind: Widget
    plural: widgets
  scope: Namespaced
`

func TestCRDTemplate(t *testing.T) {
	t.Parallel()
	name, out, err := crdTemplate([]byte(testCRD), "config/crd/bases/x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if name != "crd-widgets.yaml" {
		t.Errorf("file name %q", name)
	}
	text := string(out)
	for _, want := range []string{
		"{{- if .Values.crds.enabled }}\n",
		"  name: widgets.quill.dev\n",
		"    controller-gen.kubebuilder.io/version: \"v0.23.0\"\n",
		"    {{- if .Values.crds.keep }}\n    helm.sh/resource-policy: keep\n    {{- end }}\n",
		"spec:\n  group: quill.dev\n  names:\n    kind: Widget\n    plural: widgets\n  scope: Namespaced\n{{- end }}\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("template lacks %q:\n%s", want, text)
		}
	}
	if _, _, err := crdTemplate([]byte(strings.Replace(testCRD, "Widget", "{{ .x }}", 1)), "x"); !errors.Is(err, errTemplating) {
		t.Errorf("template delimiters in a CRD: got %v", err)
	}
	if _, _, err := crdTemplate([]byte("kind: CustomResourceDefinition\n"), "x"); !errors.Is(err, errNoSpec) {
		t.Errorf("CRD without spec: got %v", err)
	}
}

func TestClusterRoleRules(t *testing.T) {
	t.Parallel()
	data := []byte("---\nkind: ClusterRole\nmetadata: {name: other}\nrules: [{apiGroups: [''], resources: [pods], verbs: [get]}]\n" +
		"---\nkind: ClusterRole\nmetadata: {name: want}\nrules: [{apiGroups: [''], resources: [secrets], verbs: [get, list]}]\n")
	rules, err := clusterRoleRules(data, "want")
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 1 || rules[0].Resources[0] != "secrets" || len(rules[0].Verbs) != 2 {
		t.Fatalf("rules %+v", rules)
	}
	if _, err := clusterRoleRules(data, "missing"); !errors.Is(err, errNoRole) {
		t.Fatalf("missing role: got %v", err)
	}
}

// TestRunRemovesStaleCRDTemplates: a CRD removed from config/crd/bases
// disappears from the chart.
func TestRunRemovesStaleCRDTemplates(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write := func(rel, data string) {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("config/crd/bases/quill.dev_widgets.yaml", testCRD)
	write("config/rbac/role.yaml", "kind: ClusterRole\nmetadata: {name: quill-controller}\nrules: [{apiGroups: [''], resources: [secrets], verbs: [get]}]\n")
	write("config/rbac/cert-manager-approver.yaml", "kind: ClusterRole\nmetadata: {name: quill-cert-manager-approver}\nrules: [{apiGroups: [cert-manager.io], resources: [signers], verbs: [approve]}]\n")
	write("config/admission/policy.yaml", "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata:\n  name: p\nspec: {}\n")
	write("config/rbac/roles/role.yaml", "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: r\nrules: []\n")
	write("charts/quill/values.yaml", "replicaCount: 1\n")
	write("charts/quill/templates/crd-gone.yaml", "stale\n")
	if err := run(root); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]bool{
		"charts/quill/templates/crd-gone.yaml":           false,
		"charts/quill/templates/crd-widgets.yaml":        true,
		"charts/quill/templates/_rbac_rules.tpl":         true,
		"charts/quill/values.schema.json":                true,
		"charts/quill/templates/admission-policies.yaml": true,
		"charts/quill/templates/rbac-roles.yaml":         true,
	} {
		_, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel)))
		if got := err == nil; got != want {
			t.Errorf("%s exists: %v, want %v", rel, got, want)
		}
	}
}
