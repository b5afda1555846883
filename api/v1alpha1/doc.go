// Package v1alpha1 holds Quill's issuer API, group quill.dev, version
// v1alpha1: QuillIssuer (namespaced) and QuillClusterIssuer (cluster-scoped).
// Both share one spec type; cert-manager Certificates and Kubernetes
// CertificateSigningRequests refer to them by group quill.dev and kind.
//
// +kubebuilder:object:generate=true
// +groupName=quill.dev
package v1alpha1
