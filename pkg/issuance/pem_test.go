package issuance

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
)

func TestParseKeyAlgorithm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    KeyAlgorithm
		wantErr bool
	}{
		{name: "exact", in: "ECDSA-P384", want: ECDSAP384},
		{name: "lower-case", in: "ml-dsa-65", want: MLDSA65},
		{name: "ed25519", in: "ED25519", want: Ed25519},
		{name: "rsa-1024-refused", in: "RSA-1024", wantErr: true},
		{name: "curve-name-only", in: "P256", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseKeyAlgorithm(tt.in)
			if tt.wantErr {
				if !errors.Is(err, errUnsupportedKey) {
					t.Fatalf("ParseKeyAlgorithm(%q) = %q, %v; want an error", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseKeyAlgorithm(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParsePrivateKeyPEM(t *testing.T) {
	t.Parallel()
	ec := testKey(t, ECDSAP256, 0).(*ecdsa.PrivateKey)
	sec1, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey := testKey(t, RSA2048, 0).(*rsa.PrivateKey)
	pkcs8, err := MarshalPrivateKeyPEM(ec)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p224PEM, err := MarshalPrivateKeyPEM(p224)
	if err != nil {
		t.Fatal(err)
	}
	ecParams := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}})
	sec1PEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})
	cert := newCA(t, withCAKey(ec))
	tests := []struct {
		name    string
		data    []byte
		want    crypto.PublicKey
		wantErr error
	}{
		{name: "pkcs8", data: pkcs8, want: ec.Public()},
		{name: "sec1", data: sec1PEM, want: ec.Public()},
		{name: "sec1-after-ec-parameters", data: concat(ecParams, sec1PEM), want: ec.Public()},
		{name: "pkcs1", data: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), want: rsaKey.Public()},
		{name: "surrounding-blank-lines", data: concat([]byte("\n\n"), pkcs8, []byte("\n")), want: ec.Public()},
		{name: "truncated", data: pkcs8[:len(pkcs8)/2], wantErr: errBadPEM},
		{name: "garbage", data: []byte("this is not a key\n"), wantErr: errBadPEM},
		{name: "empty", data: nil, wantErr: errNoPEM},
		{name: "text-after-key", data: concat(pkcs8, []byte("trailing words\n")), wantErr: errBadPEM},
		{name: "two-keys", data: concat(pkcs8, pkcs8), wantErr: errBadPEM},
		{name: "certificate-not-key", data: EncodeCertificatesPEM(cert.Certificate), wantErr: errBadPEM},
		{name: "encrypted-pkcs8", data: pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0x00}}), wantErr: errUnsupportedKey},
		{name: "encrypted-legacy", data: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: sec1}), wantErr: errUnsupportedKey},
		{name: "damaged-der", data: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0x30, 0x03, 0x02, 0x01}}), wantErr: errBadPEM},
		{name: "curve-p224-refused", data: p224PEM, wantErr: errUnsupportedKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParsePrivateKeyPEM(tt.data)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want an error wrapping %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !PublicKeysEqual(got.Public(), tt.want) {
				t.Fatal("parsed another key")
			}
		})
	}
}
