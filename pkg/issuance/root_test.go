package issuance

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewSelfSignedRoot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		alg     KeyAlgorithm
		wantSig x509.SignatureAlgorithm
	}{
		{name: "ecdsa-p256", alg: ECDSAP256, wantSig: x509.ECDSAWithSHA256},
		{name: "ecdsa-p384", alg: ECDSAP384, wantSig: x509.ECDSAWithSHA384},
		{name: "ecdsa-p521", alg: ECDSAP521, wantSig: x509.ECDSAWithSHA512},
		{name: "rsa-2048", alg: RSA2048, wantSig: x509.SHA256WithRSA},
		{name: "rsa-3072", alg: RSA3072, wantSig: x509.SHA256WithRSA},
		{name: "rsa-4096", alg: RSA4096, wantSig: x509.SHA256WithRSA},
		{name: "ed25519", alg: Ed25519, wantSig: x509.PureEd25519},
		{name: "ml-dsa-44", alg: MLDSA44, wantSig: x509.MLDSA44},
		{name: "ml-dsa-65", alg: MLDSA65, wantSig: x509.MLDSA65},
		{name: "ml-dsa-87", alg: MLDSA87, wantSig: x509.MLDSA87},
	}
	const validity = 10 * 365 * 24 * time.Hour
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.alg == RSA4096 && testing.Short() {
				t.Skip("RSA-4096 key generation is slow")
			}
			subject := pkix.Name{CommonName: "Quill Root " + string(tt.alg), Organization: []string{"Quill"}}
			certPEM, keyPEM, err := NewSelfSignedRoot(subject, tt.alg, validity, testNow.Add(700*time.Millisecond))
			if err != nil {
				t.Fatalf("NewSelfSignedRoot: %v", err)
			}
			certs := pemCerts(t, certPEM)
			if len(certs) != 1 {
				t.Fatalf("got %d certificates", len(certs))
			}
			c := certs[0]
			if !c.BasicConstraintsValid || !c.IsCA || c.MaxPathLen != -1 {
				t.Errorf("basic constraints = %t %t %d, want CA without path length", c.BasicConstraintsValid, c.IsCA, c.MaxPathLen)
			}
			if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature; c.KeyUsage != want {
				t.Errorf("key usage = %v", keyUsageNames(c.KeyUsage))
			}
			if ski, _ := SubjectKeyID(c.RawSubjectPublicKeyInfo); len(c.SubjectKeyId) != 20 || string(ski) != string(c.SubjectKeyId) {
				t.Errorf("SKI = %x, want %x", c.SubjectKeyId, ski)
			}
			if !c.NotBefore.Equal(testNow.Add(-time.Hour)) || !c.NotAfter.Equal(testNow.Add(validity)) {
				t.Errorf("validity = %s..%s", c.NotBefore, c.NotAfter)
			}
			if c.SignatureAlgorithm != tt.wantSig {
				t.Errorf("signature algorithm = %s, want %s", c.SignatureAlgorithm, tt.wantSig)
			}
			if err := c.CheckSignatureFrom(c); err != nil {
				t.Errorf("not self-signed: %v", err)
			}
			if c.Subject.String() != "CN=Quill Root "+string(tt.alg)+",O=Quill" {
				t.Errorf("subject = %q", c.Subject)
			}

			block, _ := pem.Decode(keyPEM)
			if block == nil || block.Type != "PRIVATE KEY" {
				t.Fatalf("key is not a PEM PKCS#8 block")
			}
			if strings.HasPrefix(string(tt.alg), "ML-DSA") {
				var pkcs8 struct {
					Version    int
					Algorithm  pkix.AlgorithmIdentifier
					PrivateKey []byte
				}
				if _, err := asn1.Unmarshal(block.Bytes, &pkcs8); err != nil {
					t.Fatal(err)
				}
				// Seed-only form: [0] IMPLICIT OCTET STRING of 32 bytes.
				if len(pkcs8.PrivateKey) != 34 || pkcs8.PrivateKey[0] != 0x80 || pkcs8.PrivateKey[1] != 32 {
					t.Errorf("ML-DSA private key is not seed-only: % x…", pkcs8.PrivateKey[:min(4, len(pkcs8.PrivateKey))])
				}
			}

			a, err := LoadAuthority(certPEM, keyPEM, nil)
			if err != nil {
				t.Fatalf("LoadAuthority: %v", err)
			}
			if err := a.Check(testNow); err != nil {
				t.Fatalf("Check: %v", err)
			}
			if a.Summary().KeyAlgorithm != tt.alg {
				t.Errorf("summary key algorithm = %q", a.Summary().KeyAlgorithm)
			}
			verifyIssued(t, mustSign(t, a, Request{CSR: newCSR(t)}, baseOptions()))
		})
	}
}

func TestNewSelfSignedRootRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		subject  pkix.Name
		alg      KeyAlgorithm
		validity time.Duration
		now      time.Time
		wantMsg  string
	}{
		{name: "unknown-algorithm", subject: pkix.Name{CommonName: "r"}, alg: "DSA-1024", validity: time.Hour, now: testNow, wantMsg: `"DSA-1024"`},
		{name: "short-validity", subject: pkix.Name{CommonName: "r"}, alg: ECDSAP256, validity: time.Minute, now: testNow, wantMsg: "below the minimum"},
		{name: "empty-subject", alg: ECDSAP256, validity: time.Hour, now: testNow, wantMsg: "subject is empty"},
		{name: "zero-now", subject: pkix.Name{CommonName: "r"}, alg: ECDSAP256, validity: time.Hour, wantMsg: "now is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := NewSelfSignedRoot(tt.subject, tt.alg, tt.validity, tt.now)
			if !errors.Is(err, errBadRoot) {
				t.Fatalf("NewSelfSignedRoot() error = %v", err)
			}
			containsAll(t, err.Error(), tt.wantMsg)
		})
	}
}
