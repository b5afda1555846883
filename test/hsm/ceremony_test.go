package e2e

import (
	"crypto/x509"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// quillctl runs bin/quillctl (built by `make build`) and returns its
// standard output.
func quillctl(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	bin := filepath.Join(env.Root, "bin", "quillctl")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `make build`", bin)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("quillctl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// TestCeremonyHSMRoot runs the offline-root ceremony with quillctl: a root
// key generated on a PKCS#11 token (SoftHSM2) self-signs a root and signs a
// subordinate CA's CSR; the subordinate, imported as a Secret, serves a
// QuillIssuer, and the root, kept on the token with its certificate, serves
// a PKCS#11 QuillIssuer. Certificates from both verify with OpenSSL.
func TestCeremonyHSMRoot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ns := newNamespace(t)
	uri := "pkcs11:token=e2e-ceremony;object=root-key?module-path=" + softHSMModule + "&pin-value=" + hsmPIN

	quillctl(t, dir, "hsm", "keygen", "--key", uri, "--key-algorithm", "ECDSA-P384")
	quillctl(t, dir, "ca", "init", "--key", uri, "--subject", "CN=Ceremony Root,O=Quill e2e", "--validity", "87600h", "--path-len", "1", "--out-cert", "root.crt")
	quillctl(t, dir, "ca", "csr", "--generate-key", "ECDSA-P256", "--key", "sub.key", "--subject", "CN=Ceremony Issuing CA,O=Quill e2e", "--out", "sub.csr")
	quillctl(t, dir, "ca", "sign", "--ca-cert", "root.crt", "--ca-key", uri, "--csr", "sub.csr", "--validity", "43800h", "--path-len", "0", "--out", "sub.crt")
	manifest := quillctl(t, dir, "ca", "import", "--cert", "sub.crt", "--key", "sub.key", "--ca", "root.crt", "--name", "ceremony-ca", "--namespace", ns, "-o", "json")

	var secret corev1.Secret
	if err := json.Unmarshal(manifest, &secret); err != nil {
		t.Fatalf("quillctl ca import printed no Secret: %v\n%s", err, manifest)
	}
	create(t, &secret)
	sub := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "issuing"},
		Spec:       quillv1.IssuerSpec{CA: quillv1.CASource{SecretRef: &quillv1.SecretReference{Name: "ceremony-ca"}}},
	}
	create(t, sub)
	waitIssuerReady(t, sub)
	create(t, certificate(ns, "from-sub", cmmeta.IssuerReference{Group: "quill.dev", Kind: "QuillIssuer", Name: "issuing"}))
	leafSecret := waitCertificateReady(t, ns, "from-sub")
	verifyChain(t, leafSecret, x509.ExtKeyUsageServerAuth)
	if chain := parseCerts(t, leafSecret.Data["tls.crt"]); len(chain) != 2 || chain[1].Subject.CommonName != "Ceremony Issuing CA" {
		t.Fatalf("tls.crt should be leaf + Ceremony Issuing CA, has %d certificates", len(chain))
	}

	// The root itself, its certificate stored on the token.
	quillctl(t, dir, "hsm", "store-cert", "--key", uri, "--cert", "root.crt", "--label", "root-cert")
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hsm-pin"}, Data: map[string][]byte{"pin": []byte(hsmPIN)}})
	root := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "root"},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{PKCS11: &quillv1.PKCS11CA{
			Module: "softhsm", TokenLabel: "e2e-ceremony", KeyLabel: "root-key",
			PINSecretRef: quillv1.SecretKeySelector{Name: "hsm-pin"}, CertificateLabel: "root-cert",
		}}},
	}
	create(t, root)
	waitIssuerReady(t, root)
	create(t, certificate(ns, "from-root", cmmeta.IssuerReference{Group: "quill.dev", Kind: "QuillIssuer", Name: "root"}))
	fromRoot := waitCertificateReady(t, ns, "from-root")
	verifyChain(t, fromRoot, x509.ExtKeyUsageServerAuth)
	rootPEM, err := os.ReadFile(filepath.Join(dir, "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(fromRoot.Data["ca.crt"])) != strings.TrimSpace(string(rootPEM)) {
		t.Fatal("ca.crt of the HSM root issuer is not the ceremony's root certificate")
	}
}
