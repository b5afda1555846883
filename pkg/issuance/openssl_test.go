package issuance

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quill-pki/quill/pkg/crl"
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
			leafFile := writeFile(t, dir, "leaf.pem", EncodeCertificatesPEM(chain[0]))
			args := []string{"verify", "-x509_strict", "-purpose", "sslserver", "-attime", strconv.FormatInt(testNow.Unix(), 10), "-CAfile", rootFile}
			if len(chain) > 1 {
				args = append(args, "-untrusted", writeFile(t, dir, "chain.pem", EncodeCertificatesPEM(chain[1:]...)))
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
				issuing := writeFile(t, dir, "issuing.pem", EncodeCertificatesPEM(chain[1]))
				out := runOpenSSL(t, bin, "x509", "-in", issuing, "-noout", "-fingerprint", "-sha256")
				_, got, _ := strings.Cut(strings.TrimSpace(out), "=")
				if want := ca.Summary().SHA256Fingerprint; got != want {
					t.Errorf("openssl fingerprint %q, Summary %q", got, want)
				}
			}
		})
	}
}

// TestOpenSSLVerifiesEveryKind has OpenSSL verify, in strict X.509 mode,
// one certificate of every kind issue makes (a root from SelfSign, a
// ceremony subordinate from SignCA, a leaf from Sign, a delegated OCSP
// responder from IssueResponder) and the CRL SignCRL makes.
func TestOpenSSLVerifiesEveryKind(t *testing.T) {
	t.Parallel()
	bin := requireOpenSSL(t)
	tests := []struct {
		name string
		alg  KeyAlgorithm
	}{
		{name: "ecdsa-p256", alg: ECDSAP256},
		{name: "rsa-2048", alg: RSA2048},
		{name: "ed25519", alg: Ed25519},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			rootKey, subKey := testKey(t, tt.alg, 40), testKey(t, tt.alg, 41)
			rootIssued, err := SelfSign(rootKey, mustName(t, "OpenSSL Kinds Root "+tt.name),
				CAProfile{Validity: 365 * 24 * time.Hour, Backdate: time.Hour, MaxPathLen: ptr(1),
					NameConstraints: &NameConstraints{PermittedDNSDomains: []string{"example.test"}}}, testNow)
			if err != nil {
				t.Fatal(err)
			}
			root := &Authority{Certificate: rootIssued.Certificate, Root: rootIssued.Certificate, Signer: rootKey}
			subIssued, err := root.SignCA(rawCSR(t, mustName(t, "OpenSSL Kinds Sub "+tt.name), subKey),
				CAProfile{Validity: 180 * 24 * time.Hour, Backdate: time.Hour, MaxPathLen: ptr(0)}, testNow)
			if err != nil {
				t.Fatal(err)
			}
			sub, err := NewAuthority(subIssued.ChainPEM, subIssued.CAPEM, subKey)
			if err != nil {
				t.Fatal(err)
			}
			leaf := mustSign(t, sub, Request{CSR: newCSR(t), KeyUsage: x509.KeyUsageDigitalSignature,
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, baseOptions())
			responder, _, err := sub.IssueResponder(0, "", testNow)
			if err != nil {
				t.Fatal(err)
			}
			crlDER, err := sub.SignCRL(CRLRequest{Entries: []crl.Entry{{Serial: leaf.Certificate.SerialNumber, RevokedAt: testNow, Reason: 4}},
				Number: big.NewInt(1), ThisUpdate: testNow, Validity: 24 * time.Hour})
			if err != nil {
				t.Fatal(err)
			}

			rootFile := writeFile(t, dir, "root.pem", rootIssued.CAPEM)
			subFile := writeFile(t, dir, "sub.pem", EncodeCertificatesPEM(sub.Certificate))
			at := strconv.FormatInt(testNow.Unix(), 10)
			for _, c := range []struct {
				name, purpose string
				cert          *x509.Certificate
			}{
				{name: "root", purpose: "any", cert: rootIssued.Certificate},
				{name: "subordinate", purpose: "crlsign", cert: sub.Certificate},
				{name: "leaf", purpose: "sslserver", cert: leaf.Certificate},
				{name: "responder", purpose: "ocsphelper", cert: responder.Certificate},
			} {
				file := writeFile(t, dir, c.name+".pem", EncodeCertificatesPEM(c.cert))
				out := runOpenSSL(t, bin, "verify", "-x509_strict", "-purpose", c.purpose, "-attime", at, "-CAfile", rootFile, "-untrusted", subFile, file)
				if strings.TrimSpace(out) != file+": OK" {
					t.Errorf("openssl verify %s: %s", c.name, out)
				}
				text := runOpenSSL(t, bin, "x509", "-in", file, "-noout", "-text")
				containsAll(t, text, "X509v3 Subject Key Identifier", "X509v3 Basic Constraints: critical")
			}
			crlFile := writeFile(t, dir, "crl.pem", pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crlDER}))
			out := runOpenSSL(t, bin, "crl", "-in", crlFile, "-CAfile", writeFile(t, dir, "chain.pem", concat(EncodeCertificatesPEM(sub.Certificate), rootIssued.CAPEM)), "-noout", "-text")
			containsAll(t, out, "verify OK", "Serial Number: "+strings.ToUpper(leaf.Certificate.SerialNumber.Text(16)))
		})
	}
}
