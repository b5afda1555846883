package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// namespacePolicy gives a namespace's issuer its own service names only,
// as a tenant's issuer would be set up.
func namespacePolicy(ns string) func(*quillv1.IssuerSpec) {
	return func(s *quillv1.IssuerSpec) {
		s.Policy = &quillv1.RequestPolicy{
			DNSNames:    []string{"**.{namespace}.svc"},
			CommonNames: []string{ns + "-app"},
		}
	}
}

// TestTrustSubjectWithTwoCommonNames: cert-manager's literalSubject can put
// a second common name ("admin") beside the one the policy allows. Every
// CN is a name a relying party may check (openssl -checkhost matches the
// first), so the request is refused and nothing reaches the ledger.
func TestTrustSubjectWithTwoCommonNames(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ref := quillIssuer(t, ns, "tenant", "ECDSA-P256", namespacePolicy(ns))
	create(t, certificate(ns, "two-cns", ref, func(c *cmapi.Certificate) {
		c.Spec.CommonName = ""
		c.Spec.LiteralSubject = "CN=" + ns + "-app,CN=admin"
		c.Spec.DNSNames = []string{"app." + ns + ".svc"}
	}))
	if msg := waitRequestDenied(t, ns, "two-cns"); !strings.Contains(msg, "admin") {
		t.Errorf("refusal %q does not name the hidden common name", msg)
	}
	if per, _ := signedFor(t, ns, "tenant"); per["two-cns"] != 0 {
		t.Errorf("the ledger holds %d certificates for two-cns; want none", per["two-cns"])
	}
}

// TestTrustDNSNameWithNUL: a DNS SAN "kubernetes.default.svc\x00.<ns>.svc"
// matches "**.{namespace}.svc" as a string, but is no host name; a
// verifier that stops at the NUL reads kubernetes.default.svc. Quill
// refuses it before policy.
func TestTrustDNSNameWithNUL(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ref := quillIssuer(t, ns, "tenant", "ECDSA-P256", namespacePolicy(ns))
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	evil := "kubernetes.default.svc\x00." + ns + ".svc"
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{evil}}, key)
	if err != nil {
		// crypto/x509 may refuse to encode it; encode the SAN extension
		// ourselves, as an attacker would.
		san, merr := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte(evil)}})
		if merr != nil {
			t.Fatal(merr)
		}
		der, err = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: san}},
		}, key)
		if err != nil {
			t.Fatal(err)
		}
	}
	if csr, err := x509.ParseCertificateRequest(der); err != nil || len(csr.DNSNames) != 1 || csr.DNSNames[0] != evil {
		t.Fatalf("the CSR does not carry the NUL name: %v", err)
	}
	requestFor(t, ns, "nul", ref, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil)
	cr := waitRequestCondition(t, ns, "nul", cmapi.CertificateRequestConditionInvalidRequest, cmmeta.ConditionTrue, quillv1.ReasonPolicyDenied)
	for _, c := range cr.Status.Conditions {
		if c.Type == cmapi.CertificateRequestConditionInvalidRequest && !strings.Contains(c.Message, "name syntax") {
			t.Errorf("refusal %q does not name the name syntax rule", c.Message)
		}
	}
	if len(cr.Status.Certificate) != 0 {
		t.Error("the request carries a certificate")
	}
	if _, bySerial := signedFor(t, ns, "tenant"); len(bySerial) != 0 {
		t.Errorf("the ledger holds %d certificates; want none", len(bySerial))
	}
}

// TestTrustECDSACAKeyUsage: an isCA Certificate with an ECDSA key and
// cert-manager's default usages (which include key encipherment) gets a
// CA certificate without keyEncipherment, which RFC 5480 forbids for EC
// keys; checked with Go and OpenSSL.
func TestTrustECDSACAKeyUsage(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	root := quillIssuer(t, ns, "root", "ECDSA-P384")
	create(t, certificate(ns, "intermediate", root, func(c *cmapi.Certificate) {
		c.Spec.IsCA = true
		c.Spec.DNSNames = nil
		c.Spec.CommonName = "e2e ECDSA intermediate"
		c.Spec.PrivateKey = &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256}
	}))
	secret := waitCertificateReady(t, ns, "intermediate")
	inter := parseCerts(t, secret.Data["tls.crt"])[0]
	if _, ok := inter.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Fatalf("intermediate key is %T; want ECDSA", inter.PublicKey)
	}
	if want := x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign | x509.KeyUsageCRLSign; !inter.IsCA || inter.KeyUsage != want {
		t.Errorf("intermediate: isCA=%t keyUsage=%b; want a CA with exactly %b", inter.IsCA, inter.KeyUsage, want)
	}
	path := filepath.Join(t.TempDir(), "intermediate.pem")
	if err := os.WriteFile(path, secret.Data["tls.crt"], 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("openssl", "x509", "-noout", "-ext", "keyUsage", "-in", path).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	if s := string(out); strings.Contains(s, "Key Encipherment") || !strings.Contains(s, "Certificate Sign") {
		t.Errorf("openssl shows keyUsage:\n%s\nwant Certificate Sign and no Key Encipherment", s)
	}
}

// TestTrustAllowedSubjectAttributesValidation: the API server refuses an
// allow-list naming a common name or emailAddress (policy judges each of
// them; allowing them wholesale would reopen item 1), and accepts names and
// dotted OIDs of other attributes.
func TestTrustAllowedSubjectAttributesValidation(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	issuer := func(name string, allow ...string) *quillv1.QuillIssuer {
		return &quillv1.QuillIssuer{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: quillv1.IssuerSpec{
				CA:     quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{SecretName: name + "-root", Subject: quillv1.Subject{CommonName: name + " root"}}},
				Policy: &quillv1.RequestPolicy{AllowedSubjectAttributes: allow},
			},
		}
	}
	for _, bad := range [][]string{{"UID", "CN"}, {"commonName"}, {"EmailAddress"}, {"2.5.4.3"}, {"1.2.840.113549.1.9.1"}, {"not an attribute"}} {
		if err := env.Client.Create(context.Background(), issuer("refused", bad...)); err == nil {
			t.Errorf("allowedSubjectAttributes %q was accepted; want the API server to refuse it", bad)
		}
	}
	create(t, issuer("accepted", "UID", "dc", "0.9.2342.19200300.100.1.25"))
}
