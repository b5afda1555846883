package ocspserver

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/quill-pki/quill/pkg/issuance"
)

// responderBackdate is how far IssueResponder backdates a responder
// certificate for clock skew.
const responderBackdate = 5 * time.Minute

func TestNewDelegatedResponder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		caAlg   issuance.KeyAlgorithm
		keyAlg  issuance.KeyAlgorithm
		wantKey issuance.KeyAlgorithm
	}{
		{name: "ecdsa-ca-default-key", caAlg: issuance.ECDSAP256, wantKey: issuance.ECDSAP256},
		{name: "rsa-ca-ed25519-key", caAlg: issuance.RSA2048, keyAlg: issuance.Ed25519, wantKey: issuance.Ed25519},
		{name: "ml-dsa-ca-default-key", caAlg: issuance.MLDSA65, wantKey: issuance.ECDSAP256},
		{name: "ecdsa-ca-p384-key", caAlg: issuance.ECDSAP256, keyAlg: issuance.ECDSAP384, wantKey: issuance.ECDSAP384},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca := newTestCA(t, tt.caAlg, 4)
			cert, key, err := NewDelegatedResponder(ca.cert, ca.key, 48*time.Hour, testNow, tt.keyAlg)
			if err != nil {
				t.Fatalf("NewDelegatedResponder: %v", err)
			}
			if alg, err := issuance.KeyAlgorithmOf(key.Public()); err != nil || alg != tt.wantKey {
				t.Errorf("key %s (%v), want %s", alg, err, tt.wantKey)
			}
			if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) {
				t.Error("key does not match the certificate")
			}
			if err := cert.CheckSignatureFrom(ca.cert); err != nil {
				t.Errorf("not signed by the CA: %v", err)
			}
			if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}) || cert.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("usages %v / %v", cert.ExtKeyUsage, cert.KeyUsage)
			}
			if !cert.BasicConstraintsValid || cert.IsCA {
				t.Error("responder certificate is a CA or lacks basicConstraints")
			}
			if !bytes.Equal(cert.AuthorityKeyId, ca.cert.SubjectKeyId) || len(cert.SubjectKeyId) != 20 {
				t.Errorf("AKI %x (CA SKI %x), SKI %x", cert.AuthorityKeyId, ca.cert.SubjectKeyId, cert.SubjectKeyId)
			}
			var nocheck bool
			for _, e := range cert.Extensions {
				if e.Id.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}) {
					nocheck = bytes.Equal(e.Value, []byte{0x05, 0x00}) && !e.Critical
				}
			}
			if !nocheck {
				t.Error("no id-pkix-ocsp-nocheck extension with a NULL value")
			}
			if s := cert.SerialNumber; s.Sign() <= 0 || s.BitLen() != 159 {
				t.Errorf("serial %X is not the 159-bit serial every Quill certificate has", s)
			}
			if !cert.NotBefore.Equal(testNow.Add(-responderBackdate)) || !cert.NotAfter.Equal(testNow.Add(48*time.Hour)) {
				t.Errorf("validity %s to %s", cert.NotBefore, cert.NotAfter)
			}
			// Clients check the chain with the OCSPSigning purpose.
			pool := x509.NewCertPool()
			pool.AddCert(ca.cert)
			if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}}); err != nil {
				t.Errorf("chain does not verify for OCSPSigning: %v", err)
			}
		})
	}
}

func TestNewDelegatedResponderClampsToCA(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, issuance.ECDSAP256, 0)
	cert, _, err := NewDelegatedResponder(ca.cert, ca.key, 0, ca.cert.NotAfter.Add(-time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	if !cert.NotAfter.Equal(ca.cert.NotAfter) {
		t.Errorf("notAfter %s past the CA's %s", cert.NotAfter, ca.cert.NotAfter)
	}
	cert, _, err = NewDelegatedResponder(ca.cert, ca.key, 0, testNow, "")
	if err != nil || !cert.NotAfter.Equal(testNow.Add(DefaultResponderValidity)) {
		t.Errorf("default validity: %v, %v", cert, err)
	}
}

func TestNewDelegatedResponderRefuses(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, issuance.ECDSAP256, 0)
	other := testKey(t, issuance.ECDSAP256, 7)
	tests := []struct {
		name   string
		ca     *x509.Certificate
		key    crypto.Signer
		now    time.Time
		keyAlg issuance.KeyAlgorithm
		valid  time.Duration
		want   error
	}{
		{name: "no-ca", key: ca.key, now: testNow, want: ErrInvalidConfig},
		{name: "leaf-as-ca", ca: ca.leaves["good"], key: ca.key, now: testNow, want: ErrInvalidConfig},
		{name: "wrong-key", ca: ca.cert, key: other, now: testNow, want: ErrKeyMismatch},
		{name: "unknown-key-algorithm", ca: ca.cert, key: ca.key, now: testNow, keyAlg: "DSA-1024", want: ErrInvalidConfig},
		{name: "ca-expired", ca: ca.cert, key: ca.key, now: ca.cert.NotAfter.Add(time.Second), want: ErrInvalidConfig},
		{name: "negative-validity", ca: ca.cert, key: ca.key, now: testNow, valid: -time.Hour, want: ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cert, key, err := NewDelegatedResponder(tt.ca, tt.key, tt.valid, tt.now, tt.keyAlg)
			if !errors.Is(err, tt.want) || cert != nil || key != nil {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNeedsRotation(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, issuance.ECDSAP256, 0)
	cert, _, err := NewDelegatedResponder(ca.cert, ca.key, 3*time.Hour-responderBackdate, testNow, "")
	if err != nil {
		t.Fatal(err)
	}
	// Life is 3 h from testNow-5m: rotation is due 2 h after notBefore.
	due := cert.NotBefore.Add(2 * time.Hour)
	tests := []struct {
		name string
		cert *x509.Certificate
		now  time.Time
		want bool
	}{
		{name: "none", now: testNow, want: true},
		{name: "fresh", cert: cert, now: testNow, want: false},
		{name: "just-before-two-thirds", cert: cert, now: due.Add(-time.Second), want: false},
		{name: "at-two-thirds", cert: cert, now: due, want: true},
		{name: "expired", cert: cert, now: cert.NotAfter.Add(time.Hour), want: true},
		{name: "not-yet-valid", cert: cert, now: cert.NotBefore.Add(-time.Second), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := NeedsRotation(tt.cert, tt.now); got != tt.want {
				t.Errorf("NeedsRotation = %v, want %v", got, tt.want)
			}
		})
	}
}
