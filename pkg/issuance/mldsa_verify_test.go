package issuance

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

// mldsaCAs are ML-DSA issuing CAs as Quill loads them (the circl engine,
// whose key is already unpacked) and as a caller may build them by hand
// (a crypto/mldsa key: the certificate's key is unpacked per check).
func mldsaCAs(t *testing.T, alg KeyAlgorithm) map[string]*Authority {
	t.Helper()
	certPEM, keyPEM, err := NewSelfSignedRoot(pkix.Name{CommonName: "self-check " + string(alg)}, alg, 24*time.Hour, testNow.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadAuthority(certPEM, keyPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := loaded.Signer.(*circlMLDSA); !ok {
		t.Fatalf("LoadAuthority kept %T, want the circl engine", loaded.Signer)
	}
	return map[string]*Authority{
		"circl-engine":  loaded,
		"crypto-mldsa":  newCA(t, withCAKeyAlg(alg, 0)),
		"intermediate":  newCA(t, withCAKeyAlg(alg, 1), withParent(newCA(t, withCAKeyAlg(alg, 2)))),
		"classical-top": newCA(t, withCAKeyAlg(alg, 3), withParent(newCA(t, withCAKeyAlg(ECDSAP384, 0)))),
	}
}

// issueRaw signs a leaf under a with crypto/x509 directly, after edit
// changed its template, bypassing Sign's own checks.
func issueRaw(t *testing.T, a *Authority, edit func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	leafKey := testKey(t, ECDSAP256, 7)
	tmpl := &x509.Certificate{
		SerialNumber:   mustSerial(t),
		Subject:        pkix.Name{CommonName: "leaf.example.test"},
		DNSNames:       []string{"leaf.example.test"},
		NotBefore:      testNow,
		NotAfter:       testNow.Add(time.Hour),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		AuthorityKeyId: a.Certificate.SubjectKeyId,
	}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.Certificate, leafKey.Public(), a.Signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func mustSerial(t *testing.T) *big.Int {
	t.Helper()
	s, err := NewSerialNumber(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// namesake is a self-signed ML-DSA CA with a's subject and another key.
func namesake(t *testing.T, a *Authority, alg KeyAlgorithm) *Authority {
	t.Helper()
	key := testKey(t, alg, 4)
	tmpl := &x509.Certificate{
		SerialNumber:          mustSerial(t),
		RawSubject:            a.Certificate.RawSubject,
		NotBefore:             a.Certificate.NotBefore,
		NotAfter:              a.Certificate.NotAfter,
		KeyUsage:              x509.KeyUsageCertSign,
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
	return &Authority{Certificate: cert, Root: cert, Signer: key}
}

// reparsed parses der after damage changed a copy of it.
func reparsed(t *testing.T, cert *x509.Certificate, damage func([]byte)) *x509.Certificate {
	t.Helper()
	der := append([]byte(nil), cert.Raw...)
	damage(der)
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("damaged certificate does not parse: %v", err)
	}
	return c
}

// TestMLDSASelfCheck: the circl self-check of ML-DSA CAs reaches the same
// verdict as crypto/x509's Certificate.Verify on good certificates and on
// certificates a faulty signer or a broken chain could produce.
func TestMLDSASelfCheck(t *testing.T) {
	t.Parallel()
	for _, alg := range []KeyAlgorithm{MLDSA44, MLDSA65, MLDSA87} {
		for caName, ca := range mldsaCAs(t, alg) {
			other := namesake(t, ca, alg)
			tests := []struct {
				name    string
				cert    func(t *testing.T) *x509.Certificate
				wantErr string
			}{
				{name: "good", cert: func(t *testing.T) *x509.Certificate {
					return mustSign(t, ca, Request{CSR: newCSR(t), KeyUsage: x509.KeyUsageDigitalSignature}, baseOptions()).Certificate
				}},
				{name: "signature-bit-flipped", wantErr: "signature does not verify", cert: func(t *testing.T) *x509.Certificate {
					return reparsed(t, issueRaw(t, ca, nil), func(der []byte) { der[len(der)-1] ^= 0x01 })
				}},
				{name: "signed-by-a-namesake-ca", wantErr: "signature does not verify", cert: func(t *testing.T) *x509.Certificate {
					return issueRaw(t, other, nil)
				}},
				{name: "before-the-ca", wantErr: "not valid at the certificate's notBefore", cert: func(t *testing.T) *x509.Certificate {
					return issueRaw(t, ca, func(c *x509.Certificate) { c.NotBefore = ca.Certificate.NotBefore.Add(-time.Minute) })
				}},
			}
			for _, tt := range tests {
				t.Run(strings.ToLower(string(alg))+"/"+caName+"/"+tt.name, func(t *testing.T) {
					t.Parallel()
					cert := tt.cert(t)
					handled, err := ca.verifyMLDSA(cert)
					if !handled {
						t.Fatal("the ML-DSA self-check left an unconstrained chain to crypto/x509")
					}
					goErr := ca.verifyX509(cert)
					if (err == nil) != (goErr == nil) {
						t.Fatalf("circl self-check: %v; crypto/x509: %v", err, goErr)
					}
					if tt.wantErr == "" {
						if err != nil {
							t.Fatal(err)
						}
						return
					}
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "self-check:") {
						t.Fatalf("error %v; want a self-check error about %q", err, tt.wantErr)
					}
					if errors.Is(err, ErrInvalidRequest) {
						t.Errorf("%v is classified as an invalid request; want a plain error", err)
					}
				})
			}
		}
	}
}

// TestMLDSASelfCheckPathLength: an intermediate below a root allowing no
// intermediates signs nothing that verifies; both verifiers say so.
func TestMLDSASelfCheckPathLength(t *testing.T) {
	t.Parallel()
	root := newCA(t, withCAKeyAlg(MLDSA44, 5), withCAPathLen(0))
	inter := newCA(t, withCAKeyAlg(MLDSA44, 6), withParent(root))
	_, err := inter.Sign(Request{CSR: newCSR(t), KeyUsage: x509.KeyUsageDigitalSignature}, baseOptions())
	if err == nil || !strings.Contains(err.Error(), "allows 0 CA certificates below it") {
		t.Fatalf("Sign under a chain breaking its path length: %v", err)
	}
	if goErr := inter.verifyX509(issueRaw(t, inter, nil)); goErr == nil {
		t.Fatal("crypto/x509 accepts the chain the self-check refuses")
	}
}

// TestMLDSASelfCheckLeavesConstraintsToGo: name constraints in an ML-DSA
// chain are judged by crypto/x509, and a name outside them is refused as
// an invalid request.
func TestMLDSASelfCheckLeavesConstraintsToGo(t *testing.T) {
	t.Parallel()
	ca := newCA(t, withCAKeyAlg(MLDSA65, 5), withPermittedDNS("team.example.test"))
	inside := mustSign(t, ca, Request{CSR: newCSR(t, withCN("api.team.example.test"), withDNS("api.team.example.test")), KeyUsage: x509.KeyUsageDigitalSignature}, baseOptions())
	if handled, _ := ca.verifyMLDSA(inside.Certificate); handled {
		t.Error("a name-constrained chain was checked without crypto/x509")
	}
	_, err := ca.Sign(Request{CSR: newCSR(t, withCN("api.other.example.test"), withDNS("api.other.example.test")), KeyUsage: x509.KeyUsageDigitalSignature}, baseOptions())
	if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), "name constraints") {
		t.Fatalf("Sign outside the name constraints: %v; want an invalid request", err)
	}
}

// TestMLDSALyingSigner: a signer that signs other data than asked is caught
// for ML-DSA CAs as for the others, and nothing is returned.
func TestMLDSALyingSigner(t *testing.T) {
	t.Parallel()
	for caName, ca := range mldsaCAs(t, MLDSA65) {
		t.Run(caName, func(t *testing.T) {
			t.Parallel()
			liar := *ca
			liar.Signer = lyingSigner{ca.Signer}
			issued, err := liar.Sign(Request{CSR: newCSR(t), KeyUsage: x509.KeyUsageDigitalSignature}, baseOptions())
			if err == nil || issued != nil {
				t.Fatalf("Sign() = %v, %v; want an error and no certificate", issued, err)
			}
		})
	}
}
