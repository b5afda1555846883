package hsm

import (
	"crypto/x509"
	"encoding/json"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/test/harness"
)

// TestCeremonyHSMRoot runs the offline-root ceremony with quillctl: a root
// key generated on a PKCS#11 token (SoftHSM2) self-signs a root and signs a
// subordinate CA's CSR; the subordinate, imported as a Secret, serves a
// QuillIssuer, and the root, kept on the token with its certificate, serves
// a PKCS#11 QuillIssuer. Certificates from both verify with Go and OpenSSL.
func TestCeremonyHSMRoot(t *testing.T) {
	h := newHSM(t, "ceremony")
	ns := h.namespace()
	uri := keyURI("ceremony", "root-key")

	h.quillctl("hsm", "keygen", "--key", uri, "--key-algorithm", "ECDSA-P384")
	h.quillctl("ca", "init", "--key", uri, "--subject", "CN=Ceremony Root,O=Quill e2e", "--validity", "87600h", "--path-len", "1", "--out-cert", "root.crt")
	h.quillctl("ca", "csr", "--generate-key", "ECDSA-P256", "--key", "sub.key", "--subject", "CN=Ceremony Issuing CA,O=Quill e2e", "--out", "sub.csr")
	h.quillctl("ca", "sign", "--ca-cert", "root.crt", "--ca-key", uri, "--csr", "sub.csr", "--validity", "43800h", "--path-len", "0", "--out", "sub.crt")
	manifest := h.quillctl("ca", "import", "--cert", "sub.crt", "--key", "sub.key", "--ca", "root.crt", "--name", "ceremony-ca", "--namespace", ns, "-o", "json")
	// The root, its certificate stored on the token beside its key.
	h.quillctl("hsm", "store-cert", "--key", uri, "--cert", "root.crt", "--label", "root-cert")
	h.startController()

	var secret corev1.Secret
	if err := json.Unmarshal(manifest, &secret); err != nil {
		t.Fatalf("quillctl ca import printed no Secret: %v\n%s", err, manifest)
	}
	env.Create(t, &secret)
	sub := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "issuing"},
		Spec:       quillv1.IssuerSpec{CA: quillv1.CASource{SecretRef: &quillv1.SecretReference{Name: "ceremony-ca"}}},
	}
	env.Create(t, sub)
	env.WaitIssuerReady(t, sub)
	env.Create(t, harness.Certificate(ns, "from-sub", issuerRef("issuing")))
	leafSecret := env.WaitCertificateReady(t, ns, "from-sub")
	harness.VerifyChain(t, leafSecret, x509.ExtKeyUsageServerAuth)
	if chain := harness.ParseCerts(t, leafSecret.Data["tls.crt"]); len(chain) != 2 || chain[1].Subject.CommonName != "Ceremony Issuing CA" {
		t.Fatalf("tls.crt should be leaf + Ceremony Issuing CA, has %d certificates", len(chain))
	}

	pinSecret(t, ns, hsmPIN)
	root := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "root"},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{PKCS11: &quillv1.PKCS11CA{
			Module: "softhsm", TokenLabel: "ceremony", KeyLabel: "root-key",
			PINSecretRef: quillv1.SecretKeySelector{Name: "hsm-pin"}, CertificateLabel: "root-cert",
		}}},
	}
	env.Create(t, root)
	env.WaitIssuerReady(t, root)
	env.Create(t, harness.Certificate(ns, "from-root", issuerRef("root")))
	fromRoot := env.WaitCertificateReady(t, ns, "from-root")
	harness.VerifyChain(t, fromRoot, x509.ExtKeyUsageServerAuth)
	rootPEM, err := os.ReadFile(h.file("root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(fromRoot.Data["ca.crt"])) != strings.TrimSpace(string(rootPEM)) {
		t.Fatal("ca.crt of the HSM root issuer is not the ceremony's root certificate")
	}
}
