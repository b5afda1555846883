package ceremony

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"path/filepath"
	"testing"

	"github.com/quill-pki/quill/pkg/issuance"
)

func TestGenerateKeyRoundTrip(t *testing.T) {
	t.Parallel()
	wantSig := map[issuance.KeyAlgorithm]x509.SignatureAlgorithm{
		issuance.ECDSAP256: x509.ECDSAWithSHA256,
		issuance.ECDSAP384: x509.ECDSAWithSHA384,
		issuance.ECDSAP521: x509.ECDSAWithSHA512,
		issuance.RSA2048:   x509.SHA256WithRSA,
		issuance.RSA3072:   x509.SHA256WithRSA,
		issuance.RSA4096:   x509.SHA256WithRSA,
		issuance.Ed25519:   x509.PureEd25519,
		issuance.MLDSA44:   x509.MLDSA44,
		issuance.MLDSA65:   x509.MLDSA65,
		issuance.MLDSA87:   x509.MLDSA87,
	}
	for _, alg := range KeyAlgorithms() {
		t.Run(kebab(string(alg)), func(t *testing.T) {
			t.Parallel()
			key := testKey(t, alg, 0)
			if got, err := keyAlgorithmOf(key.Public()); err != nil || got != alg {
				t.Fatalf("the generated key is %s (%v), want %s", got, err, alg)
			}
			if got, err := signatureAlgorithm(key.Public()); err != nil || got != wantSig[alg] {
				t.Errorf("signs with %s (%v), want %s", got, err, wantSig[alg])
			}
			data, err := MarshalPrivateKeyPEM(key)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := pem.Decode(data); b == nil || b.Type != "PRIVATE KEY" {
				t.Fatalf("the key is not written as PKCS#8 PEM:\n%s", data)
			}
			back, err := ParsePrivateKeyPEM(data)
			if err != nil {
				t.Fatalf("read the key back: %v", err)
			}
			if !publicKeysEqual(back.Public(), key.Public()) {
				t.Fatal("the key read back is another key")
			}
		})
	}
}

func kebab(s string) string {
	out := []byte(s)
	for i, c := range out {
		switch {
		case 'A' <= c && c <= 'Z':
			out[i] = c + 'a' - 'A'
		case c == '_' || c == ' ':
			out[i] = '-'
		}
	}
	return string(out)
}

func TestParseKeyAlgorithm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    issuance.KeyAlgorithm
		wantErr bool
	}{
		{name: "exact", in: "ECDSA-P384", want: issuance.ECDSAP384},
		{name: "lower-case", in: "ml-dsa-65", want: issuance.MLDSA65},
		{name: "ed25519", in: "ED25519", want: issuance.Ed25519},
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
	ec := testKey(t, issuance.ECDSAP256, 0).(*ecdsa.PrivateKey)
	sec1, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey := testKey(t, issuance.RSA2048, 0).(*rsa.PrivateKey)
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
	cert := newCert(t, "Key Test", nil, withKey(ec))
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
		{name: "empty", data: nil, wantErr: errBadPEM},
		{name: "text-after-key", data: concat(pkcs8, []byte("trailing words\n")), wantErr: errBadPEM},
		{name: "two-keys", data: concat(pkcs8, pkcs8), wantErr: errBadPEM},
		{name: "certificate-not-key", data: cert.certPEM, wantErr: errBadPEM},
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
			if !publicKeysEqual(got.Public(), tt.want) {
				t.Fatal("parsed another key")
			}
		})
	}
}

// tokenKey stands in for a hardware key: a KeySource that is not a file
// and must be closed.
type tokenKey struct {
	ref    string
	key    crypto.Signer
	closed *bool
}

func (k tokenKey) Signer() (crypto.Signer, error) { return k.key, nil }
func (k tokenKey) String() string                 { return k.ref }
func (k tokenKey) Close() error {
	*k.closed = true
	return nil
}

func TestKeyResolver(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyPath := writeTestFile(t, dir, "root.key", mustPEM(t, testKey(t, issuance.ECDSAP256, 0)))
	r := KeyResolver{Schemes: map[string]KeyOpener{
		"token": func(ref string) (KeySource, error) {
			return tokenKey{ref: ref, key: testKey(t, issuance.ECDSAP256, 0), closed: new(bool)}, nil
		},
	}}
	tests := []struct {
		name     string
		ref      string
		wantFile string
		wantErr  bool
	}{
		{name: "plain-path", ref: keyPath, wantFile: keyPath},
		{name: "file-uri", ref: "file:" + keyPath, wantFile: keyPath},
		{name: "file-uri-with-authority", ref: "file://" + keyPath, wantFile: keyPath},
		{name: "registered-scheme", ref: "token:slot=1;object=root"},
		{name: "registered-scheme-upper-case", ref: "TOKEN:object=root"},
		{name: "unknown-scheme", ref: "pkcs11:object=root", wantErr: true},
		{name: "empty", ref: "", wantErr: true},
		{name: "empty-file-uri", ref: "file:", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src, err := r.Open(tt.ref)
			if tt.wantErr {
				if !errors.Is(err, errKeyRef) {
					t.Fatalf("Open(%q) = %v, %v; want an unusable reference error", tt.ref, src, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.ref, err)
			}
			if tt.wantFile != "" {
				f, ok := src.(FileKey)
				if !ok || f.Path != tt.wantFile {
					t.Fatalf("Open(%q) = %#v, want the file %s", tt.ref, src, tt.wantFile)
				}
			} else if _, ok := src.(tokenKey); !ok {
				t.Fatalf("Open(%q) = %#v, want the registered opener's key", tt.ref, src)
			}
			if _, err := src.Signer(); err != nil {
				t.Fatalf("Signer: %v", err)
			}
		})
	}
}

// TestKeyResolverColonInFileName runs alone (not in parallel) because it
// changes the working folder: a relative file name that looks like a URI
// is still the file when no scheme claims it and the file exists.
func TestKeyResolverColonInFileName(t *testing.T) {
	dir := t.TempDir()
	writeTestFile(t, dir, "ca:2030.key", mustPEM(t, testKey(t, issuance.ECDSAP256, 0)))
	t.Chdir(dir)
	src, err := (KeyResolver{}).Open("ca:2030.key")
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := src.(FileKey); !ok || f.Path != "ca:2030.key" {
		t.Fatalf("got %#v, want the file ca:2030.key", src)
	}
	if _, err := (KeyResolver{}).Open("ca:2031.key"); !errors.Is(err, errKeyRef) {
		t.Fatalf("a missing file that looks like a URI: got %v, want an unusable reference error", err)
	}
}

func TestFileKeyErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
	}{
		{name: "missing-file", path: filepath.Join(dir, "absent.key")},
		{name: "garbage-file", path: writeTestFile(t, dir, "garbage.key", []byte("garbage"))},
		{name: "folder", path: dir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := (FileKey{Path: tt.path}).Signer(); !errors.Is(err, errKeyFile) {
				t.Fatalf("got %v, want a key file error", err)
			}
		})
	}
}

func mustPEM(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	data, err := MarshalPrivateKeyPEM(k)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
