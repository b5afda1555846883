package softkey_test

import (
	"context"
	"crypto"
	"crypto/mldsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/kms"
	"github.com/quill-pki/quill/pkg/kms/softkey"
)

var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// registry holds the softkey backend alone.
func registry() *kms.Registry {
	r := &kms.Registry{}
	r.Register(kms.SchemeSecret, softkey.Backend{})
	return r
}

func newRoot(t *testing.T, alg issuance.KeyAlgorithm) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := issuance.NewSelfSignedRoot(pkix.Name{CommonName: "softkey " + string(alg)}, alg, 24*time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

func certOf(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	certs, err := issuance.ParseCertificatesPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

// TestOpenSignsAsTheSecretsCA: a key opened from the Secret's PEM is the
// certificate's key, and an Authority around it signs what verifies with
// the certificate, for classical and ML-DSA keys alike.
func TestOpenSignsAsTheSecretsCA(t *testing.T) {
	t.Parallel()
	for _, alg := range []issuance.KeyAlgorithm{issuance.ECDSAP256, issuance.Ed25519, issuance.MLDSA65} {
		t.Run(strings.ToLower(string(alg)), func(t *testing.T) {
			t.Parallel()
			certPEM, keyPEM := newRoot(t, alg)
			cert := certOf(t, certPEM)
			ref := kms.SecretKey{Namespace: "team-a", Name: "ca", PEM: keyPEM}
			key, err := registry().Open(context.Background(), ref, kms.Options{Expected: cert.PublicKey})
			if err != nil {
				t.Fatal(err)
			}
			defer key.Close()
			if err := key.Probe(context.Background()); err != nil {
				t.Fatalf("Probe: %v", err)
			}
			ca, err := issuance.NewAuthority(certPEM, nil, key)
			if err != nil {
				t.Fatal(err)
			}
			der, err := ca.SignCRL(issuance.CRLRequest{Number: big.NewInt(1), ThisUpdate: testNow, Validity: time.Hour})
			if err != nil {
				t.Fatalf("signing with the opened key: %v", err)
			}
			list, err := x509.ParseRevocationList(der)
			if err != nil {
				t.Fatal(err)
			}
			if err := list.CheckSignatureFrom(cert); err != nil {
				t.Fatalf("the signed CRL does not verify: %v", err)
			}
		})
	}
}

// TestOpenKeepsTheMLDSAEngine: an ML-DSA key is opened with issuance's
// faster signing engine behind it, not as a bare crypto/mldsa key.
func TestOpenKeepsTheMLDSAEngine(t *testing.T) {
	t.Parallel()
	_, keyPEM := newRoot(t, issuance.MLDSA87)
	key, err := registry().Open(context.Background(), kms.SecretKey{Namespace: "n", Name: "pq", PEM: keyPEM}, kms.Options{})
	if err != nil {
		t.Fatal(err)
	}
	inner := key.(interface{ Unwrap() crypto.Signer }).Unwrap()
	if _, bare := inner.(*mldsa.PrivateKey); bare {
		t.Fatal("the opened ML-DSA key signs with crypto/mldsa, not issuance's engine")
	}
	if _, err := inner.Sign(nil, []byte("tbs"), crypto.Hash(0)); err != nil {
		t.Fatalf("Sign: %v", err)
	}
}

// TestOpenRefuses: what the backend refuses, and how each error is
// classified.
func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	certPEM, keyPEM := newRoot(t, issuance.ECDSAP256)
	_, otherPEM := newRoot(t, issuance.ECDSAP256)
	expected := certOf(t, certPEM).PublicKey
	tests := []struct {
		name string
		ref  kms.Ref
		want []error
	}{
		{name: "empty-pem", ref: kms.SecretKey{Namespace: "n", Name: "ca"}, want: []error{kms.ErrInvalidRef, issuance.ErrMalformedCA}},
		{name: "garbage-pem", ref: kms.SecretKey{Namespace: "n", Name: "ca", PEM: []byte("not a key")}, want: []error{kms.ErrInvalidRef, issuance.ErrMalformedCA}},
		{name: "certificate-as-key", ref: kms.SecretKey{Namespace: "n", Name: "ca", PEM: certPEM}, want: []error{kms.ErrInvalidRef, issuance.ErrMalformedCA}},
		{name: "no-secret-name", ref: kms.SecretKey{Namespace: "n", PEM: keyPEM}, want: []error{kms.ErrInvalidRef}},
		{name: "other-key", ref: kms.SecretKey{Namespace: "n", Name: "ca", PEM: otherPEM}, want: []error{kms.ErrKeyMismatch}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := registry().Open(context.Background(), tt.ref, kms.Options{Expected: expected})
			for _, want := range tt.want {
				if !errors.Is(err, want) {
					t.Errorf("Open: %v, want it to wrap %v", err, want)
				}
			}
		})
	}
}

// TestCheckRefusesOtherRefs: the backend opens kms.SecretKey only.
func TestCheckRefusesOtherRefs(t *testing.T) {
	t.Parallel()
	err := softkey.Backend{}.Check(&kms.PKCS11URI{Token: "t", Object: "k", ModulePath: "/lib.so"}, kms.Options{})
	if !errors.Is(err, kms.ErrInvalidRef) {
		t.Fatalf("Check(pkcs11 URI): %v, want ErrInvalidRef", err)
	}
}

// TestRefNeverPrintsTheKey: a reference carrying the key's PEM prints the
// Secret's name only, however it is formatted.
func TestRefNeverPrintsTheKey(t *testing.T) {
	t.Parallel()
	_, keyPEM := newRoot(t, issuance.ECDSAP256)
	ref := kms.SecretKey{Namespace: "team-a", Name: "ca", PEM: keyPEM}
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		got := fmt.Sprintf(format, ref)
		if strings.Contains(got, "PRIVATE KEY") || strings.Contains(got, "MII") {
			t.Errorf("%s prints the key: %s", format, got)
		}
		if !strings.Contains(got, "team-a/ca") {
			t.Errorf("%s = %s, want the Secret's name", format, got)
		}
	}
}
