package e2e

import (
	"context"
	"crypto/x509"
	"strings"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// waitBundle waits until ConfigMap ns/name holds exactly the certificates
// want (in order) under ca.crt and returns it.
func waitBundle(t *testing.T, ns, name string, want ...*x509.Certificate) *corev1.ConfigMap {
	t.Helper()
	var cm corev1.ConfigMap
	eventually(t, "trust bundle "+ns+"/"+name, func() (bool, error) {
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &cm); err != nil {
			return false, err
		}
		got := splitPEM([]byte(cm.Data[quillv1.TrustBundleKey]))
		if len(got) != len(want) {
			return false, nil
		}
		for i, c := range want {
			if parsed := parseCerts(t, []byte(got[i])); !parsed[0].Equal(c) {
				return false, nil
			}
		}
		return true, nil
	})
	return &cm
}

// TestTrustBundleNamespacedIssuer: a QuillIssuer publishes its root to
// <name>-ca-bundle in its namespace, owned by the issuer; the bundle is
// restored when edited, follows a new CA, and moves when renamed.
func TestTrustBundleNamespacedIssuer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := newNamespace(t)
	quillIssuer(t, ns, "tb", "ECDSA-P256")
	var rootSecret corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "tb-root"}, &rootSecret); err != nil {
		t.Fatal(err)
	}
	root := parseCerts(t, rootSecret.Data["tls.crt"])[0]
	cm := waitBundle(t, ns, "tb-ca-bundle", root)
	if len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].Kind != "QuillIssuer" || cm.OwnerReferences[0].Name != "tb" {
		t.Fatalf("bundle owner references %+v; want the QuillIssuer tb", cm.OwnerReferences)
	}

	// A Certificate issued by the issuer verifies against the bundle alone.
	create(t, certificate(ns, "leaf", cmmeta.IssuerReference{Group: "quill.dev", Kind: quillv1.IssuerKind, Name: "tb"}))
	leaf := waitCertificateReady(t, ns, "leaf")
	opensslVerify(t, []byte(cm.Data[quillv1.TrustBundleKey]), leaf.Data["tls.crt"], x509.ExtKeyUsageServerAuth)

	// Someone overwrites the bundle: it is written again.
	cm.Data[quillv1.TrustBundleKey] = "tampered"
	if err := env.Client.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	waitBundle(t, ns, "tb-ca-bundle", root)

	// A new CA (the bootstrap Secret deleted, so Quill makes a new root):
	// the bundle follows.
	if err := env.Client.Delete(ctx, &rootSecret); err != nil {
		t.Fatal(err)
	}
	var newRoot *x509.Certificate
	eventually(t, "a new bootstrap root", func() (bool, error) {
		var s corev1.Secret
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "tb-root"}, &s); err != nil {
			return false, err
		}
		newRoot = parseCerts(t, s.Data["tls.crt"])[0]
		return !newRoot.Equal(root), nil
	})
	waitBundle(t, ns, "tb-ca-bundle", newRoot)

	// Renaming the bundle publishes under the new name and removes the old.
	var iss quillv1.QuillIssuer
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "tb"}, &iss); err != nil {
		t.Fatal(err)
	}
	iss.Spec.TrustBundle = &quillv1.TrustBundle{ConfigMapName: "renamed-bundle"}
	if err := env.Client.Update(ctx, &iss); err != nil {
		t.Fatal(err)
	}
	waitBundle(t, ns, "renamed-bundle", newRoot)
	eventually(t, "the old bundle removed", func() (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "tb-ca-bundle"}, &corev1.ConfigMap{})
		return apierrors.IsNotFound(err), err
	})
}

// TestTrustBundleClusterIssuerWithIntermediates: a QuillClusterIssuer that
// signs with an intermediate publishes root + intermediate to the cluster
// resource namespace when includeIntermediates is set.
func TestTrustBundleClusterIssuerWithIntermediates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := newNamespace(t) // names the cluster issuers uniquely
	rootName, issuingName := ns+"-root", ns+"-issuing"
	rootIss := &quillv1.QuillClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: rootName},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{
			SecretName: rootName, Subject: quillv1.Subject{CommonName: "tb cluster root"}, KeyAlgorithm: "ECDSA-P384",
		}}},
	}
	create(t, rootIss)
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), rootIss) })
	waitIssuerReady(t, rootIss)
	create(t, certificate(clusterResourceNamespace, issuingName, cmmeta.IssuerReference{Group: "quill.dev", Kind: quillv1.ClusterIssuerKind, Name: rootName},
		func(c *cmapi.Certificate) {
			c.Spec.IsCA, c.Spec.DNSNames, c.Spec.CommonName, c.Spec.SecretName = true, nil, "tb cluster issuing", issuingName
		}))
	interSecret := waitCertificateReady(t, clusterResourceNamespace, issuingName)
	inter := parseCerts(t, interSecret.Data["tls.crt"])[0]
	root := parseCerts(t, interSecret.Data["ca.crt"])[0]

	issuing := &quillv1.QuillClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: issuingName},
		Spec: quillv1.IssuerSpec{
			CA:          quillv1.CASource{SecretRef: &quillv1.SecretReference{Name: issuingName}},
			TrustBundle: &quillv1.TrustBundle{ConfigMapName: issuingName + "-trust", IncludeIntermediates: true},
		},
	}
	create(t, issuing)
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), issuing) })
	waitIssuerReady(t, issuing)
	cm := waitBundle(t, clusterResourceNamespace, issuingName+"-trust", root, inter)
	if cm.Labels[quillv1.LabelTrustBundleKind] != "QuillClusterIssuer" || cm.Labels[quillv1.LabelTrustBundleIssuer] != issuingName {
		t.Fatalf("bundle labels %v", cm.Labels)
	}
	// The root issuer publishes only its root, under the default name.
	waitBundle(t, clusterResourceNamespace, rootName+"-ca-bundle", root)

	// A leaf from the issuing CA verifies with the bundle as the only
	// trust input: OpenSSL is given the intermediate through it.
	create(t, certificate(ns, "leaf", cmmeta.IssuerReference{Group: "quill.dev", Kind: quillv1.ClusterIssuerKind, Name: issuingName}))
	leaf := waitCertificateReady(t, ns, "leaf")
	leafOnly := splitPEM(leaf.Data["tls.crt"])[0]
	opensslVerify(t, []byte(cm.Data[quillv1.TrustBundleKey]), []byte(leafOnly), x509.ExtKeyUsageServerAuth)

	// Turning intermediates off leaves the root alone.
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(issuing), issuing); err != nil {
		t.Fatal(err)
	}
	issuing.Spec.TrustBundle.IncludeIntermediates = false
	if err := env.Client.Update(ctx, issuing); err != nil {
		t.Fatal(err)
	}
	cm = waitBundle(t, clusterResourceNamespace, issuingName+"-trust", root)
	if strings.Count(cm.Data[quillv1.TrustBundleKey], "BEGIN CERTIFICATE") != 1 {
		t.Fatalf("bundle holds more than the root:\n%s", cm.Data[quillv1.TrustBundleKey])
	}
}
