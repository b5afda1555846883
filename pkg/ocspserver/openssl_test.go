package ocspserver

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quill-pki/quill/pkg/issuance"
)

// TestOpenSSLClient runs `openssl ocsp` (system OpenSSL 3.0) against the
// live handler on loopback: it must report good, revoked (with its reason)
// and unknown, verify the response against the CA, and find its nonce.
// Responses are signed with the real clock, which OpenSSL checks.
func TestOpenSSLClient(t *testing.T) {
	t.Parallel()
	bin := requireOpenSSL(t)
	tests := []struct {
		name      string
		caAlg     issuance.KeyAlgorithm
		sigAlg    x509.SignatureAlgorithm
		delegated bool
	}{
		{name: "ecdsa-ca-signed", caAlg: issuance.ECDSAP256},
		{name: "ecdsa-delegated", caAlg: issuance.ECDSAP256, delegated: true},
		{name: "rsa-pss-ca-signed", caAlg: issuance.RSA2048, sigAlg: x509.SHA256WithRSAPSS},
		{name: "rsa-delegated", caAlg: issuance.RSA2048, delegated: true},
		{name: "ed25519-ca-signed", caAlg: issuance.Ed25519},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			now := time.Now()
			ca := newTestCAAt(t, tt.caAlg, 5, now)
			r := ca.responder(t, func(c *Config) {
				c.Now, c.SignatureAlgorithm = time.Now, tt.sigAlg
				if tt.delegated {
					cert, key, err := newDelegated(ca, time.Hour, now)
					if err != nil {
						t.Fatal(err)
					}
					c.Key, c.ResponderCert, c.SignatureAlgorithm = key, cert, 0
				}
			})
			mux := stripped(testPrefix, r)
			srv := httptest.NewServer(mux)
			defer srv.Close()
			dir := t.TempDir()
			caPath := writePEM(t, dir, "ca.pem", ca.cert)
			for name, want := range map[string][]string{
				"good":    {": good"},
				"revoked": {": revoked", "Reason: keyCompromise", "Revocation Time:"},
				"unknown": {": unknown"},
			} {
				leafPath := writePEM(t, dir, name+".pem", ca.leaves[name])
				for _, nonce := range []string{"-nonce", "-no_nonce"} {
					// The URL as a certificate's AIA would carry it: no
					// trailing slash.
					out, err := exec.Command(bin, "ocsp", "-issuer", caPath, "-cert", leafPath,
						"-url", srv.URL+strings.TrimSuffix(testPrefix, "/"), "-CAfile", caPath, nonce).CombinedOutput()
					text := string(out)
					if err != nil || !strings.Contains(text, "Response verify OK") {
						t.Fatalf("%s %s: openssl ocsp: %v\n%s", name, nonce, err, text)
					}
					for _, w := range want {
						if !strings.Contains(text, w) {
							t.Errorf("%s %s: output lacks %q:\n%s", name, nonce, w, text)
						}
					}
					// OpenSSL warns, and does not fail, when the nonce is
					// missing; a mismatching one fails the verify above.
					if strings.Contains(text, "WARNING") || strings.Contains(text, "nonce") {
						t.Errorf("%s %s: nonce problem:\n%s", name, nonce, text)
					}
				}
			}
		})
	}
}

// TestOpenSSLClientRejectsBadSignature is the negative control: with one
// bit of the signature flipped on the way out, OpenSSL must refuse the
// response. (A response signed by the CA verifies with -issuer alone:
// openssl ocsp trusts the issuer certificates it is given as signers.)
func TestOpenSSLClientRejectsBadSignature(t *testing.T) {
	t.Parallel()
	bin := requireOpenSSL(t)
	ca := newTestCAAt(t, issuance.ECDSAP256, 5, time.Now())
	r := ca.responder(t, func(c *Config) { c.Now = time.Now })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		body[len(body)-1] ^= 1 // the signature is the last field
		w.Header().Set("Content-Type", ContentTypeOCSPResponse)
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	dir := t.TempDir()
	caPath := writePEM(t, dir, "ca.pem", ca.cert)
	out, err := exec.Command(bin, "ocsp", "-issuer", caPath, "-cert", writePEM(t, dir, "leaf.pem", ca.leaves["good"]),
		"-url", srv.URL+"/", "-CAfile", caPath).CombinedOutput()
	if err == nil || strings.Contains(string(out), "Response verify OK") {
		t.Fatalf("openssl accepted a response with a broken signature:\n%s", out)
	}
}

func requireOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl is not on PATH (%v): install the `openssl` package; these tests use it as the outside verifier of what Quill signs", err)
	}
	return path
}

func writePEM(t *testing.T, dir, name string, cert *x509.Certificate) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
