package ceremony

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/quill-pki/quill/pkg/issuance"
)

func TestInit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		alg         issuance.KeyAlgorithm // generated
		existing    issuance.KeyAlgorithm // or an existing key file of this type
		constraints Constraints
		wantSig     x509.SignatureAlgorithm
	}{
		{name: "ecdsa-p256", alg: issuance.ECDSAP256, wantSig: x509.ECDSAWithSHA256},
		{name: "ecdsa-p384", alg: issuance.ECDSAP384, wantSig: x509.ECDSAWithSHA384},
		{name: "ecdsa-p521", alg: issuance.ECDSAP521, wantSig: x509.ECDSAWithSHA512},
		{name: "rsa-2048", alg: issuance.RSA2048, wantSig: x509.SHA256WithRSA},
		{name: "ed25519", alg: issuance.Ed25519, wantSig: x509.PureEd25519},
		{name: "ml-dsa-44", alg: issuance.MLDSA44, wantSig: x509.MLDSA44},
		{name: "ml-dsa-65", alg: issuance.MLDSA65, wantSig: x509.MLDSA65},
		{name: "ml-dsa-87", alg: issuance.MLDSA87, wantSig: x509.MLDSA87},
		{name: "existing-rsa-3072-key", existing: issuance.RSA3072, wantSig: x509.SHA256WithRSA},
		{name: "existing-rsa-4096-key", existing: issuance.RSA4096, wantSig: x509.SHA256WithRSA},
		{name: "path-len-zero", alg: issuance.ECDSAP256, constraints: Constraints{PathLen: intp(0)}, wantSig: x509.ECDSAWithSHA256},
		{name: "path-len-two", alg: issuance.ECDSAP256, constraints: Constraints{PathLen: intp(2)}, wantSig: x509.ECDSAWithSHA256},
		{
			name:        "name-constraints",
			alg:         issuance.ECDSAP256,
			constraints: Constraints{PermittedDNS: []string{"example.com", ".example.net"}, ExcludedDNS: []string{"Secret.Example.com"}},
			wantSig:     x509.ECDSAWithSHA256,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			opts := InitOptions{
				Subject:     "CN=Example Root,O=Example",
				Validity:    10 * 365 * 24 * time.Hour,
				Constraints: tt.constraints,
				OutCert:     filepath.Join(dir, "root.crt"),
				Now:         testNow,
			}
			keyPath := filepath.Join(dir, "root.key")
			if tt.existing != "" {
				writeTestFile(t, dir, "root.key", mustPEM(t, testKey(t, tt.existing, 0)))
				opts.Key = FileKey{Path: keyPath}
			} else {
				opts.KeyAlgorithm, opts.OutKey = tt.alg, keyPath
			}
			res, err := Init(opts)
			if err != nil {
				t.Fatalf("Init: %v", err)
			}
			certPEM, err := os.ReadFile(opts.OutCert)
			if err != nil {
				t.Fatal(err)
			}
			keyPEM, err := os.ReadFile(keyPath)
			if err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(keyPath); tt.existing == "" && (err != nil || fi.Mode().Perm() != 0o600) {
				t.Errorf("the key file has mode %v (%v), want 0600", fi.Mode().Perm(), err)
			}
			if fi, err := os.Stat(opts.OutCert); err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("the certificate file has mode %v (%v), want 0644", fi.Mode().Perm(), err)
			}

			// The root must load as a Quill CA Secret would hold it.
			a, err := issuance.LoadAuthority(certPEM, keyPEM, certPEM)
			if err != nil {
				t.Fatalf("LoadAuthority: %v", err)
			}
			if err := a.Check(testNow); err != nil {
				t.Fatalf("Check: %v", err)
			}
			c := a.Certificate
			if !bytes.Equal(c.Raw, res.Certificate.Raw) {
				t.Error("the result is not the certificate written")
			}
			if got := c.Subject.String(); got != "CN=Example Root,O=Example" {
				t.Errorf("subject %q", got)
			}
			if c.Issuer.String() != c.Subject.String() || c.CheckSignatureFrom(c) != nil {
				t.Error("the root is not self-signed")
			}
			if c.SignatureAlgorithm != tt.wantSig {
				t.Errorf("signed with %s, want %s", c.SignatureAlgorithm, tt.wantSig)
			}
			if !c.BasicConstraintsValid || !c.IsCA {
				t.Error("not a CA")
			}
			if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign|x509.KeyUsageDigitalSignature {
				t.Errorf("keyUsage %b", c.KeyUsage)
			}
			wantPathLen := -1
			if tt.constraints.PathLen != nil {
				wantPathLen = *tt.constraints.PathLen
			}
			if c.MaxPathLen != wantPathLen || c.MaxPathLenZero != (wantPathLen == 0) {
				t.Errorf("path length %d (zero: %v), want %d", c.MaxPathLen, c.MaxPathLenZero, wantPathLen)
			}
			wantPermitted, _ := dnsConstraints(tt.constraints.PermittedDNS)
			wantExcluded, _ := dnsConstraints(tt.constraints.ExcludedDNS)
			if !slices.Equal(c.PermittedDNSDomains, wantPermitted) || !slices.Equal(c.ExcludedDNSDomains, wantExcluded) {
				t.Errorf("name constraints %q / %q, want %q / %q", c.PermittedDNSDomains, c.ExcludedDNSDomains, wantPermitted, wantExcluded)
			}
			if len(wantPermitted)+len(wantExcluded) > 0 && !c.PermittedDNSDomainsCritical {
				t.Error("name constraints are not critical")
			}
			if ski, _ := issuance.SubjectKeyID(c.RawSubjectPublicKeyInfo); !bytes.Equal(c.SubjectKeyId, ski) {
				t.Errorf("subject key identifier %X, want %X", c.SubjectKeyId, ski)
			}
			if c.SerialNumber.BitLen() != 159 {
				t.Errorf("serial of %d bits, want 159", c.SerialNumber.BitLen())
			}
			if !c.NotBefore.Equal(testNow.Add(-time.Hour)) || !c.NotAfter.Equal(testNow.Add(opts.Validity)) {
				t.Errorf("valid %s to %s, want an hour before %s for ten years", c.NotBefore, c.NotAfter, testNow)
			}
		})
	}
}

func TestInitErrors(t *testing.T) {
	t.Parallel()
	base := func(dir string) InitOptions {
		return InitOptions{
			Subject:      "CN=Example Root",
			Validity:     24 * time.Hour,
			KeyAlgorithm: issuance.ECDSAP256,
			OutCert:      filepath.Join(dir, "root.crt"),
			OutKey:       filepath.Join(dir, "root.key"),
			Now:          testNow,
		}
	}
	tests := []struct {
		name     string
		modify   func(o *InitOptions, dir string)
		existing []string
		wantErr  error
	}{
		{name: "empty-subject", modify: func(o *InitOptions, _ string) { o.Subject = "" }, wantErr: errBadSubject},
		{name: "validity-too-short", modify: func(o *InitOptions, _ string) { o.Validity = time.Minute }, wantErr: errBadProfile},
		{name: "negative-path-len", modify: func(o *InitOptions, _ string) { o.Constraints.PathLen = intp(-1) }, wantErr: errBadProfile},
		{name: "wildcard-name-constraint", modify: func(o *InitOptions, _ string) { o.Constraints.PermittedDNS = []string{"*.example.com"} }, wantErr: errBadProfile},
		{name: "unknown-algorithm", modify: func(o *InitOptions, _ string) { o.KeyAlgorithm = "DSA-1024" }, wantErr: errUnsupportedKey},
		{name: "no-algorithm", modify: func(o *InitOptions, _ string) { o.KeyAlgorithm = "" }, wantErr: errUnsupportedKey},
		{name: "no-key-file", modify: func(o *InitOptions, _ string) { o.OutKey = "" }, wantErr: errOptions},
		{name: "no-certificate-file", modify: func(o *InitOptions, _ string) { o.OutCert = "" }, wantErr: errOptions},
		{name: "existing-key-and-algorithm", modify: func(o *InitOptions, dir string) { o.Key = FileKey{Path: filepath.Join(dir, "k")} }, wantErr: errOptions},
		{name: "existing-key-file-missing", modify: func(o *InitOptions, dir string) {
			o.Key, o.KeyAlgorithm, o.OutKey = FileKey{Path: filepath.Join(dir, "absent.key")}, "", ""
		}, wantErr: errKeyFile},
		{name: "no-time", modify: func(o *InitOptions, _ string) { o.Now = time.Time{} }, wantErr: errOptions},
		{name: "certificate-exists", existing: []string{"root.crt"}, wantErr: ErrOutputExists},
		{name: "key-exists", existing: []string{"root.key"}, wantErr: ErrOutputExists},
		{name: "same-file-for-both", modify: func(o *InitOptions, _ string) { o.OutKey = o.OutCert }, wantErr: errOutput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for _, name := range tt.existing {
				writeTestFile(t, dir, name, []byte("precious"))
			}
			before := dirNames(t, dir)
			o := base(dir)
			if tt.modify != nil {
				tt.modify(&o, dir)
			}
			_, err := Init(o)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want an error wrapping %q", err, tt.wantErr)
			}
			if after := dirNames(t, dir); !slices.Equal(before, after) {
				t.Errorf("the failure changed the folder: %q, then %q", before, after)
			}
			for _, name := range tt.existing {
				if data, _ := os.ReadFile(filepath.Join(dir, name)); string(data) != "precious" {
					t.Errorf("%s was overwritten", name)
				}
			}
		})
	}
}

func TestInitReplace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := InitOptions{
		Subject:      "CN=Example Root",
		Validity:     24 * time.Hour,
		KeyAlgorithm: issuance.Ed25519,
		OutCert:      writeTestFile(t, dir, "root.crt", []byte("old")),
		OutKey:       writeTestFile(t, dir, "root.key", []byte("old")),
		Replace:      true,
		Now:          testNow,
	}
	if _, err := Init(o); err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := os.ReadFile(o.OutKey)
	if _, err := issuance.ParsePrivateKeyPEM(keyPEM); err != nil {
		t.Fatalf("the key was not replaced: %v", err)
	}
	if fi, _ := os.Stat(o.OutKey); fi.Mode().Perm() != 0o600 {
		t.Errorf("the replaced key has mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestInitWithTokenKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	closed := false
	key := tokenKey{ref: "token:object=root", key: testKey(t, issuance.ECDSAP384, 0), closed: &closed}
	res, err := Init(InitOptions{
		Subject:  "CN=Token Root",
		Validity: 24 * time.Hour,
		Key:      key,
		OutCert:  filepath.Join(dir, "root.crt"),
		Now:      testNow,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !issuance.PublicKeysEqual(res.Certificate.PublicKey, key.key.Public()) {
		t.Error("the root does not carry the token's key")
	}
	if !closed {
		t.Error("the key source was not closed")
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"root.crt"}) {
		t.Errorf("wrote %q, want only the certificate", names)
	}
}
