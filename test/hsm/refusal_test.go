package hsm

import (
	"context"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/test/harness"
)

// settle is how long the test lets the controller react to a change that
// must not make it present a PIN; long enough for the watch, the issuer
// check and a retry.
const settle = 3 * time.Second

// TestPKCS11RefusedPINIsTheTokens runs the controller against a SoftHSM2
// token that refused a PIN, and counts every PIN the controller presents to
// it (quill_pkcs11_logins_total, from each C_Login's answer). Two issuers
// with different keys on that token and the same PIN Secret present it
// once between them; an edit of a certificate Secret's metadata presents
// nothing; a new controller process presents nothing, even for an issuer
// created after it started; a new PIN in the Secret is presented once for
// all of them; the right PIN makes them Ready and clears the record.
func TestPKCS11RefusedPINIsTheTokens(t *testing.T) {
	h := newHSM(t, "shared")
	ns := h.namespace()
	h.hsmCA(ns, "shared", "ECDSA-P256")
	// A second key on the same token, with its own certificate.
	uri := keyURI("shared", "ca-key-2")
	h.quillctl("hsm", "keygen", "--key", uri, "--key-algorithm", "ECDSA-P256")
	h.quillctl("ca", "init", "--key", uri, "--subject", "CN=HSM second root,O=Quill e2e", "--validity", "8760h", "--out-cert", "ca2.crt")
	cert2, err := os.ReadFile(h.file("ca2.crt"))
	if err != nil {
		t.Fatal(err)
	}
	env.Create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hsm-ca-2"}, Data: map[string][]byte{"tls.crt": cert2, "ca.crt": cert2}})
	editSecret(t, ns, "hsm-pin", func(s *corev1.Secret) { s.Data["pin"] = []byte("0000") })

	stop := h.startController()
	a, b := hsmIssuer(ns, "shared"), hsmIssuer(ns, "shared")
	b.Name = "hsm-2"
	b.Spec.CA.PKCS11.KeyLabel = "ca-key-2"
	b.Spec.CA.PKCS11.CertificateSecretRef.Name = "hsm-ca-2"
	env.Create(t, a)
	env.Create(t, b)
	caCondition(t, a, quillv1.ReasonPINIncorrect)
	caCondition(t, b, quillv1.ReasonPINIncorrect)
	time.Sleep(settle)
	if n := h.logins("shared", ""); n != 1 {
		t.Fatalf("%v PINs presented to the token by two issuers on it with one PIN Secret, want 1", n)
	}
	for _, iss := range []*quillv1.QuillIssuer{a, b} {
		waitPINRefusal(t, iss, true)
	}

	editSecret(t, ns, "hsm-ca", func(s *corev1.Secret) { s.Labels = map[string]string{"e2e.quill.dev/edited": "yes"} })
	time.Sleep(settle)
	if n := h.logins("shared", ""); n != 1 {
		t.Fatalf("%v PINs presented after an edit of the certificate Secret's metadata, want still 1", n)
	}

	// A new controller process, as after a restart or a leader change.
	stop()
	h.startController()
	c := hsmIssuer(ns, "shared")
	c.Name = "hsm-3"
	env.Create(t, c)
	caCondition(t, c, quillv1.ReasonPINIncorrect)
	time.Sleep(settle)
	if n := h.logins("shared", ""); n != 0 {
		t.Fatalf("the restarted controller presented %v PINs the token had refused, want 0", n)
	}

	// Another wrong PIN: presented once, for all three issuers.
	editSecret(t, ns, "hsm-pin", func(s *corev1.Secret) { s.Data["pin"] = []byte("1111") })
	harness.Eventually(t, "the new PIN presented", harness.WaitTimeout, func() (bool, error) {
		return h.logins("shared", "pin_incorrect") >= 1, nil
	})
	time.Sleep(settle)
	if n := h.logins("shared", ""); n != 1 {
		t.Fatalf("%v PINs presented after the PIN Secret got a new wrong PIN, want 1", n)
	}

	editSecret(t, ns, "hsm-pin", func(s *corev1.Secret) { s.Data["pin"] = []byte(hsmPIN) })
	for _, iss := range []*quillv1.QuillIssuer{a, b, c} {
		env.WaitIssuerReady(t, iss)
		waitPINRefusal(t, iss, false)
	}
}

// editSecret applies change to Secret ns/name.
func editSecret(t *testing.T, ns, name string, change func(*corev1.Secret)) {
	t.Helper()
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var s corev1.Secret
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
			return err
		}
		change(&s)
		return env.Client.Update(context.Background(), &s)
	}); err != nil {
		t.Fatal(err)
	}
}

// waitPINRefusal waits until iss's status.pinRefusal is recorded (or
// cleared), naming the PIN Secret and never the PIN.
func waitPINRefusal(t *testing.T, iss *quillv1.QuillIssuer, recorded bool) {
	t.Helper()
	harness.Eventually(t, "status.pinRefusal of "+iss.Name, harness.WaitTimeout, func() (bool, error) {
		var got quillv1.QuillIssuer
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(iss), &got); err != nil {
			return false, err
		}
		r := got.Status.PINRefusal
		if !recorded {
			return r == nil, nil
		}
		return r != nil && r.PINSecretName == "hsm-pin" && r.PINSecretUID != "" && r.PINSecretResourceVersion != "", nil
	})
}
