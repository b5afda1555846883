package crl

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quill-pki/quill/pkg/kms"
)

func TestBuildVerifiesWithGo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		key     keyType
		sigAlg  x509.SignatureAlgorithm
		wantSig x509.SignatureAlgorithm
	}{
		{name: "ecdsa-p256", key: ecdsaP256, wantSig: x509.ECDSAWithSHA256},
		{name: "rsa-2048", key: rsa2048, wantSig: x509.SHA256WithRSA},
		{name: "rsa-2048-pss", key: rsa2048, sigAlg: x509.SHA256WithRSAPSS, wantSig: x509.SHA256WithRSAPSS},
		{name: "ecdsa-p256-sha384", key: ecdsaP256, sigAlg: x509.ECDSAWithSHA384, wantSig: x509.ECDSAWithSHA384},
		{name: "ed25519", key: ed25519K, wantSig: x509.PureEd25519},
		{name: "ml-dsa-65", key: mldsa65, wantSig: x509.MLDSA65},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca, key := newCA(t, tt.key)
			entries := sampleEntries(20)
			der, err := Build(ca, key, entries, Params{
				Number: big.NewInt(42), ThisUpdate: testNow, Validity: 24 * time.Hour, SignatureAlgorithm: tt.sigAlg,
			})
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			got, err := x509.ParseRevocationList(der)
			if err != nil {
				t.Fatalf("ParseRevocationList: %v", err)
			}
			if err := got.CheckSignatureFrom(ca); err != nil {
				t.Fatalf("CheckSignatureFrom: %v", err)
			}
			if got.SignatureAlgorithm != tt.wantSig {
				t.Errorf("signature algorithm %s, want %s", got.SignatureAlgorithm, tt.wantSig)
			}
			if got.Number.Cmp(big.NewInt(42)) != 0 {
				t.Errorf("CRL number %s, want 42", got.Number)
			}
			if !got.ThisUpdate.Equal(testNow) || !got.NextUpdate.Equal(testNow.Add(24*time.Hour)) {
				t.Errorf("thisUpdate %s nextUpdate %s, want %s and a day later", got.ThisUpdate, got.NextUpdate, testNow)
			}
			if !bytes.Equal(got.AuthorityKeyId, ca.SubjectKeyId) || len(got.AuthorityKeyId) == 0 {
				t.Errorf("authority key identifier %x, want the CA's %x", got.AuthorityKeyId, ca.SubjectKeyId)
			}
			if !bytes.Equal(got.RawIssuer, ca.RawSubject) {
				t.Error("CRL issuer is not the CA's subject")
			}
			if len(got.RevokedCertificateEntries) != len(entries) {
				t.Fatalf("%d entries, want %d", len(got.RevokedCertificateEntries), len(entries))
			}
			for i, e := range got.RevokedCertificateEntries {
				want := entries[i]
				if e.SerialNumber.Cmp(want.Serial) != 0 || !e.RevocationTime.Equal(want.RevokedAt) || e.ReasonCode != want.Reason {
					t.Errorf("entry %d = %s %s reason %d, want %s %s reason %d", i, e.SerialNumber, e.RevocationTime, e.ReasonCode, want.Serial, want.RevokedAt, want.Reason)
				}
				// RFC 5280 §5.3.1: unspecified is expressed by leaving the
				// extension out.
				if hasReason := len(e.Extensions) > 0; hasReason != (want.Reason != 0) {
					t.Errorf("entry %d (reason %d) has %d extensions", i, want.Reason, len(e.Extensions))
				}
			}
		})
	}
}

func TestBuildLeavesOutExpiredCertificates(t *testing.T) {
	t.Parallel()
	ca, key := newCA(t, ecdsaP256)
	entries := []Entry{
		{Serial: big.NewInt(1), RevokedAt: testNow.Add(-time.Hour), NotAfter: testNow.Add(-time.Second)},
		{Serial: big.NewInt(2), RevokedAt: testNow.Add(-time.Hour), NotAfter: testNow},                   // notAfter is inclusive
		{Serial: big.NewInt(3), RevokedAt: testNow.Add(-time.Hour)},                                      // notAfter unknown
		{Serial: big.NewInt(4), RevokedAt: testNow.Add(-time.Hour), NotAfter: testNow.Add(time.Hour)},    // valid
		{Serial: big.NewInt(1), RevokedAt: testNow.Add(-time.Hour), NotAfter: testNow.Add(-time.Minute)}, // expired duplicate is not a duplicate
	}
	der, err := Build(ca, key, entries, Params{Number: big.NewInt(1), ThisUpdate: testNow, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	got, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	var serials []string
	for _, e := range got.RevokedCertificateEntries {
		serials = append(serials, e.SerialNumber.String())
	}
	if strings.Join(serials, ",") != "2,3,4" {
		t.Errorf("serials %v, want 2,3,4", serials)
	}
}

func TestBuildEmpty(t *testing.T) {
	t.Parallel()
	ca, key := newCA(t, ecdsaP256)
	der, err := Build(ca, key, nil, Params{Number: big.NewInt(0), ThisUpdate: testNow, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	got, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.RevokedCertificateEntries) != 0 || got.CheckSignatureFrom(ca) != nil {
		t.Errorf("empty CRL: %d entries, signature error %v", len(got.RevokedCertificateEntries), got.CheckSignatureFrom(ca))
	}
}

func TestBuildRefusesBadInput(t *testing.T) {
	t.Parallel()
	ca, key := newCA(t, ecdsaP256)
	otherKey := testKey(t, ecdsaP256, 1)
	leaf, leafKey := newCA(t, ecdsaP256, notCA(), withCN("not a CA"))
	noCRLSign, noCRLSignKey := newCA(t, ecdsaP256, withUsage(x509.KeyUsageCertSign), withCN("no crl sign"))
	good := Params{Number: big.NewInt(1), ThisUpdate: testNow, Validity: time.Hour}
	with := func(f func(*Params)) Params { p := good; f(&p); return p }
	entry := func(f func(*Entry)) []Entry {
		e := Entry{Serial: big.NewInt(7), RevokedAt: testNow, NotAfter: testNow.Add(time.Hour)}
		f(&e)
		return []Entry{e}
	}
	tests := []struct {
		name    string
		issuer  *x509.Certificate
		key     crypto.Signer
		entries []Entry
		params  Params
		want    error
	}{
		{name: "nil-issuer", key: key, params: good, want: ErrInvalidIssuer},
		{name: "nil-key", issuer: ca, params: good, want: ErrInvalidIssuer},
		{name: "not-a-ca", issuer: leaf, key: leafKey, params: good, want: ErrNotCA},
		{name: "no-crl-sign", issuer: noCRLSign, key: noCRLSignKey, params: good, want: ErrNoCRLSign},
		{name: "key-mismatch", issuer: ca, key: otherKey, params: good, want: kms.ErrKeyMismatch},
		{name: "no-number", issuer: ca, key: key, params: with(func(p *Params) { p.Number = nil }), want: ErrInvalidParams},
		{name: "negative-number", issuer: ca, key: key, params: with(func(p *Params) { p.Number = big.NewInt(-1) }), want: ErrInvalidParams},
		{name: "number-too-long", issuer: ca, key: key, params: with(func(p *Params) { p.Number = new(big.Int).Lsh(big.NewInt(1), 160) }), want: ErrInvalidParams},
		{name: "no-this-update", issuer: ca, key: key, params: with(func(p *Params) { p.ThisUpdate = time.Time{} }), want: ErrInvalidParams},
		{name: "zero-validity", issuer: ca, key: key, params: with(func(p *Params) { p.Validity = 0 }), want: ErrInvalidParams},
		{name: "rsa-algorithm-for-ecdsa-key", issuer: ca, key: key, params: with(func(p *Params) { p.SignatureAlgorithm = x509.SHA256WithRSA }), want: ErrInvalidParams},
		{name: "no-serial", issuer: ca, key: key, params: good, entries: entry(func(e *Entry) { e.Serial = nil }), want: ErrInvalidEntry},
		{name: "reason-7", issuer: ca, key: key, params: good, entries: entry(func(e *Entry) { e.Reason = 7 }), want: ErrInvalidEntry},
		{name: "reason-remove-from-crl", issuer: ca, key: key, params: good, entries: entry(func(e *Entry) { e.Reason = 8 }), want: ErrInvalidEntry},
		{name: "reason-negative", issuer: ca, key: key, params: good, entries: entry(func(e *Entry) { e.Reason = -1 }), want: ErrInvalidEntry},
		{name: "no-revocation-time", issuer: ca, key: key, params: good, entries: entry(func(e *Entry) { e.RevokedAt = time.Time{} }), want: ErrInvalidEntry},
		{name: "duplicate-serial", issuer: ca, key: key, params: good, entries: append(entry(func(*Entry) {}), entry(func(*Entry) {})...), want: ErrInvalidEntry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			der, err := Build(tt.issuer, tt.key, tt.entries, tt.params)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Build error %v, want %v", err, tt.want)
			}
			if der != nil {
				t.Error("Build returned a CRL with its error")
			}
		})
	}
}

// TestOpenSSLVerifies has OpenSSL 3.0 verify and read CRLs Build signed.
// ML-DSA is left out: it needs OpenSSL 3.5 (Go verifies it above).
func TestOpenSSLVerifies(t *testing.T) {
	t.Parallel()
	bin := requireOpenSSL(t)
	tests := []struct {
		name    string
		key     keyType
		sigAlg  x509.SignatureAlgorithm
		wantSig string
	}{
		{name: "ecdsa-p256", key: ecdsaP256, wantSig: "ecdsa-with-SHA256"},
		{name: "rsa-2048", key: rsa2048, wantSig: "sha256WithRSAEncryption"},
		{name: "rsa-2048-pss", key: rsa2048, sigAlg: x509.SHA256WithRSAPSS, wantSig: "rsassaPss"},
		{name: "ed25519", key: ed25519K, wantSig: "ED25519"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ca, key := newCA(t, tt.key)
			der, err := Build(ca, key, sampleEntries(9), Params{Number: big.NewInt(7), ThisUpdate: testNow, Validity: time.Hour, SignatureAlgorithm: tt.sigAlg})
			if err != nil {
				t.Fatal(err)
			}
			caPath := writeFile(t, dir, "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}))
			crlPath := writeFile(t, dir, "crl.der", der)
			out, err := exec.Command(bin, "crl", "-inform", "DER", "-in", crlPath, "-CAfile", caPath, "-noout", "-text").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "verify OK") {
				t.Fatalf("openssl crl: %v\n%s", err, out)
			}
			for _, want := range []string{
				"Signature Algorithm: " + tt.wantSig,
				"X509v3 CRL Number: \n                7",
				"Last Update: Mar  1 12:00:00 2026 GMT",
				"Next Update: Mar  1 13:00:00 2026 GMT",
				"Serial Number: 03E8", // 1000, reason unspecified: no reason line follows
				"Key Compromise",
				"CA Compromise",
				"Affiliation Changed",
				"Superseded",
				"Cessation Of Operation",
				"Certificate Hold",
				"Privilege Withdrawn",
				"AA Compromise",
				"X509v3 Authority Key Identifier",
			} {
				if !strings.Contains(string(out), want) {
					t.Errorf("openssl crl -text lacks %q:\n%s", want, out)
				}
			}

			// The same check must fail on a CRL with one flipped bit in its
			// signed part, or it proves nothing.
			bad := bytes.Clone(der)
			bad[len(bad)/2] ^= 1
			badPath := writeFile(t, dir, "bad.der", bad)
			out, err = exec.Command(bin, "crl", "-inform", "DER", "-in", badPath, "-CAfile", caPath, "-noout").CombinedOutput()
			if err == nil && strings.Contains(string(out), "verify OK") {
				t.Fatalf("openssl accepted a tampered CRL:\n%s", out)
			}
		})
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

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
