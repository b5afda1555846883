//go:build cgo

package pkcs11kms_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/quill-pki/quill/pkg/kms"
	_ "github.com/quill-pki/quill/pkg/kms/pkcs11kms"
	"github.com/quill-pki/quill/test/softhsm"
)

// tokens are this process's SoftHSM2 tokens, one per test: a login belongs
// to the process and the token, so tests that share a token would see each
// other's PINs.
var tokens = []string{"create", "certificate", "wrong-pin", "mismatch", "missing", "logins", "refusals"}

const (
	userPIN = "4321"
	soPIN   = "123456"
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "quill-pkcs11kms-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ts := make([]softhsm.Token, len(tokens))
	for i, label := range tokens {
		ts[i] = softhsm.Token{Label: label, PIN: userPIN, SOPIN: soPIN}
	}
	// Before anything loads the library: SoftHSM reads its configuration
	// once per process.
	if err := softhsm.Setup(dir, ts...); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	return m.Run()
}

// ref names key label on token, with the right PIN.
func ref(token, label string) *kms.PKCS11URI {
	return &kms.PKCS11URI{Token: token, Object: label, ModulePath: softhsm.Module, PIN: userPIN}
}

func verify(t *testing.T, k kms.Key) {
	t.Helper()
	digest := sha256.Sum256([]byte("quill"))
	var opts crypto.SignerOpts = crypto.SHA256
	msg := digest[:]
	if _, ok := k.Public().(ed25519.PublicKey); ok {
		opts, msg = crypto.Hash(0), []byte("quill")
	}
	sig, err := k.Sign(rand.Reader, msg, opts)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	var ok bool
	switch pub := k.Public().(type) {
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(pub, msg, sig)
	case *rsa.PublicKey:
		ok = rsa.VerifyPKCS1v15(pub, crypto.SHA256, msg, sig) == nil
	case ed25519.PublicKey:
		ok = ed25519.Verify(pub, msg, sig)
	}
	if !ok {
		t.Fatalf("the %T signature does not verify", k.Public())
	}
	if err := k.Probe(context.Background()); err != nil {
		t.Fatalf("Probe: %v", err)
	}
}

func selfSigned(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kms test CA"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestCreateKey: keys of every algorithm the backend offers are created on
// the token, sign, and open again by label with the same public key.
func TestCreateKey(t *testing.T) {
	ctx := context.Background()
	for _, alg := range []string{"ECDSA-P256", "ECDSA-P384", "RSA-2048", "Ed25519"} {
		t.Run(alg, func(t *testing.T) {
			r := ref("create", "key-"+alg)
			k, err := kms.Default.CreateKey(ctx, r, alg, kms.Options{FewSignatures: true})
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			verify(t, k)
			again, err := kms.Default.Open(ctx, r, kms.Options{Expected: k.Public()})
			if err != nil {
				t.Fatal(err)
			}
			defer again.Close()
			verify(t, again)
			if _, err := kms.Default.CreateKey(ctx, r, alg, kms.Options{}); !errors.Is(err, kms.ErrInvalidRef) || errors.Is(err, kms.ErrUnavailable) {
				t.Errorf("creating a second key under the same label: %v, want ErrInvalidRef only", err)
			}
		})
	}
}

// TestCertificate: a certificate stored beside its key is read back, and a
// second one under the same label is refused.
func TestCertificate(t *testing.T) {
	ctx := context.Background()
	r := ref("certificate", "ca-key")
	r.ID = []byte{0xca}
	k, err := kms.Default.CreateKey(ctx, r, "ECDSA-P256", kms.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	der := selfSigned(t, k)
	if err := kms.Default.StoreCertificate(ctx, r, "ca", der, kms.Options{}); err != nil {
		t.Fatal(err)
	}
	got, err := kms.Default.LoadCertificate(ctx, r, "ca", kms.Options{})
	if err != nil || string(got) != string(der) {
		t.Fatalf("LoadCertificate: %v (same DER: %t)", err, string(got) == string(der))
	}
	if err := kms.Default.StoreCertificate(ctx, r, "ca", der, kms.Options{}); !errors.Is(err, kms.ErrInvalidRef) {
		t.Errorf("storing a second certificate labelled ca: %v, want ErrInvalidRef", err)
	}
	if _, err := kms.Default.LoadCertificate(ctx, r, "absent", kms.Options{}); !errors.Is(err, kms.ErrUnavailable) {
		t.Errorf("loading a missing certificate: %v, want ErrUnavailable", err)
	}
}

// TestWrongPIN: a refused PIN is ErrPINRefused, reported to OnLogin, and
// never shown in the message.
func TestWrongPIN(t *testing.T) {
	ctx := context.Background()
	r := ref("wrong-pin", "k")
	r.PIN = "9999-wrong"
	var results []kms.LoginResult
	_, err := kms.Default.Open(ctx, r, kms.Options{OnLogin: func(res kms.LoginResult) { results = append(results, res) }})
	if !errors.Is(err, kms.ErrPINRefused) {
		t.Fatalf("Open with a wrong PIN: %v, want ErrPINRefused", err)
	}
	if len(results) != 1 || results[0] != kms.LoginPINRefused {
		t.Errorf("logins reported %q, want one %q", results, kms.LoginPINRefused)
	}
	for _, s := range []string{err.Error(), fmt.Sprintf("%v %#v", r, r)} {
		if strings.Contains(s, "9999-wrong") {
			t.Errorf("the PIN shows in %q", s)
		}
	}
}

// TestMismatchAndMissing: a key that is not the expected one, or is not on
// the token, or a token that does not exist, are told apart.
func TestMismatchAndMissing(t *testing.T) {
	ctx := context.Background()
	k, err := kms.Default.CreateKey(ctx, ref("mismatch", "a"), "ECDSA-P256", kms.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	b, err := kms.Default.CreateKey(ctx, ref("mismatch", "b"), "ECDSA-P256", kms.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tests := []struct {
		name string
		ref  *kms.PKCS11URI
		opts kms.Options
		want error
	}{
		{name: "other-key", ref: ref("mismatch", "a"), opts: kms.Options{Expected: b.Public()}, want: kms.ErrKeyMismatch},
		{name: "missing-key", ref: ref("missing", "absent"), want: kms.ErrUnavailable},
		{name: "missing-token", ref: ref("no-such-token", "k"), want: kms.ErrUnavailable},
		{name: "module-not-allowed", ref: ref("mismatch", "a"), opts: kms.Options{Modules: map[string]string{"other": "/opt/lib.so"}}, want: kms.ErrNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := kms.Default.Open(ctx, tt.ref, tt.opts)
			if !errors.Is(err, tt.want) {
				if key != nil {
					key.Close()
				}
				t.Fatalf("Open: %v, want %v", err, tt.want)
			}
		})
	}
}

// TestLogins: OnLogin hears of the login Open makes, and a PIN read from a
// pin-source file works as pin-value does.
func TestLogins(t *testing.T) {
	ctx := context.Background()
	pinFile := t.TempDir() + "/pin"
	if err := os.WriteFile(pinFile, []byte(userPIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := ref("logins", "k")
	k, err := kms.Default.CreateKey(ctx, r, "ECDSA-P256", kms.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
	r.PIN, r.PINSource = "", "file:"+pinFile
	var results []kms.LoginResult
	k, err = kms.Default.Open(ctx, r, kms.Options{OnLogin: func(res kms.LoginResult) { results = append(results, res) }})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	verify(t, k)
	if len(results) == 0 || results[0] != kms.LoginOK {
		t.Errorf("logins reported %q, want %q first", results, kms.LoginOK)
	}
}

// TestWrongPINOneLoginPerOpen: every Open with a wrong PIN is exactly one
// C_Login, reported to OnLogin, and the backend never retries it by
// itself; so OnLogin counts what the token counts, and whoever remembers
// refusals (pkg/castore) decides alone how often a PIN reaches the token.
func TestWrongPINOneLoginPerOpen(t *testing.T) {
	ctx := context.Background()
	k, err := kms.Default.CreateKey(ctx, ref("refusals", "k"), "ECDSA-P256", kms.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
	r := ref("refusals", "k")
	r.PIN = "0000"
	var refused, other int
	opts := kms.Options{OnLogin: func(res kms.LoginResult) {
		if res == kms.LoginPINRefused {
			refused++
		} else {
			other++
		}
	}}
	for i := 1; i <= 3; i++ {
		if _, err := kms.Default.Open(ctx, r, opts); !errors.Is(err, kms.ErrPINRefused) {
			t.Fatalf("Open %d with a wrong PIN: %v, want ErrPINRefused", i, err)
		}
		if refused != i || other != 0 {
			t.Fatalf("after %d Opens with a wrong PIN: %d refused logins and %d others reported, want %d and 0", i, refused, other, i)
		}
	}
}
