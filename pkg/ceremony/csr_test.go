package ceremony

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/quill-pki/quill/pkg/issuance"
)

func TestNewCSR(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		generate issuance.KeyAlgorithm
		existing issuance.KeyAlgorithm
		wantSig  x509.SignatureAlgorithm
	}{
		{name: "generate-ecdsa-p256", generate: issuance.ECDSAP256, wantSig: x509.ECDSAWithSHA256},
		{name: "generate-ed25519", generate: issuance.Ed25519, wantSig: x509.PureEd25519},
		{name: "generate-ml-dsa-65", generate: issuance.MLDSA65, wantSig: x509.MLDSA65},
		{name: "existing-rsa-2048", existing: issuance.RSA2048, wantSig: x509.SHA256WithRSA},
		{name: "existing-ecdsa-p384", existing: issuance.ECDSAP384, wantSig: x509.ECDSAWithSHA384},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			keyPath := filepath.Join(dir, "sub.key")
			o := CSROptions{Subject: "CN=Example Issuing CA,O=Example", OutCSR: filepath.Join(dir, "sub.csr")}
			if tt.existing != "" {
				writeTestFile(t, dir, "sub.key", mustPEM(t, testKey(t, tt.existing, 0)))
				o.Key = FileKey{Path: keyPath}
			} else {
				o.KeyAlgorithm, o.OutKey = tt.generate, keyPath
			}
			res, err := NewCSR(o)
			if err != nil {
				t.Fatalf("NewCSR: %v", err)
			}
			csr, err := readCSR(o.OutCSR)
			if err != nil {
				t.Fatalf("the request does not read back: %v", err)
			}
			if !bytes.Equal(csr.Raw, res.Request.Raw) {
				t.Error("the result is not the request written")
			}
			if csr.SignatureAlgorithm != tt.wantSig {
				t.Errorf("signed with %s, want %s", csr.SignatureAlgorithm, tt.wantSig)
			}
			if got := csr.Subject.String(); got != "CN=Example Issuing CA,O=Example" {
				t.Errorf("subject %q", got)
			}
			if len(csr.Extensions) != 0 {
				t.Errorf("the request asks for extensions %v; the signer decides the profile", csr.Extensions)
			}
			key, err := FileKey{Path: keyPath}.Signer()
			if err != nil {
				t.Fatal(err)
			}
			if !issuance.PublicKeysEqual(key.Public(), csr.PublicKey) {
				t.Error("the request is not for the key")
			}
			if fi, _ := os.Stat(keyPath); fi.Mode().Perm() != 0o600 {
				t.Errorf("the key has mode %v, want 0600", fi.Mode().Perm())
			}
		})
	}
}

func TestNewCSRErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		modify   func(o *CSROptions, dir string)
		existing []string
		wantErr  error
	}{
		{name: "bad-subject", modify: func(o *CSROptions, _ string) { o.Subject = "Sub CA" }, wantErr: errBadSubject},
		{name: "missing-key-file", modify: func(o *CSROptions, dir string) {
			o.KeyAlgorithm, o.OutKey, o.Key = "", "", FileKey{Path: filepath.Join(dir, "absent.key")}
		}, wantErr: errKeyFile},
		{name: "request-exists", existing: []string{"sub.csr"}, wantErr: ErrOutputExists},
		{name: "key-exists", existing: []string{"sub.key"}, wantErr: ErrOutputExists},
		{name: "no-request-file", modify: func(o *CSROptions, _ string) { o.OutCSR = "" }, wantErr: errOptions},
		{name: "unknown-algorithm", modify: func(o *CSROptions, _ string) { o.KeyAlgorithm = "RSA-1024" }, wantErr: errUnsupportedKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for _, name := range tt.existing {
				writeTestFile(t, dir, name, []byte("precious"))
			}
			before := dirNames(t, dir)
			o := CSROptions{
				Subject:      "CN=Sub CA",
				KeyAlgorithm: issuance.ECDSAP256,
				OutKey:       filepath.Join(dir, "sub.key"),
				OutCSR:       filepath.Join(dir, "sub.csr"),
			}
			if tt.modify != nil {
				tt.modify(&o, dir)
			}
			if _, err := NewCSR(o); !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want an error wrapping %q", err, tt.wantErr)
			}
			if after := dirNames(t, dir); !slices.Equal(before, after) {
				t.Errorf("the failure changed the folder: %q, then %q", before, after)
			}
		})
	}
}

// csrFile writes a CSR for key with subject cn into dir.
func csrFile(t testing.TB, dir, cn string, alg issuance.KeyAlgorithm, slot int) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{RawSubject: mustSubject(t, cn)}, testKey(t, alg, slot))
	if err != nil {
		t.Fatal(err)
	}
	return writeTestFile(t, dir, "sub.csr", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func mustSubject(t testing.TB, s string) []byte {
	t.Helper()
	der, err := ParseSubject(s)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
