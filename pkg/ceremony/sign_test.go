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
	"strings"
	"testing"
	"time"

	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/kms"
)

func TestSign(t *testing.T) {
	t.Parallel()
	root := newCert(t, "Sign Root", nil)
	constrainedRoot := newCert(t, "Constrained Root", nil, pathLen(1))
	intermediate := newCert(t, "Sign Intermediate", root)
	shortRoot := newCert(t, "Short Root", nil, valid(testNow.Add(-24*time.Hour), testNow.Add(30*24*time.Hour)))
	tests := []struct {
		name         string
		issuer       *testCert
		bundle       []byte // --ca-cert contents; the issuer alone when nil
		validity     time.Duration
		constraints  Constraints
		chain        bool
		wantPathLen  int
		wantNotAfter time.Time
		wantWarning  string
		wantCerts    int
	}{
		{name: "path-len-zero", issuer: root, validity: 90 * 24 * time.Hour, constraints: Constraints{PathLen: intp(0)}, wantPathLen: 0, wantCerts: 1},
		{name: "no-path-len", issuer: root, validity: 90 * 24 * time.Hour, wantPathLen: -1, wantCerts: 1},
		{
			name:        "name-constraints",
			issuer:      root,
			validity:    90 * 24 * time.Hour,
			constraints: Constraints{PermittedDNS: []string{"svc.example.com"}, ExcludedDNS: []string{"admin.svc.example.com"}},
			wantPathLen: -1,
			wantCerts:   1,
		},
		{name: "within-issuer-path-len", issuer: constrainedRoot, validity: 90 * 24 * time.Hour, constraints: Constraints{PathLen: intp(0)}, wantPathLen: 0, wantCerts: 1},
		{
			name:         "validity-clamped-to-issuer",
			issuer:       shortRoot,
			validity:     5 * 365 * 24 * time.Hour,
			wantPathLen:  -1,
			wantNotAfter: shortRoot.cert.NotAfter,
			wantWarning:  "validity shortened",
			wantCerts:    1,
		},
		{name: "chain-appended", issuer: root, validity: 90 * 24 * time.Hour, chain: true, wantPathLen: -1, wantCerts: 2},
		{
			name:        "intermediate-issuer-with-chain",
			issuer:      intermediate,
			bundle:      concat(intermediate.certPEM, root.certPEM),
			validity:    30 * 24 * time.Hour,
			chain:       true,
			wantPathLen: -1,
			wantCerts:   3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			bundle := tt.bundle
			if bundle == nil {
				bundle = tt.issuer.certPEM
			}
			o := SignOptions{
				CACert:      writeTestFile(t, dir, "ca.crt", bundle),
				CAKey:       FileKey{Path: writeTestFile(t, dir, "ca.key", tt.issuer.keyPEM)},
				CSR:         csrFile(t, dir, "CN=Example Issuing CA,O=Example", issuance.ECDSAP256, 1),
				Validity:    tt.validity,
				Constraints: tt.constraints,
				Chain:       tt.chain,
				Out:         filepath.Join(dir, "sub.crt"),
				Now:         testNow,
			}
			res, err := Sign(o)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			out, err := os.ReadFile(o.Out)
			if err != nil {
				t.Fatal(err)
			}
			certs, err := issuance.ParseCertificatesPEM(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(certs) != tt.wantCerts {
				t.Fatalf("the output holds %d certificates, want %d", len(certs), tt.wantCerts)
			}
			c := certs[0]
			if !bytes.Equal(c.Raw, res.Certificate.Raw) {
				t.Error("the result is not the certificate written")
			}
			if err := c.CheckSignatureFrom(tt.issuer.cert); err != nil {
				t.Errorf("not signed by the issuer: %v", err)
			}
			if got := c.Subject.String(); got != "CN=Example Issuing CA,O=Example" {
				t.Errorf("subject %q", got)
			}
			if !c.BasicConstraintsValid || !c.IsCA || c.KeyUsage != caKeyUsage {
				t.Errorf("not a CA profile: cA=%v keyUsage=%b", c.IsCA, c.KeyUsage)
			}
			if c.MaxPathLen != tt.wantPathLen || c.MaxPathLenZero != (tt.wantPathLen == 0) {
				t.Errorf("path length %d (zero: %v), want %d", c.MaxPathLen, c.MaxPathLenZero, tt.wantPathLen)
			}
			if !slices.Equal(c.PermittedDNSDomains, tt.constraints.PermittedDNS) || !slices.Equal(c.ExcludedDNSDomains, tt.constraints.ExcludedDNS) {
				t.Errorf("name constraints %q / %q", c.PermittedDNSDomains, c.ExcludedDNSDomains)
			}
			if !bytes.Equal(c.AuthorityKeyId, tt.issuer.cert.SubjectKeyId) {
				t.Errorf("authority key identifier %X, want the issuer's %X", c.AuthorityKeyId, tt.issuer.cert.SubjectKeyId)
			}
			if ski, _ := issuance.SubjectKeyID(c.RawSubjectPublicKeyInfo); !bytes.Equal(c.SubjectKeyId, ski) {
				t.Error("wrong subject key identifier")
			}
			if c.SerialNumber.BitLen() != 159 {
				t.Errorf("serial of %d bits, want 159", c.SerialNumber.BitLen())
			}
			wantNotAfter := tt.wantNotAfter
			if wantNotAfter.IsZero() {
				wantNotAfter = testNow.Add(tt.validity)
			}
			if !c.NotAfter.Equal(wantNotAfter) {
				t.Errorf("notAfter %s, want %s", c.NotAfter, wantNotAfter)
			}
			if c.NotBefore.Before(tt.issuer.cert.NotBefore) || c.NotBefore.After(testNow) {
				t.Errorf("notBefore %s is not between the issuer's %s and now", c.NotBefore, tt.issuer.cert.NotBefore)
			}
			warnings := strings.Join(res.Warnings, "\n")
			if tt.wantWarning == "" && warnings != "" || !strings.Contains(warnings, tt.wantWarning) {
				t.Errorf("warnings %q, want %q", warnings, tt.wantWarning)
			}
			// The subordinate must work as a Quill CA with the request's key.
			a, err := issuance.LoadAuthority(concat(issuance.EncodeCertificatesPEM(certs[0]), bundle), mustPEM(t, testKey(t, issuance.ECDSAP256, 1)), nil)
			if err != nil {
				t.Fatalf("LoadAuthority: %v", err)
			}
			if err := a.Check(testNow); err != nil {
				t.Fatalf("Check: %v", err)
			}
		})
	}
}

func TestSignErrors(t *testing.T) {
	t.Parallel()
	root := newCert(t, "Sign Root", nil)
	otherRoot := newCert(t, "Other Root", nil)
	intermediate := newCert(t, "Sign Intermediate", root)
	leafCert := newCert(t, "leaf.example.com", root, leaf())
	expired := newCert(t, "Expired Root", nil, valid(testNow.Add(-2*365*24*time.Hour), testNow.Add(-time.Hour)))
	future := newCert(t, "Future Root", nil, valid(testNow.Add(time.Hour), testNow.Add(365*24*time.Hour)))
	noCertSign := newCert(t, "CRL Only", nil, keyUsage(x509.KeyUsageCRLSign))
	pathLenZero := newCert(t, "Path Zero Root", nil, pathLen(0))
	pathLenOne := newCert(t, "Path One Root", nil, pathLen(1))
	dyingRoot := newCert(t, "Dying Root", nil, valid(testNow.Add(-24*time.Hour), testNow.Add(time.Minute)))

	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{RawSubject: mustSubject(t, "CN=Sub CA")}, testKey(t, issuance.ECDSAP256, 1))
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(csrDER)
	tampered[len(tampered)-3] ^= 0xff // inside the signature
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})
	sameNameDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{RawSubject: root.cert.RawSubject}, testKey(t, issuance.ECDSAP256, 1))
	if err != nil {
		t.Fatal(err)
	}
	emptyNameDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, testKey(t, issuance.ECDSAP256, 1))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		bundle      []byte
		key         []byte
		csr         []byte
		constraints Constraints
		validity    time.Duration
		existing    bool
		wantErr     error
		wantMsg     string
	}{
		{name: "issuer-not-a-ca", bundle: leafCert.certPEM, key: leafCert.keyPEM, wantErr: issuance.ErrNotCA},
		{name: "issuer-expired", bundle: expired.certPEM, key: expired.keyPEM, wantErr: issuance.ErrCAExpired},
		{name: "issuer-not-yet-valid", bundle: future.certPEM, key: future.keyPEM, wantErr: issuance.ErrCANotYetValid},
		{name: "issuer-without-cert-sign", bundle: noCertSign.certPEM, key: noCertSign.keyPEM, wantErr: issuance.ErrNoCertSign},
		{name: "key-mismatch", bundle: root.certPEM, key: otherRoot.keyPEM, wantErr: kms.ErrKeyMismatch},
		{name: "issuer-path-len-zero", bundle: pathLenZero.certPEM, key: pathLenZero.keyPEM, wantErr: errBadProfile, wantMsg: "end-entity certificates only"},
		{name: "path-len-over-issuer", bundle: pathLenOne.certPEM, key: pathLenOne.keyPEM, constraints: Constraints{PathLen: intp(1)}, wantErr: errBadProfile},
		{name: "issuer-expires-within-minutes", bundle: dyingRoot.certPEM, key: dyingRoot.keyPEM, wantErr: issuance.ErrCAExpired},
		{name: "chain-out-of-order", bundle: concat(root.certPEM, intermediate.certPEM), key: root.keyPEM, wantErr: issuance.ErrMalformedCA},
		{name: "garbage-issuer", bundle: []byte("garbage"), key: root.keyPEM, wantErr: issuance.ErrMalformedCA},
		{name: "truncated-issuer", bundle: root.certPEM[:200], key: root.keyPEM, wantErr: issuance.ErrMalformedCA},
		{name: "garbage-key", key: []byte("garbage"), wantErr: errKeyFile},
		{name: "tampered-request", csr: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered}), wantErr: errBadCSR, wantMsg: "signature"},
		{name: "truncated-request", csr: csrPEM[:len(csrPEM)/2], wantErr: errBadCSR},
		{name: "garbage-request", csr: []byte{0x30, 0x82, 0x01}, wantErr: errBadCSR},
		{name: "private-key-as-request", csr: root.keyPEM, wantErr: errBadCSR, wantMsg: "private key"},
		{name: "certificate-as-request", csr: root.certPEM, wantErr: errBadCSR},
		{name: "request-names-the-issuer", csr: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: sameNameDER}), wantErr: errBadCSR},
		{name: "request-without-name", csr: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: emptyNameDER}), wantErr: errBadCSR},
		{name: "bad-name-constraint", constraints: Constraints{PermittedDNS: []string{"exa mple.com"}}, wantErr: errBadProfile},
		{name: "validity-too-short", validity: time.Second, wantErr: errBadProfile},
		{name: "output-exists", existing: true, wantErr: ErrOutputExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			bundle, key, csr := tt.bundle, tt.key, tt.csr
			if bundle == nil {
				bundle = root.certPEM
			}
			if key == nil {
				key = root.keyPEM
			}
			if csr == nil {
				csr = csrPEM
			}
			validity := tt.validity
			if validity == 0 {
				validity = 30 * 24 * time.Hour
			}
			out := filepath.Join(dir, "sub.crt")
			if tt.existing {
				writeTestFile(t, dir, "sub.crt", []byte("precious"))
			}
			o := SignOptions{
				CACert:      writeTestFile(t, dir, "ca.crt", bundle),
				CAKey:       FileKey{Path: writeTestFile(t, dir, "ca.key", key)},
				CSR:         writeTestFile(t, dir, "sub.csr", csr),
				Validity:    validity,
				Constraints: tt.constraints,
				Out:         out,
				Now:         testNow,
			}
			before := dirNames(t, dir)
			_, err := Sign(o)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want an error wrapping %q", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("the message %q does not say %q", err, tt.wantMsg)
			}
			if after := dirNames(t, dir); !slices.Equal(before, after) {
				t.Errorf("the failure changed the folder: %q, then %q", before, after)
			}
		})
	}
}

func TestSignClosesTokenKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root := newCert(t, "Token Root", nil, withKey(testKey(t, issuance.ECDSAP384, 0)))
	closed := false
	_, err := Sign(SignOptions{
		CACert:   writeTestFile(t, dir, "root.crt", root.certPEM),
		CAKey:    tokenKey{ref: "token:object=root", key: root.key, closed: &closed},
		CSR:      csrFile(t, dir, "CN=Sub", issuance.Ed25519, 0),
		Validity: 24 * time.Hour,
		Out:      filepath.Join(dir, "sub.crt"),
		Now:      testNow,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !closed {
		t.Error("the key source was not closed")
	}
}
