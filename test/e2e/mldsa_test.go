package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/test/pq"
)

// verifyPQ verifies chainPEM (leaf first) against rootsPEM with Go's
// crypto/x509 and with OpenSSL 3.5 (the system's OpenSSL 3.0 cannot read
// ML-DSA), and returns the leaf.
func verifyPQ(t *testing.T, rootsPEM, chainPEM []byte, usage x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	chain := parseCerts(t, chainPEM)
	roots := x509.NewCertPool()
	for _, r := range parseCerts(t, rootsPEM) {
		roots.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		t.Fatalf("Go x509 verification: %v", err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	blocks := splitPEM(chainPEM)
	args := []string{"verify", "-x509_strict", "-CAfile", write("roots.pem", rootsPEM)}
	if len(blocks) > 1 {
		args = append(args, "-untrusted", write("untrusted.pem", []byte(strings.Join(blocks[1:], ""))))
	}
	if usage == x509.ExtKeyUsageServerAuth {
		args = append(args, "-purpose", "sslserver")
	}
	leaf := write("leaf.pem", []byte(blocks[0]))
	out, err := exec.Command(pq.OpenSSL35(t), append(args, leaf)...).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != leaf+": OK" {
		t.Fatalf("openssl 3.5 %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return chain[0]
}

// mldsaRequest submits an ML-DSA CSR to ref as a CertificateRequest, the
// way `quillctl csr` output is submitted (cert-manager Certificates cannot
// generate ML-DSA keys), waits for it to be issued and returns the request
// and the key.
func mldsaRequest(t *testing.T, ns, name string, ref cmmeta.IssuerReference, alg issuance.KeyAlgorithm, isCA bool) (*cmapi.CertificateRequest, []byte) {
	t.Helper()
	csr, key, err := pq.NewCSR(alg, pkix.Name{CommonName: name + ".example.test"}, []string{name + ".example.test"})
	if err != nil {
		t.Fatal(err)
	}
	spec := cmapi.CertificateRequestSpec{Request: csr, IssuerRef: ref, Usages: []cmapi.KeyUsage{cmapi.UsageDigitalSignature, cmapi.UsageServerAuth}}
	if isCA {
		spec.IsCA = true
		spec.Usages = []cmapi.KeyUsage{cmapi.UsageDigitalSignature, cmapi.UsageCertSign, cmapi.UsageCRLSign}
	}
	create(t, &cmapi.CertificateRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec})
	return waitRequestCondition(t, ns, name, cmapi.CertificateRequestConditionReady, cmmeta.ConditionTrue, cmapi.CertificateRequestReasonIssued), key
}

// caStatus reads an issuer's status.ca once it is Ready.
func caStatus(t *testing.T, ns, name string) *quillv1.CASummary {
	t.Helper()
	var iss quillv1.QuillIssuer
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &iss); err != nil {
		t.Fatal(err)
	}
	if iss.Status.CA == nil {
		t.Fatalf("issuer %s has no status.ca", name)
	}
	return iss.Status.CA
}

// TestMLDSARootIssuance: bootstrap ML-DSA roots issue to classical keys
// through cert-manager Certificates and to ML-DSA keys through
// CertificateRequests, verified by Go and OpenSSL 3.5; the issuer reports
// the CA's key and signature algorithm.
func TestMLDSARootIssuance(t *testing.T) {
	t.Parallel()
	for _, alg := range []quillv1.KeyAlgorithm{"ML-DSA-44", "ML-DSA-65", "ML-DSA-87"} {
		t.Run(strings.ToLower(string(alg)), func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			ref := quillIssuer(t, ns, "pq", alg)
			if st := caStatus(t, ns, "pq"); st.KeyAlgorithm != string(alg) || st.SignatureAlgorithm != string(alg) {
				t.Errorf("status.ca key %q signature %q, want %s for both", st.KeyAlgorithm, st.SignatureAlgorithm, alg)
			}

			create(t, certificate(ns, "ecdsa-leaf", ref, func(c *cmapi.Certificate) {
				c.Spec.PrivateKey = &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256}
				c.Spec.Usages = []cmapi.KeyUsage{cmapi.UsageServerAuth, cmapi.UsageDigitalSignature}
			}))
			secret := waitCertificateReady(t, ns, "ecdsa-leaf")
			leaf := verifyPQ(t, secret.Data["ca.crt"], secret.Data["tls.crt"], x509.ExtKeyUsageServerAuth)
			if got := leaf.SignatureAlgorithm.String(); got != string(alg) {
				t.Errorf("classical leaf signed with %s, want %s", got, alg)
			}

			cr, _ := mldsaRequest(t, ns, "mldsa-leaf", ref, issuance.MLDSA65, false)
			leaf = verifyPQ(t, cr.Status.CA, cr.Status.Certificate, x509.ExtKeyUsageServerAuth)
			if got, _ := issuance.KeyAlgorithmOf(leaf.PublicKey); got != issuance.MLDSA65 || leaf.SignatureAlgorithm.String() != string(alg) {
				t.Errorf("ML-DSA leaf: key %s signed with %s", got, leaf.SignatureAlgorithm)
			}
			if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("ML-DSA leaf key usage %b, want digitalSignature only", leaf.KeyUsage)
			}
		})
	}
}

// TestMixedHierarchies lays out the two migration steps through the API:
// a classical root signing an ML-DSA intermediate, and an ML-DSA root
// signing a classical intermediate, each then an issuer of its own that
// issues classical and ML-DSA leaves; a trust bundle holding both roots
// verifies every chain.
func TestMixedHierarchies(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ctx := context.Background()

	// Classical root → ML-DSA-65 intermediate, requested with an ML-DSA CSR.
	classicalRoot := quillIssuer(t, ns, "classical-root", "ECDSA-P384")
	interCR, interKey := mldsaRequest(t, ns, "pq-intermediate", classicalRoot, issuance.MLDSA65, true)
	if err := env.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pq-intermediate"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": interCR.Status.Certificate, "tls.key": interKey, "ca.crt": interCR.Status.CA},
	}); err != nil {
		t.Fatal(err)
	}
	pqIssuing := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pq-issuing"},
		Spec:       quillv1.IssuerSpec{CA: quillv1.CASource{SecretRef: &quillv1.SecretReference{Name: "pq-intermediate"}}},
	}
	create(t, pqIssuing)
	waitIssuerReady(t, pqIssuing)
	if st := caStatus(t, ns, "pq-issuing"); st.KeyAlgorithm != "ML-DSA-65" || st.SignatureAlgorithm != "ML-DSA-65" {
		t.Errorf("pq-issuing status.ca: key %q, signature %q", st.KeyAlgorithm, st.SignatureAlgorithm)
	}
	pqRef := cmmeta.IssuerReference{Group: "quill.dev", Kind: quillv1.IssuerKind, Name: "pq-issuing"}

	// ML-DSA-87 root → ECDSA P-256 intermediate, through a Certificate.
	pqRoot := quillIssuer(t, ns, "pq-root", "ML-DSA-87")
	create(t, certificate(ns, "classical-intermediate", pqRoot, func(c *cmapi.Certificate) {
		c.Spec.IsCA = true
		c.Spec.DNSNames = nil
		c.Spec.CommonName = "e2e classical intermediate"
		c.Spec.PrivateKey = &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256}
	}))
	classicalInterSecret := waitCertificateReady(t, ns, "classical-intermediate")
	inter := verifyPQ(t, classicalInterSecret.Data["ca.crt"], classicalInterSecret.Data["tls.crt"], x509.ExtKeyUsageAny)
	if !inter.IsCA || inter.SignatureAlgorithm.String() != "ML-DSA-87" {
		t.Fatalf("classical intermediate: IsCA=%v, signed with %s", inter.IsCA, inter.SignatureAlgorithm)
	}
	classicalIssuing := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "classical-issuing"},
		Spec:       quillv1.IssuerSpec{CA: quillv1.CASource{SecretRef: &quillv1.SecretReference{Name: classicalInterSecret.Name}}},
	}
	create(t, classicalIssuing)
	waitIssuerReady(t, classicalIssuing)
	if st := caStatus(t, ns, "classical-issuing"); st.KeyAlgorithm != "ECDSA-P256" || st.SignatureAlgorithm != "ECDSA-SHA256" {
		t.Errorf("classical-issuing status.ca: key %q, signature %q", st.KeyAlgorithm, st.SignatureAlgorithm)
	}
	classicalRef := cmmeta.IssuerReference{Group: "quill.dev", Kind: quillv1.IssuerKind, Name: "classical-issuing"}

	// Leaves of both kinds under both intermediates.
	type issued struct{ ca, chain []byte }
	var all []issued
	for _, ref := range []cmmeta.IssuerReference{pqRef, classicalRef} {
		name := ref.Name + "-ecdsa-leaf"
		create(t, certificate(ns, name, ref, func(c *cmapi.Certificate) {
			c.Spec.PrivateKey = &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256}
			c.Spec.Usages = []cmapi.KeyUsage{cmapi.UsageServerAuth, cmapi.UsageDigitalSignature}
		}))
		s := waitCertificateReady(t, ns, name)
		if n := len(parseCerts(t, s.Data["tls.crt"])); n != 2 {
			t.Errorf("%s: tls.crt holds %d certificates, want leaf + intermediate", name, n)
		}
		verifyPQ(t, s.Data["ca.crt"], s.Data["tls.crt"], x509.ExtKeyUsageServerAuth)
		all = append(all, issued{s.Data["ca.crt"], s.Data["tls.crt"]})

		cr, _ := mldsaRequest(t, ns, ref.Name+"-mldsa-leaf", ref, issuance.MLDSA44, false)
		verifyPQ(t, cr.Status.CA, cr.Status.Certificate, x509.ExtKeyUsageServerAuth)
		all = append(all, issued{cr.Status.CA, cr.Status.Certificate})
	}

	// One trust bundle with the classical and the ML-DSA root verifies
	// every chain, whichever root it leads to.
	bundle := append(bytes.Clone(classicalInterSecret.Data["ca.crt"]), interCR.Status.CA...)
	if n := len(parseCerts(t, bundle)); n != 2 {
		t.Fatalf("bundle holds %d roots", n)
	}
	for _, i := range all {
		if !bytes.Contains(bundle, bytes.TrimSpace(i.ca)) {
			t.Fatalf("a chain's root is not in the bundle")
		}
		verifyPQ(t, bundle, i.chain, x509.ExtKeyUsageServerAuth)
	}
}
