package chart

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/quill-pki/quill/test/harness"
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
// issued, and so is the Ingress's through cert-manager's ingress-shim. What
// needs components this control plane lacks (csi-driver, trust-manager) is
// dry-run and checked against what Quill publishes.
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
	// cert-manager's ingress-shim turns the Ingress's annotations into a
	// Certificate named after its TLS Secret, issued by Quill as asked.
	apply(readSample(t, "ingress.yaml")[0])
	ingressCert := client.ObjectKey{Namespace: "default", Name: "web-ingress-tls"}
	eventually(t, "the Ingress's Certificate "+ingressCert.String()+" Ready", func() (bool, error) { return certificateReady(ctx, ingressCert) })
	var crt cmapi.Certificate
	if err := env.Client.Get(ctx, ingressCert, &crt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), &crt) })
	if ref := crt.Spec.IssuerRef; ref.Name != "quill" || ref.Kind != "QuillClusterIssuer" || ref.Group != "quill.dev" {
		t.Errorf("the Ingress's Certificate names issuer %+v, want the QuillClusterIssuer quill", ref)
	}
	var secret corev1.Secret
	if err := env.Client.Get(ctx, ingressCert, &secret); err != nil {
		t.Fatal(err)
	}
	leaf := harness.VerifyChain(t, &secret, x509.ExtKeyUsageServerAuth)
	if _, ecdsaKey := leaf.PublicKey.(*ecdsa.PublicKey); !ecdsaKey || !slices.Equal(leaf.DNSNames, []string{"web.example.com"}) ||
		leaf.NotAfter.Sub(leaf.NotBefore).Round(time.Hour) != 720*time.Hour {
		t.Errorf("the Ingress's certificate: key %T, DNS names %v, lifetime %v; want ECDSA, [web.example.com], 720h",
			leaf.PublicKey, leaf.DNSNames, leaf.NotAfter.Sub(leaf.NotBefore))
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
