package issuance

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"testing"
	"testing/iotest"
	"time"
)

func TestNewSerialNumber(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 200 {
		s, err := NewSerialNumber(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if s.BitLen() != 159 || s.Sign() <= 0 {
			t.Fatalf("serial %X has %d bits, want a positive 159-bit number", s, s.BitLen())
		}
		if seen[s.String()] {
			t.Fatalf("serial %X repeated", s)
		}
		seen[s.String()] = true
	}
	if _, err := NewSerialNumber(iotest.ErrReader(errors.New("no entropy"))); err == nil {
		t.Error("a failing reader gave a serial")
	}
}

func TestHumanDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   time.Duration
		want string
	}{
		{name: "one-day", in: 24 * time.Hour, want: "1 day"},
		{name: "days", in: 90 * 24 * time.Hour, want: "90 days"},
		{name: "hours", in: 36 * time.Hour, want: "36h0m0s"},
		{name: "rounded-to-the-second", in: 10*time.Minute + 400*time.Millisecond, want: "10m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := HumanDuration(tt.in); got != tt.want {
				t.Errorf("HumanDuration(%s) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestGenerateKeyEveryAlgorithm(t *testing.T) {
	t.Parallel()
	for _, alg := range KeyAlgorithms() {
		t.Run(kebabName(string(alg)), func(t *testing.T) {
			t.Parallel()
			if alg == RSA4096 && testing.Short() {
				t.Skip("RSA-4096 key generation is slow")
			}
			key, err := GenerateKey(alg)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := KeyAlgorithmOf(key.Public()); err != nil || got != alg {
				t.Fatalf("generated %s (%v), want %s", got, err, alg)
			}
			data, err := MarshalPrivateKeyPEM(key)
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParsePrivateKeyPEM(data)
			if err != nil || !PublicKeysEqual(back.Public(), key.Public()) {
				t.Fatalf("read back: %v", err)
			}
		})
	}
	if _, err := GenerateKey("DSA-1024"); !errors.Is(err, errUnsupportedKey) {
		t.Errorf("unknown algorithm: %v", err)
	}
}

func kebabName(s string) string {
	return string(bytes.ToLower([]byte(s)))
}

// TestEveryKindSharesPrimitives signs one certificate of every kind Quill
// makes and checks that each carries what only issue gives: a positive
// 159-bit serial within RFC 5280's 20 octets, the RFC 7093 key identifier
// of its own key, its issuer's key identifier as authority key identifier,
// and the signature algorithm signatureAlgorithmFor picks.
func TestEveryKindSharesPrimitives(t *testing.T) {
	t.Parallel()
	root := newCA(t, withCACN("Primitives Root"), withCAKeyAlg(ECDSAP384, 20))
	rsaRoot := newCA(t, withCACN("Primitives RSA Root"), withCAKeyAlg(RSA2048, 20))
	mldsaRoot := newCA(t, withCACN("Primitives ML-DSA Root"), withCAKeyAlg(MLDSA65, 20))
	subject, err := asn1.Marshal(pkix.Name{CommonName: "Primitives Self-Signed"}.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	csrFor := func(t *testing.T, cn string) *x509.CertificateRequest {
		csr, err := parseCSR(newCSR(t, withCN(cn), withDNS(), withKey(testKey(t, ECDSAP256, 21))))
		if err != nil {
			t.Fatal(err)
		}
		return csr
	}
	tests := []struct {
		name   string
		issuer *Authority // nil: self-signed
		rsaPSS bool
		make   func(t *testing.T) *x509.Certificate
	}{
		{name: "leaf", issuer: root, make: func(t *testing.T) *x509.Certificate {
			return mustSign(t, root, Request{CSR: newCSR(t)}, baseOptions()).Certificate
		}},
		{name: "leaf-rsa-pss", issuer: rsaRoot, rsaPSS: true, make: func(t *testing.T) *x509.Certificate {
			opts := baseOptions()
			opts.RSAPSS = true
			return mustSign(t, rsaRoot, Request{CSR: newCSR(t)}, opts).Certificate
		}},
		{name: "leaf-ml-dsa", issuer: mldsaRoot, make: func(t *testing.T) *x509.Certificate {
			return mustSign(t, mldsaRoot, Request{CSR: newCSR(t, withKeyAlg(MLDSA44))}, baseOptions()).Certificate
		}},
		{name: "sub-ca", issuer: root, make: func(t *testing.T) *x509.Certificate {
			return mustSign(t, root, Request{CSR: newCSR(t, withCN("Primitives Sub-CA"), withDNS()), IsCA: true, KeyUsage: x509.KeyUsageCertSign}, baseOptions()).Certificate
		}},
		{name: "ceremony-subordinate", issuer: root, make: func(t *testing.T) *x509.Certificate {
			issued, err := root.SignCA(csrFor(t, "Primitives Ceremony Sub-CA"), CAProfile{Validity: 30 * 24 * time.Hour, Backdate: time.Hour}, testNow)
			if err != nil {
				t.Fatal(err)
			}
			return issued.Certificate
		}},
		{name: "root", make: func(t *testing.T) *x509.Certificate {
			issued, err := SelfSign(testKey(t, Ed25519, 20), subject, CAProfile{Validity: 365 * 24 * time.Hour, Backdate: time.Hour}, testNow)
			if err != nil {
				t.Fatal(err)
			}
			return issued.Certificate
		}},
		{name: "bootstrap-root", make: func(t *testing.T) *x509.Certificate {
			certPEM, _, err := NewSelfSignedRoot(pkix.Name{CommonName: "Primitives Bootstrap"}, ECDSAP256, 365*24*time.Hour, testNow)
			if err != nil {
				t.Fatal(err)
			}
			return pemCerts(t, certPEM)[0]
		}},
		{name: "ocsp-responder", issuer: root, make: func(t *testing.T) *x509.Certificate {
			issued, _, err := root.IssueResponder(0, "", testNow)
			if err != nil {
				t.Fatal(err)
			}
			return issued.Certificate
		}},
		{name: "ocsp-responder-of-ml-dsa-ca", issuer: mldsaRoot, make: func(t *testing.T) *x509.Certificate {
			issued, _, err := mldsaRoot.IssueResponder(0, MLDSA44, testNow)
			if err != nil {
				t.Fatal(err)
			}
			return issued.Certificate
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := tt.make(t)
			s := c.SerialNumber
			if s.Sign() <= 0 || s.BitLen() != 159 || len(s.Bytes()) > 20 {
				t.Errorf("serial %X: sign %d, %d bits; want a positive 159-bit serial", s, s.Sign(), s.BitLen())
			}
			want, err := SubjectKeyID(c.RawSubjectPublicKeyInfo)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(c.SubjectKeyId, want) {
				t.Errorf("subject key identifier %X, want %X", c.SubjectKeyId, want)
			}
			signerPub, wantAKI := c.PublicKey, []byte(nil)
			if tt.issuer != nil {
				signerPub, wantAKI = tt.issuer.Certificate.PublicKey, tt.issuer.Certificate.SubjectKeyId
			}
			if !bytes.Equal(c.AuthorityKeyId, wantAKI) {
				t.Errorf("authority key identifier %X, want %X", c.AuthorityKeyId, wantAKI)
			}
			if alg, err := signatureAlgorithmFor(signerPub, tt.rsaPSS); err != nil || c.SignatureAlgorithm != alg {
				t.Errorf("signature algorithm %s, want %s (%v)", c.SignatureAlgorithm, alg, err)
			}
			if !c.BasicConstraintsValid {
				t.Error("no basicConstraints")
			}
		})
	}
}
