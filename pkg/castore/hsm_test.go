package castore_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/kms"
	"github.com/quill-pki/quill/pkg/kms/pkcs11kms"
	"github.com/quill-pki/quill/pkg/kms/softkey"
)

// fakeHSM is a PKCS#11 backend whose Open the test decides; Check is the
// real backend's, so the controller's allow-list is applied as in
// production, without loading a library.
type fakeHSM struct {
	pkcs11kms.Backend
	open func(ref kms.Ref, opts kms.Options) (kms.Key, error)
}

func (f fakeHSM) Open(_ context.Context, ref kms.Ref, opts kms.Options) (kms.Key, error) {
	return f.open(ref, opts)
}

// withHSM makes f's store open PKCS#11 keys with open.
func withHSM(f *storeFixture, open func(ref kms.Ref, opts kms.Options) (kms.Key, error)) {
	f.store.Keys = &kms.Registry{}
	f.store.Keys.Register(kms.SchemePKCS11, fakeHSM{open: open})
	f.store.Keys.Register(kms.SchemeSecret, softkey.Backend{})
}

// TestHSMRefusedPINPresentedOnce: reconcilers that load an HSM-backed CA at
// the same moment, and the intermediate CSR path, present a PIN the token
// refuses once between them, and again only after the PIN Secret changes.
func TestHSMRefusedPINPresentedOnce(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	pin := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "hsm-pin"}, Data: map[string][]byte{"pin": []byte("0000")}}
	f := newStore(t, withObjects(newSecret("hsm-ca", withCA(ca)), pin))
	var opens atomic.Int32
	f.store.PKCS11Modules = map[string]string{"hsm": "/opt/vendor/libhsm.so"}
	withHSM(f, func(kms.Ref, kms.Options) (kms.Key, error) {
		opens.Add(1)
		// A login takes a while; the other callers arrive meanwhile.
		time.Sleep(20 * time.Millisecond)
		return nil, kms.Mark(errors.New("C_Login: CKR_PIN_INCORRECT"), kms.ErrPINRefused)
	})
	p := &quillv1.PKCS11CA{
		Module: "hsm", TokenLabel: "Root CA", KeyLabel: "ca-key",
		PINSecretRef:         quillv1.SecretKeySelector{Name: "hsm-pin"},
		CertificateSecretRef: &quillv1.SecretReference{Name: "hsm-ca"},
	}
	src := quillv1.CASource{PKCS11: p}
	ctx := context.Background()

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := f.store.Load(ctx, testNamespace, src)
			checkErr(t, err, wantErr{reason: quillv1.ReasonPINIncorrect})
		})
	}
	wg.Go(func() {
		_, err := f.store.OpenHSMKey(ctx, testNamespace, p)
		checkErr(t, err, wantErr{reason: quillv1.ReasonPINIncorrect})
	})
	wg.Wait()
	if n := opens.Load(); n != 1 {
		t.Fatalf("the refused PIN was presented %d times by 9 concurrent callers, want once", n)
	}

	// A new PIN is tried, once.
	var s corev1.Secret
	if err := f.api.Get(ctx, types.NamespacedName{Namespace: testNamespace, Name: "hsm-pin"}, &s); err != nil {
		t.Fatal(err)
	}
	s.Data["pin"] = []byte("1111")
	if err := f.api.Update(ctx, &s); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := f.store.OpenHSMKey(ctx, testNamespace, p); !errors.As(err, new(*castore.Error)) {
			t.Fatalf("OpenHSMKey: %v, want a classified PINIncorrect", err)
		}
	}
	if _, err := f.store.Load(ctx, testNamespace, src); err == nil {
		t.Fatal("Load after a refused PIN succeeded")
	}
	if n := opens.Load(); n != 2 {
		t.Fatalf("%d PIN presentations after the PIN Secret changed once, want 2", n)
	}
}

// TestHSMOpenErrorsAreClassified: whatever opening an HSM key fails with,
// Load and OpenHSMKey return a classified error, never nothing (a nil
// authority with no error would crash the signer).
func TestHSMOpenErrorsAreClassified(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	pin := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "hsm-pin"}, Data: map[string][]byte{"pin": []byte("1234")}}
	tests := []struct {
		name   string
		err    error
		reason string
	}{
		{"invalid-ref", fmt.Errorf("open: %w", kms.ErrInvalidRef), quillv1.ReasonInvalidConfig},
		{"unavailable", fmt.Errorf("open: %w", kms.ErrUnavailable), quillv1.ReasonHSMUnavailable},
		{"key-mismatch", fmt.Errorf("open: %w", kms.ErrKeyMismatch), quillv1.ReasonKeyMismatch},
		{"not-allowed", fmt.Errorf("open: %w", kms.ErrNotAllowed), quillv1.ReasonModuleNotAllowed},
		{"pin-refused", fmt.Errorf("open: %w", kms.ErrPINRefused), quillv1.ReasonPINIncorrect},
		{"unsupported", fmt.Errorf("open: %w", kms.ErrUnsupported), quillv1.ReasonHSMUnavailable},
		{"unknown", errors.New("C_GetSlotList: CKR_GENERAL_ERROR"), quillv1.ReasonHSMUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newStore(t, withObjects(newSecret("hsm-ca", withCA(ca)), pin))
			f.store.PKCS11Modules = map[string]string{"hsm": "/opt/vendor/libhsm.so"}
			withHSM(f, func(kms.Ref, kms.Options) (kms.Key, error) { return nil, tt.err })
			p := &quillv1.PKCS11CA{
				Module: "hsm", TokenLabel: "Root CA", KeyLabel: "ca-key",
				PINSecretRef:         quillv1.SecretKeySelector{Name: "hsm-pin"},
				CertificateSecretRef: &quillv1.SecretReference{Name: "hsm-ca"},
			}
			a, err := f.store.Load(context.Background(), testNamespace, quillv1.CASource{PKCS11: p})
			if a != nil {
				t.Fatal("Load returned an authority")
			}
			checkErr(t, err, wantErr{reason: tt.reason})
			key, err := f.store.OpenHSMKey(context.Background(), testNamespace, p)
			if key != nil {
				t.Fatal("OpenHSMKey returned a key")
			}
			checkErr(t, err, wantErr{reason: tt.reason})
		})
	}
}

// signerOf parses the PKCS#8 key of a test CA.
func signerOf(t testing.TB, ca testCA) crypto.Signer {
	t.Helper()
	block, _ := pem.Decode(ca.keyPEM)
	if block == nil {
		t.Fatal("no PEM key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer)
}

// memKey is a kms.Key in memory that counts its probes and closes.
type memKey struct {
	crypto.Signer
	probes, closes *atomic.Int32
	probeErr       error
}

func (k memKey) Probe(context.Context) error { k.probes.Add(1); return k.probeErr }
func (k memKey) Close() error                { k.closes.Add(1); return nil }

// TestHSMLoad: an HSM key is opened with the PIN from its Secret, the
// controller's allow-list, the certificate's public key as the expected
// key and a login observer; Ensure proves it signs; a key that is not the
// certificate's is refused.
func TestHSMLoad(t *testing.T) {
	t.Parallel()
	ca, other := newCA(t), newCA(t, withCACommonName("Other"))
	pin := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "hsm-pin"}, Data: map[string][]byte{"code": []byte("1234\n")}}
	tests := []struct {
		name     string
		key      crypto.Signer
		probeErr error
		want     wantErr
		wantLoad bool
	}{
		{name: "matching-key", key: signerOf(t, ca), wantLoad: true},
		{name: "other-key", key: signerOf(t, other), want: wantErr{reason: quillv1.ReasonKeyMismatch}},
		{name: "probe-fails", key: signerOf(t, ca), probeErr: kms.Mark(errors.New("CKR_DEVICE_REMOVED"), kms.ErrUnavailable),
			want: wantErr{reason: quillv1.ReasonHSMUnavailable}, wantLoad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newStore(t, withObjects(newSecret("hsm-ca", withCA(ca)), pin))
			f.store.PKCS11Modules = map[string]string{"hsm": "/opt/vendor/libhsm.so"}
			var logins []string
			f.store.PKCS11Login = func(module, token string, r kms.LoginResult) {
				logins = append(logins, module+"/"+token+"/"+string(r))
			}
			var probes, closes atomic.Int32
			var got *kms.PKCS11URI
			withHSM(f, func(ref kms.Ref, opts kms.Options) (kms.Key, error) {
				got = ref.(*kms.PKCS11URI)
				if !ca.cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(opts.Expected) {
					t.Error("the key is not opened with the certificate's public key as the expected key")
				}
				if opts.Modules["hsm"] != "/opt/vendor/libhsm.so" {
					t.Errorf("options carry allow-list %v", opts.Modules)
				}
				opts.OnLogin(kms.LoginOK)
				return memKey{Signer: tt.key, probes: &probes, closes: &closes, probeErr: tt.probeErr}, nil
			})
			p := &quillv1.PKCS11CA{
				Module: "hsm", TokenSerial: "0a1b", KeyID: "ca01",
				PINSecretRef:         quillv1.SecretKeySelector{Name: "hsm-pin", Key: "code"},
				CertificateSecretRef: &quillv1.SecretReference{Name: "hsm-ca"},
			}
			a, err := f.store.Ensure(context.Background(), testNamespace, quillv1.CASource{PKCS11: p}, "QuillIssuer/team-a/hsm")
			checkErr(t, err, tt.want)
			if (a != nil) != tt.wantLoad {
				t.Fatalf("authority %v, want one: %t", a, tt.wantLoad)
			}
			want := &kms.PKCS11URI{Serial: "0a1b", ID: []byte{0xca, 0x01}, ModuleName: "hsm", PIN: "1234"}
			if got == nil || got.String() != want.String() || got.PIN != want.PIN {
				t.Errorf("opened %v, want %v with its PIN", got, want)
			}
			if want := []string{"hsm/0a1b/ok"}; !slices.Equal(logins, want) {
				t.Errorf("logins reported %q, want %q", logins, want)
			}
			if tt.wantLoad && probes.Load() != 1 {
				t.Errorf("Ensure probed the key %d times, want once", probes.Load())
			}
			if !tt.wantLoad && closes.Load() != 1 {
				t.Errorf("a refused key was closed %d times, want once", closes.Load())
			}
		})
	}
}

// TestHSMModuleNotAllowed: a module outside the allow-list is reported as
// such before the PIN Secret is read (here it does not even exist), and
// nothing is opened.
func TestHSMModuleNotAllowed(t *testing.T) {
	t.Parallel()
	f := newStore(t)
	f.store.PKCS11Modules = map[string]string{"hsm": "/opt/vendor/libhsm.so"}
	withHSM(f, func(kms.Ref, kms.Options) (kms.Key, error) {
		t.Error("a key of a module outside the allow-list was opened")
		return nil, kms.ErrNotAllowed
	})
	p := &quillv1.PKCS11CA{
		Module: "other", TokenLabel: "Root CA", KeyLabel: "ca-key",
		PINSecretRef:     quillv1.SecretKeySelector{Name: "absent"},
		CertificateLabel: "ca",
	}
	_, err := f.store.Load(context.Background(), testNamespace, quillv1.CASource{PKCS11: p})
	checkErr(t, err, wantErr{reason: quillv1.ReasonModuleNotAllowed})
	_, err = f.store.OpenHSMKey(context.Background(), testNamespace, p)
	checkErr(t, err, wantErr{reason: quillv1.ReasonModuleNotAllowed})
}

// TestHSMBadKeyID: a keyID that is not hex (the schema refuses it; an
// object written past the schema may not) is InvalidConfig, and the
// Secrets the issuer names are still watched.
func TestHSMBadKeyID(t *testing.T) {
	t.Parallel()
	f := newStore(t)
	withHSM(f, func(kms.Ref, kms.Options) (kms.Key, error) {
		t.Error("a key with an invalid keyID was opened")
		return nil, kms.ErrInvalidRef
	})
	p := &quillv1.PKCS11CA{
		Module: "hsm", TokenLabel: "Root CA", KeyID: "not-hex",
		PINSecretRef:     quillv1.SecretKeySelector{Name: "pin"},
		CertificateLabel: "ca",
	}
	src := quillv1.CASource{PKCS11: p}
	_, err := f.store.Load(context.Background(), testNamespace, src)
	checkErr(t, err, wantErr{reason: quillv1.ReasonInvalidConfig, contains: []string{"keyID"}})
	if got := castore.SecretNames(src); !slices.Equal(got, []string{"pin"}) {
		t.Errorf("SecretNames = %q, want the PIN Secret", got)
	}
}
