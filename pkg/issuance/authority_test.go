package issuance

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quill-pki/quill/pkg/kms"
)

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestLoadAuthority(t *testing.T) {
	t.Parallel()
	root := newCA(t, withCACN("Load Root"))
	inter1 := newCA(t, withParent(root), withCACN("Load Intermediate 1"))
	inter2 := newCA(t, withParent(inter1), withCACN("Load Intermediate 2"))
	otherRoot := newCA(t, withCACN("Other Root"))
	rsaRoot := newCA(t, withCAKeyAlg(RSA2048, 0), withCACN("RSA Root"))
	edRoot := newCA(t, withCAKeyAlg(Ed25519, 0), withCACN("Ed25519 Root"))
	mldsaRoot := newCA(t, withCAKeyAlg(MLDSA65, 0), withCACN("ML-DSA Root"))
	weakRoot := newCA(t, withCAKeyAlg(rsa1024, 0), withCACN("Weak Root"))

	rootCrt, rootKey, _ := secretFiles(t, root)
	inter2Crt, inter2Key, _ := secretFiles(t, inter2) // inter2, inter1
	rootPEM := EncodeCertificatesPEM(root.Certificate)
	rsaCrt, _, _ := secretFiles(t, rsaRoot)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaRoot.Signer.(*rsa.PrivateKey))})
	sec1DER, err := x509.MarshalECPrivateKey(root.Signer.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	sec1 := concat(
		pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1DER}))
	edCrt, edKey, _ := secretFiles(t, edRoot)
	mlCrt, mlKey, _ := secretFiles(t, mldsaRoot)
	weakCrt, weakKey, _ := secretFiles(t, weakRoot)
	_, otherKey, _ := secretFiles(t, otherRoot)

	type want struct {
		issuing       string
		intermediates []string
		root          string
	}
	tests := []struct {
		name                  string
		tlsCrt, tlsKey, caCrt []byte
		want                  want
		wantErr               error
		wantMsg               []string
	}{
		{name: "root-with-ca-crt", tlsCrt: rootCrt, tlsKey: rootKey, caCrt: rootPEM, want: want{issuing: "Load Root", root: "Load Root"}},
		{name: "root-without-ca-crt", tlsCrt: rootCrt, tlsKey: rootKey, want: want{issuing: "Load Root", root: "Load Root"}},
		{name: "rsa-pkcs1-key", tlsCrt: rsaCrt, tlsKey: pkcs1, want: want{issuing: "RSA Root", root: "RSA Root"}},
		{name: "ec-sec1-key-with-parameters", tlsCrt: rootCrt, tlsKey: sec1, want: want{issuing: "Load Root", root: "Load Root"}},
		{name: "ed25519-pkcs8-key", tlsCrt: edCrt, tlsKey: edKey, want: want{issuing: "Ed25519 Root", root: "Ed25519 Root"}},
		{name: "ml-dsa-65-seed-only-pkcs8-key", tlsCrt: mlCrt, tlsKey: mlKey, want: want{issuing: "ML-DSA Root", root: "ML-DSA Root"}},
		{name: "intermediate-and-ca-crt", tlsCrt: concat(EncodeCertificatesPEM(inter1.Certificate)), tlsKey: mustKeyPEM(t, inter1), caCrt: rootPEM,
			want: want{issuing: "Load Intermediate 1", root: "Load Root"}},
		{name: "chain-and-ca-crt", tlsCrt: inter2Crt, tlsKey: inter2Key, caCrt: rootPEM,
			want: want{issuing: "Load Intermediate 2", intermediates: []string{"Load Intermediate 1"}, root: "Load Root"}},
		{name: "chain-ending-in-root", tlsCrt: concat(inter2Crt, rootPEM), tlsKey: inter2Key,
			want: want{issuing: "Load Intermediate 2", intermediates: []string{"Load Intermediate 1"}, root: "Load Root"}},
		{name: "chain-ending-in-root-and-ca-crt", tlsCrt: concat(inter2Crt, rootPEM), tlsKey: inter2Key, caCrt: rootPEM,
			want: want{issuing: "Load Intermediate 2", intermediates: []string{"Load Intermediate 1"}, root: "Load Root"}},
		{name: "chain-without-root-or-ca-crt", tlsCrt: inter2Crt, tlsKey: inter2Key,
			want: want{issuing: "Load Intermediate 2", root: "Load Intermediate 1"}},
		{name: "ca-crt-rotation-bundle", tlsCrt: inter2Crt, tlsKey: inter2Key, caCrt: concat(EncodeCertificatesPEM(otherRoot.Certificate), rootPEM),
			want: want{issuing: "Load Intermediate 2", intermediates: []string{"Load Intermediate 1"}, root: "Load Root"}},

		{name: "key-mismatch", tlsCrt: rootCrt, tlsKey: otherKey, wantErr: kms.ErrKeyMismatch, wantMsg: []string{"Load Root"}},
		{name: "chain-out-of-order", tlsCrt: EncodeCertificatesPEM(inter1.Certificate, inter2.Certificate), tlsKey: mustKeyPEM(t, inter1),
			wantErr: ErrMalformedCA, wantMsg: []string{"out of order", "certificate 1", "Load Intermediate 1", "Load Intermediate 2"}},
		{name: "chain-with-gap", tlsCrt: EncodeCertificatesPEM(inter2.Certificate, root.Certificate), tlsKey: inter2Key,
			wantErr: ErrMalformedCA, wantMsg: []string{"out of order"}},
		{name: "ca-crt-unrelated", tlsCrt: inter2Crt, tlsKey: inter2Key, caCrt: EncodeCertificatesPEM(otherRoot.Certificate),
			wantErr: ErrMalformedCA, wantMsg: []string{"ca.crt does not contain", "Load Intermediate 1", "Load Root"}},
		{name: "corrupt-certificate-pem", tlsCrt: bytes.Replace(rootCrt, []byte("\n"), []byte("\n%%%"), 3), tlsKey: rootKey,
			wantErr: ErrMalformedCA, wantMsg: []string{"tls.crt", "damaged"}},
		{name: "truncated-certificate-pem", tlsCrt: rootCrt[:len(rootCrt)-40], tlsKey: rootKey,
			wantErr: ErrMalformedCA, wantMsg: []string{"tls.crt", "no END line"}},
		{name: "certificate-der-garbage", tlsCrt: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}), tlsKey: rootKey,
			wantErr: ErrMalformedCA, wantMsg: []string{"tls.crt", "certificate 1"}},
		{name: "empty-tls-crt", tlsKey: rootKey, wantErr: ErrMalformedCA, wantMsg: []string{"tls.crt", "no PEM data"}},
		{name: "key-in-tls-crt", tlsCrt: concat(rootCrt, rootKey), tlsKey: rootKey, wantErr: ErrMalformedCA, wantMsg: []string{`block 2 is "PRIVATE KEY"`}},
		{name: "corrupt-key", tlsCrt: rootCrt, tlsKey: rootKey[:len(rootKey)/2], wantErr: ErrMalformedCA, wantMsg: []string{"tls.key"}},
		{name: "key-der-garbage", tlsCrt: rootCrt, tlsKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}), wantErr: ErrMalformedCA, wantMsg: []string{"tls.key"}},
		{name: "encrypted-key", tlsCrt: rootCrt, tlsKey: pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0}}),
			wantErr: ErrMalformedCA, wantMsg: []string{"encrypted PKCS#8 keys are not supported"}},
		{name: "two-keys", tlsCrt: rootCrt, tlsKey: concat(rootKey, rootKey), wantErr: ErrMalformedCA, wantMsg: []string{"exactly one private key block, found 2"}},
		{name: "corrupt-ca-crt", tlsCrt: rootCrt, tlsKey: rootKey, caCrt: []byte("garbage"), wantErr: ErrMalformedCA, wantMsg: []string{"ca.crt"}},
		{name: "weak-ca-key", tlsCrt: weakCrt, tlsKey: weakKey, wantErr: ErrMalformedCA, wantMsg: []string{"RSA-1024", "too weak"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := LoadAuthority(tt.tlsCrt, tt.tlsKey, tt.caCrt)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("LoadAuthority() error = %v, want %v", err, tt.wantErr)
				}
				containsAll(t, err.Error(), tt.wantMsg...)
				return
			}
			if err != nil {
				t.Fatalf("LoadAuthority() = %v", err)
			}
			var inters []string
			for _, c := range a.Intermediates {
				inters = append(inters, c.Subject.CommonName)
			}
			if got := a.Certificate.Subject.CommonName; got != tt.want.issuing {
				t.Errorf("Certificate = %q, want %q", got, tt.want.issuing)
			}
			if !slices.Equal(inters, tt.want.intermediates) {
				t.Errorf("Intermediates = %q, want %q", inters, tt.want.intermediates)
			}
			if got := a.Root.Subject.CommonName; got != tt.want.root {
				t.Errorf("Root = %q, want %q", got, tt.want.root)
			}
			if tt.want.root == tt.want.issuing && a.Root != a.Certificate {
				t.Error("Root is not the same pointer as Certificate for a self-signed issuing CA")
			}
			if err := a.Check(testNow); err != nil {
				t.Fatalf("Check() = %v", err)
			}
			verifyIssued(t, mustSign(t, a, Request{CSR: newCSR(t)}, baseOptions()))
		})
	}
}

func mustKeyPEM(t testing.TB, a *Authority) []byte {
	t.Helper()
	_, key, _ := secretFiles(t, a)
	return key
}

func TestCheck(t *testing.T) {
	t.Parallel()
	root := newCA(t, withCACN("Check Root"))
	expiredRoot := newCA(t, withCACN("Expired Root"), withCAValidity(testNow.AddDate(-3, 0, 0), testNow.AddDate(0, -1, 0)))
	underExpiredRoot := newCA(t, withParent(expiredRoot), withCACN("Child Of Expired"), withCAValidity(testNow.AddDate(-1, 0, 0), testNow.AddDate(1, 0, 0)))
	tests := []struct {
		name    string
		ca      *Authority
		want    []error
		wantMsg []string
	}{
		{name: "healthy-root", ca: root},
		{name: "healthy-intermediate", ca: newCA(t, withParent(root))},
		{name: "expired", ca: newCA(t, withCACN("Old CA"), withCAValidity(testNow.AddDate(-2, 0, 0), testNow.Add(-time.Second))),
			want: []error{ErrCAExpired}, wantMsg: []string{`issuing root CA "CN=Old CA,O=Quill Tests" expired at 2026-03-01T11:59:59Z`}},
		{name: "not-yet-valid", ca: newCA(t, withCACN("Future CA"), withCAValidity(testNow.Add(time.Hour), testNow.AddDate(1, 0, 0))),
			want: []error{ErrCANotYetValid}, wantMsg: []string{`"CN=Future CA,O=Quill Tests" is valid from 2026-03-01T13:00:00Z`}},
		{name: "expired-root-above-intermediate", ca: underExpiredRoot,
			want: []error{ErrCAExpired}, wantMsg: []string{`root CA "CN=Expired Root,O=Quill Tests" expired at 2026-02-01T12:00:00Z`}},
		{name: "not-a-ca", ca: newCA(t, withCACN("Leafy"), withNotCA()),
			want: []error{ErrNotCA}, wantMsg: []string{`"CN=Leafy,O=Quill Tests" does not assert basicConstraints cA=TRUE`}},
		{name: "no-cert-sign", ca: newCA(t, withCACN("No Sign"), withCAKeyUsage(x509.KeyUsageDigitalSignature|x509.KeyUsageCRLSign)),
			want: []error{ErrNoCertSign}, wantMsg: []string{"(digital signature, crl sign) lacks keyCertSign"}},
		{name: "no-key-usage-extension", ca: newCA(t, withCAKeyUsage(0)),
			want: []error{ErrNoCertSign}, wantMsg: []string{"no keyUsage extension"}},
		{name: "key-mismatch", ca: &Authority{Certificate: root.Certificate, Root: root.Root, Signer: testKey(t, ECDSAP256, 4)},
			want: []error{kms.ErrKeyMismatch}},
		{name: "several-problems", ca: newCA(t, withNotCA(), withCAValidity(testNow.AddDate(-2, 0, 0), testNow.AddDate(-1, 0, 0))),
			want: []error{ErrNotCA, ErrCAExpired}},
		{name: "empty-authority", ca: &Authority{}, want: []error{ErrMalformedCA}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.ca.Check(testNow)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Check() = %v", err)
				}
				return
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("Check() = %v, want it to wrap %v", err, w)
				}
			}
			if err != nil {
				containsAll(t, err.Error(), tt.wantMsg...)
			}
		})
	}
}

var fingerprintForm = regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`)

func TestSummary(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		alg  KeyAlgorithm
	}{
		{name: "ecdsa-p256", alg: ECDSAP256},
		{name: "ecdsa-p384", alg: ECDSAP384},
		{name: "ecdsa-p521", alg: ECDSAP521},
		{name: "rsa-2048", alg: RSA2048},
		{name: "rsa-3072", alg: RSA3072},
		{name: "ed25519", alg: Ed25519},
		{name: "ml-dsa-44", alg: MLDSA44},
		{name: "ml-dsa-65", alg: MLDSA65},
		{name: "ml-dsa-87", alg: MLDSA87},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca := newCA(t, withCAKeyAlg(tt.alg, 0), withCACN("Summary "+string(tt.alg)))
			s := ca.Summary()
			if s.KeyAlgorithm != tt.alg {
				t.Errorf("KeyAlgorithm = %q, want %q", s.KeyAlgorithm, tt.alg)
			}
			if want := "CN=Summary " + string(tt.alg) + ",O=Quill Tests"; s.Subject != want {
				t.Errorf("Subject = %q, want %q", s.Subject, want)
			}
			if !s.NotAfter.Equal(ca.Certificate.NotAfter) || !s.NotBefore.Equal(ca.Certificate.NotBefore) {
				t.Errorf("validity = %s..%s", s.NotBefore, s.NotAfter)
			}
			sum := sha256.Sum256(ca.Certificate.Raw)
			if !fingerprintForm.MatchString(s.SHA256Fingerprint) ||
				strings.ReplaceAll(s.SHA256Fingerprint, ":", "") != strings.ToUpper(hex.EncodeToString(sum[:])) {
				t.Errorf("SHA256Fingerprint = %q", s.SHA256Fingerprint)
			}
		})
	}
}
