package ceremony

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/quill-pki/quill/pkg/issuance"
)

// caKeyUsage is what pkg/issuance gives every CA certificate a ceremony
// makes: signing certificates and CRLs, and digitalSignature for OCSP
// responses signed by the CA itself.
const caKeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature

// testNow is the clock of every test; nothing here reads the real one.
var testNow = time.Date(2030, time.June, 1, 12, 0, 0, 0, time.UTC)

type keySlot struct {
	alg  issuance.KeyAlgorithm
	slot int
}

// keyCache shares keys between tests, since RSA generation would dominate
// the run on a small machine. A test that needs two different keys of one
// algorithm asks for two slots.
var keyCache sync.Map

func testKey(t testing.TB, alg issuance.KeyAlgorithm, slot int) crypto.Signer {
	t.Helper()
	gen, _ := keyCache.LoadOrStore(keySlot{alg, slot}, sync.OnceValues(func() (crypto.Signer, error) {
		return issuance.GenerateKey(alg)
	}))
	k, err := gen.(func() (crypto.Signer, error))()
	if err != nil {
		t.Fatalf("generate %s key: %v", alg, err)
	}
	return k
}

// testCert is a certificate with its key, in parsed and PEM form.
type testCert struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
	keyPEM  []byte
}

type certOption func(*x509.Certificate, *certParams)

type certParams struct {
	key crypto.Signer
}

// valid sets the validity period.
func valid(notBefore, notAfter time.Time) certOption {
	return func(c *x509.Certificate, _ *certParams) { c.NotBefore, c.NotAfter = notBefore, notAfter }
}

// leaf makes an end-entity certificate instead of a CA.
func leaf() certOption {
	return func(c *x509.Certificate, _ *certParams) {
		c.IsCA = false
		c.KeyUsage = x509.KeyUsageDigitalSignature
		c.DNSNames = []string{"leaf.example.com"}
	}
}

func pathLen(n int) certOption {
	return func(c *x509.Certificate, _ *certParams) { c.MaxPathLen, c.MaxPathLenZero = n, n == 0 }
}

func keyUsage(ku x509.KeyUsage) certOption {
	return func(c *x509.Certificate, _ *certParams) { c.KeyUsage = ku }
}

func withKey(k crypto.Signer) certOption {
	return func(_ *x509.Certificate, p *certParams) { p.key = k }
}

// newCert builds a CA certificate named cn, valid for a year around
// testNow, signed by parent (self-signed when parent is nil), with a fresh
// P-256 key unless withKey says otherwise.
func newCert(t testing.TB, cn string, parent *testCert, opts ...certOption) *testCert {
	t.Helper()
	serial, err := issuance.NewSerialNumber(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Quill Test"}},
		NotBefore:             testNow.Add(-180 * 24 * time.Hour),
		NotAfter:              testNow.Add(180 * 24 * time.Hour),
		KeyUsage:              caKeyUsage,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            -1,
	}
	p := &certParams{}
	for _, o := range opts {
		o(tmpl, p)
	}
	if p.key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		p.key = k
	}
	spki, err := x509.MarshalPKIXPublicKey(p.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	ski, err := issuance.SubjectKeyID(spki)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SubjectKeyId = ski
	issuerCert, issuerKey := tmpl, p.key
	if parent != nil {
		issuerCert, issuerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuerCert, p.key.Public(), issuerKey)
	if err != nil {
		t.Fatalf("create %s: %v", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := issuance.MarshalPrivateKeyPEM(p.key)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{cert: cert, key: p.key, certPEM: issuance.EncodeCertificatesPEM(cert), keyPEM: keyPEM}
}

func writeTestFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// dirNames lists a folder, so tests can show that a failure wrote nothing
// (no output, no temporary file).
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}

func intp(n int) *int { return &n }
