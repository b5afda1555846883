package pq

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quill-pki/quill/pkg/issuance"
)

func openssl(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func write(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// verifyBoth checks the leaf of c against roots with Go's crypto/x509 and
// with OpenSSL 3.5 in strict mode, for TLS server use.
func verifyBoth(t *testing.T, bin, dir string, c Chain, rootsPEM []byte) {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootsPEM) {
		t.Fatal("no roots")
	}
	inter := x509.NewCertPool()
	inter.AppendCertsFromPEM(c.IntermediatePEM)
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: "localhost"}); err != nil {
		t.Errorf("crypto/x509: %v", err)
	}
	leaf := write(t, dir, "leaf.pem", c.LeafPEM)
	args := []string{"verify", "-x509_strict", "-purpose", "sslserver", "-verify_hostname", "localhost", "-CAfile", write(t, dir, "roots.pem", rootsPEM)}
	if len(c.IntermediatePEM) > 0 {
		args = append(args, "-untrusted", write(t, dir, "intermediate.pem", c.IntermediatePEM))
	}
	if out := openssl(t, bin, append(args, leaf)...); strings.TrimSpace(out) != leaf+": OK" {
		t.Errorf("openssl verify: %s", out)
	}
}

// TestOpenSSL35VerifiesHierarchies has OpenSSL 3.5 verify ML-DSA
// hierarchies and the mixed ones a migration goes through, every
// certificate signed by Quill's issuance code.
func TestOpenSSL35VerifiesHierarchies(t *testing.T) {
	t.Parallel()
	bin := OpenSSL35(t)
	tests := []struct {
		name                string
		root, inter, leaf   issuance.KeyAlgorithm
		wantLeafSig         string // the leaf's signature algorithm as OpenSSL names it
		wantIntermediateSig string
	}{
		{name: "ml-dsa-44-chain-classical-leaf", root: issuance.MLDSA44, inter: issuance.MLDSA44, leaf: issuance.ECDSAP256, wantLeafSig: "ML-DSA-44", wantIntermediateSig: "ML-DSA-44"},
		{name: "ml-dsa-65-chain-classical-leaf", root: issuance.MLDSA65, inter: issuance.MLDSA65, leaf: issuance.ECDSAP256, wantLeafSig: "ML-DSA-65", wantIntermediateSig: "ML-DSA-65"},
		{name: "ml-dsa-87-chain-rsa-leaf", root: issuance.MLDSA87, inter: issuance.MLDSA87, leaf: issuance.RSA2048, wantLeafSig: "ML-DSA-87", wantIntermediateSig: "ML-DSA-87"},
		{name: "ml-dsa-65-chain-ed25519-leaf", root: issuance.MLDSA65, inter: issuance.MLDSA65, leaf: issuance.Ed25519, wantLeafSig: "ML-DSA-65", wantIntermediateSig: "ML-DSA-65"},
		{name: "ml-dsa-65-root-issues-ml-dsa-65-leaf", root: issuance.MLDSA65, leaf: issuance.MLDSA65, wantLeafSig: "ML-DSA-65"},
		{name: "ml-dsa-87-root-ml-dsa-65-intermediate-ml-dsa-44-leaf", root: issuance.MLDSA87, inter: issuance.MLDSA65, leaf: issuance.MLDSA44, wantLeafSig: "ML-DSA-65", wantIntermediateSig: "ML-DSA-87"},
		{name: "classical-root-ml-dsa-intermediate", root: issuance.ECDSAP384, inter: issuance.MLDSA65, leaf: issuance.ECDSAP256, wantLeafSig: "ML-DSA-65", wantIntermediateSig: "ecdsa-with-SHA384"},
		{name: "classical-root-ml-dsa-intermediate-ml-dsa-leaf", root: issuance.RSA3072, inter: issuance.MLDSA65, leaf: issuance.MLDSA65, wantLeafSig: "ML-DSA-65", wantIntermediateSig: "sha256WithRSAEncryption"},
		{name: "ml-dsa-root-classical-intermediate", root: issuance.MLDSA87, inter: issuance.ECDSAP256, leaf: issuance.ECDSAP256, wantLeafSig: "ecdsa-with-SHA256", wantIntermediateSig: "ML-DSA-87"},
		{name: "ml-dsa-root-classical-intermediate-ml-dsa-leaf", root: issuance.MLDSA65, inter: issuance.ECDSAP384, leaf: issuance.MLDSA44, wantLeafSig: "ecdsa-with-SHA384", wantIntermediateSig: "ML-DSA-65"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			c, err := NewChain(tt.root, tt.inter, tt.leaf)
			if err != nil {
				t.Fatal(err)
			}
			verifyBoth(t, bin, dir, c, c.RootPEM)

			text := openssl(t, bin, "x509", "-in", write(t, dir, "leaf.pem", c.LeafPEM), "-noout", "-text")
			if !strings.Contains(text, "Signature Algorithm: "+tt.wantLeafSig) {
				t.Errorf("leaf is not signed with %s:\n%s", tt.wantLeafSig, text)
			}
			if tt.inter != "" {
				text := openssl(t, bin, "x509", "-in", write(t, dir, "intermediate.pem", c.IntermediatePEM), "-noout", "-text")
				if !strings.Contains(text, "Signature Algorithm: "+tt.wantIntermediateSig) || !strings.Contains(text, "CA:TRUE") {
					t.Errorf("intermediate is not a CA signed with %s:\n%s", tt.wantIntermediateSig, text)
				}
			}
			// The leaf key Quill wrote is one OpenSSL reads, and it
			// belongs to the certificate.
			keyPub := openssl(t, bin, "pkey", "-in", write(t, dir, "leaf.key", c.LeafKeyPEM), "-pubout")
			certPub := openssl(t, bin, "x509", "-in", filepath.Join(dir, "leaf.pem"), "-noout", "-pubkey")
			if keyPub != certPub {
				t.Errorf("OpenSSL derives another public key from the leaf key:\n%s\nthan the certificate's:\n%s", keyPub, certPub)
			}
		})
	}
}

// A damaged ML-DSA signature must fail OpenSSL's verification: without
// this, the OK above could come from a verifier that skips what it does not
// know.
func TestOpenSSL35RejectsTamperedMLDSA(t *testing.T) {
	t.Parallel()
	bin := OpenSSL35(t)
	dir := t.TempDir()
	c, err := NewChain(issuance.MLDSA65, "", issuance.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	der := bytes.Clone(c.Leaf.Raw)
	der[len(der)-10] ^= 0x01 // inside the signature BIT STRING, which ends the certificate
	leaf := write(t, dir, "leaf.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	out, err := exec.Command(bin, "verify", "-CAfile", write(t, dir, "root.pem", c.RootPEM), leaf).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "signature failure") {
		t.Fatalf("openssl verify of a tampered leaf: err %v\n%s", err, out)
	}
}

// TestTrustBundleWithClassicalAndPQRoots: during a migration clients trust
// one file holding the old classical root and the new ML-DSA root; every
// chain under either must verify against it, and a chain under neither
// must not.
func TestTrustBundleWithClassicalAndPQRoots(t *testing.T) {
	t.Parallel()
	bin := OpenSSL35(t)
	classical, err := NewChain(issuance.ECDSAP384, issuance.ECDSAP256, issuance.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	pq, err := NewChain(issuance.MLDSA87, issuance.MLDSA65, issuance.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	mixed, err := NewChain(issuance.MLDSA65, issuance.ECDSAP256, issuance.MLDSA44)
	if err != nil {
		t.Fatal(err)
	}
	bundle := append(append(bytes.Clone(classical.RootPEM), pq.RootPEM...), mixed.RootPEM...)
	for name, c := range map[string]Chain{"classical": classical, "ml-dsa": pq, "ml-dsa-root-classical-intermediate": mixed} {
		t.Run(name, func(t *testing.T) {
			verifyBoth(t, bin, t.TempDir(), c, bundle)
		})
	}
	t.Run("foreign-chain-refused", func(t *testing.T) {
		dir := t.TempDir()
		foreign, err := NewChain(issuance.MLDSA65, issuance.MLDSA65, issuance.ECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "verify", "-CAfile", write(t, dir, "bundle.pem", bundle),
			"-untrusted", write(t, dir, "inter.pem", foreign.IntermediatePEM), write(t, dir, "leaf.pem", foreign.LeafPEM)).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "unable to get local issuer certificate") {
			t.Fatalf("a chain under a root outside the bundle: err %v\n%s", err, out)
		}
	})
}

// TestOpenSSLMadeMLDSAKeysWorkInQuill goes the other way: an ML-DSA root
// whose seed-only key and certificate OpenSSL 3.5 made is a CA Quill loads
// and signs with, and an ML-DSA CSR OpenSSL made is one Quill signs;
// OpenSSL then verifies the result.
func TestOpenSSLMadeMLDSAKeysWorkInQuill(t *testing.T) {
	t.Parallel()
	bin := OpenSSL35(t)
	for _, alg := range []string{"ML-DSA-44", "ML-DSA-65", "ML-DSA-87"} {
		t.Run(strings.ToLower(alg), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			caKey := filepath.Join(dir, "ca.key")
			caCrt := filepath.Join(dir, "ca.crt")
			openssl(t, bin, "genpkey", "-algorithm", alg, "-provparam", "ml-dsa.output_formats=seed-only", "-out", caKey)
			openssl(t, bin, "req", "-x509", "-new", "-key", caKey, "-subj", "/CN=OpenSSL "+alg+" Root", "-days", "30",
				"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature", "-out", caCrt)
			crt, _ := os.ReadFile(caCrt)
			key, _ := os.ReadFile(caKey)
			ca, err := issuance.LoadAuthority(crt, key, nil)
			if err != nil {
				t.Fatalf("Quill cannot load OpenSSL's %s CA: %v", alg, err)
			}
			if got := ca.Summary().KeyAlgorithm; string(got) != alg {
				t.Errorf("key algorithm %q, want %q", got, alg)
			}

			leafKey := filepath.Join(dir, "leaf.key")
			leafCSR := filepath.Join(dir, "leaf.csr")
			openssl(t, bin, "genpkey", "-algorithm", alg, "-provparam", "ml-dsa.output_formats=seed-only", "-out", leafKey)
			openssl(t, bin, "req", "-new", "-key", leafKey, "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-out", leafCSR)
			csr, _ := os.ReadFile(leafCSR)
			issued, err := ca.Sign(issuance.Request{
				CSR: csr, Duration: time.Hour, KeyUsage: x509.KeyUsageDigitalSignature,
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}, issuance.Options{Now: time.Now()})
			if err != nil {
				t.Fatalf("Quill cannot sign OpenSSL's %s CSR: %v", alg, err)
			}
			leaf := write(t, dir, "leaf.pem", issued.ChainPEM)
			if out := openssl(t, bin, "verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", caCrt, leaf); strings.TrimSpace(out) != leaf+": OK" {
				t.Errorf("openssl verify: %s", out)
			}
		})
	}
}

// Quill's ML-DSA keys are seed-only PKCS#8 (RFC 9881's recommended form):
// OpenSSL must find just the 32-byte seed (the [0] choice) in the key, and
// writing the key back seed-only must give the same bytes.
func TestQuillMLDSAKeysAreSeedOnlyForOpenSSL(t *testing.T) {
	t.Parallel()
	bin := OpenSSL35(t)
	dir := t.TempDir()
	_, keyPEM, err := issuance.NewSelfSignedRoot(pkix.Name{CommonName: "seed"}, issuance.MLDSA65, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key := write(t, dir, "key.pem", keyPEM)
	parsed := openssl(t, bin, "asn1parse", "-in", key)
	if !strings.Contains(parsed, ":ML-DSA-65") || !strings.Contains(parsed, "l=  34 prim: OCTET STRING      [HEX DUMP]:8020") {
		t.Errorf("not a seed-only ML-DSA-65 key:\n%s", parsed)
	}
	if again := openssl(t, bin, "pkey", "-in", key, "-provparam", "ml-dsa.output_formats=seed-only"); again != string(keyPEM) {
		t.Errorf("OpenSSL re-encodes the key differently:\n%s\nwant\n%s", again, keyPEM)
	}
}
