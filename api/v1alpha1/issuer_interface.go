package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The methods below make both kinds satisfy issuer-lib's Issuer interface,
// which Quill's controllers hand to cert-manager/issuer-lib.

// GetConditions returns the issuer's status conditions.
func (i *QuillIssuer) GetConditions() []metav1.Condition { return i.Status.Conditions }

// GetIssuerTypeIdentifier is the signer-name prefix of Kubernetes
// CertificateSigningRequests for this kind: quillissuers.quill.dev/<namespace>.<name>.
func (i *QuillIssuer) GetIssuerTypeIdentifier() string { return "quillissuers.quill.dev" }

// GetConditions returns the issuer's status conditions.
func (i *QuillClusterIssuer) GetConditions() []metav1.Condition { return i.Status.Conditions }

// GetIssuerTypeIdentifier is the signer-name prefix of Kubernetes
// CertificateSigningRequests for this kind: quillclusterissuers.quill.dev/<name>.
func (i *QuillClusterIssuer) GetIssuerTypeIdentifier() string {
	return "quillclusterissuers.quill.dev"
}
