package ocspserver

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
	"encoding/asn1"
	"math/big"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"

	"github.com/quill-pki/quill/pkg/issuance"
)

// testNow is the fixed clock of most tests; tests that need time to move
// use a testClock.
var testNow = time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *testClock { return &testClock{now: t} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var keyCache sync.Map

// testKey shares keys between tests: RSA generation would dominate the run
// on a small machine otherwise.
func testKey(t testing.TB, alg issuance.KeyAlgorithm, slot int) crypto.Signer {
	t.Helper()
	type id struct {
		alg  issuance.KeyAlgorithm
		slot int
	}
	gen, _ := keyCache.LoadOrStore(id{alg, slot}, sync.OnceValues(func() (crypto.Signer, error) {
		switch alg {
		case issuance.ECDSAP256:
			return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		case issuance.ECDSAP384:
			return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		case issuance.RSA2048:
			return rsa.GenerateKey(rand.Reader, 2048)
		case issuance.Ed25519:
			_, k, err := ed25519.GenerateKey(rand.Reader)
			return k, err
		case issuance.MLDSA65:
			return mldsa.GenerateKey(mldsa.MLDSA65())
		}
		panic("no test key for " + alg)
	}))
	k, err := gen.(func() (crypto.Signer, error))()
	if err != nil {
		t.Fatalf("generate %s key: %v", alg, err)
	}
	return k
}

// testCA is a CA with one good, one revoked and one never-issued leaf.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	// leaves by name: "good", "revoked", "unknown" (signed by the CA but
	// absent from the source, as if never recorded).
	leaves map[string]*x509.Certificate
	source *mapSource
}

func newTestCA(t testing.TB, alg issuance.KeyAlgorithm, slot int) *testCA {
	t.Helper()
	return newTestCAAt(t, alg, slot, testNow)
}

// newTestCAAt is newTestCA with validity around now rather than testNow,
// for outside verifiers that read the real clock.
func newTestCAAt(t testing.TB, alg issuance.KeyAlgorithm, slot int, now time.Time) *testCA {
	t.Helper()
	key := testKey(t, alg, slot)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Quill Test CA " + string(alg), Organization: []string{"Quill"}},
		NotBefore:             now.Add(-24 * time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{cert: cert, key: key, leaves: map[string]*x509.Certificate{}, source: newMapSource()}
	leafKey := testKey(t, issuance.ECDSAP256, 50)
	for i, name := range []string{"good", "revoked", "unknown"} {
		lt := &x509.Certificate{
			SerialNumber: new(big.Int).SetBytes([]byte{0x5a, byte(slot), byte(i), 0x17, 0x42, 0x99, 0x01, 0x02}),
			Subject:      pkix.Name{CommonName: name + ".example.test"},
			DNSNames:     []string{name + ".example.test"},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(30 * 24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			OCSPServer:   []string{"http://127.0.0.1/ocsp/"},
		}
		der, err := x509.CreateCertificate(rand.Reader, lt, cert, leafKey.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		ca.leaves[name] = leaf
	}
	ca.source.set(ca.leaves["good"].SerialNumber, Status{NotAfter: ca.leaves["good"].NotAfter})
	ca.source.set(ca.leaves["revoked"].SerialNumber, Status{
		Revoked: true, RevokedAt: now.Add(-30 * time.Minute), Reason: ocsp.KeyCompromise, NotAfter: ca.leaves["revoked"].NotAfter,
	})
	return ca
}

// responder builds a Responder for the CA; opts adjust the Config.
func (ca *testCA) responder(t testing.TB, opts ...func(*Config)) *Responder {
	t.Helper()
	cfg := Config{Issuer: ca.cert, Source: ca.source, Key: ca.key, Now: func() time.Time { return testNow }}
	for _, o := range opts {
		o(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

// mapSource is a Source over a map, counting lookups.
type mapSource struct {
	mu      sync.RWMutex
	m       map[string]Status
	lookups int
	onLook  func()
}

func newMapSource() *mapSource { return &mapSource{m: map[string]Status{}} }

func (s *mapSource) set(serial *big.Int, st Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[serial.String()] = st
}

func (s *mapSource) Lookup(serial *big.Int) (Status, bool) {
	s.mu.Lock()
	s.lookups++
	hook := s.onLook
	st, ok := s.m[serial.String()]
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	return st, ok
}

func (s *mapSource) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookups
}

// goRequest is an OCSP request as golang.org/x/crypto/ocsp writes it.
func goRequest(t testing.TB, leaf, issuer *x509.Certificate, h crypto.Hash) []byte {
	t.Helper()
	der, err := ocsp.CreateRequest(leaf, issuer, &ocsp.RequestOptions{Hash: h})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// reqSpec describes a request for buildRequest; the zero value plus a CA
// and serial is a valid SHA-1 request without extensions.
type reqSpec struct {
	hashOID       asn1.ObjectIdentifier
	nameHash      []byte
	keyHash       []byte
	serial        *big.Int
	version       *int64
	count         int // requests in the list; 0 means 1, -1 means none
	nonceValue    []byte
	nonceTwice    bool
	criticalExt   bool
	requestorName bool
	signature     bool
	singleExt     bool
	trailing      bool
	noNullParams  bool
}

// buildRequest writes an OCSPRequest from spec with cryptobyte, so tests
// can produce requests x/crypto/ocsp never would.
func buildRequest(t testing.TB, spec reqSpec) []byte {
	t.Helper()
	ext := func(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, critical bool, value []byte) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			if critical {
				b.AddASN1Boolean(true)
			}
			b.AddASN1OctetString(value)
		})
	}
	n := spec.count
	if n == 0 {
		n = 1
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			if spec.version != nil {
				b.AddASN1(tag0, func(b *cryptobyte.Builder) { b.AddASN1Int64(*spec.version) })
			}
			if spec.requestorName {
				b.AddASN1(tag1, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.Tag(2).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte("client.example.test")) })
				})
			}
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for range max(n, 0) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
								b.AddASN1ObjectIdentifier(spec.hashOID)
								if !spec.noNullParams {
									b.AddASN1NULL()
								}
							})
							b.AddASN1OctetString(spec.nameHash)
							b.AddASN1OctetString(spec.keyHash)
							b.AddASN1BigInt(spec.serial)
						})
						if spec.singleExt {
							b.AddASN1(tag0, func(b *cryptobyte.Builder) {
								b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
									ext(b, oidServiceLocator, false, []byte{0x30, 0x00})
								})
							})
						}
					})
				}
			})
			if spec.nonceValue != nil || spec.criticalExt {
				b.AddASN1(tag2, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						if spec.nonceValue != nil {
							ext(b, oidNonce, false, spec.nonceValue)
							if spec.nonceTwice {
								ext(b, oidNonce, false, spec.nonceValue)
							}
						}
						if spec.criticalExt {
							ext(b, asn1.ObjectIdentifier{1, 2, 3, 4}, true, []byte{0x05, 0x00})
						}
					})
				})
			}
		})
		if spec.signature {
			b.AddASN1(tag0, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddBytes(mustAlgID(t))
					b.AddASN1BitString([]byte{1, 2, 3})
				})
			})
		}
	})
	der := b.BytesOrPanic()
	if spec.trailing {
		der = append(der, 0x00)
	}
	return der
}

func mustAlgID(t testing.TB) []byte {
	spec, err := newSigSpec(testKey(t, issuance.ECDSAP256, 0), 0)
	if err != nil {
		t.Fatal(err)
	}
	return spec.algID
}

// specFor returns a valid reqSpec asking ca about leaf with hash h.
func specFor(t testing.TB, ca *testCA, leaf *x509.Certificate, h crypto.Hash) reqSpec {
	t.Helper()
	req, err := ocsp.ParseRequest(goRequest(t, leaf, ca.cert, h))
	if err != nil {
		t.Fatal(err)
	}
	var oid asn1.ObjectIdentifier
	for _, x := range hashes {
		if x.hash == h {
			oid = x.oid
		}
	}
	return reqSpec{hashOID: oid, nameHash: req.IssuerNameHash, keyHash: req.IssuerKeyHash, serial: leaf.SerialNumber}
}

// octetNonce is a nonce extnValue as RFC 8954 writes it: an OCTET STRING.
func octetNonce(n int) []byte {
	v := make([]byte, n)
	for i := range v {
		v[i] = byte(i + 1)
	}
	var b cryptobyte.Builder
	b.AddASN1OctetString(v)
	return b.BytesOrPanic()
}

// basicParts pulls what x/crypto/ocsp does not expose out of a successful
// response: the signed bytes, signature algorithm OID, signature, the
// responseExtensions and the raw certs.
type basicParts struct {
	tbs       []byte
	sigOID    asn1.ObjectIdentifier
	sigParams asn1.RawValue
	signature []byte
	respExts  []pkix.Extension
	certs     []asn1.RawValue
	version   int
}

func parseBasic(t testing.TB, der []byte) basicParts {
	t.Helper()
	var outer struct {
		Status   asn1.Enumerated
		Response struct {
			Type asn1.ObjectIdentifier
			Der  []byte
		} `asn1:"explicit,tag:0"`
	}
	if rest, err := asn1.Unmarshal(der, &outer); err != nil || len(rest) != 0 {
		t.Fatalf("parse OCSPResponse: %v (rest %d)", err, len(rest))
	}
	var basic struct {
		TBS   asn1.RawValue
		Alg   pkix.AlgorithmIdentifier
		Sig   asn1.BitString
		Certs []asn1.RawValue `asn1:"explicit,tag:0,optional"`
	}
	if rest, err := asn1.Unmarshal(outer.Response.Der, &basic); err != nil || len(rest) != 0 {
		t.Fatalf("parse BasicOCSPResponse: %v", err)
	}
	var tbs struct {
		Version     int `asn1:"optional,explicit,default:0,tag:0"`
		ResponderID asn1.RawValue
		ProducedAt  time.Time `asn1:"generalized"`
		Responses   []asn1.RawValue
		Exts        []pkix.Extension `asn1:"explicit,tag:1,optional"`
	}
	if rest, err := asn1.Unmarshal(basic.TBS.FullBytes, &tbs); err != nil || len(rest) != 0 {
		t.Fatalf("parse ResponseData: %v", err)
	}
	return basicParts{
		tbs: basic.TBS.FullBytes, sigOID: basic.Alg.Algorithm, sigParams: basic.Alg.Parameters,
		signature: basic.Sig.RightAlign(), respExts: tbs.Exts, certs: basic.Certs, version: tbs.Version,
	}
}

// newDelegated issues a delegated responder certificate from ca through the
// one path production takes, issuance.Authority.IssueResponder.
func newDelegated(ca *testCA, validity time.Duration, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	a := &issuance.Authority{Certificate: ca.cert, Root: ca.cert, Signer: ca.key}
	issued, key, err := a.IssueResponder(validity, "", now)
	if err != nil {
		return nil, nil, err
	}
	return issued.Certificate, key, nil
}
