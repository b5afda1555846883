package hsm

import (
	"context"
	"maps"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// TestPKCS11IntermediateLeavesUnrelatedSecret is the attack of an issuedBy
// intermediate whose certificateSecretRef names an unrelated Secret (here
// someone's trust anchors, a ca.crt alone): Quill neither requests a
// certificate into it nor overwrites its ca.crt, and the issuer's CAValid
// condition names the collision.
func TestPKCS11IntermediateLeavesUnrelatedSecret(t *testing.T) {
	h := newHSM(t, "owned")
	ns := h.namespace()
	h.quillctl("hsm", "keygen", "--key", keyURI("owned", "issuing-key"), "--key-algorithm", "ECDSA-P256")
	h.startController()
	root := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "root"},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{
			SecretName: "root-ca", Subject: quillv1.Subject{CommonName: "root", Organizations: []string{"Quill e2e"}},
		}}},
	}
	env.Create(t, root)
	env.WaitIssuerReady(t, root)
	pinSecret(t, ns, hsmPIN)
	anchors := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "trust-anchors", Labels: map[string]string{"app": "web"}},
		Data:       map[string][]byte{"ca.crt": []byte("-----BEGIN CERTIFICATE-----\nsomeone else's anchors\n-----END CERTIFICATE-----\n")},
	}
	env.Create(t, anchors)
	iss := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hsm-issuing"},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{PKCS11: &quillv1.PKCS11CA{
			Module: "softhsm", TokenLabel: "owned", KeyLabel: "issuing-key",
			PINSecretRef:         quillv1.SecretKeySelector{Name: "hsm-pin"},
			CertificateSecretRef: &quillv1.SecretReference{Name: "trust-anchors"},
			IssuedBy: &quillv1.ParentIssuer{
				Kind: quillv1.IssuerKind, Name: "root",
				Subject:  quillv1.Subject{CommonName: "HSM Issuing CA", Organizations: []string{"Quill e2e"}},
				Duration: &metav1.Duration{Duration: time.Hour},
			},
		}}},
	}
	env.Create(t, iss)
	caCondition(t, iss, quillv1.ReasonNameCollision)
	// Long enough for a request to the parent to be signed and installed,
	// as TestPKCS11IntermediateFromParent shows it is.
	time.Sleep(5 * time.Second)

	ctx := context.Background()
	var after corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(anchors), &after); err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != anchors.ResourceVersion || !maps.EqualFunc(after.Data, anchors.Data, func(a, b []byte) bool { return string(a) == string(b) }) ||
		!maps.Equal(after.Labels, anchors.Labels) || len(after.Annotations) != 0 {
		t.Fatalf("the unrelated Secret was written: labels %v, annotations %v, data keys %d", after.Labels, after.Annotations, len(after.Data))
	}
	var requests cmapi.CertificateRequestList
	if err := env.Client.List(ctx, &requests, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, cr := range requests.Items {
		if cr.Spec.IssuerRef.Name == "root" && cr.Spec.IsCA {
			t.Errorf("CertificateRequest %s asks for a certificate to install into a Secret that is not the issuer's", cr.Name)
		}
	}
	// Stop the controller's work before the namespace goes.
	if err := env.Client.Delete(ctx, iss); err != nil {
		t.Fatal(err)
	}
}
