package chart

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// releaseName is the Helm release every test renders.
const releaseName = "quill"

// helm runs bin/helm (built by `make tools`) and returns its stdout.
func helm(args ...string) ([]byte, error) {
	bin := filepath.Join(env.Root, "bin", "helm")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s missing: run `make tools` to build it", bin)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// valuesFile writes Helm values to a file for -f.
func valuesFile(t *testing.T, values string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(p, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// render runs helm template on the chart with the given values and returns
// the manifests.
func render(t *testing.T, values string) []*unstructured.Unstructured {
	t.Helper()
	out, err := helm("template", releaseName, filepath.Join(env.Root, "charts", "quill"),
		"--namespace", releaseNamespace, "-f", valuesFile(t, values))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeManifests(out)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func decodeManifests(data []byte) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, err
		}
		if s := strings.TrimSpace(string(js)); s == "null" || s == "{}" {
			continue // a template that rendered nothing
		}
		// unstructured's decoder keeps integers as int64.
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			return nil, err
		}
		objs = append(objs, u)
	}
}

// find returns the one rendered object of a kind (and name, when given).
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("rendered %d %s %q, want 1", len(found), kind, name)
	}
	return found[0]
}

func kinds(objs []*unstructured.Unstructured) map[string]int {
	m := map[string]int{}
	for _, o := range objs {
		m[o.GetKind()]++
	}
	return m
}

// valueSets are the configurations lint and the dry-run cover.
var valueSets = []struct{ name, values string }{
	{name: "defaults", values: ""},
	{name: "single-replica-no-pdb-no-leader-election", values: "replicaCount: 1\nleaderElection: {enabled: false}\npodDisruptionBudget: {enabled: false}\ntopologySpread: {enabled: false}\n"},
	{name: "crds-disabled-approver-unbound", values: "crds: {enabled: false}\nrbac: {certManagerApprover: {enabled: false}}\n"},
	{name: "pkcs11-vendor-library", values: pkcs11Values},
	{name: "cluster-resource-namespace-and-digest", values: "clusterResourceNamespace: pki\nimage: {digest: sha256:" + strings.Repeat("ab", 32) + "}\npodDisruptionBudget: {maxUnavailable: 1}\n"},
	{name: "no-mutating-policies-no-roles", values: "admissionPolicies: {mutating: {enabled: false}}\nrbac: {roles: {enabled: false}}\n"},
}

// pkcs11Values is the documented pattern for a vendor PKCS#11 library: an
// init container copies it from the vendor's image into a shared volume,
// the controller allows it by name, and its configuration comes from a
// ConfigMap named by an environment variable.
const pkcs11Values = `
pkcs11:
  modules:
    - name: vendor
      path: /opt/pkcs11/lib/libvendor-pkcs11.so
initContainers:
  - name: pkcs11-library
    image: registry.example.com/vendor/pkcs11-client:1.0
    command: [cp, /usr/lib/libvendor-pkcs11.so, /opt/pkcs11/lib/]
    volumeMounts:
      - {name: pkcs11-lib, mountPath: /opt/pkcs11/lib}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      runAsNonRoot: true
      capabilities: {drop: [ALL]}
      seccompProfile: {type: RuntimeDefault}
volumes:
  - {name: pkcs11-lib, emptyDir: {}}
  - {name: pkcs11-config, configMap: {name: vendor-pkcs11}}
volumeMounts:
  - {name: pkcs11-lib, mountPath: /opt/pkcs11/lib, readOnly: true}
  - {name: pkcs11-config, mountPath: /etc/vendor-pkcs11, readOnly: true}
extraEnv:
  - {name: VENDOR_PKCS11_CONF, value: /etc/vendor-pkcs11/client.conf}
metrics:
  serviceMonitor: {enabled: true, labels: {release: prometheus}}
`

func TestHelmLint(t *testing.T) {
	t.Parallel()
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			t.Parallel()
			out, err := helm("lint", "--strict", filepath.Join(env.Root, "charts", "quill"), "-f", valuesFile(t, vs.values))
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// TestValuesSchemaRejects: the generated values schema turns mistakes into
// errors at install time rather than broken manifests.
func TestValuesSchemaRejects(t *testing.T) {
	t.Parallel()
	// want is the schema's own report: where in the values, and what.
	tests := []struct{ name, values, want string }{
		{name: "unknown-key", values: "replicas: 2\n", want: "additional properties 'replicas' not allowed"},
		{name: "zero-replicas", values: "replicaCount: 0\n", want: "at '/replicaCount': minimum"},
		{name: "pkcs11-module-path-not-absolute", values: "pkcs11: {modules: [{name: hsm, path: lib.so}]}\n", want: "at '/pkcs11/modules/0/path'"},
		{name: "pkcs11-module-bad-name", values: "pkcs11: {modules: [{name: '../x', path: /lib.so}]}\n", want: "at '/pkcs11/modules/0/name'"},
		{name: "bad-pull-policy", values: "image: {pullPolicy: Sometimes}\n", want: "at '/image/pullPolicy'"},
		{name: "bad-duration", values: "maxRetryDuration: soon\n", want: "at '/maxRetryDuration'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := helm("template", releaseName, filepath.Join(env.Root, "charts", "quill"), "-f", valuesFile(t, tt.values))
			if err == nil || !strings.Contains(err.Error(), "don't meet the specifications of the schema") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want the values schema refusing them with %q", err, tt.want)
			}
		})
	}
}

// TestRenderedDefaults checks what the chart promises by default: restricted
// pod security, two replicas under leader election, a PDB, topology spread,
// CRDs kept on uninstall, and a Service with the metrics and CRL/OCSP ports.
func TestRenderedDefaults(t *testing.T) {
	t.Parallel()
	objs := render(t, "")
	dep := find(t, objs, "Deployment", "")
	spec := nested[map[string]any](t, dep.Object, "spec", "template", "spec")
	if r := nested[int64](t, dep.Object, "spec", "replicas"); r != 2 {
		t.Errorf("replicas %d, want 2", r)
	}
	c := nested[[]any](t, spec, "containers")[0].(map[string]any)
	sc := nested[map[string]any](t, c, "securityContext")
	if sc["allowPrivilegeEscalation"] != false || sc["readOnlyRootFilesystem"] != true || sc["runAsNonRoot"] != true {
		t.Errorf("container securityContext %v", sc)
	}
	if drop := nested[[]any](t, sc, "capabilities", "drop"); len(drop) != 1 || drop[0] != "ALL" {
		t.Errorf("capabilities.drop %v", drop)
	}
	if s := nested[string](t, spec, "securityContext", "seccompProfile", "type"); s != "RuntimeDefault" {
		t.Errorf("pod seccomp %q", s)
	}
	args := strings.Join(stringsOf(nested[[]any](t, c, "args")), " ")
	for _, want := range []string{"--leader-elect=true", "--leader-election-namespace=" + releaseNamespace, "--cluster-resource-namespace=" + releaseNamespace, "--metrics-bind-address=:8080"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %s", args, want)
		}
	}
	if n := len(nested[[]any](t, spec, "topologySpreadConstraints")); n != 2 {
		t.Errorf("%d topology spread constraints, want 2", n)
	}
	if pdb := find(t, objs, "PodDisruptionBudget", ""); nested[int64](t, pdb.Object, "spec", "minAvailable") != 1 {
		t.Errorf("PDB %v", pdb.Object["spec"])
	}
	for _, crd := range []string{"quillissuers.quill.dev", "quillclusterissuers.quill.dev"} {
		if p := find(t, objs, "CustomResourceDefinition", crd).GetAnnotations()["helm.sh/resource-policy"]; p != "keep" {
			t.Errorf("CRD %s resource policy %q, want keep", crd, p)
		}
	}
	svc := find(t, objs, "Service", "")
	ports := map[string]int64{}
	for _, p := range nested[[]any](t, svc.Object, "spec", "ports") {
		pm := p.(map[string]any)
		ports[pm["name"].(string)] = pm["port"].(int64)
	}
	if ports["metrics"] != 8080 || ports["http"] != 8082 {
		t.Errorf("Service ports %v, want metrics 8080 and http 8082", ports)
	}
	if kinds(objs)["ServiceMonitor"] != 0 {
		t.Error("a ServiceMonitor is rendered by default")
	}
	if k := kinds(render(t, "crds: {enabled: false}\n"))["CustomResourceDefinition"]; k != 0 {
		t.Errorf("crds.enabled=false still renders %d CRDs", k)
	}
	if p := find(t, render(t, "crds: {keep: false}\n"), "CustomResourceDefinition", "quillissuers.quill.dev").GetAnnotations()["helm.sh/resource-policy"]; p != "" {
		t.Errorf("crds.keep=false still sets resource policy %q", p)
	}
}

// TestServerSideDryRun sends every rendered object of each configuration to
// kube-apiserver as a server-side apply with dryRun=All: the API server
// validates it completely (schemas, defaults, admission) without storing
// it. The ServiceMonitor, whose CRD this control plane does not have, is
// checked against the Service it must select instead.
func TestServerSideDryRun(t *testing.T) {
	t.Parallel()
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			t.Parallel()
			objs := render(t, vs.values)
			for _, o := range objs {
				if o.GetKind() == "ServiceMonitor" {
					checkServiceMonitor(t, o, find(t, objs, "Service", ""))
					continue
				}
				err := env.Client.Patch(context.Background(), o.DeepCopy(), client.Apply, //nolint:staticcheck // unstructured SSA
					client.FieldOwner("helm"), client.ForceOwnership, client.DryRunAll, client.FieldValidation("Strict"))
				if err != nil {
					t.Errorf("%s %s: %v", o.GetKind(), o.GetName(), err)
				}
			}
		})
	}
}

func checkServiceMonitor(t *testing.T, sm, svc *unstructured.Unstructured) {
	t.Helper()
	sel := nested[map[string]any](t, sm.Object, "spec", "selector", "matchLabels")
	for k, v := range sel {
		if svc.GetLabels()[k] != v {
			t.Errorf("ServiceMonitor selects %s=%v; the Service has %q", k, v, svc.GetLabels()[k])
		}
	}
	port := nested[[]any](t, sm.Object, "spec", "endpoints")[0].(map[string]any)["port"]
	found := false
	for _, p := range nested[[]any](t, svc.Object, "spec", "ports") {
		found = found || p.(map[string]any)["name"] == port
	}
	if !found {
		t.Errorf("ServiceMonitor scrapes port %v, which the Service does not name", port)
	}
	if sm.GetLabels()["release"] != "prometheus" {
		t.Errorf("ServiceMonitor labels %v lack the configured ones", sm.GetLabels())
	}
}

// nested reads a typed field of an unstructured object.
func nested[T any](t *testing.T, obj map[string]any, path ...string) T {
	t.Helper()
	var cur any = obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("%s: not an object", strings.Join(path, "."))
		}
		cur = m[p]
	}
	v, ok := cur.(T)
	if !ok {
		var zero T
		t.Fatalf("%s is %T, want %T", strings.Join(path, "."), cur, zero)
	}
	return v
}

func stringsOf(l []any) []string {
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = fmt.Sprint(v)
	}
	return out
}
