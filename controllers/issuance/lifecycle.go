package issuance

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// The label is a metadata-only merge patch; Secret contents are not read.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=patch

// markKeySecret labels the Secret holding an issuer's CA key with
// quill.dev/ca-key=true (and names the issuer in quill.dev/ca-key-of), so
// that the admission policies in config/admission guard it: it can then
// only be deleted after one user disabled it and by another. Issuers whose
// key lives in an HSM have no key Secret. It reads only Secret metadata and writes
// only when the label is missing.
func (s *Signer) markKeySecret(ctx context.Context, obj quillv1.GenericIssuer, namespace string, src quillv1.CASource) error {
	if s.KeySecretReader == nil || s.KeySecretWriter == nil {
		return nil
	}
	var name string
	switch {
	case src.SecretRef != nil:
		name = src.SecretRef.Name
	case src.Bootstrap != nil:
		name = src.Bootstrap.SecretName
	default:
		return nil
	}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := s.KeySecretReader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, meta); err != nil {
		return fmt.Errorf("reading CA Secret metadata: %w", err)
	}
	if meta.Labels[quillv1.LabelCAKey] == "true" {
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
		patched.Annotations[quillv1.AnnotationCAKeyOf] = obj.ID().String()
	}
	if err := s.KeySecretWriter.Patch(ctx, patched, client.MergeFrom(meta)); err != nil {
		return fmt.Errorf("labelling CA Secret %s/%s: %w", namespace, name, err)
	}
	return nil
}
