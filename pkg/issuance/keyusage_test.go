package issuance

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"
)

// TestSignFitsKeyUsagesToTheKey checks that Sign applies the key usage
// table to CA certificates as to leaves: cert-manager's default usages on
// an isCA Certificate (digital signature, key encipherment, cert sign) gave
// an ECDSA intermediate keyEncipherment, which RFC 5480 forbids.
func TestSignFitsKeyUsagesToTheKey(t *testing.T) {
	t.Parallel()
	const caDefaults = DefaultKeyUsage | x509.KeyUsageCertSign
	tests := []struct {
		name     string
		alg      KeyAlgorithm
		isCA     bool
		usage    x509.KeyUsage
		want     x509.KeyUsage
		wantNote string
	}{
		// cert-manager's defaults are trimmed without a note: the user
		// asked for nothing.
		{name: "ecdsa-ca-drops-key-encipherment", alg: ECDSAP256, isCA: true, usage: caDefaults,
			want: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign | x509.KeyUsageCRLSign},
		{name: "rsa-ca-drops-key-encipherment", alg: RSA2048, isCA: true, usage: caDefaults,
			want: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign | x509.KeyUsageCRLSign},
		{name: "ecdsa-leaf-drops-key-encipherment", alg: ECDSAP384, usage: DefaultKeyUsage,
			want: x509.KeyUsageDigitalSignature},
		// Usages asked for explicitly are noted when left out.
		{name: "ecdsa-leaf-notes-explicit-data-encipherment", alg: ECDSAP256, usage: x509.KeyUsageDigitalSignature | x509.KeyUsageDataEncipherment,
			want: x509.KeyUsageDigitalSignature, wantNote: "data encipherment"},
		{name: "rsa-ca-notes-explicit-key-encipherment", alg: RSA2048, isCA: true, usage: x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
			want: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, wantNote: "key encipherment"},
		{name: "rsa-leaf-keeps-key-encipherment", alg: RSA2048, usage: DefaultKeyUsage, want: DefaultKeyUsage},
		{name: "ecdsa-leaf-keeps-key-agreement", alg: ECDSAP256, usage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
			want: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			issued := mustSign(t, newCA(t), Request{CSR: newCSR(t, withKeyAlg(tt.alg)), KeyUsage: tt.usage, IsCA: tt.isCA}, baseOptions())
			if got := issued.Certificate.KeyUsage; got != tt.want {
				t.Errorf("key usage = %v, want %v", keyUsageNames(got), keyUsageNames(tt.want))
			}
			notes := strings.Join(issued.Notes, "; ")
			if tt.wantNote != "" && !strings.Contains(notes, tt.wantNote) {
				t.Errorf("notes %q do not say %q was left out", notes, tt.wantNote)
			}
			if tt.wantNote == "" && strings.Contains(notes, "was left out") {
				t.Errorf("notes %q, want no usage left out", notes)
			}
		})
	}
}

// TestSignStillRefusesImpossibleExplicitUsages checks that the table trims
// only: a signature-only key that explicitly asks to encipher is refused,
// as before, so the user learns that spec.usages is wrong.
func TestSignStillRefusesImpossibleExplicitUsages(t *testing.T) {
	t.Parallel()
	_, err := newCA(t).Sign(Request{CSR: newCSR(t, withKeyAlg(Ed25519)),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageDataEncipherment}, baseOptions())
	if !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("err = %v, want an invalid request", err)
	}
}
