package issuance

import (
	"context"
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/owned"
)

// markedSecret puts the ownership mark naming owner on s, as Quill creates
// the Secrets it writes.
func markedSecret(s *corev1.Secret, owner string) *corev1.Secret {
	owned.Mark(s, owner)
	return s
}

// TestCheckMarksOnlyOwnedKeySecret: the CA key label the admission policies select
// on goes only on a Secret Quill created for the issuer (or an earlier
// Quill did, by its bootstrapped-by annotation), once; a Secret that is the
// user's (spec.ca.secretRef) or another's (spec.ca.bootstrap naming an
// app's TLS Secret) is never labelled.
func TestCheckMarksOnlyOwnedKeySecret(t *testing.T) {
	t.Parallel()
	const owner = "QuillIssuer/" + testNamespace + "/issuer"
	legacy := caSecret(testNamespace, "ca", newCA(t))
	legacy.Annotations = map[string]string{castore.AnnotationBootstrappedBy: owner}
	other := caSecret(testNamespace, "ca", newCA(t))
	other.Annotations = map[string]string{castore.AnnotationBootstrappedBy: "QuillIssuer/" + testNamespace + "/other"}
	tests := []struct {
		name      string
		issuer    *quillv1.QuillIssuer
		secret    *corev1.Secret // nil: Check creates it
		wantLabel bool
	}{
		{name: "bootstrap-created-by-quill", issuer: newIssuer(withBootstrap("ca", "Root")), wantLabel: true},
		{name: "bootstrap-marked", issuer: newIssuer(withBootstrap("ca", "Root")), secret: markedSecret(caSecret(testNamespace, "ca", newCA(t)), owner), wantLabel: true},
		{name: "bootstrap-of-an-earlier-quill", issuer: newIssuer(withBootstrap("ca", "Root")), secret: legacy, wantLabel: true},
		{name: "bootstrap-of-another-issuer", issuer: newIssuer(withBootstrap("ca", "Root")), secret: other},
		{name: "bootstrap-naming-an-app-secret", issuer: newIssuer(withBootstrap("ca", "Root")), secret: caSecret(testNamespace, "ca", newCA(t, asLeaf()))},
		{name: "bootstrap-naming-an-unmarked-ca", issuer: newIssuer(withBootstrap("ca", "Root")), secret: caSecret(testNamespace, "ca", newCA(t))},
		{name: "secret-ref-is-the-users", issuer: newIssuer(), secret: caSecret(testNamespace, "ca", newCA(t))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			objs := []client.Object{tt.issuer.DeepCopy()}
			var before *corev1.Secret
			if tt.secret != nil {
				objs = append(objs, tt.secret.DeepCopy())
				before = tt.secret
			}
			f := newSigner(t, withObjects(objs...))
			f.signer.KeySecretReader, f.signer.KeySecretWriter = f.api, f.api
			for range 2 {
				_ = f.signer.Check(ctx, tt.issuer) // the verdict is TestCheck's
			}
			var secret corev1.Secret
			if err := f.api.Get(ctx, types.NamespacedName{Namespace: testNamespace, Name: "ca"}, &secret); err != nil {
				t.Fatal(err)
			}
			if !tt.wantLabel {
				if !maps.Equal(secret.Labels, before.Labels) || !maps.Equal(secret.Annotations, before.Annotations) {
					t.Fatalf("labels %v annotations %v; want the Secret's own %v %v untouched", secret.Labels, secret.Annotations, before.Labels, before.Annotations)
				}
				return
			}
			if secret.Labels[quillv1.LabelCAKey] != "true" || secret.Annotations[quillv1.AnnotationCAKeyOf] != owner || !owned.Marked(&secret, owner) {
				t.Fatalf("labels %v annotations %v; want the CA key label, the issuer named and the ownership mark", secret.Labels, secret.Annotations)
			}
			if len(secret.Data[castore.KeyTLSKey]) == 0 {
				t.Fatal("labelling lost the Secret's data")
			}
		})
	}
}
