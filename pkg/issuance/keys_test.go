package issuance

import (
	"crypto"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"math/big"
	"testing"
)

// rsaPublicKey builds an RSA public key of the given size without the cost
// of generating primes; describeKey only looks at the modulus and exponent.
func rsaPublicKey(bits, e int) *rsa.PublicKey {
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	return &rsa.PublicKey{N: n.Add(n, big.NewInt(1)), E: e}
}

func TestDescribeKey(t *testing.T) {
	t.Parallel()
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pub     crypto.PublicKey
		want    KeyAlgorithm
		wantErr error
	}{
		{name: "rsa-2048", pub: rsaPublicKey(2048, 65537), want: RSA2048},
		{name: "rsa-8192", pub: rsaPublicKey(8192, 65537), want: "RSA-8192"},
		{name: "rsa-2047", pub: rsaPublicKey(2047, 65537), want: "RSA-2047", wantErr: errWeakKey},
		{name: "rsa-8200", pub: rsaPublicKey(8200, 65537), want: "RSA-8200", wantErr: errUnsupportedKey},
		{name: "rsa-even-exponent", pub: rsaPublicKey(2048, 65536), want: RSA2048, wantErr: errWeakKey},
		{name: "rsa-exponent-one", pub: rsaPublicKey(2048, 1), want: RSA2048, wantErr: errWeakKey},
		{name: "ecdsa-p224", pub: testKey(t, ecdsaP224, 0).Public(), want: ecdsaP224, wantErr: errUnsupportedKey},
		{name: "x25519", pub: x25519.PublicKey(), want: "*ecdh.PublicKey", wantErr: errUnsupportedKey},
		{name: "unparsed", pub: nil, want: "unknown", wantErr: errUnsupportedKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := describeKey(tt.pub)
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("describeKey() = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
