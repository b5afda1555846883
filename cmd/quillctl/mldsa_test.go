package main

import (
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quill-pki/quill/hack/openssl35"
	"github.com/quill-pki/quill/pkg/issuance"
)

// runOpenSSL35 runs OpenSSL 3.5, the outside verifier of ML-DSA, in dir;
// its absence fails the test.
func runOpenSSL35(t *testing.T, dir string, args ...string) string {
	t.Helper()
	bin, err := openssl35.Find()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl35 %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestMLDSACeremony runs the offline-root ceremony with ML-DSA keys (an
// ML-DSA-87 root signing an ML-DSA-65 issuing CA), imports the issuing CA
// as a Secret, makes an ML-DSA-44 leaf key and request with `quillctl csr`,
// signs it with the imported CA, and has OpenSSL 3.5 check every step.
func TestMLDSACeremony(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustRun(t, dir, nil, "ca", "init", "--subject", "CN=PQ Root,O=Example", "--key-algorithm", "ML-DSA-87",
		"--validity", "87600h", "--path-len", "1", "--out-cert", "root.crt", "--out-key", "root.key")
	r := mustRun(t, dir, nil, "ca", "csr", "--key", "issuing.key", "--generate-key", "ML-DSA-65", "--subject", "CN=PQ Issuing CA,O=Example", "--out", "issuing.csr")
	if !strings.Contains(r.stdout, "signature:   ML-DSA-65") {
		t.Errorf("ca csr printed:\n%s", r.stdout)
	}
	runOpenSSL35(t, dir, "req", "-in", "issuing.csr", "-noout", "-verify")
	mustRun(t, dir, nil, "ca", "sign", "--ca-cert", "root.crt", "--ca-key", "root.key", "--csr", "issuing.csr",
		"--validity", "43800h", "--path-len", "0", "--out", "issuing.crt")
	if out := runOpenSSL35(t, dir, "verify", "-x509_strict", "-CAfile", "root.crt", "issuing.crt"); strings.TrimSpace(out) != "issuing.crt: OK" {
		t.Errorf("openssl verify: %s", out)
	}
	text := runOpenSSL35(t, dir, "x509", "-in", "issuing.crt", "-noout", "-text")
	for _, want := range []string{"Signature Algorithm: ML-DSA-87", "Public Key Algorithm: ML-DSA-65", "CA:TRUE, pathlen:0"} {
		if !strings.Contains(text, want) {
			t.Errorf("issuing CA lacks %q:\n%s", want, text)
		}
	}
	// Both keys are seed-only PKCS#8, readable by OpenSSL.
	for _, key := range []string{"root.key", "issuing.key"} {
		if out := runOpenSSL35(t, dir, "asn1parse", "-in", key); !strings.Contains(out, "l=  34 prim: OCTET STRING      [HEX DUMP]:8020") {
			t.Errorf("%s is not a seed-only ML-DSA key:\n%s", key, out)
		}
	}

	r = mustRun(t, dir, nil, "ca", "import", "--cert", "issuing.crt", "--key", "issuing.key", "--ca", "root.crt",
		"--name", "pq-issuing-ca", "--namespace", "quill-system")
	a := checkSecret(t, r.stdout, "pq-issuing-ca", "quill-system")
	if got := a.Summary().KeyAlgorithm; got != issuance.MLDSA65 {
		t.Errorf("imported CA key %s", got)
	}

	r = mustRun(t, dir, nil, "csr", "--generate-key", "ML-DSA-44", "--key", "leaf.key", "--subject", "CN=app",
		"--dns", "app.example.com", "--ip", "10.0.0.7", "--uri", "spiffe://example.com/app", "--out", "leaf.csr")
	if !strings.Contains(r.stdout, "signature:   ML-DSA-44") {
		t.Errorf("csr printed:\n%s", r.stdout)
	}
	if fi, err := os.Stat(filepath.Join(dir, "leaf.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("leaf.key mode %v (%v)", fi.Mode().Perm(), err)
	}
	reqText := runOpenSSL35(t, dir, "req", "-in", "leaf.csr", "-noout", "-verify", "-text")
	for _, want := range []string{"verify OK", "ML-DSA-44", "DNS:app.example.com", "IP Address:10.0.0.7", "URI:spiffe://example.com/app"} {
		if !strings.Contains(reqText, want) {
			t.Errorf("leaf request lacks %q:\n%s", want, reqText)
		}
	}
	csr, err := os.ReadFile(filepath.Join(dir, "leaf.csr"))
	if err != nil {
		t.Fatal(err)
	}
	issued, err := a.Sign(issuance.Request{CSR: csr, Duration: time.Hour, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, issuance.Options{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "leaf.crt"), issued.ChainPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := runOpenSSL35(t, dir, "verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", "root.crt", "-untrusted", "issuing.crt", "leaf.crt"); strings.TrimSpace(out) != "leaf.crt: OK" {
		t.Errorf("openssl verify of the leaf: %s", out)
	}
}

func TestLeafCSRFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "bad-ip", args: []string{"--generate-key", "ML-DSA-65", "--key", "k.pem", "--ip", "10.0.0", "--out", "r.csr"}, want: `"10.0.0" is not an IP address`},
		{name: "ip-as-dns", args: []string{"--generate-key", "ML-DSA-65", "--key", "k.pem", "--dns", "10.0.0.1", "--out", "r.csr"}, want: "is not a DNS name"},
		{name: "relative-uri", args: []string{"--generate-key", "ML-DSA-65", "--key", "k.pem", "--uri", "app", "--out", "r.csr"}, want: "not an absolute URI"},
		{name: "bad-email", args: []string{"--generate-key", "ML-DSA-65", "--key", "k.pem", "--email", "Ops <ops@example.com>", "--out", "r.csr"}, want: "not a plain email address"},
		{name: "no-names", args: []string{"--generate-key", "ML-DSA-65", "--key", "k.pem", "--out", "r.csr"}, want: "would name nobody"},
		{name: "unknown-algorithm", args: []string{"--generate-key", "ML-DSA-99", "--key", "k.pem", "--dns", "a.example", "--out", "r.csr"}, want: "ML-DSA-99"},
		{name: "missing-key-file", args: []string{"--key", "absent.pem", "--dns", "a.example", "--out", "r.csr"}, want: "absent.pem"},
		{name: "no-out", args: []string{"--generate-key", "ML-DSA-65", "--key", "k.pem", "--dns", "a.example"}, want: `"out" not set`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			r := run(t, dir, nil, append([]string{"csr"}, tt.args...)...)
			if r.code != 1 || !strings.Contains(r.stderr, tt.want) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("exit %d, stderr %q; want one line containing %q", r.code, r.stderr, tt.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("a failed csr left %d files behind", len(entries))
			}
		})
	}
}
