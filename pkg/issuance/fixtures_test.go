package issuance

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// testNow is the fixed clock of every test; nothing here reads the real one.
var testNow = time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)

// Test-only key algorithms Quill must refuse.
const (
	rsa1024   KeyAlgorithm = "RSA-1024"
	ecdsaP224 KeyAlgorithm = "ECDSA-P224"
)

// allLeafAlgorithms is every key type Sign accepts in a CSR.
var allLeafAlgorithms = []KeyAlgorithm{RSA2048, RSA3072, ECDSAP256, ECDSAP384, ECDSAP521, Ed25519, MLDSA44, MLDSA65, MLDSA87}

type keySlot struct {
	alg  KeyAlgorithm
	slot int
}

// keyCache shares keys between tests: RSA generation dominates the run time
// on a small machine otherwise. Each (algorithm, slot) pair is one key, so a
// test needing two distinct keys of one type asks for two slots.
var keyCache sync.Map

func testKey(t testing.TB, alg KeyAlgorithm, slot int) crypto.Signer {
	t.Helper()
	gen, _ := keyCache.LoadOrStore(keySlot{alg, slot}, sync.OnceValues(func() (crypto.Signer, error) {
		return freshKey(alg)
	}))
	k, err := gen.(func() (crypto.Signer, error))()
	if err != nil {
		t.Fatalf("generate %s key: %v", alg, err)
	}
	return k
}

func freshKey(alg KeyAlgorithm) (crypto.Signer, error) {
	switch alg {
	case rsa1024:
		return rsa.GenerateKey(rand.Reader, 1024)
	case ecdsaP224:
		return ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	}
	return GenerateKey(alg)
}

// goExtensions lets Go's own encoder produce keyUsage, extKeyUsage and
// basicConstraints extensions from a template, so CSR fixtures do not rely
// on the package's decoders being right about the encoding.
func goExtensions(t testing.TB, tmpl *x509.Certificate, ids ...[]int) []pkix.Extension {
	t.Helper()
	key := testKey(t, ECDSAP256, 99)
	tmpl.SerialNumber = big.NewInt(1)
	tmpl.NotBefore, tmpl.NotAfter = testNow, testNow.Add(time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("encode extensions: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	var out []pkix.Extension
	for _, e := range cert.Extensions {
		for _, id := range ids {
			if e.Id.Equal(id) {
				out = append(out, e)
			}
		}
	}
	if len(out) != len(ids) {
		t.Fatalf("Go encoded %d of the %d wanted extensions", len(out), len(ids))
	}
	return out
}

// --- CSR builder ---

type csrConfig struct {
	key        crypto.Signer
	subject    pkix.Name
	rawSubject []byte
	dns        []string
	ips        []net.IP
	uris       []*url.URL
	emails     []string
	exts       []pkix.Extension
}

type csrOption func(testing.TB, *csrConfig)

func withKey(k crypto.Signer) csrOption {
	return func(_ testing.TB, c *csrConfig) { c.key = k }
}

func withKeyAlg(alg KeyAlgorithm) csrOption {
	return func(t testing.TB, c *csrConfig) { c.key = testKey(t, alg, 0) }
}

func withCN(cn string) csrOption {
	return func(_ testing.TB, c *csrConfig) { c.subject = pkix.Name{CommonName: cn} }
}

func withSubject(n pkix.Name) csrOption {
	return func(_ testing.TB, c *csrConfig) { c.subject = n }
}

func withRawSubject(der []byte) csrOption {
	return func(_ testing.TB, c *csrConfig) { c.rawSubject = der }
}

func withEmptySubject() csrOption {
	return func(_ testing.TB, c *csrConfig) { c.subject, c.rawSubject = pkix.Name{}, nil }
}

// withDNS replaces the DNS names; withDNS() removes them.
func withDNS(names ...string) csrOption {
	return func(_ testing.TB, c *csrConfig) { c.dns = names }
}

func withIP(ips ...string) csrOption {
	return func(t testing.TB, c *csrConfig) {
		for _, s := range ips {
			ip := net.ParseIP(s)
			if ip == nil {
				t.Fatalf("bad IP %q", s)
			}
			c.ips = append(c.ips, ip)
		}
	}
}

func withURI(uris ...string) csrOption {
	return func(t testing.TB, c *csrConfig) {
		for _, s := range uris {
			u, err := url.Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			c.uris = append(c.uris, u)
		}
	}
}

func withEmail(addrs ...string) csrOption {
	return func(_ testing.TB, c *csrConfig) { c.emails = addrs }
}

func withExtension(e pkix.Extension) csrOption {
	return func(_ testing.TB, c *csrConfig) { c.exts = append(c.exts, e) }
}

func withKeyUsageExt(ku x509.KeyUsage) csrOption {
	return func(t testing.TB, c *csrConfig) {
		c.exts = append(c.exts, goExtensions(t, &x509.Certificate{KeyUsage: ku}, oidExtKeyUsage)...)
	}
}

func withExtKeyUsageExt(ekus ...x509.ExtKeyUsage) csrOption {
	return func(t testing.TB, c *csrConfig) {
		c.exts = append(c.exts, goExtensions(t, &x509.Certificate{ExtKeyUsage: ekus}, oidExtExtKeyUsage)...)
	}
}

func withBasicConstraintsExt(isCA bool, maxPathLen int) csrOption {
	return func(t testing.TB, c *csrConfig) {
		tmpl := &x509.Certificate{BasicConstraintsValid: true, IsCA: isCA, MaxPathLen: maxPathLen, MaxPathLenZero: maxPathLen == 0}
		c.exts = append(c.exts, goExtensions(t, tmpl, oidExtBasicConstraints)...)
	}
}

// newCSR builds a PEM CSR: by default an ECDSA P-256 key for
// "app.example.test", named in both the common name and a DNS SAN.
func newCSR(t testing.TB, opts ...csrOption) []byte {
	t.Helper()
	c := &csrConfig{subject: pkix.Name{CommonName: "app.example.test"}, dns: []string{"app.example.test"}}
	for _, o := range opts {
		o(t, c)
	}
	if c.key == nil {
		c.key = testKey(t, ECDSAP256, 0)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:         c.subject,
		RawSubject:      c.rawSubject,
		DNSNames:        c.dns,
		IPAddresses:     c.ips,
		URIs:            c.uris,
		EmailAddresses:  c.emails,
		ExtraExtensions: c.exts,
	}, c.key)
	if err != nil {
		t.Fatalf("create CSR: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCSR, Bytes: der})
}

// --- CA builder ---

type caConfig struct {
	key          crypto.Signer
	parent       *Authority
	cn           string
	notBefore    time.Time
	notAfter     time.Time
	keyUsage     x509.KeyUsage
	notCA        bool
	maxPathLen   *int
	noSKI        bool
	ekus         []x509.ExtKeyUsage
	permittedDNS []string
	sigAlg       x509.SignatureAlgorithm
}

type caOption func(testing.TB, *caConfig)

// withCAKey sets the CA's key; the default is a fresh ECDSA P-256 key.
func withCAKey(k crypto.Signer) caOption {
	return func(_ testing.TB, c *caConfig) { c.key = k }
}

func withCAKeyAlg(alg KeyAlgorithm, slot int) caOption {
	return func(t testing.TB, c *caConfig) { c.key = testKey(t, alg, slot) }
}

// withParent makes the CA an intermediate issued by parent.
func withParent(parent *Authority) caOption {
	return func(_ testing.TB, c *caConfig) { c.parent = parent }
}

func withCACN(cn string) caOption {
	return func(_ testing.TB, c *caConfig) { c.cn = cn }
}

func withCAValidity(notBefore, notAfter time.Time) caOption {
	return func(_ testing.TB, c *caConfig) { c.notBefore, c.notAfter = notBefore, notAfter }
}

func withCAKeyUsage(ku x509.KeyUsage) caOption {
	return func(_ testing.TB, c *caConfig) { c.keyUsage = ku }
}

func withNotCA() caOption {
	return func(_ testing.TB, c *caConfig) { c.notCA = true }
}

func withCAPathLen(n int) caOption {
	return func(_ testing.TB, c *caConfig) { c.maxPathLen = &n }
}

func withoutSKI() caOption {
	return func(_ testing.TB, c *caConfig) { c.noSKI = true }
}

func withCAExtKeyUsage(ekus ...x509.ExtKeyUsage) caOption {
	return func(_ testing.TB, c *caConfig) { c.ekus = ekus }
}

func withPermittedDNS(domains ...string) caOption {
	return func(_ testing.TB, c *caConfig) { c.permittedDNS = domains }
}

// withCASignatureAlgorithm picks how the parent signs this CA (e.g. PSS).
func withCASignatureAlgorithm(alg x509.SignatureAlgorithm) caOption {
	return func(_ testing.TB, c *caConfig) { c.sigAlg = alg }
}

// newCA builds an Authority directly with crypto/x509, independent of
// NewSelfSignedRoot: a root by default, an intermediate withParent.
func newCA(t testing.TB, opts ...caOption) *Authority {
	t.Helper()
	c := &caConfig{
		notBefore: testNow.Add(-24 * time.Hour),
		notAfter:  testNow.AddDate(5, 0, 0),
		keyUsage:  x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	for _, o := range opts {
		o(t, c)
	}
	if c.key == nil {
		k, err := freshKey(ECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		c.key = k
	}
	if c.cn == "" {
		c.cn = "Quill Test Root"
		if c.parent != nil {
			c.cn = "Quill Test Intermediate under " + c.parent.Certificate.Subject.CommonName
		}
	}
	spki, err := x509.MarshalPKIXPublicKey(c.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	ski, err := SubjectKeyID(spki)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := NewSerialNumber(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: c.cn, Organization: []string{"Quill Tests"}},
		NotBefore:             c.notBefore,
		NotAfter:              c.notAfter,
		KeyUsage:              c.keyUsage,
		BasicConstraintsValid: true,
		IsCA:                  !c.notCA,
		MaxPathLen:            -1,
		SubjectKeyId:          ski,
		ExtKeyUsage:           c.ekus,
		PermittedDNSDomains:   c.permittedDNS,
		SignatureAlgorithm:    c.sigAlg,
	}
	if c.maxPathLen != nil {
		tmpl.MaxPathLen, tmpl.MaxPathLenZero = *c.maxPathLen, *c.maxPathLen == 0
	}
	if c.noSKI {
		// Go adds a subject key identifier to every CA template; hand it the
		// basicConstraints extension instead so it sees no CA to add one to.
		tmpl.SubjectKeyId = nil
		tmpl.ExtraExtensions = goExtensions(t, &x509.Certificate{BasicConstraintsValid: true, IsCA: true, MaxPathLen: -1}, oidExtBasicConstraints)
		tmpl.BasicConstraintsValid, tmpl.IsCA = false, false
	}
	parentCert, parentKey := tmpl, c.key
	if c.parent != nil {
		parentCert, parentKey = c.parent.Certificate, c.parent.Signer
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, c.key.Public(), parentKey)
	if err != nil {
		t.Fatalf("create CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	a := &Authority{Certificate: cert, Root: cert, Signer: c.key}
	if c.parent != nil {
		a.Root = c.parent.Root
		if !c.parent.issuerIsRoot() {
			a.Intermediates = append([]*x509.Certificate{c.parent.Certificate}, c.parent.Intermediates...)
		}
	}
	return a
}

// --- helpers ---

func baseOptions() Options {
	return Options{Now: testNow}
}

func mustSign(t testing.TB, a *Authority, req Request, opts Options) *Issued {
	t.Helper()
	issued, err := a.Sign(req, opts)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return issued
}

func pemCerts(t testing.TB, data []byte) []*x509.Certificate {
	t.Helper()
	certs, err := ParseCertificatesPEM(data)
	if err != nil {
		t.Fatalf("parse PEM certificates: %v", err)
	}
	return certs
}

// verifyIssued checks the issued chain with x509.Verify, using only what a
// client would get: ChainPEM and CAPEM.
func verifyIssued(t testing.TB, issued *Issued) {
	t.Helper()
	chain := pemCerts(t, issued.ChainPEM)
	if !bytes.Equal(chain[0].Raw, issued.Certificate.Raw) {
		t.Fatal("ChainPEM does not start with the issued certificate")
	}
	roots := x509.NewCertPool()
	for _, c := range pemCerts(t, issued.CAPEM) {
		roots.AddCert(c)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: testNow,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		t.Fatalf("x509.Verify: %v", err)
	}
}

// secretFiles encodes a as cert-manager stores it: tls.crt is the issuing
// CA and its intermediates, tls.key PKCS#8, ca.crt the root.
func secretFiles(t testing.TB, a *Authority) (tlsCrt, tlsKey, caCrt []byte) {
	t.Helper()
	tlsCrt = EncodeCertificatesPEM(append([]*x509.Certificate{a.Certificate}, a.Intermediates...)...)
	der, err := x509.MarshalPKCS8PrivateKey(a.Signer)
	if err != nil {
		t.Fatal(err)
	}
	return tlsCrt, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), EncodeCertificatesPEM(a.Root)
}

func ptr[T any](v T) *T { return &v }

func containsAll(t testing.TB, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%q does not contain %q", s, sub)
		}
	}
}
