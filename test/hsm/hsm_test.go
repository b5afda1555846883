package e2e

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/pkcs11"
	"github.com/quill-pki/quill/test/softhsm"
)

// softHSMModule is the library the suite's controllers allow as "softhsm".
const softHSMModule = softhsm.Module

// hsmPIN is the user PIN of every e2e token.
const hsmPIN = "4321"

// hsmOpens counts PKCS#11 key openings by the in-process controller, per
// token label, so that a test can prove a refused PIN is not tried again.
var hsmOpens sync.Map // token label -> *atomic.Int64

func opensOf(token string) *atomic.Int64 {
	n, _ := hsmOpens.LoadOrStore(token, new(atomic.Int64))
	return n.(*atomic.Int64)
}

// setupSoftHSM gives the suite its own SoftHSM2 in dir with the tokens
// the PKCS#11 tests use, before anything in the process loads the library.
func setupSoftHSM(dir string) error {
	tokens := make([]softhsm.Token, 0, len(hsmTokens))
	for _, label := range hsmTokens {
		tokens = append(tokens, softhsm.Token{Label: label, PIN: hsmPIN, SOPIN: "123456"})
	}
	return softhsm.Setup(dir, tokens...)
}

var hsmTokens = []string{"e2e-ecdsa", "e2e-rsa", "e2e-ed25519", "e2e-wrong-pin", "e2e-ceremony", "e2e-intermediate"}

// countingHSM opens keys with the real PKCS#11 backend and counts it.
func countingHSM(cfg pkcs11.Config) (castore.HSMKey, error) {
	opensOf(cfg.TokenLabel).Add(1)
	return pkcs11.Open(cfg)
}

// hsmCA generates a CA key on token and a self-signed CA certificate for
// it, and stores the certificate and the PIN as Secrets in ns.
func hsmCA(t *testing.T, ns, token, alg string) {
	t.Helper()
	cfg := pkcs11.Config{ModulePath: softHSMModule, TokenLabel: token, KeyLabel: "ca-key", PIN: hsmPIN}
	key, err := pkcs11.GenerateKey(cfg, pkcs11.Algorithm(alg))
	if err != nil {
		t.Fatalf("generating %s key on %s: %v", alg, token, err)
	}
	defer key.Close()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "HSM " + alg + " root", Organization: []string{"Quill e2e"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("self-signing with the HSM key: %v", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hsm-ca"}, Data: map[string][]byte{"tls.crt": certPEM, "ca.crt": certPEM}})
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hsm-pin"}, Data: map[string][]byte{"pin": []byte(hsmPIN + "\n")}})
}

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

// TestPKCS11Issuance issues Certificates through QuillIssuers whose CA keys
// live in SoftHSM2, and verifies the chains with Go and OpenSSL.
func TestPKCS11Issuance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, token, alg string
		sig              x509.SignatureAlgorithm
	}{
		{name: "ecdsa-p256", token: "e2e-ecdsa", alg: "ECDSA-P256", sig: x509.ECDSAWithSHA256},
		{name: "rsa-2048", token: "e2e-rsa", alg: "RSA-2048", sig: x509.SHA256WithRSA},
		{name: "ed25519", token: "e2e-ed25519", alg: "Ed25519", sig: x509.PureEd25519},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			hsmCA(t, ns, tc.token, tc.alg)
			iss := hsmIssuer(ns, tc.token)
			create(t, iss)
			waitIssuerReady(t, iss)
			create(t, certificate(ns, "leaf", cmmeta.IssuerReference{Group: "quill.dev", Kind: "QuillIssuer", Name: "hsm"}, func(c *cmapi.Certificate) {
				c.Spec.Usages = []cmapi.KeyUsage{cmapi.UsageServerAuth, cmapi.UsageDigitalSignature}
			}))
			leaf := verifyChain(t, waitCertificateReady(t, ns, "leaf"), x509.ExtKeyUsageServerAuth)
			if leaf.SignatureAlgorithm != tc.sig {
				t.Errorf("signed with %s, want %s", leaf.SignatureAlgorithm, tc.sig)
			}
		})
	}
}

// TestPKCS11WrongPIN checks that a refused PIN turns the issuer not Ready
// with reason PINIncorrect, that Quill does not present the same PIN again
// however often the issuer is reconciled, and that fixing the PIN Secret
// makes the issuer Ready.
func TestPKCS11WrongPIN(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	hsmCA(t, ns, "e2e-wrong-pin", "ECDSA-P256")
	pin := &corev1.Secret{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "hsm-pin"}, pin); err != nil {
		t.Fatal(err)
	}
	pin.Data["pin"] = []byte("0000")
	if err := env.Client.Update(context.Background(), pin); err != nil {
		t.Fatal(err)
	}
	iss := hsmIssuer(ns, "e2e-wrong-pin")
	create(t, iss)
	eventually(t, "issuer NotReady with PINIncorrect", func() (bool, error) {
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(iss), iss); err != nil {
			return false, err
		}
		c := meta.FindStatusCondition(iss.Status.Conditions, quillv1.ConditionCAValid)
		return c != nil && c.Reason == quillv1.ReasonPINIncorrect, nil
	})
	if c := meta.FindStatusCondition(iss.Status.Conditions, quillv1.ConditionCAValid); strings.Contains(c.Message, "0000") {
		t.Fatalf("the PIN appears in the status: %q", c.Message)
	}
	// Reconcile the issuer repeatedly (each annotation change triggers a
	// check); the wrong PIN must not reach the token again.
	opens := opensOf("e2e-wrong-pin").Load()
	for i := range 5 {
		iss.Annotations = map[string]string{"e2e.quill.dev/poke": fmt.Sprint(i)}
		if err := env.Client.Update(context.Background(), iss); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if opens == 0 {
		t.Fatal("the token was never asked: the test proves nothing")
	}
	if again := opensOf("e2e-wrong-pin").Load() - opens; again != 0 {
		t.Fatalf("the refused PIN was presented %d more times", again)
	}
	// A request meanwhile waits.
	create(t, certificate(ns, "waiting", cmmeta.IssuerReference{Group: "quill.dev", Kind: "QuillIssuer", Name: "hsm"}))
	// Fix the PIN: the Secret watch re-checks the issuer.
	pin.Data["pin"] = []byte(hsmPIN)
	if err := env.Client.Update(context.Background(), pin); err != nil {
		t.Fatal(err)
	}
	waitIssuerReady(t, iss)
	verifyChain(t, waitCertificateReady(t, ns, "waiting"), x509.ExtKeyUsageServerAuth)
}

// TestPKCS11ModuleNotAllowed checks that a module name outside the
// controller's allow-list is refused with a clear reason.
func TestPKCS11ModuleNotAllowed(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hsm-pin"}, Data: map[string][]byte{"pin": []byte(hsmPIN)}})
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hsm-ca"}, Data: map[string][]byte{"tls.crt": []byte("unused")}})
	iss := hsmIssuer(ns, "e2e-ecdsa")
	iss.Spec.CA.PKCS11.Module = "vendor-hsm"
	create(t, iss)
	eventually(t, "issuer NotReady with ModuleNotAllowed", func() (bool, error) {
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(iss), iss); err != nil {
			return false, err
		}
		c := meta.FindStatusCondition(iss.Status.Conditions, quillv1.ConditionCAValid)
		return c != nil && c.Reason == quillv1.ReasonModuleNotAllowed && strings.Contains(c.Message, `"vendor-hsm"`), nil
	})
}

// TestPKCS11IntermediateFromParent checks an HSM-backed intermediate that
// Quill certifies by itself: the issuer's key is on a token and has no
// certificate; Quill sends a CSR signed by it to the parent issuer, installs
// the chain, signs with it, and renews it when renewBefore says so.
func TestPKCS11IntermediateFromParent(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	quillIssuer(t, ns, "root", "ECDSA-P384")
	key, err := pkcs11.GenerateKey(pkcs11.Config{ModulePath: softHSMModule, TokenLabel: "e2e-intermediate", KeyLabel: "issuing-key", PIN: hsmPIN}, pkcs11.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	hsmPub := key.Public()
	_ = key.Close()
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hsm-pin"}, Data: map[string][]byte{"pin": []byte(hsmPIN)}})
	iss := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hsm-issuing"},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{PKCS11: &quillv1.PKCS11CA{
			Module: "softhsm", TokenLabel: "e2e-intermediate", KeyLabel: "issuing-key",
			PINSecretRef:         quillv1.SecretKeySelector{Name: "hsm-pin"},
			CertificateSecretRef: &quillv1.SecretReference{Name: "hsm-issuing-ca"},
			IssuedBy: &quillv1.ParentIssuer{
				Kind: "QuillIssuer", Name: "root",
				Subject:  quillv1.Subject{CommonName: "HSM Issuing CA", Organizations: []string{"Quill e2e"}},
				Duration: &metav1.Duration{Duration: time.Hour},
			},
		}}},
	}
	create(t, iss)
	waitIssuerReady(t, iss)

	var caSecret corev1.Secret
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "hsm-issuing-ca"}, &caSecret); err != nil {
		t.Fatal(err)
	}
	first := parseCerts(t, caSecret.Data["tls.crt"])[0]
	if !first.IsCA || first.Subject.CommonName != "HSM Issuing CA" || !publicKeyEqual(first.PublicKey, hsmPub) {
		t.Fatalf("installed certificate: CA=%v subject %s, or not for the HSM key", first.IsCA, first.Subject)
	}
	create(t, certificate(ns, "leaf", cmmeta.IssuerReference{Group: "quill.dev", Kind: "QuillIssuer", Name: "hsm-issuing"}))
	leafSecret := waitCertificateReady(t, ns, "leaf")
	verifyChain(t, leafSecret, x509.ExtKeyUsageServerAuth)
	if chain := parseCerts(t, leafSecret.Data["tls.crt"]); len(chain) != 2 || !chain[1].Equal(first) {
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
	eventually(t, "a renewed intermediate certificate", func() (bool, error) {
		var s corev1.Secret
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "hsm-issuing-ca"}, &s); err != nil {
			return false, err
		}
		c := parseCerts(t, s.Data["tls.crt"])[0]
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
