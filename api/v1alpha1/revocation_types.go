package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RevocationReason is an RFC 5280 CRLReason, by name. certificateHold and
// removeFromCRL are not offered: Quill's revocations are permanent.
// +kubebuilder:validation:Enum=unspecified;keyCompromise;cACompromise;affiliationChanged;superseded;cessationOfOperation;privilegeWithdrawn
type RevocationReason string

// The revocation reasons and their RFC 5280 codes.
const (
	ReasonUnspecified          RevocationReason = "unspecified"
	ReasonKeyCompromise        RevocationReason = "keyCompromise"
	ReasonCACompromise         RevocationReason = "cACompromise"
	ReasonAffiliationChanged   RevocationReason = "affiliationChanged"
	ReasonSuperseded           RevocationReason = "superseded"
	ReasonCessationOfOperation RevocationReason = "cessationOfOperation"
	ReasonPrivilegeWithdrawn   RevocationReason = "privilegeWithdrawn"
)

// RevocationReasonCodes maps each reason to its RFC 5280 CRLReason code.
var RevocationReasonCodes = map[RevocationReason]int{
	ReasonUnspecified:          0,
	ReasonKeyCompromise:        1,
	ReasonCACompromise:         2,
	ReasonAffiliationChanged:   3,
	ReasonSuperseded:           4,
	ReasonCessationOfOperation: 5,
	ReasonPrivilegeWithdrawn:   9,
}

// QuillRevocationSpec asks for certificates to be revoked. It names the
// issuer and exactly one of a serial number, a cert-manager Certificate or
// a Secret.
//
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a revocation cannot be changed; create another"
// +kubebuilder:validation:XValidation:rule="(has(self.serialNumber) ? 1 : 0) + (has(self.certificateName) ? 1 : 0) + (has(self.secretName) ? 1 : 0) == 1",message="set exactly one of serialNumber, certificateName or secretName"
type QuillRevocationSpec struct {
	// IssuerRef names the issuer whose certificates are revoked.
	// +required
	IssuerRef RevocationIssuerRef `json:"issuerRef"`

	// SerialNumber revokes one certificate by serial, in hex; colons and
	// upper case are accepted. A revocation in a namespace other than the
	// issuer's own revokes only certificates requested from that namespace.
	// +optional
	// +kubebuilder:validation:Pattern=`^([0-9a-fA-F]{2}:?)*[0-9a-fA-F]{1,2}$`
	// +kubebuilder:validation:MaxLength=64
	SerialNumber string `json:"serialNumber,omitempty"`

	// CertificateName revokes every unexpired certificate issued for the
	// named cert-manager Certificate in this namespace, including ones its
	// renewals superseded.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	CertificateName string `json:"certificateName,omitempty"`

	// SecretName revokes the certificate the named Secret in this namespace
	// holds (its tls.crt).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName,omitempty"`

	// Reason is the RFC 5280 reason published in the CRL and OCSP.
	// +optional
	// +kubebuilder:default=unspecified
	Reason RevocationReason `json:"reason,omitempty"`
}

// RevocationIssuerRef names a Quill issuer from a QuillRevocation.
type RevocationIssuerRef struct {
	// Name of the issuer; a QuillIssuer must be in the revocation's
	// namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// +optional
	// +kubebuilder:default=QuillIssuer
	// +kubebuilder:validation:Enum=QuillIssuer;QuillClusterIssuer
	Kind string `json:"kind,omitempty"`
}

// QuillRevocationStatus reports what was revoked.
type QuillRevocationStatus struct {
	// Conditions: Revoked is True once every matching certificate is
	// revoked in the ledger, False with a reason when nothing could be.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// RevokedSerialNumbers lists the serial numbers revoked (or found
	// already revoked) by this request.
	// +optional
	// +kubebuilder:validation:MaxItems=1000
	RevokedSerialNumbers []string `json:"revokedSerialNumbers,omitempty"`
}

// Condition type and reasons of a QuillRevocation.
const (
	ConditionRevoked = "Revoked"

	ReasonRevoked          = "Revoked"
	ReasonNotFound         = "NotFound"
	ReasonForbidden        = "Forbidden"
	ReasonIssuerNotFound   = "IssuerNotFound"
	ReasonInvalidSecret    = "InvalidSecret"
	ReasonRevocationFailed = "Failed"
	// ReasonNoRevocationAvailable refuses to revoke a short-lived
	// certificate signed with noRevAvail (RFC 9608): its CA promised
	// relying parties that no revocation information exists for it, so
	// none is published; it stops being trusted when it expires.
	ReasonNoRevocationAvailable = "NoRevocationAvailable"
)

// QuillRevocation revokes certificates of a Quill issuer. Creating one is
// the act of revocation, so RBAC on this resource is the right to revoke,
// separate from administering issuers. Deleting it does not un-revoke.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=quill,shortName=qrev
// +kubebuilder:printcolumn:name="Issuer",type=string,JSONPath=`.spec.issuerRef.name`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.spec.reason`
// +kubebuilder:printcolumn:name="Revoked",type=string,JSONPath=`.status.conditions[?(@.type=="Revoked")].status`
// +kubebuilder:printcolumn:name="Why",type=string,JSONPath=`.status.conditions[?(@.type=="Revoked")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type QuillRevocation struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   QuillRevocationSpec   `json:"spec"`
	Status QuillRevocationStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// QuillRevocationList is a list of QuillRevocations.
type QuillRevocationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []QuillRevocation `json:"items"`
}

func init() {
	SchemeBuilder.Register(&QuillRevocation{}, &QuillRevocationList{})
}
