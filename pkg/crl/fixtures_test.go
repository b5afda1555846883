package crl

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/mldsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"sync"
	"testing"
	"time"
)

// testNow is the fixed clock of every test; nothing here reads the real one.
var testNow = time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)

type keyType string

const (
	ecdsaP256 keyType = "ecdsa-p256"
	rsa2048   keyType = "rsa-2048"
	ed25519K  keyType = "ed25519"
	mldsa65   keyType = "ml-dsa-65"
)

// keyCache shares keys between tests: RSA and ML-DSA generation would
// otherwise dominate the run on a small machine.
var keyCache sync.Map

func testKey(t testing.TB, kt keyType, slot int) crypto.Signer {
	t.Helper()
	type id struct {
		kt   keyType
		slot int
	}
	gen, _ := keyCache.LoadOrStore(id{kt, slot}, sync.OnceValues(func() (crypto.Signer, error) {
		switch kt {
		case ecdsaP256:
			return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		case rsa2048:
			return rsa.GenerateKey(rand.Reader, 2048)
		case ed25519K:
			_, k, err := ed25519.GenerateKey(rand.Reader)
			return k, err
		case mldsa65:
			return mldsa.GenerateKey(mldsa.MLDSA65())
		}
		panic("unknown key type " + kt)
	}))
	k, err := gen.(func() (crypto.Signer, error))()
	if err != nil {
		t.Fatalf("generate %s key: %v", kt, err)
	}
	return k
}

type caConfig struct {
	isCA     bool
	usage    x509.KeyUsage
	noSKI    bool
	sigAlg   x509.SignatureAlgorithm
	cn       string
	keySlot  int
	validity time.Duration
}

type caOption func(*caConfig)

func notCA() caOption                    { return func(c *caConfig) { c.isCA = false } }
func withUsage(u x509.KeyUsage) caOption { return func(c *caConfig) { c.usage = u } }
func withCN(cn string) caOption          { return func(c *caConfig) { c.cn = cn } }

// newCA makes a self-signed CA certificate for a key of kt.
func newCA(t testing.TB, kt keyType, opts ...caOption) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	cfg := caConfig{isCA: true, usage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, cn: "Quill Test CA " + string(kt), validity: 365 * 24 * time.Hour}
	for _, o := range opts {
		o(&cfg)
	}
	key := testKey(t, kt, cfg.keySlot)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cfg.cn},
		NotBefore:             testNow.Add(-time.Hour),
		NotAfter:              testNow.Add(cfg.validity),
		KeyUsage:              cfg.usage,
		BasicConstraintsValid: true,
		IsCA:                  cfg.isCA,
		SignatureAlgorithm:    cfg.sigAlg,
	}
	if !cfg.isCA {
		// Go only derives a subject key identifier for CAs; give the
		// non-CA fixture one so the test sees the cA check, not this.
		tmpl.SubjectKeyId = []byte{1, 2, 3, 4}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("create CA: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// sampleEntries returns n revoked entries with serials 1000.., reasons
// cycling through every reason a full CRL allows and certificates valid for
// a year after testNow.
func sampleEntries(n int) []Entry {
	reasons := []int{0, 1, 2, 3, 4, 5, 6, 9, 10}
	out := make([]Entry, n)
	for i := range out {
		out[i] = Entry{
			Serial:    big.NewInt(int64(1000 + i)),
			RevokedAt: testNow.Add(-time.Duration(i+1) * time.Minute).Truncate(time.Second),
			Reason:    reasons[i%len(reasons)],
			NotAfter:  testNow.Add(365 * 24 * time.Hour),
		}
	}
	return out
}
