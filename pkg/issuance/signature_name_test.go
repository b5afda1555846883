package issuance

import "testing"

func TestSignatureAlgorithmName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		alg    KeyAlgorithm
		rsaPSS bool
		want   string
	}{
		{name: "ecdsa-p256", alg: ECDSAP256, want: "ECDSA-SHA256"},
		{name: "ecdsa-p384", alg: ECDSAP384, want: "ECDSA-SHA384"},
		{name: "rsa-pkcs1", alg: RSA2048, want: "SHA256-RSA"},
		{name: "rsa-pss", alg: RSA2048, rsaPSS: true, want: "SHA256-RSAPSS"},
		{name: "ecdsa-ignores-pss", alg: ECDSAP256, rsaPSS: true, want: "ECDSA-SHA256"},
		{name: "ed25519", alg: Ed25519, want: "Ed25519"},
		{name: "ml-dsa-44", alg: MLDSA44, want: "ML-DSA-44"},
		{name: "ml-dsa-65", alg: MLDSA65, want: "ML-DSA-65"},
		{name: "ml-dsa-87", alg: MLDSA87, want: "ML-DSA-87"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca := newCA(t, withCAKeyAlg(tt.alg, 0))
			if got := ca.SignatureAlgorithmName(tt.rsaPSS); got != tt.want {
				t.Errorf("SignatureAlgorithmName(%v) = %q, want %q", tt.rsaPSS, got, tt.want)
			}
		})
	}
}
