package ceremony

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/kms"
)

const testPassword = "correct horse battery staple"

func encodePFX(t testing.TB, enc *pkcs12.Encoder, key crypto.Signer, cert *x509.Certificate, cas ...*x509.Certificate) []byte {
	t.Helper()
	data, err := enc.Encode(key, cert, cas, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestImport(t *testing.T) {
	t.Parallel()
	root := newCert(t, "Import Root", nil)
	issuing := newCert(t, "Import Issuing CA", root, pathLen(0))
	middle := newCert(t, "Import Intermediate", root)
	deep := newCert(t, "Import Deep CA", middle)
	stranger := newCert(t, "Unrelated Root", nil)
	mldsa := newCert(t, "Import ML-DSA CA", root, withKey(testKey(t, issuance.MLDSA65, 0)))
	rsaCA := newCert(t, "Import RSA CA", root, withKey(testKey(t, issuance.RSA2048, 0)))

	type files struct {
		pfx, cert, key, ca []byte
	}
	tests := []struct {
		name        string
		in          files
		wantTLSCrt  []*testCert // tls.crt, in order
		wantRoot    *testCert
		wantWarning string
	}{
		{name: "pfx-modern-aes", in: files{pfx: encodePFX(t, pkcs12.Modern, issuing.key, issuing.cert, root.cert)}, wantTLSCrt: []*testCert{issuing}, wantRoot: root},
		{name: "pfx-legacy-3des", in: files{pfx: encodePFX(t, pkcs12.LegacyDES, issuing.key, issuing.cert, root.cert)}, wantTLSCrt: []*testCert{issuing}, wantRoot: root},
		{name: "pfx-legacy-rc2", in: files{pfx: encodePFX(t, pkcs12.LegacyRC2, issuing.key, issuing.cert, root.cert)}, wantTLSCrt: []*testCert{issuing}, wantRoot: root},
		{name: "pfx-ml-dsa-key", in: files{pfx: encodePFX(t, pkcs12.Modern, mldsa.key, mldsa.cert, root.cert)}, wantTLSCrt: []*testCert{mldsa}, wantRoot: root},
		{name: "pfx-rsa-key", in: files{pfx: encodePFX(t, pkcs12.Modern, rsaCA.key, rsaCA.cert, root.cert)}, wantTLSCrt: []*testCert{rsaCA}, wantRoot: root},
		{name: "pfx-chain-out-of-order", in: files{pfx: encodePFX(t, pkcs12.Modern, deep.key, deep.cert, root.cert, middle.cert)}, wantTLSCrt: []*testCert{deep, middle}, wantRoot: root},
		{name: "pfx-root-from-ca-file", in: files{pfx: encodePFX(t, pkcs12.Modern, deep.key, deep.cert, middle.cert), ca: root.certPEM}, wantTLSCrt: []*testCert{deep, middle}, wantRoot: root},
		{name: "pfx-of-the-root-itself", in: files{pfx: encodePFX(t, pkcs12.Modern, root.key, root.cert)}, wantTLSCrt: []*testCert{root}, wantRoot: root},
		{
			name:        "pfx-with-unrelated-certificate",
			in:          files{pfx: encodePFX(t, pkcs12.Modern, issuing.key, issuing.cert, stranger.cert, root.cert)},
			wantTLSCrt:  []*testCert{issuing},
			wantRoot:    root,
			wantWarning: "not part of the chain",
		},
		{name: "pem-with-ca-file", in: files{cert: issuing.certPEM, key: issuing.keyPEM, ca: root.certPEM}, wantTLSCrt: []*testCert{issuing}, wantRoot: root},
		{name: "pem-bundle-with-root", in: files{cert: concat(issuing.certPEM, root.certPEM), key: issuing.keyPEM}, wantTLSCrt: []*testCert{issuing}, wantRoot: root},
		{name: "pem-three-levels", in: files{cert: concat(deep.certPEM, middle.certPEM), key: deep.keyPEM, ca: root.certPEM}, wantTLSCrt: []*testCert{deep, middle}, wantRoot: root},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			o := ImportOptions{Name: "quill-issuing-ca", Namespace: "quill-system", Now: testNow}
			if tt.in.pfx != nil {
				o.PFX, o.Password = writeTestFile(t, dir, "ca.pfx", tt.in.pfx), testPassword
			}
			if tt.in.cert != nil {
				o.Cert = writeTestFile(t, dir, "ca.crt", tt.in.cert)
				o.Key = writeTestFile(t, dir, "ca.key", tt.in.key)
			}
			if tt.in.ca != nil {
				o.CA = writeTestFile(t, dir, "root.crt", tt.in.ca)
			}
			imp, err := Import(o)
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			s := imp.Secret
			if s.Name != "quill-issuing-ca" || s.Namespace != "quill-system" || s.Type != corev1.SecretTypeTLS {
				t.Errorf("Secret %s/%s of type %s", s.Namespace, s.Name, s.Type)
			}
			if len(s.Data) != 3 {
				t.Errorf("the Secret has keys %v, want tls.crt, tls.key and ca.crt", s.Data)
			}
			var wantCrt []byte
			for _, c := range tt.wantTLSCrt {
				wantCrt = append(wantCrt, c.certPEM...)
			}
			if !bytes.Equal(s.Data[corev1.TLSCertKey], wantCrt) {
				t.Errorf("tls.crt is\n%s\nwant\n%s", s.Data[corev1.TLSCertKey], wantCrt)
			}
			if !bytes.Equal(s.Data[keyCACrt], tt.wantRoot.certPEM) {
				t.Errorf("ca.crt is not the root")
			}
			key, err := issuance.ParsePrivateKeyPEM(s.Data[corev1.TLSPrivateKeyKey])
			if err != nil || !strings.HasPrefix(string(s.Data[corev1.TLSPrivateKeyKey]), "-----BEGIN PRIVATE KEY-----") {
				t.Fatalf("tls.key is not a PKCS#8 PEM key: %v", err)
			}
			if !issuance.PublicKeysEqual(key.Public(), tt.wantTLSCrt[0].key.Public()) {
				t.Error("tls.key is not the CA's key")
			}
			a, err := issuance.LoadAuthority(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey], s.Data[keyCACrt])
			if err != nil {
				t.Fatalf("the Secret does not load: %v", err)
			}
			if err := a.Check(testNow); err != nil {
				t.Fatalf("the loaded CA fails its check: %v", err)
			}
			warnings := strings.Join(imp.Warnings, "\n")
			if tt.wantWarning == "" && warnings != "" || !strings.Contains(warnings, tt.wantWarning) {
				t.Errorf("warnings %q, want %q", warnings, tt.wantWarning)
			}
		})
	}
}

func TestImportErrors(t *testing.T) {
	t.Parallel()
	root := newCert(t, "Import Root", nil)
	issuing := newCert(t, "Import Issuing CA", root)
	other := newCert(t, "Other CA", root)
	middle := newCert(t, "Import Intermediate", root)
	deep := newCert(t, "Import Deep CA", middle)
	leafCert := newCert(t, "leaf.example.com", root, leaf())
	expired := newCert(t, "Expired CA", root, valid(testNow.Add(-365*24*time.Hour), testNow.Add(-time.Minute)))
	future := newCert(t, "Future CA", root, valid(testNow.Add(time.Hour), testNow.Add(24*time.Hour)))
	expiredRoot := newCert(t, "Expired Root", nil, valid(testNow.Add(-365*24*time.Hour), testNow.Add(-time.Hour)))
	underExpiredRoot := newCert(t, "Issuing Under Expired Root", expiredRoot)
	noCertSign := newCert(t, "CRL Signer", root, keyUsage(x509.KeyUsageCRLSign))
	pathZeroRoot := newCert(t, "Path Zero Root", nil, pathLen(0))
	overPathLen := newCert(t, "Too Deep Intermediate", pathZeroRoot)
	overPathLenIssuing := newCert(t, "Too Deep Issuing", overPathLen)
	p384 := newCert(t, "Other Key CA", root, withKey(testKey(t, issuance.ECDSAP384, 0)))

	good := encodePFX(t, pkcs12.Modern, issuing.key, issuing.cert, root.cert)
	tests := []struct {
		name      string
		pfx       []byte
		password  string
		cert, key []byte
		ca        []byte
		secret    string
		wantErr   error
		wantMsg   string
	}{
		{name: "wrong-password", pfx: good, password: "wrong", wantErr: ErrWrongPassword},
		{name: "empty-password", pfx: good, password: "", wantErr: ErrWrongPassword},
		{name: "truncated-pfx", pfx: good[:len(good)/2], wantErr: errBadPFX, wantMsg: "truncated"},
		{name: "garbage-pfx", pfx: []byte("definitely not PKCS#12"), wantErr: errBadPFX},
		{name: "pem-given-as-pfx", pfx: issuing.certPEM, wantErr: errBadPFX},
		{name: "empty-pfx", pfx: []byte{}, wantErr: errBadPFX},
		{name: "leaf-certificate-pfx", pfx: encodePFX(t, pkcs12.Modern, leafCert.key, leafCert.cert, root.cert), wantErr: issuance.ErrNotCA, wantMsg: "leaf.example.com"},
		{name: "expired-ca-pfx", pfx: encodePFX(t, pkcs12.Modern, expired.key, expired.cert, root.cert), wantErr: issuance.ErrCAExpired},
		{name: "not-yet-valid-ca-pfx", pfx: encodePFX(t, pkcs12.Modern, future.key, future.cert, root.cert), wantErr: issuance.ErrCANotYetValid},
		{name: "expired-root", pfx: encodePFX(t, pkcs12.Modern, underExpiredRoot.key, underExpiredRoot.cert, expiredRoot.cert), wantErr: issuance.ErrCAExpired, wantMsg: "Expired Root"},
		{name: "no-cert-sign", pfx: encodePFX(t, pkcs12.Modern, noCertSign.key, noCertSign.cert, root.cert), wantErr: issuance.ErrNoCertSign},
		{name: "mismatched-key-pfx", pfx: encodePFX(t, pkcs12.Modern, other.key, issuing.cert, root.cert), wantErr: kms.ErrKeyMismatch},
		{name: "root-missing", pfx: encodePFX(t, pkcs12.Modern, issuing.key, issuing.cert), wantErr: errIncompleteChain, wantMsg: "--ca"},
		{name: "intermediate-missing", pfx: encodePFX(t, pkcs12.Modern, deep.key, deep.cert, root.cert), wantErr: errIncompleteChain, wantMsg: "Import Intermediate"},
		{name: "wrong-root-in-ca-file", pfx: encodePFX(t, pkcs12.Modern, issuing.key, issuing.cert), ca: other.certPEM, wantErr: errIncompleteChain},
		{name: "path-length-violated", pfx: encodePFX(t, pkcs12.Modern, overPathLenIssuing.key, overPathLenIssuing.cert, overPathLen.cert, pathZeroRoot.cert), wantErr: issuance.ErrMalformedCA},
		{name: "mismatched-key-pem", cert: issuing.certPEM, key: other.keyPEM, ca: root.certPEM, wantErr: kms.ErrKeyMismatch},
		{name: "mismatched-key-type-pem", cert: issuing.certPEM, key: p384.keyPEM, ca: root.certPEM, wantErr: kms.ErrKeyMismatch},
		{name: "leaf-certificate-pem", cert: leafCert.certPEM, key: leafCert.keyPEM, ca: root.certPEM, wantErr: issuance.ErrNotCA},
		{name: "truncated-certificate-pem", cert: issuing.certPEM[:300], key: issuing.keyPEM, ca: root.certPEM, wantErr: issuance.ErrMalformedCA},
		{name: "garbage-key-pem", cert: issuing.certPEM, key: []byte("garbage"), ca: root.certPEM, wantErr: errKeyFile},
		{name: "garbage-ca-file", pfx: good, ca: []byte("garbage"), wantErr: issuance.ErrMalformedCA},
		{name: "invalid-secret-name", pfx: good, secret: "Quill_CA", wantErr: errSecretName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			o := ImportOptions{Name: "quill-issuing-ca", Namespace: "quill-system", Now: testNow}
			if tt.secret != "" {
				o.Name = tt.secret
			}
			if tt.pfx != nil {
				o.PFX = writeTestFile(t, dir, "ca.pfx", tt.pfx)
				o.Password = testPassword
				if tt.password != "" || tt.wantErr == ErrWrongPassword {
					o.Password = tt.password
				}
			}
			if tt.cert != nil {
				o.Cert = writeTestFile(t, dir, "ca.crt", tt.cert)
				o.Key = writeTestFile(t, dir, "ca.key", tt.key)
			}
			if tt.ca != nil {
				o.CA = writeTestFile(t, dir, "root.crt", tt.ca)
			}
			imp, err := Import(o)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, %v; want an error wrapping %q", imp, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("the message %q does not say %q", err, tt.wantMsg)
			}
		})
	}
}

func TestImportOptionErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		o    ImportOptions
	}{
		{name: "no-input", o: ImportOptions{Name: "ca", Namespace: "ns", Now: testNow}},
		{name: "pfx-and-pem", o: ImportOptions{PFX: "a.pfx", Cert: "a.crt", Key: "a.key", Name: "ca", Namespace: "ns", Now: testNow}},
		{name: "certificate-without-key", o: ImportOptions{Cert: "a.crt", Name: "ca", Namespace: "ns", Now: testNow}},
		{name: "no-time", o: ImportOptions{PFX: "a.pfx", Name: "ca", Namespace: "ns"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := Import(tt.o); !errors.Is(err, errOptions) {
				t.Fatalf("got %v, want an options error", err)
			}
		})
	}
}

func TestEncodeSecret(t *testing.T) {
	t.Parallel()
	root := newCert(t, "Manifest Root", nil)
	dir := t.TempDir()
	imp, err := Import(ImportOptions{
		Cert:      writeTestFile(t, dir, "root.crt", root.certPEM),
		Key:       writeTestFile(t, dir, "root.key", root.keyPEM),
		Name:      "quill-root",
		Namespace: "pki",
		Now:       testNow,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{FormatYAML, FormatJSON} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			data, err := EncodeSecret(imp.Secret, format)
			if err != nil {
				t.Fatal(err)
			}
			var back corev1.Secret
			if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096).Decode(&back); err != nil {
				t.Fatalf("the manifest does not decode: %v\n%s", err, data)
			}
			if back.APIVersion != "v1" || back.Kind != "Secret" || back.Name != "quill-root" || back.Namespace != "pki" || back.Type != corev1.SecretTypeTLS {
				t.Errorf("decoded %s %s %s/%s of type %s", back.APIVersion, back.Kind, back.Namespace, back.Name, back.Type)
			}
			for k, v := range imp.Secret.Data {
				if !bytes.Equal(back.Data[k], v) {
					t.Errorf("%s changed in the manifest", k)
				}
			}
		})
	}
	if _, err := EncodeSecret(imp.Secret, "xml"); !errors.Is(err, errOptions) {
		t.Errorf("format xml: got %v, want an options error", err)
	}
}

func TestReadPasswordFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{name: "trailing-newline", content: "s3cret\n", want: "s3cret"},
		{name: "crlf", content: "s3cret\r\n", want: "s3cret"},
		{name: "no-newline", content: "s3cret", want: "s3cret"},
		{name: "spaces-kept", content: " s3 cret \n", want: " s3 cret "},
		{name: "first-line-only", content: "s3cret\nsecond\n", want: "s3cret"},
		{name: "empty", content: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := writeTestFile(t, t.TempDir(), "pass", []byte(tt.content))
			got, err := ReadPasswordFile(p)
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := ReadPasswordFile(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Error("a missing password file was accepted")
	}
}
