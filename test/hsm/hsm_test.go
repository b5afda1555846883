package hsm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/test/harness"
	"github.com/quill-pki/quill/test/softhsm"
)

// hsmCA generates a CA key labelled ca-key on token and a self-signed CA
// certificate for it with quillctl, and stores the certificate and the PIN
// as Secrets hsm-ca and hsm-pin in ns.
func (h *hsm) hsmCA(ns, token, alg string) {
	h.t.Helper()
	uri := keyURI(token, "ca-key")
	h.quillctl("hsm", "keygen", "--key", uri, "--key-algorithm", alg)
	h.quillctl("ca", "init", "--key", uri, "--subject", "CN=HSM "+alg+" root,O=Quill e2e", "--validity", "8760h", "--out-cert", "ca.crt")
	certPEM, err := os.ReadFile(h.file("ca.crt"))
	if err != nil {
		h.t.Fatal(err)
	}
	env.Create(h.t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hsm-ca"}, Data: map[string][]byte{"tls.crt": certPEM, "ca.crt": certPEM}})
	pinSecret(h.t, ns, hsmPIN+"\n")
}

// pinSecret stores pin as key "pin" of Secret hsm-pin in ns.
func pinSecret(t *testing.T, ns, pin string) {
	t.Helper()
	env.Create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hsm-pin"}, Data: map[string][]byte{"pin": []byte(pin)}})
}

// hsmIssuer is a QuillIssuer hsm in ns signing with ca-key on token, its
// certificate in Secret hsm-ca and its PIN in Secret hsm-pin.
func hsmIssuer(ns, token string) *quillv1.QuillIssuer {
	return &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hsm"},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{PKCS11: &quillv1.PKCS11CA{
			Module: "softhsm", TokenLabel: token, KeyLabel: "ca-key",
			PINSecretRef:         quillv1.SecretKeySelector{Name: "hsm-pin"},
			CertificateSecretRef: &quillv1.SecretReference{Name: "hsm-ca"},
		}}},
	}
}

// issuerRef refers a Certificate to QuillIssuer name.
func issuerRef(name string) cmmeta.IssuerReference {
	return cmmeta.IssuerReference{Group: "quill.dev", Kind: quillv1.IssuerKind, Name: name}
}

// caCondition waits until the issuer's CAValid condition has reason, and
// returns it.
func caCondition(t *testing.T, iss *quillv1.QuillIssuer, reason string) *metav1.Condition {
	t.Helper()
	var c *metav1.Condition
	harness.Eventually(t, "issuer "+iss.Name+" CAValid reason "+reason, harness.WaitTimeout, func() (bool, error) {
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(iss), iss); err != nil {
			return false, err
		}
		c = meta.FindStatusCondition(iss.Status.Conditions, quillv1.ConditionCAValid)
		if c == nil {
			return false, nil
		}
		return c.Reason == reason, fmt.Errorf("CAValid=%s (%s: %s)", c.Status, c.Reason, c.Message)
	})
	return c
}

// TestPKCS11Issuance issues Certificates through QuillIssuers whose CA keys
// live in SoftHSM2, and verifies the chains with Go and OpenSSL.
func TestPKCS11Issuance(t *testing.T) {
	tests := []struct {
		name, alg string
		sig       x509.SignatureAlgorithm
	}{
		{name: "ecdsa-p256", alg: "ECDSA-P256", sig: x509.ECDSAWithSHA256},
		{name: "rsa-2048", alg: "RSA-2048", sig: x509.SHA256WithRSA},
		{name: "ed25519", alg: "Ed25519", sig: x509.PureEd25519},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHSM(t, "issuing")
			ns := h.namespace()
			h.hsmCA(ns, "issuing", tc.alg)
			h.startController()
			iss := hsmIssuer(ns, "issuing")
			env.Create(t, iss)
			env.WaitIssuerReady(t, iss)
			env.Create(t, harness.Certificate(ns, "leaf", issuerRef("hsm"), func(c *cmapi.Certificate) {
				c.Spec.Usages = []cmapi.KeyUsage{cmapi.UsageServerAuth, cmapi.UsageDigitalSignature}
			}))
			leaf := harness.VerifyChain(t, env.WaitCertificateReady(t, ns, "leaf"), x509.ExtKeyUsageServerAuth)
			if leaf.SignatureAlgorithm != tc.sig {
				t.Errorf("signed with %s, want %s", leaf.SignatureAlgorithm, tc.sig)
			}
			if n := h.logins("issuing", "ok"); n < 1 {
				t.Errorf("quill_pkcs11_logins_total{result=\"ok\"} is %v after signing with the token", n)
			}
		})
	}
}

// TestPKCS11WrongPIN checks that a refused PIN turns the issuer not Ready
// with reason PINIncorrect, that the controller does not present the same
// PIN to the token again however often the issuer is reconciled, and that
// fixing the PIN Secret makes the issuer Ready and lets a waiting request
// through.
func TestPKCS11WrongPIN(t *testing.T) {
	h := newHSM(t, "wrong-pin")
	ns := h.namespace()
	h.hsmCA(ns, "wrong-pin", "ECDSA-P256")
	pin := &corev1.Secret{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "hsm-pin"}, pin); err != nil {
		t.Fatal(err)
	}
	pin.Data["pin"] = []byte("0000")
	if err := env.Client.Update(context.Background(), pin); err != nil {
		t.Fatal(err)
	}
	h.startController()
	iss := hsmIssuer(ns, "wrong-pin")
	env.Create(t, iss)
	if c := caCondition(t, iss, quillv1.ReasonPINIncorrect); strings.Contains(c.Message, "0000") {
		t.Fatalf("the PIN appears in the status: %q", c.Message)
	}
	if n := h.logins("wrong-pin", ""); n != 1 {
		t.Fatalf("%v PINs presented to the token before the issuer said PINIncorrect, want exactly 1", n)
	}
	// Reconcile the issuer repeatedly (each annotation change triggers a
	// check), and a request meanwhile: the wrong PIN must not reach the
	// token again.
	env.Create(t, harness.Certificate(ns, "waiting", issuerRef("hsm")))
	for i := range 5 {
		// Merge patches: the controller writes status between pokes, and
		// an update would fail on the stale resourceVersion.
		before := iss.DeepCopy()
		iss.Annotations = map[string]string{"e2e.quill.dev/poke": fmt.Sprint(i)}
		if err := env.Client.Patch(context.Background(), iss, client.MergeFrom(before)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if n := h.logins("wrong-pin", ""); n != 1 {
		t.Fatalf("%v PINs presented to the token, want still 1: the refused PIN was tried again", n)
	}
	if n := h.logins("wrong-pin", "pin_incorrect"); n != 1 {
		t.Fatalf("quill_pkcs11_logins_total{result=\"pin_incorrect\"} = %v, want 1", n)
	}
	// Fix the PIN: the Secret watch re-checks the issuer.
	pin.Data["pin"] = []byte(hsmPIN)
	if err := env.Client.Update(context.Background(), pin); err != nil {
		t.Fatal(err)
	}
	env.WaitIssuerReady(t, iss)
	harness.VerifyChain(t, env.WaitCertificateReady(t, ns, "waiting"), x509.ExtKeyUsageServerAuth)
	if n := h.logins("wrong-pin", "ok"); n < 1 {
		t.Fatalf("quill_pkcs11_logins_total{result=\"ok\"} = %v after the fix", n)
	}
}

// TestPKCS11ModuleNotAllowed checks that a module name outside the
// controller's allow-list is refused with a clear reason, without a PIN
// presented anywhere.
func TestPKCS11ModuleNotAllowed(t *testing.T) {
	h := newHSM(t, "allowed")
	ns := h.namespace()
	h.hsmCA(ns, "allowed", "ECDSA-P256")
	h.startController()
	iss := hsmIssuer(ns, "allowed")
	iss.Spec.CA.PKCS11.Module = "vendor-hsm"
	env.Create(t, iss)
	c := caCondition(t, iss, quillv1.ReasonModuleNotAllowed)
	if !strings.Contains(c.Message, `"vendor-hsm"`) || !strings.Contains(c.Message, "softhsm") {
		t.Fatalf("message %q should name the refused module and the allowed ones", c.Message)
	}
	if n := h.logins("allowed", ""); n != 0 {
		t.Fatalf("%v PINs presented to a token for a module outside the allow-list", n)
	}
}

// TestPKCS11IntermediateFromParent checks an HSM-backed intermediate that
// Quill certifies by itself: the issuer's key is on a token and has no
// certificate; Quill sends a CSR signed by it to the parent issuer, installs
// the chain, signs with it, and renews it when renewBefore says so.
func TestPKCS11IntermediateFromParent(t *testing.T) {
	h := newHSM(t, "intermediate")
	ns := h.namespace()
	pubPEM := h.quillctl("hsm", "keygen", "--key", keyURI("intermediate", "issuing-key"), "--key-algorithm", "ECDSA-P256")
	block, _ := pem.Decode(pubPEM)
	if block == nil {
		t.Fatalf("quillctl hsm keygen printed no PEM public key: %q", pubPEM)
	}
	hsmPub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	h.startController()
	root := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "root"},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{
			SecretName: "root-ca", Subject: quillv1.Subject{CommonName: "root", Organizations: []string{"Quill e2e"}}, KeyAlgorithm: "ECDSA-P384",
		}}},
	}
	env.Create(t, root)
	env.WaitIssuerReady(t, root)
	pinSecret(t, ns, hsmPIN)
	iss := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hsm-issuing"},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{PKCS11: &quillv1.PKCS11CA{
			Module: "softhsm", TokenLabel: "intermediate", KeyLabel: "issuing-key",
			PINSecretRef:         quillv1.SecretKeySelector{Name: "hsm-pin"},
			CertificateSecretRef: &quillv1.SecretReference{Name: "hsm-issuing-ca"},
			IssuedBy: &quillv1.ParentIssuer{
				Kind: quillv1.IssuerKind, Name: "root",
				Subject:  quillv1.Subject{CommonName: "HSM Issuing CA", Organizations: []string{"Quill e2e"}},
				Duration: &metav1.Duration{Duration: time.Hour},
			},
		}}},
	}
	env.Create(t, iss)
	env.WaitIssuerReady(t, iss)

	var caSecret corev1.Secret
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "hsm-issuing-ca"}, &caSecret); err != nil {
		t.Fatal(err)
	}
	first := harness.ParseCerts(t, caSecret.Data["tls.crt"])[0]
	if !first.IsCA || first.Subject.CommonName != "HSM Issuing CA" || !publicKeyEqual(first.PublicKey, hsmPub) {
		t.Fatalf("installed certificate: CA=%v subject %s, or not for the HSM key", first.IsCA, first.Subject)
	}
	env.Create(t, harness.Certificate(ns, "leaf", issuerRef("hsm-issuing")))
	leafSecret := env.WaitCertificateReady(t, ns, "leaf")
	harness.VerifyChain(t, leafSecret, x509.ExtKeyUsageServerAuth)
	if chain := harness.ParseCerts(t, leafSecret.Data["tls.crt"]); len(chain) != 2 || !chain[1].Equal(first) {
		t.Fatalf("tls.crt should be leaf + HSM Issuing CA, has %d certificates", len(chain))
	}

	// Renewal: with renewBefore just under the lifetime, the certificate is
	// due two seconds after issuance.
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(iss), iss); err != nil {
		t.Fatal(err)
	}
	iss.Spec.CA.PKCS11.IssuedBy.RenewBefore = &metav1.Duration{Duration: time.Hour - 2*time.Second}
	if err := env.Client.Update(context.Background(), iss); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, "a renewed intermediate certificate", harness.WaitTimeout, func() (bool, error) {
		var s corev1.Secret
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "hsm-issuing-ca"}, &s); err != nil {
			return false, err
		}
		c := harness.ParseCerts(t, s.Data["tls.crt"])[0]
		return c.SerialNumber.Cmp(first.SerialNumber) != 0 && publicKeyEqual(c.PublicKey, hsmPub), nil
	})
	// Stop the renewals before the namespace goes.
	if err := env.Client.Delete(context.Background(), iss); err != nil {
		t.Fatal(err)
	}
}

func publicKeyEqual(a, b any) bool {
	x, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && x.Equal(b)
}

// TestPKCS11TokenReinitialised re-initialises the token under a running
// controller. With a different key under the CA key's label the issuer
// refuses to sign (KeyMismatch) and requests wait; once the original key
// is back, the controller recovers by itself and the waiting request is
// signed by the original CA.
func TestPKCS11TokenReinitialised(t *testing.T) {
	h := newHSM(t, "reinit")
	ns := h.namespace()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h.importKey("reinit", caKey, "ca-key", "ca")
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Re-initialised HSM root"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	env.Create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hsm-ca"}, Data: map[string][]byte{"tls.crt": certPEM, "ca.crt": certPEM}})
	pinSecret(t, ns, hsmPIN)
	h.startController()
	iss := hsmIssuer(ns, "reinit")
	env.Create(t, iss)
	env.WaitIssuerReady(t, iss)
	env.Create(t, harness.Certificate(ns, "before", issuerRef("hsm")))
	harness.VerifyChain(t, env.WaitCertificateReady(t, ns, "before"), x509.ExtKeyUsageServerAuth)

	// Another key under the same label and ID.
	h.reinitialise("reinit")
	h.quillctl("hsm", "keygen", "--key", "pkcs11:token=reinit;object=ca-key;id=%CA?module-path="+softhsm.Module+"&pin-value="+hsmPIN, "--key-algorithm", "ECDSA-P256")
	env.Create(t, harness.Certificate(ns, "during", issuerRef("hsm")))
	caCondition(t, iss, quillv1.ReasonKeyMismatch)
	var crt cmapi.Certificate
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "during"}, &crt); err != nil {
		t.Fatal(err)
	}
	if crt.Status.Revision != nil {
		t.Fatalf("a certificate was issued while the token held another key: revision %d", *crt.Status.Revision)
	}

	// The original key restored: recovery without anyone touching Quill.
	h.reinitialise("reinit")
	h.importKey("reinit", caKey, "ca-key", "ca")
	during := env.WaitCertificateReady(t, ns, "during")
	leaf := harness.VerifyChain(t, during, x509.ExtKeyUsageServerAuth)
	if err := leaf.CheckSignatureFrom(harness.ParseCerts(t, certPEM)[0]); err != nil {
		t.Fatalf("the waiting request was not signed by the original CA: %v", err)
	}
	env.WaitIssuerReady(t, iss)
}
