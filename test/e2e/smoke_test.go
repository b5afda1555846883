package e2e

import (
	"crypto/x509"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestSmokeCertManagerCA proves the harness with cert-manager alone: a
// selfSigned issuer makes a CA Certificate, a cert-manager CA Issuer uses
// it, and a leaf Certificate from that Issuer verifies. This flow is also
// the baseline the issuance benchmark compares Quill against.
func TestSmokeCertManagerCA(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	create(t, &cmapi.Issuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "selfsigned"},
		Spec:       cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{SelfSigned: &cmapi.SelfSignedIssuer{}}},
	})
	create(t, certificate(ns, "root", cmmeta.IssuerReference{Name: "selfsigned", Kind: "Issuer"}, func(c *cmapi.Certificate) {
		c.Spec.IsCA = true
		c.Spec.DNSNames = nil
		c.Spec.CommonName = "smoke root"
		c.Spec.PrivateKey = &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256}
	}))
	waitCertificateReady(t, ns, "root")
	create(t, &cmapi.Issuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ca"},
		Spec:       cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{CA: &cmapi.CAIssuer{SecretName: "root-tls"}}},
	})
	create(t, certificate(ns, "leaf", cmmeta.IssuerReference{Name: "ca", Kind: "Issuer"}, func(c *cmapi.Certificate) {
		c.Spec.Usages = []cmapi.KeyUsage{cmapi.UsageServerAuth, cmapi.UsageDigitalSignature}
	}))
	secret := waitCertificateReady(t, ns, "leaf")
	leaf := verifyChain(t, secret, x509.ExtKeyUsageServerAuth)
	if leaf.Subject.CommonName != "leaf.example.test" {
		t.Errorf("leaf subject %q, want CN leaf.example.test", leaf.Subject)
	}
}
