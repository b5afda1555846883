package castore_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/kms"
	"github.com/quill-pki/quill/pkg/kms/softkey"
)

// refusingHSM is a token that refuses every PIN but good and counts the
// PINs presented to it (every Open is one C_Login), whatever key or issuer
// asks.
type refusingHSM struct {
	good     string
	logins   atomic.Int32
	accepted atomic.Int32
}

func (h *refusingHSM) open(ref kms.Ref, opts kms.Options) (kms.Key, error) {
	h.logins.Add(1)
	report := func(kms.LoginResult) {}
	if opts.OnLogin != nil {
		report = opts.OnLogin
	}
	if ref.(*kms.PKCS11URI).PIN != h.good {
		report(kms.LoginPINRefused)
		return nil, kms.Mark(errors.New("C_Login: CKR_PIN_INCORRECT"), kms.ErrPINRefused)
	}
	report(kms.LoginOK)
	h.accepted.Add(1)
	// The right PIN opens a key that is not the certificate's: enough
	// for the count, and Load then fails with KeyMismatch.
	return nil, kms.Mark(errors.New("another key"), kms.ErrKeyMismatch)
}

// hsmIssuerOn is QuillIssuer name in testNamespace with key keyLabel on
// token "Root CA", certificate Secret cert and PIN Secret hsm-pin.
func hsmIssuerOn(name, keyLabel, cert string) *quillv1.QuillIssuer {
	return &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{PKCS11: &quillv1.PKCS11CA{
			Module: "hsm", TokenLabel: "Root CA", KeyLabel: keyLabel,
			PINSecretRef:         quillv1.SecretKeySelector{Name: "hsm-pin"},
			CertificateSecretRef: &quillv1.SecretReference{Name: cert},
		}}},
	}
}

// refusalFixture is a fake API server holding two HSM issuers on one token
// with one PIN Secret (a wrong PIN) and different keys, and a token that
// counts PIN presentations.
type refusalFixture struct {
	t    *testing.T
	api  client.WithWatch
	hsm  *refusingHSM
	a, b *quillv1.QuillIssuer
	keys *kms.Registry
}

func newRefusalFixture(t *testing.T) *refusalFixture {
	t.Helper()
	ca := newCA(t)
	pin := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "hsm-pin", UID: "pin-uid"}, Data: map[string][]byte{"pin": []byte("0000")}}
	a, b := hsmIssuerOn("a", "key-a", "ca-a"), hsmIssuerOn("b", "key-b", "ca-b")
	// The issuers' status is a subresource, as on a real API server.
	api := fake.NewClientBuilder().WithScheme(testScheme(t)).
		WithStatusSubresource(&quillv1.QuillIssuer{}, &quillv1.QuillClusterIssuer{}).
		WithObjects(newSecret("ca-a", withCA(ca)), newSecret("ca-b", withCA(ca)), pin, a, b).Build()
	h := &refusingHSM{good: "1234"}
	keys := &kms.Registry{}
	keys.Register(kms.SchemePKCS11, fakeHSM{open: h.open})
	keys.Register(kms.SchemeSecret, softkey.Backend{})
	return &refusalFixture{t: t, api: api, hsm: h, a: a, b: b, keys: keys}
}

// store is a Store as a controller process starts it: empty memory, the
// refusals kept in the issuers' status.
func (f *refusalFixture) store() *castore.Store {
	return &castore.Store{
		Reader: f.api, Metadata: f.api, Writer: f.api, Keys: f.keys,
		PKCS11Modules: map[string]string{"hsm": "/opt/vendor/libhsm.so"},
		Refusals:      &castore.RefusalLog{Client: f.api},
	}
}

// load loads iss's CA and requires reason.
func (f *refusalFixture) load(s *castore.Store, iss *quillv1.QuillIssuer, reason string) {
	f.t.Helper()
	_, err := s.Load(context.Background(), testNamespace, iss.Spec.CA)
	checkErr(f.t, err, wantErr{reason: reason})
	noPIN(f.t, err)
	key, err := s.OpenHSMKey(context.Background(), testNamespace, iss.Spec.CA.PKCS11)
	if key != nil {
		f.t.Fatal("OpenHSMKey returned a key")
	}
	checkErr(f.t, err, wantErr{reason: reason})
	noPIN(f.t, err)
}

// noPIN fails when err shows one of the test's PINs.
func noPIN(t *testing.T, err error) {
	t.Helper()
	for _, pin := range []string{"0000", "1111", "1234"} {
		if err != nil && strings.Contains(err.Error(), pin) {
			t.Fatalf("the PIN %s shows in %q", pin, err)
		}
	}
}

// logins requires the token to have seen want PINs.
func (f *refusalFixture) logins(want int32, after string) {
	f.t.Helper()
	if n := f.hsm.logins.Load(); n != want {
		f.t.Fatalf("%d PINs presented to the token %s, want %d", n, after, want)
	}
}

// edit changes Secret name with change.
func (f *refusalFixture) edit(name string, change func(*corev1.Secret)) {
	f.t.Helper()
	var s corev1.Secret
	if err := f.api.Get(context.Background(), types.NamespacedName{Namespace: testNamespace, Name: name}, &s); err != nil {
		f.t.Fatal(err)
	}
	change(&s)
	if err := f.api.Update(context.Background(), &s); err != nil {
		f.t.Fatal(err)
	}
}

func label(s *corev1.Secret) {
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	s.Labels["edited"] += "x"
}

// TestPINRefusalIsTheTokens: a refused PIN is refused for the token, not
// for the issuer or key that presented it. Another issuer with another key
// on the same token and PIN Secret, an edit of only a certificate Secret's
// metadata, an edit of only the PIN Secret's metadata and a controller
// restart (a new Store) present nothing; a new PIN is presented once.
func TestPINRefusalIsTheTokens(t *testing.T) {
	t.Parallel()
	f := newRefusalFixture(t)
	s := f.store()
	f.load(s, f.a, quillv1.ReasonPINIncorrect)
	f.logins(1, "by the first issuer")
	f.load(s, f.b, quillv1.ReasonPINIncorrect)
	f.logins(1, "after another issuer with another key on the same token and PIN Secret loaded")

	f.edit("ca-a", label)
	f.load(s, f.a, quillv1.ReasonPINIncorrect)
	f.logins(1, "after an edit of the certificate Secret's metadata")

	for _, iss := range []*quillv1.QuillIssuer{f.a, f.b} {
		var got quillv1.QuillIssuer
		if err := f.api.Get(context.Background(), client.ObjectKeyFromObject(iss), &got); err != nil {
			t.Fatal(err)
		}
		r := got.Status.PINRefusal
		if r == nil || r.Token != "pkcs11:token=Root%20CA?module-name=hsm" || r.PINSecretName != "hsm-pin" || r.PINSecretKey != "pin" || r.PINSecretUID != "pin-uid" || r.PINSecretResourceVersion == "" {
			t.Fatalf("issuer %s status.pinRefusal = %+v, want the token and the PIN Secret's version", iss.Name, r)
		}
	}

	restarted := f.store()
	f.load(restarted, f.b, quillv1.ReasonPINIncorrect)
	f.load(restarted, f.a, quillv1.ReasonPINIncorrect)
	f.logins(1, "after a controller restart")

	f.edit("hsm-pin", label)
	f.load(restarted, f.a, quillv1.ReasonPINIncorrect)
	f.load(restarted, f.b, quillv1.ReasonPINIncorrect)
	f.logins(1, "after an edit of only the PIN Secret's metadata")
	f.load(f.store(), f.a, quillv1.ReasonPINIncorrect)
	f.logins(1, "after an edit of only the PIN Secret's metadata and a restart")

	f.edit("hsm-pin", func(s *corev1.Secret) { s.Data["pin"] = []byte("1111") })
	f.load(restarted, f.a, quillv1.ReasonPINIncorrect)
	f.load(restarted, f.b, quillv1.ReasonPINIncorrect)
	f.load(f.store(), f.b, quillv1.ReasonPINIncorrect)
	f.logins(2, "after the PIN Secret got another wrong PIN")

	f.edit("hsm-pin", func(s *corev1.Secret) { s.Data["pin"] = []byte("1234\n") })
	_, err := restarted.Load(context.Background(), testNamespace, f.a.Spec.CA)
	checkErr(t, err, wantErr{reason: quillv1.ReasonKeyMismatch})
	f.logins(3, "after the PIN Secret got the right PIN")
	if f.hsm.accepted.Load() == 0 {
		t.Fatal("the right PIN was never presented")
	}
	var got quillv1.QuillIssuer
	if err := f.api.Get(context.Background(), client.ObjectKeyFromObject(f.b), &got); err != nil {
		t.Fatal(err)
	}
	if got.Status.PINRefusal != nil {
		t.Errorf("status.pinRefusal = %+v after the token accepted the PIN, want it cleared", got.Status.PINRefusal)
	}
}

// TestPINRefusalStatusHoldsNoPIN: nothing in the recorded refusal is the
// PIN or derived from it, only the Secret's identity.
func TestPINRefusalStatusHoldsNoPIN(t *testing.T) {
	t.Parallel()
	f := newRefusalFixture(t)
	f.load(f.store(), f.a, quillv1.ReasonPINIncorrect)
	var got quillv1.QuillIssuer
	if err := f.api.Get(context.Background(), client.ObjectKeyFromObject(f.a), &got); err != nil {
		t.Fatal(err)
	}
	r := got.Status.PINRefusal
	if r == nil {
		t.Fatal("no refusal recorded")
	}
	var pin corev1.Secret
	if err := f.api.Get(context.Background(), types.NamespacedName{Namespace: testNamespace, Name: "hsm-pin"}, &pin); err != nil {
		t.Fatal(err)
	}
	want := quillv1.PINRefusal{
		Token: r.Token, PINSecretName: "hsm-pin", PINSecretKey: "pin",
		PINSecretUID: string(pin.UID), PINSecretResourceVersion: pin.ResourceVersion, RefusedAt: r.RefusedAt,
	}
	if *r != want {
		t.Errorf("status.pinRefusal = %+v, want only the token and the Secret's identity %+v", r, want)
	}
}
