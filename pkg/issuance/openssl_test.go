package issuance

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// requireOpenSSL finds the openssl binary. Its absence fails the test rather
// than skipping it: OpenSSL is Quill's outside verifier, and a green run
// that silently left it out would claim more than it checked.
func requireOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl is not on PATH (%v): install the `openssl` package (e.g. apt-get install openssl); these tests use it as the outside verifier of what Quill signs", err)
	}
	return path
}

func runOpenSSL(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestOpenSSLVerifies has OpenSSL 3.0 verify, in strict X.509 mode, chains
// Quill signed. ML-DSA is left out here: it needs OpenSSL 3.5, and
// test/pq checks it with that.
func TestOpenSSLVerifies(t *testing.T) {
	t.Parallel()
	bin := requireOpenSSL(t)
	tests := []struct {
		name     string
		caKey    KeyAlgorithm
		rsaPSS   bool
		leafKey  KeyAlgorithm
		rootOnly bool // sign with the root itself, no intermediate
		newRoot  bool // root from NewSelfSignedRoot instead of the test builder
		subCA    bool // Sign a sub-CA first, then the leaf with it
		wantSig  string
	}{
		{name: "rsa", caKey: RSA2048, leafKey: RSA2048, wantSig: "sha256WithRSAEncryption"},
		{name: "rsa-pss", caKey: RSA2048, rsaPSS: true, leafKey: ECDSAP256, wantSig: "rsassaPss"},
		{name: "ecdsa-p256", caKey: ECDSAP256, leafKey: ECDSAP256, wantSig: "ecdsa-with-SHA256"},
		{name: "ecdsa-p384", caKey: ECDSAP384, leafKey: RSA3072, wantSig: "ecdsa-with-SHA384"},
		{name: "ecdsa-p521", caKey: ECDSAP521, leafKey: ECDSAP384, wantSig: "ecdsa-with-SHA512"},
		{name: "ed25519", caKey: Ed25519, leafKey: Ed25519, wantSig: "ED25519"},
		{name: "ecdsa-root-only", caKey: ECDSAP256, leafKey: Ed25519, rootOnly: true, wantSig: "ecdsa-with-SHA256"},
		{name: "rsa-new-self-signed-root", caKey: RSA2048, leafKey: ECDSAP256, rootOnly: true, newRoot: true, wantSig: "sha256WithRSAEncryption"},
		{name: "ed25519-new-self-signed-root", caKey: Ed25519, leafKey: RSA2048, rootOnly: true, newRoot: true, wantSig: "ED25519"},
		{name: "ecdsa-issued-sub-ca", caKey: ECDSAP256, leafKey: ECDSAP256, subCA: true, wantSig: "ecdsa-with-SHA256"},
		{name: "rsa-pss-issued-sub-ca", caKey: RSA2048, rsaPSS: true, leafKey: ECDSAP256, subCA: true, wantSig: "ecdsa-with-SHA256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			opts := baseOptions()
			opts.RSAPSS = tt.rsaPSS
			opts.CRLDistributionPoints = []string{"http://pki.example.test/quill.crl"}
			opts.OCSPServers = []string{"http://ocsp.example.test"}

			var ca *Authority
			switch {
			case tt.newRoot:
				certPEM, keyPEM, err := NewSelfSignedRoot(pkix.Name{CommonName: "OpenSSL " + tt.name}, tt.caKey, 365*24*time.Hour, testNow)
				if err != nil {
					t.Fatal(err)
				}
				if ca, err = LoadAuthority(certPEM, keyPEM, nil); err != nil {
					t.Fatal(err)
				}
			case tt.rootOnly:
				ca = newCA(t, withCAKeyAlg(tt.caKey, 10), withCACN("OpenSSL "+tt.name+" Root"))
			default:
				root := newCA(t, withCAKeyAlg(tt.caKey, 10), withCACN("OpenSSL "+tt.name+" Root"))
				var sig x509.SignatureAlgorithm
				if tt.rsaPSS {
					sig = x509.SHA256WithRSAPSS
				}
				ca = newCA(t, withParent(root), withCAKeyAlg(tt.caKey, 11), withCACN("OpenSSL "+tt.name+" Intermediate"), withCASignatureAlgorithm(sig))
			}
			if tt.subCA {
				subKey := testKey(t, ECDSAP256, 12)
				issued := mustSign(t, ca, Request{
					CSR:        newCSR(t, withKey(subKey), withCN("OpenSSL "+tt.name+" Sub-CA"), withDNS()),
					IsCA:       true,
					MaxPathLen: ptr(0),
					KeyUsage:   x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
				}, opts)
				der, err := x509.MarshalPKCS8PrivateKey(subKey)
				if err != nil {
					t.Fatal(err)
				}
				if ca, err = LoadAuthority(issued.ChainPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), issued.CAPEM); err != nil {
					t.Fatalf("load the issued sub-CA: %v", err)
				}
			}

			issued := mustSign(t, ca, Request{
				CSR: newCSR(t, withKey(testKey(t, tt.leafKey, 0)), withIP("10.0.0.7"),
					withURI("spiffe://cluster.local/ns/quill/sa/app"), withEmail("ops@example.test")),
				KeyUsage:    x509.KeyUsageDigitalSignature,
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			}, opts)

			chain := pemCerts(t, issued.ChainPEM)
			rootFile := writeFile(t, dir, "root.pem", issued.CAPEM)
			leafFile := writeFile(t, dir, "leaf.pem", encodeCertificates(chain[0]))
			args := []string{"verify", "-x509_strict", "-purpose", "sslserver", "-attime", strconv.FormatInt(testNow.Unix(), 10), "-CAfile", rootFile}
			if len(chain) > 1 {
				args = append(args, "-untrusted", writeFile(t, dir, "chain.pem", encodeCertificates(chain[1:]...)))
			}
			if out := runOpenSSL(t, bin, append(args, leafFile)...); strings.TrimSpace(out) != leafFile+": OK" {
				t.Errorf("openssl verify: %s", out)
			}

			text := runOpenSSL(t, bin, "x509", "-in", leafFile, "-noout", "-text")
			containsAll(t, text,
				"Signature Algorithm: "+tt.wantSig,
				"DNS:app.example.test", "IP Address:10.0.0.7", "URI:spiffe://cluster.local/ns/quill/sa/app", "email:ops@example.test",
				"CA:FALSE", "X509v3 Subject Key Identifier", "X509v3 Authority Key Identifier",
				"TLS Web Server Authentication", "TLS Web Client Authentication", "Digital Signature",
				"URI:http://pki.example.test/quill.crl", "OCSP - URI:http://ocsp.example.test",
			)

			if len(chain) > 1 {
				issuing := writeFile(t, dir, "issuing.pem", encodeCertificates(chain[1]))
				out := runOpenSSL(t, bin, "x509", "-in", issuing, "-noout", "-fingerprint", "-sha256")
				_, got, _ := strings.Cut(strings.TrimSpace(out), "=")
				if want := ca.Summary().SHA256Fingerprint; got != want {
					t.Errorf("openssl fingerprint %q, Summary %q", got, want)
				}
			}
		})
	}
}
