package main

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/quill-pki/quill/pkg/issuance"
)

// quillctl is the binary under test, built once by TestMain.
var quillctl string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "quillctl-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	quillctl = filepath.Join(dir, "quillctl")
	build := exec.Command("go", "build", "-o", quillctl, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building quillctl:", err)
		return 1
	}
	code := m.Run()
	if pkiShared != nil {
		_ = os.RemoveAll(pkiShared.dir)
	}
	return code
}

// result is one run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

// run executes quillctl in dir with args; env adds to the environment and
// stdin is not a terminal.
func run(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(quillctl, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run quillctl %s: %v", strings.Join(args, " "), err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// mustRun runs quillctl and fails the test unless it succeeds.
func mustRun(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	r := run(t, dir, env, args...)
	if r.code != 0 {
		t.Fatalf("quillctl %s: exit %d\nstderr: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

// requireOpenSSL finds the openssl binary; its absence fails the test,
// since OpenSSL is the outside judge of what quillctl writes.
func requireOpenSSL(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl is not on PATH (%v): install the `openssl` package (apt-get install openssl); these tests use OpenSSL 3 to verify certificates and to write PFX files", err)
	}
	return p
}

func openssl(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(requireOpenSSL(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

const pfxPassword = "pfx pass, with spaces"

// pki is the shared fixture: a root, a subordinate signed through the
// binary, and the odd certificates the failure tests need, in one folder
// that tests copy from and never change.
type pki struct {
	dir string
}

var (
	pkiOnce   sync.Once
	pkiShared *pki
	pkiErr    error
)

// fixtures builds the shared PKI on first use: quillctl makes the root and
// the subordinate (so this is itself part of the test), OpenSSL writes the
// PFX files, and Go writes what quillctl refuses to make (a leaf, an
// expired CA).
func fixtures(t *testing.T) *pki {
	t.Helper()
	pkiOnce.Do(func() {
		dir, err := os.MkdirTemp("", "quillctl-pki-")
		if err != nil {
			pkiErr = err
			return
		}
		pkiShared = &pki{dir: dir}
		pkiErr = pkiShared.build()
	})
	if pkiErr != nil {
		t.Fatalf("building the test PKI: %v", pkiErr)
	}
	return pkiShared
}

// build makes the fixture files. It returns errors rather than failing a
// test: it runs once for all tests, on behalf of whichever asked first.
func (p *pki) build() error {
	opensslBin, err := exec.LookPath("openssl")
	if err != nil {
		return fmt.Errorf("openssl is not on PATH (%w): install the `openssl` package (apt-get install openssl)", err)
	}
	steps := [][]string{
		{"ca", "init", "--subject", "CN=E2E Root,O=Quill Test", "--key-algorithm", "ECDSA-P384", "--validity", "87600h",
			"--path-len", "1", "--out-cert", "root.crt", "--out-key", "root.key"},
		{"ca", "csr", "--key", "sub.key", "--generate-key", "ECDSA-P256", "--subject", "CN=E2E Issuing CA,O=Quill Test", "--out", "sub.csr"},
		{"ca", "sign", "--ca-cert", "root.crt", "--ca-key", "root.key", "--csr", "sub.csr", "--validity", "43800h", "--path-len", "0", "--out", "sub.crt"},
		{"ca", "csr", "--key", "other.key", "--generate-key", "ECDSA-P256", "--subject", "CN=Other", "--out", "other.csr"},
	}
	for _, s := range steps {
		cmd := exec.Command(quillctl, s...)
		cmd.Dir = p.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("quillctl %s: %w\n%s", strings.Join(s, " "), err, out)
		}
	}
	rootCert, rootKey, err := loadPair(filepath.Join(p.dir, "root.crt"), filepath.Join(p.dir, "root.key"))
	if err != nil {
		return err
	}
	subCert, subKey, err := loadPair(filepath.Join(p.dir, "sub.crt"), filepath.Join(p.dir, "sub.key"))
	if err != nil {
		return err
	}
	now := time.Now()
	if err := writeIssued(p.dir, "leaf", subCert, subKey, func(c *x509.Certificate) {
		c.IsCA, c.KeyUsage, c.DNSNames = false, x509.KeyUsageDigitalSignature, []string{"leaf.example.com"}
	}); err != nil {
		return err
	}
	if err := writeIssued(p.dir, "expired", rootCert, rootKey, func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = now.Add(-2*365*24*time.Hour), now.Add(-24*time.Hour)
	}); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(p.dir, "pass.txt"), []byte(pfxPassword+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(p.dir, "wrong.txt"), []byte("not the password\n"), 0o600); err != nil {
		return err
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: subCert.Raw}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootCert.Raw})...)
	if err := os.WriteFile(filepath.Join(p.dir, "chain.crt"), chain, 0o644); err != nil {
		return err
	}
	exports := []struct {
		out, key, cert, certfile string
		extra                    []string
	}{
		{out: "modern.pfx", key: "sub.key", cert: "sub.crt", certfile: "root.crt"},
		{out: "legacy.pfx", key: "sub.key", cert: "sub.crt", certfile: "root.crt", extra: []string{"-legacy"}},
		{out: "3des.pfx", key: "sub.key", cert: "sub.crt", certfile: "root.crt", extra: []string{"-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES", "-macalg", "sha1"}},
		{out: "noroot.pfx", key: "sub.key", cert: "sub.crt"},
		{out: "leaf.pfx", key: "leaf.key", cert: "leaf.crt", certfile: "chain.crt"},
		{out: "expired.pfx", key: "expired.key", cert: "expired.crt", certfile: "root.crt"},
	}
	for _, e := range exports {
		args := []string{"pkcs12", "-export", "-inkey", e.key, "-in", e.cert, "-passout", "file:pass.txt", "-out", e.out}
		if e.certfile != "" {
			args = append(args, "-certfile", e.certfile)
		}
		cmd := exec.Command(opensslBin, append(args, e.extra...)...)
		cmd.Dir = p.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("openssl %s: %w\n%s", strings.Join(cmd.Args[1:], " "), err, out)
		}
	}
	modern, err := os.ReadFile(filepath.Join(p.dir, "modern.pfx"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(p.dir, "truncated.pfx"), modern[:len(modern)*2/3], 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(p.dir, "garbage.pfx"), []byte("this is not a PFX file\n"), 0o600)
}

func loadPair(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	b, _ := pem.Decode(certPEM)
	if b == nil {
		return nil, nil, fmt.Errorf("%s holds no PEM", certPath)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	key, err := issuance.ParsePrivateKeyPEM(keyPEM)
	return cert, key, err
}

// writeIssued writes name.crt and name.key: a CA certificate signed by
// parent, changed by edit.
func writeIssued(dir, name string, parent *x509.Certificate, parentKey crypto.Signer, edit func(*x509.Certificate)) error {
	key, err := issuance.GenerateKey(issuance.ECDSAP256)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "E2E " + name, Organization: []string{"Quill Test"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	edit(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return err
	}
	keyPEM, err := issuance.MarshalPrivateKeyPEM(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), keyPEM, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func concatFiles(t *testing.T, paths ...string) []byte {
	t.Helper()
	var out []byte
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, data...)
	}
	return out
}

// workdir is a fresh folder holding copies of the fixture files.
func (p *pki) workdir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(p.dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func listing(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// checkSecret decodes an import manifest and loads its CA the way the
// issuer does.
func checkSecret(t *testing.T, manifest string, wantName, wantNamespace string) *issuance.Authority {
	t.Helper()
	var s corev1.Secret
	if err := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096).Decode(&s); err != nil {
		t.Fatalf("the output is not a manifest: %v\n%s", err, manifest)
	}
	if s.APIVersion != "v1" || s.Kind != "Secret" || s.Type != corev1.SecretTypeTLS {
		t.Errorf("got %s %s of type %s, want a v1 Secret of type kubernetes.io/tls", s.APIVersion, s.Kind, s.Type)
	}
	if s.Name != wantName || s.Namespace != wantNamespace {
		t.Errorf("got Secret %s/%s, want %s/%s", s.Namespace, s.Name, wantNamespace, wantName)
	}
	a, err := issuance.LoadAuthority(s.Data["tls.crt"], s.Data["tls.key"], s.Data["ca.crt"])
	if err != nil {
		t.Fatalf("LoadAuthority on the Secret: %v", err)
	}
	if err := a.Check(time.Now()); err != nil {
		t.Fatalf("Check on the Secret's CA: %v", err)
	}
	return a
}

// TestCeremony walks the offline-root ceremony through the binary and has
// OpenSSL judge the result.
func TestCeremony(t *testing.T) {
	t.Parallel()
	requireOpenSSL(t)
	dir := t.TempDir()

	r := mustRun(t, dir, nil, "ca", "init", "--subject", "CN=Example Root,O=Example", "--key-algorithm", "ECDSA-P384",
		"--validity", "87600h", "--path-len", "1", "--permitted-dns", "example.com,example.net", "--excluded-dns", "secret.example.com",
		"--out-cert", "root.crt", "--out-key", "root.key")
	if !strings.Contains(r.stdout, "CN=Example Root,O=Example") || r.stderr != "" {
		t.Errorf("init printed\n%s\nstderr: %s", r.stdout, r.stderr)
	}
	if fi, err := os.Stat(filepath.Join(dir, "root.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("root.key has mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	mustRun(t, dir, nil, "ca", "csr", "--key", "sub.key", "--generate-key", "ECDSA-P256", "--subject", "CN=Sub CA,O=Example", "--out", "sub.csr")
	if fi, err := os.Stat(filepath.Join(dir, "sub.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("sub.key has mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	openssl(t, dir, "req", "-in", "sub.csr", "-noout", "-verify")
	r = mustRun(t, dir, nil, "ca", "sign", "--ca-cert", "root.crt", "--ca-key", "root.key", "--csr", "sub.csr",
		"--validity", "43800h", "--path-len", "0", "--permitted-dns", "svc.example.com", "--out", "sub.crt")
	if r.stderr != "" {
		t.Errorf("sign warned: %s", r.stderr)
	}

	if out := openssl(t, dir, "verify", "-x509_strict", "-CAfile", "root.crt", "sub.crt"); !strings.Contains(out, "sub.crt: OK") {
		t.Errorf("openssl verify: %s", out)
	}
	subText := openssl(t, dir, "x509", "-in", "sub.crt", "-noout", "-text")
	for _, want := range []string{"CA:TRUE, pathlen:0", "X509v3 Name Constraints: critical", "DNS:svc.example.com",
		"Certificate Sign, CRL Sign", "Subject: O = Example, CN = Sub CA", "Issuer: O = Example, CN = Example Root"} {
		if !strings.Contains(subText, want) {
			t.Errorf("openssl x509 -text of the subordinate lacks %q:\n%s", want, subText)
		}
	}
	rootText := openssl(t, dir, "x509", "-in", "root.crt", "-noout", "-text")
	for _, want := range []string{"CA:TRUE, pathlen:1", "X509v3 Name Constraints: critical", "Permitted:", "DNS:example.com",
		"DNS:example.net", "Excluded:", "DNS:secret.example.com", "ecdsa-with-SHA384", "NIST CURVE: P-384"} {
		if !strings.Contains(rootText, want) {
			t.Errorf("openssl x509 -text of the root lacks %q:\n%s", want, rootText)
		}
	}

	// The subordinate becomes the issuer's CA Secret.
	r = mustRun(t, dir, nil, "ca", "import", "--cert", "sub.crt", "--key", "sub.key", "--ca", "root.crt",
		"--name", "quill-issuing-ca", "--namespace", "quill-system")
	a := checkSecret(t, r.stdout, "quill-issuing-ca", "quill-system")
	if a.Certificate.Subject.String() != "CN=Sub CA,O=Example" || a.Root.Subject.String() != "CN=Example Root,O=Example" {
		t.Errorf("the Secret holds %q under %q", a.Certificate.Subject, a.Root.Subject)
	}

	// A subordinate asked to outlive the root ends with it, with a warning.
	r = mustRun(t, dir, nil, "ca", "sign", "--ca-cert", "root.crt", "--ca-key", "root.key", "--csr", "sub.csr",
		"--validity", "200000h", "--chain", "--out", "long.crt")
	if !strings.HasPrefix(r.stderr, "quillctl: warning: validity shortened") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("want one warning line about the shortened validity, got %q", r.stderr)
	}
	long, _, err := loadPair(filepath.Join(dir, "long.crt"), filepath.Join(dir, "sub.key"))
	if err != nil {
		t.Fatal(err)
	}
	if !long.NotAfter.Equal(a.Root.NotAfter) {
		t.Errorf("the long subordinate ends %s, want the root's %s", long.NotAfter, a.Root.NotAfter)
	}
	if n := strings.Count(string(concatFiles(t, filepath.Join(dir, "long.crt"))), "BEGIN CERTIFICATE"); n != 2 {
		t.Errorf("--chain wrote %d certificates, want the subordinate and the root", n)
	}

	// An existing output is kept unless --force.
	before := concatFiles(t, filepath.Join(dir, "sub.crt"))
	r = run(t, dir, nil, "ca", "sign", "--ca-cert", "root.crt", "--ca-key", "root.key", "--csr", "sub.csr", "--out", "sub.crt")
	if r.code != 1 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("overwriting without --force: exit %d, %q", r.code, r.stderr)
	}
	if !bytes.Equal(before, concatFiles(t, filepath.Join(dir, "sub.crt"))) {
		t.Error("sub.crt changed although the command failed")
	}
	mustRun(t, dir, nil, "ca", "sign", "--ca-cert", "root.crt", "--ca-key", "root.key", "--csr", "sub.csr", "--out", "sub.crt", "--force")
	if bytes.Equal(before, concatFiles(t, filepath.Join(dir, "sub.crt"))) {
		t.Error("--force did not replace sub.crt")
	}
}

// TestImportPFX imports PFX files as OpenSSL 3 writes them, modern and
// legacy, with the password from a file and from the environment.
func TestImportPFX(t *testing.T) {
	t.Parallel()
	p := fixtures(t)
	tests := []struct {
		name   string
		pfx    string
		byEnv  bool
		format string
	}{
		{name: "modern-aes-password-file", pfx: "modern.pfx"},
		{name: "modern-aes-password-env", pfx: "modern.pfx", byEnv: true},
		{name: "legacy-rc2-password-file", pfx: "legacy.pfx"},
		{name: "legacy-rc2-password-env", pfx: "legacy.pfx", byEnv: true},
		{name: "legacy-3des-password-file", pfx: "3des.pfx"},
		{name: "legacy-3des-password-env-json", pfx: "3des.pfx", byEnv: true, format: "json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := p.workdir(t)
			args := []string{"ca", "import", "--pfx", tt.pfx, "--name", "quill-issuing-ca", "--namespace", "pki"}
			var env []string
			if tt.byEnv {
				env = []string{"QUILL_PFX_PASSWORD=" + pfxPassword}
				args = append(args, "--password-env", "QUILL_PFX_PASSWORD")
			} else {
				args = append(args, "--password-file", "pass.txt")
			}
			if tt.format != "" {
				args = append(args, "-o", tt.format)
			}
			r := mustRun(t, dir, env, args...)
			if r.stderr != "" {
				t.Errorf("stderr: %s", r.stderr)
			}
			if tt.format == "json" && !strings.HasPrefix(r.stdout, "{") {
				t.Errorf("-o json printed:\n%s", r.stdout)
			}
			a := checkSecret(t, r.stdout, "quill-issuing-ca", "pki")
			if a.Certificate.Subject.String() != "CN=E2E Issuing CA,O=Quill Test" || a.Root.Subject.String() != "CN=E2E Root,O=Quill Test" {
				t.Errorf("the Secret holds %q under %q", a.Certificate.Subject, a.Root.Subject)
			}
		})
	}
}

// TestImportPasswordPrompt types the password on a terminal, which
// util-linux's script provides.
func TestImportPasswordPrompt(t *testing.T) {
	t.Parallel()
	p := fixtures(t)
	script, err := exec.LookPath("script")
	if err != nil {
		t.Fatalf("script is not on PATH (%v): install the `util-linux` package; this test needs a terminal for the password prompt", err)
	}
	dir := p.workdir(t)
	cmdline := fmt.Sprintf("%s ca import --pfx modern.pfx --name quill-issuing-ca > secret.yaml", quillctl)
	cmd := exec.Command(script, "--quiet", "--return", "--command", cmdline, "/dev/null")
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Type only once the prompt shows, as a person would.
	var seen bytes.Buffer
	buf := make([]byte, 256)
	for !strings.Contains(seen.String(), "Password for modern.pfx: ") {
		n, err := stdout.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("no password prompt; the terminal showed %q (%v)", seen.String(), err)
		}
	}
	if _, err := io.WriteString(stdin, pfxPassword+"\n"); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stdout)
	seen.Write(rest)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("quillctl on a terminal: %v\n%s", err, seen.String())
	}
	// Whether the typed password was echoed is not checked: the prompt is
	// printed just before term.ReadPassword turns echo off, so a fast
	// typist could race it, and so could this test.
	checkSecret(t, string(concatFiles(t, filepath.Join(dir, "secret.yaml"))), "quill-issuing-ca", "quill-system")
}

// TestFailures feeds the binary bad input: each case must exit 1 with one
// line "quillctl: ..." on stderr, print nothing on stdout, and leave the
// folder as it was.
func TestFailures(t *testing.T) {
	t.Parallel()
	p := fixtures(t)
	tests := []struct {
		name string
		args []string
		env  []string
		want string // in the message
	}{
		{name: "import-wrong-password", args: []string{"ca", "import", "--pfx", "modern.pfx", "--password-file", "wrong.txt", "--name", "ca"}, want: "wrong PFX password"},
		{name: "import-wrong-password-legacy", args: []string{"ca", "import", "--pfx", "legacy.pfx", "--password-file", "wrong.txt", "--name", "ca"}, want: "wrong PFX password"},
		{name: "import-password-env-unset", args: []string{"ca", "import", "--pfx", "modern.pfx", "--password-env", "QUILL_TEST_UNSET_VARIABLE", "--name", "ca"}, want: "QUILL_TEST_UNSET_VARIABLE"},
		{name: "import-no-password-no-terminal", args: []string{"ca", "import", "--pfx", "modern.pfx", "--name", "ca"}, want: "--password-file"},
		{name: "import-mismatched-key", args: []string{"ca", "import", "--cert", "sub.crt", "--key", "other.key", "--ca", "root.crt", "--name", "ca"}, want: "does not match"},
		{name: "import-leaf-certificate", args: []string{"ca", "import", "--pfx", "leaf.pfx", "--password-file", "pass.txt", "--name", "ca"}, want: "not a CA"},
		{name: "import-expired-ca", args: []string{"ca", "import", "--pfx", "expired.pfx", "--password-file", "pass.txt", "--name", "ca"}, want: "expired"},
		{name: "import-truncated-pfx", args: []string{"ca", "import", "--pfx", "truncated.pfx", "--password-file", "pass.txt", "--name", "ca"}, want: "truncated"},
		{name: "import-garbage-pfx", args: []string{"ca", "import", "--pfx", "garbage.pfx", "--password-file", "pass.txt", "--name", "ca"}, want: "not a PKCS#12 file"},
		{name: "import-missing-pfx", args: []string{"ca", "import", "--pfx", "absent.pfx", "--password-file", "pass.txt", "--name", "ca"}, want: "absent.pfx"},
		{name: "import-root-missing", args: []string{"ca", "import", "--pfx", "noroot.pfx", "--password-file", "pass.txt", "--name", "ca"}, want: "--ca"},
		{name: "import-missing-name", args: []string{"ca", "import", "--pfx", "modern.pfx", "--password-file", "pass.txt"}, want: `"name"`},
		{name: "import-pfx-and-cert", args: []string{"ca", "import", "--pfx", "modern.pfx", "--cert", "sub.crt", "--key", "sub.key", "--name", "ca"}, want: "pfx"},
		{name: "import-password-with-pem", args: []string{"ca", "import", "--cert", "sub.crt", "--key", "sub.key", "--password-file", "pass.txt", "--name", "ca"}, want: "--pfx only"},
		{name: "import-bad-format", args: []string{"ca", "import", "--pfx", "modern.pfx", "--password-file", "pass.txt", "--name", "ca", "-o", "xml"}, want: "yaml or json"},
		{name: "init-missing-subject", args: []string{"ca", "init", "--out-cert", "new.crt", "--out-key", "new.key"}, want: `"subject"`},
		{name: "init-bad-subject", args: []string{"ca", "init", "--subject", "Example Root", "--out-cert", "new.crt", "--out-key", "new.key"}, want: "TYPE=value"},
		{name: "init-bad-algorithm", args: []string{"ca", "init", "--subject", "CN=R", "--key-algorithm", "RSA-1024", "--out-cert", "new.crt", "--out-key", "new.key"}, want: "RSA-1024"},
		{name: "init-existing-key", args: []string{"ca", "init", "--subject", "CN=R", "--out-cert", "new.crt", "--out-key", "root.key"}, want: "--force"},
		{name: "init-bad-validity", args: []string{"ca", "init", "--subject", "CN=R", "--validity", "ten years", "--out-cert", "new.crt", "--out-key", "new.key"}, want: "validity"},
		{name: "csr-missing-key-file", args: []string{"ca", "csr", "--key", "absent.key", "--subject", "CN=S", "--out", "new.csr"}, want: "absent.key"},
		{name: "sign-leaf-as-issuer", args: []string{"ca", "sign", "--ca-cert", "leaf.crt", "--ca-key", "leaf.key", "--csr", "other.csr", "--out", "new.crt"}, want: "not a CA"},
		{name: "sign-expired-issuer", args: []string{"ca", "sign", "--ca-cert", "expired.crt", "--ca-key", "expired.key", "--csr", "other.csr", "--out", "new.crt"}, want: "expired"},
		{name: "sign-mismatched-key", args: []string{"ca", "sign", "--ca-cert", "root.crt", "--ca-key", "sub.key", "--csr", "other.csr", "--out", "new.crt"}, want: "does not match"},
		{name: "sign-under-path-len-zero", args: []string{"ca", "sign", "--ca-cert", "sub.crt", "--ca-key", "sub.key", "--csr", "other.csr", "--out", "new.crt"}, want: "path length 0"},
		{name: "sign-key-as-request", args: []string{"ca", "sign", "--ca-cert", "root.crt", "--ca-key", "root.key", "--csr", "other.key", "--out", "new.crt"}, want: "private key"},
		{name: "sign-garbage-request", args: []string{"ca", "sign", "--ca-cert", "root.crt", "--ca-key", "root.key", "--csr", "garbage.pfx", "--out", "new.crt"}, want: "not PEM"},
		{name: "sign-pkcs11-key", args: []string{"ca", "sign", "--ca-cert", "root.crt", "--ca-key", "pkcs11:token=root;object=root", "--csr", "other.csr", "--out", "new.crt"}, want: "PKCS#11"},
		{name: "sign-missing-csr-flag", args: []string{"ca", "sign", "--ca-cert", "root.crt", "--ca-key", "root.key", "--out", "new.crt"}, want: `"csr"`},
		{name: "unknown-flag", args: []string{"ca", "init", "--subjet", "CN=R"}, want: "unknown flag"},
		{name: "unknown-command", args: []string{"ca", "ini"}, want: "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := p.workdir(t)
			before := listing(t, dir)
			r := run(t, dir, tt.env, tt.args...)
			if r.code != 1 {
				t.Errorf("exit %d, want 1", r.code)
			}
			if !strings.HasPrefix(r.stderr, "quillctl: ") || !strings.HasSuffix(r.stderr, "\n") || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr is not one line \"quillctl: ...\": %q", r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("the message %q does not mention %q", r.stderr, tt.want)
			}
			if r.stdout != "" {
				t.Errorf("stdout: %q", r.stdout)
			}
			if after := listing(t, dir); !slices.Equal(before, after) {
				t.Errorf("the folder changed: %q, then %q", before, after)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := mustRun(t, t.TempDir(), nil, "version")
	if !strings.HasPrefix(r.stdout, "quillctl ") || !strings.Contains(r.stdout, "go1.") {
		t.Errorf("version printed %q", r.stdout)
	}
}
