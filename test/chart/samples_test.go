package chart

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func readSample(t *testing.T, name string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(env.Root, "config", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeManifests(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return objs
}

// TestSamples applies the documented samples against the chart's
// controller and the real cert-manager: the mutual TLS Certificates are
// issued. What needs components this control plane lacks (ingress-shim,
// csi-driver, trust-manager) is dry-run and checked against cert-manager's
// annotation keys or against what Quill publishes.
func TestSamples(t *testing.T) {
	ctx := context.Background()
	dep := install(t, render(t, "replicaCount: 1\n"))
	p := startPod(t, dep, "pod-0")
	p.waitReady(t, dep)
	bootstrapIssuer(t, "quill") // the issuer every sample names

	apply := func(o *unstructured.Unstructured, opts ...client.PatchOption) {
		t.Helper()
		opts = append(opts, client.FieldOwner("kubectl"), client.ForceOwnership, client.FieldValidation("Strict"))
		if err := env.Client.Patch(ctx, o, client.Apply, opts...); err != nil { //nolint:staticcheck // unstructured SSA
			t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), o) })
	}
	// The test control plane's cert-manager build has no ingress-shim, so
	// the Ingress is dry-run and its annotations checked against
	// cert-manager's own keys and the issuer that exists.
	ing := readSample(t, "ingress.yaml")[0]
	apply(ing, client.DryRunAll)
	for k, want := range map[string]string{
		cmapi.IngressIssuerNameAnnotationKey: "quill",
		cmapi.IssuerKindAnnotationKey:        "QuillClusterIssuer",
		cmapi.IssuerGroupAnnotationKey:       "quill.dev",
	} {
		if got := ing.GetAnnotations()[k]; got != want {
			t.Errorf("Ingress annotation %s=%q, want %q", k, got, want)
		}
	}
	for _, o := range readSample(t, "mtls-certificates.yaml") {
		apply(o)
	}
	for _, name := range []string{"orders-server", "billing-client"} {
		key := client.ObjectKey{Namespace: "default", Name: name}
		eventually(t, "Certificate "+key.String()+" Ready", func() (bool, error) { return certificateReady(ctx, key) })
	}
	for _, o := range readSample(t, "mtls-csi-driver.yaml") {
		apply(o, client.DryRunAll)
	}
	// The Bundle reads the ConfigMap Quill publishes for issuer "quill".
	bundle := readSample(t, "trust-manager-bundle.yaml")[0]
	src := nested[[]any](t, bundle.Object, "spec", "sources")[0].(map[string]any)["configMap"].(map[string]any)
	eventually(t, "the ConfigMap the Bundle reads", func() (bool, error) {
		var cm unstructured.Unstructured
		cm.SetAPIVersion("v1")
		cm.SetKind("ConfigMap")
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: src["name"].(string)}, &cm); err != nil {
			return false, err
		}
		data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
		return data[src["key"].(string)] != "", nil
	})
}
