package ceremony

import (
	"crypto"
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
	for _, alg := range issuance.KeyAlgorithms() {
		t.Run(kebab(string(alg)), func(t *testing.T) {
			t.Parallel()
			key := testKey(t, alg, 0)
			if got, err := keyAlgorithmOf(key.Public()); err != nil || got != alg {
				t.Fatalf("the generated key is %s (%v), want %s", got, err, alg)
			}
			if got, err := signatureAlgorithm(key.Public()); err != nil || got != wantSig[alg] {
				t.Errorf("signs with %s (%v), want %s", got, err, wantSig[alg])
			}
			data, err := issuance.MarshalPrivateKeyPEM(key)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := pem.Decode(data); b == nil || b.Type != "PRIVATE KEY" {
				t.Fatalf("the key is not written as PKCS#8 PEM:\n%s", data)
			}
			back, err := issuance.ParsePrivateKeyPEM(data)
			if err != nil {
				t.Fatalf("read the key back: %v", err)
			}
			if !issuance.PublicKeysEqual(back.Public(), key.Public()) {
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
	data, err := issuance.MarshalPrivateKeyPEM(k)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
