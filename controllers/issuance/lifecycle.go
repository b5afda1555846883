package issuance

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/owned"
)

// The label is a metadata-only merge patch; Secret contents are not read.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=patch

// markKeySecret labels the bootstrap Secret holding an issuer's CA key with
// quill.dev/ca-key=true (and names the issuer in quill.dev/ca-key-of), so
// that the admission policies in config/admission guard it: it can then
// only be deleted after one user disabled it and by another. It reads only
// Secret metadata and writes only when the label is missing.
//
// Only a Secret Quill created for this issuer is labelled (the ownership
// rule, pkg/owned): the label locks the Secret's deletion behind two people,
// and that is for the Secret's owner to decide. A spec.ca.secretRef Secret
// is the user's (anyone who may create an issuer could otherwise lock any
// Secret of the namespace that holds a key, an app's TLS Secret included),
// so users label their own CA Secrets, as the README says. Issuers whose
// key lives in an HSM have no key Secret.
func (s *Signer) markKeySecret(ctx context.Context, obj quillv1.GenericIssuer, namespace string, src quillv1.CASource) error {
	if s.KeySecretReader == nil || s.KeySecretWriter == nil || src.Bootstrap == nil {
		return nil
	}
	name, owner := src.Bootstrap.SecretName, obj.ID().String()
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := s.KeySecretReader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, meta); err != nil {
		return fmt.Errorf("reading CA Secret metadata: %w", err)
	}
	if meta.Labels[quillv1.LabelCAKey] == "true" && owned.Marked(meta, owner) {
		return nil
	}
	patched := meta.DeepCopy()
	if patched.Labels == nil {
		patched.Labels = map[string]string{}
	}
	if patched.Annotations == nil {
		patched.Annotations = map[string]string{}
	}
	patched.Labels[quillv1.LabelCAKey] = "true"
	if _, ok := patched.Annotations[quillv1.AnnotationCAKeyOf]; !ok {
		patched.Annotations[quillv1.AnnotationCAKeyOf] = owner
	}
	err := owned.Patch(ctx, s.KeySecretWriter, "Secret", meta, patched, owner, castore.LegacyBootstrap)
	if errors.Is(err, owned.ErrCollision) {
		// The CA check (castore.Ensure) reports it on the issuer; a Secret
		// that is not the issuer's is never labelled.
		return nil
	}
	if err != nil {
		return fmt.Errorf("labelling CA Secret %s/%s: %w", namespace, name, err)
	}
	return nil
}
