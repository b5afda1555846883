package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IssuedCertificateSpec is the ledger's record of one signed certificate.
// It is written once, before the certificate is handed to anyone, and never
// changes afterwards; revocation is recorded in the status.
//
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a ledger record is immutable"
type IssuedCertificateSpec struct {
	// IssuerRef names the issuer that signed the certificate.
	// +required
	IssuerRef LedgerIssuerRef `json:"issuerRef"`

	// SerialNumber is the certificate's serial number in lowercase hex.
	// +required
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{1,40}$`
	SerialNumber string `json:"serialNumber"`

	// Subject is the certificate's subject distinguished name.
	// +optional
	Subject string `json:"subject,omitempty"`
	// +optional
	DNSNames []string `json:"dnsNames,omitempty"`
	// +optional
	IPAddresses []string `json:"ipAddresses,omitempty"`
	// +optional
	URIs []string `json:"uris,omitempty"`
	// +optional
	EmailAddresses []string `json:"emailAddresses,omitempty"`
	// OtherNames are the certificate's otherName SANs, in order.
	// +optional
	OtherNames []LedgerOtherName `json:"otherNames,omitempty"`

	// IsCA is true for a subordinate CA certificate.
	// +optional
	IsCA bool `json:"isCA,omitempty"`

	// NoRevocationAvailable is true for a short-lived certificate signed
	// with the noRevAvail extension (RFC 9608, see
	// spec.revocation.shortLived of the issuer): it is recorded for audit,
	// never listed on a CRL, answered "unauthorized" by the OCSP
	// responder, and a QuillRevocation naming it is refused.
	// +optional
	NoRevocationAvailable bool `json:"noRevocationAvailable,omitempty"`

	// IssuedAt is when Quill signed the certificate, to the microsecond, so
	// that certificates issued within one second still have an order.
	// +required
	IssuedAt metav1.MicroTime `json:"issuedAt"`
	// +required
	NotBefore metav1.Time `json:"notBefore"`
	// +required
	NotAfter metav1.Time `json:"notAfter"`

	// KeyAlgorithm is the certificate's public key algorithm, named as in
	// the issuer's keyAlgorithm (e.g. ECDSA-P256, RSA-2048, ML-DSA-65).
	// +required
	KeyAlgorithm string `json:"keyAlgorithm"`
	// SignatureAlgorithm is the algorithm the CA signed with.
	// +required
	SignatureAlgorithm string `json:"signatureAlgorithm"`
	// SHA256Fingerprint of the DER certificate, lowercase hex.
	// +required
	SHA256Fingerprint string `json:"sha256Fingerprint"`

	// Requester is the user that created the request, as the API server
	// recorded it on the request.
	// +optional
	Requester string `json:"requester,omitempty"`

	// Template is the certificate template the request selected, if any.
	// +optional
	Template string `json:"template,omitempty"`

	// Origin names the request and the Certificate it came from.
	// +required
	Origin LedgerOrigin `json:"origin"`

	// Certificate is the signed certificate, PEM. It lets a request retried
	// after a crash receive the certificate already signed for it instead
	// of a second one.
	// +required
	Certificate string `json:"certificate"`
}

// LedgerOtherName is one otherName SAN of a signed certificate.
type LedgerOtherName struct {
	// TypeID is the dotted type-id, such as 1.3.6.1.4.1.311.20.2.3 (UPN).
	TypeID string `json:"typeID"`
	// Value is the UTF8String value.
	Value string `json:"value"`
}

// LedgerIssuerRef names a Quill issuer.
type LedgerIssuerRef struct {
	// +kubebuilder:validation:Enum=QuillIssuer;QuillClusterIssuer
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Namespace of a QuillIssuer; empty for a QuillClusterIssuer.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// Origin kinds of ledger records: what a certificate was signed for.
const (
	// OriginKindCertificateRequest: a cert-manager CertificateRequest.
	OriginKindCertificateRequest = "CertificateRequest"
	// OriginKindCertificateSigningRequest: a Kubernetes
	// CertificateSigningRequest.
	OriginKindCertificateSigningRequest = "CertificateSigningRequest"
	// OriginKindOCSPResponder: the issuer's own delegated OCSP responder,
	// which the controller signs with the CA key; the origin's namespace
	// and name are those of the Secret holding it.
	OriginKindOCSPResponder = "OCSPResponder"
)

// LedgerOrigin says where a signed certificate was requested.
type LedgerOrigin struct {
	// Kind is CertificateRequest or CertificateSigningRequest, or
	// OCSPResponder for the issuer's delegated OCSP responder certificate.
	// +kubebuilder:validation:Enum=CertificateRequest;CertificateSigningRequest;OCSPResponder
	Kind string `json:"kind"`
	// Namespace of the CertificateRequest; empty for a Kubernetes CSR.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// Name of the request.
	Name string `json:"name"`
	// UID of the request: a request is signed at most once.
	UID string `json:"uid"`
	// Certificate is the cert-manager Certificate the request belongs to,
	// when it has one.
	// +optional
	Certificate string `json:"certificate,omitempty"`
}

// IssuedCertificateStatus holds the certificate's revocation state.
type IssuedCertificateStatus struct {
	// Revocation is set once the certificate is revoked. Revocation is
	// permanent.
	// +optional
	Revocation *RevocationRecord `json:"revocation,omitempty"`
}

// RevocationRecord says when, why and through which QuillRevocation (or
// automatic rule) a certificate was revoked.
type RevocationRecord struct {
	// +required
	Reason RevocationReason `json:"reason"`
	// +required
	RevokedAt metav1.Time `json:"revokedAt"`
	// By names what revoked the certificate: "QuillRevocation <ns>/<name>",
	// "certificate-deleted" or "superseded".
	// +required
	By string `json:"by"`
}

// IssuedCertificate is one entry of an issuer's issuance ledger: every
// certificate Quill signs is recorded here before it is returned, in the
// issuer's namespace (the cluster resource namespace for a
// QuillClusterIssuer). Its name is the issuer kind's short name, the
// issuer's name and the serial number. Records outlive their requests and
// Certificates; only an administrator deletes them.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=quill,shortName=qcert
// +kubebuilder:printcolumn:name="Issuer",type=string,JSONPath=`.spec.issuerRef.name`
// +kubebuilder:printcolumn:name="Serial",type=string,JSONPath=`.spec.serialNumber`
// +kubebuilder:printcolumn:name="Subject",type=string,JSONPath=`.spec.subject`
// +kubebuilder:printcolumn:name="Not After",type=string,JSONPath=`.spec.notAfter`
// +kubebuilder:printcolumn:name="Revoked",type=string,JSONPath=`.status.revocation.reason`
// +kubebuilder:printcolumn:name="Origin",type=string,priority=1,JSONPath=`.spec.origin.name`
// +kubebuilder:printcolumn:name="Requester",type=string,priority=1,JSONPath=`.spec.requester`
type IssuedCertificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   IssuedCertificateSpec   `json:"spec"`
	Status IssuedCertificateStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// IssuedCertificateList is a list of ledger entries.
type IssuedCertificateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IssuedCertificate `json:"items"`
}

func init() {
	SchemeBuilder.Register(&IssuedCertificate{}, &IssuedCertificateList{})
}
