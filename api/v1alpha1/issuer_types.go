package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IssuerSpec is the desired state shared by QuillIssuer and
// QuillClusterIssuer: which CA signs, with which issuance defaults and
// limits, and which URLs the issued certificates point at.
type IssuerSpec struct {
	// CA says where the signing CA certificate and key come from.
	// +required
	CA CASource `json:"ca"`

	// Issuance sets default and maximum certificate lifetimes and the RSA
	// signature scheme.
	// +optional
	Issuance IssuancePolicy `json:"issuance,omitempty"`

	// CRLDistributionPoints are embedded in every certificate this issuer
	// signs, as the CRL distribution points extension.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:Pattern=`^(http|https|ldap)://`
	CRLDistributionPoints []string `json:"crlDistributionPoints,omitempty"`

	// OCSPServers are embedded in every certificate this issuer signs, in
	// the authority information access extension.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:Pattern=`^https?://`
	OCSPServers []string `json:"ocspServers,omitempty"`

	// IssuingCertificateURLs are embedded in every certificate this issuer
	// signs, in the authority information access extension (CA Issuers).
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:Pattern=`^https?://`
	IssuingCertificateURLs []string `json:"issuingCertificateURLs,omitempty"`

	// TrustBundle configures the ConfigMap in which the issuer publishes
	// the CA certificates that workloads should trust. Every issuer
	// publishes one; this only changes its name and contents.
	// +optional
	TrustBundle *TrustBundle `json:"trustBundle,omitempty"`
}

// CASource names exactly one origin of the signing CA.
//
// The Secrets named here are read from the issuer's own namespace for a
// QuillIssuer, and from the controller's cluster resource namespace
// (--cluster-resource-namespace) for a QuillClusterIssuer.
//
// +kubebuilder:validation:XValidation:rule="(has(self.secretRef) ? 1 : 0) + (has(self.bootstrap) ? 1 : 0) + (has(self.pkcs11) ? 1 : 0) == 1",message="spec.ca must set exactly one of secretRef, bootstrap or pkcs11"
type CASource struct {
	// SecretRef names a Secret holding the CA in cert-manager's layout:
	// tls.crt (the CA certificate followed by its intermediates), tls.key
	// (its private key) and optionally ca.crt (the root). A Secret that a
	// cert-manager Certificate with isCA wrote can be used as it is.
	// +optional
	SecretRef *SecretReference `json:"secretRef,omitempty"`

	// Bootstrap makes Quill create a self-signed root CA once and keep it in
	// the named Secret. An existing Secret is never overwritten and its key
	// is never regenerated: delete the Secret to start a new CA.
	// +optional
	Bootstrap *BootstrapCA `json:"bootstrap,omitempty"`

	// PKCS11 signs with a key held in an HSM reached through PKCS#11; the
	// key never leaves it.
	// +optional
	PKCS11 *PKCS11CA `json:"pkcs11,omitempty"`
}

// PKCS11CA locates a CA key on a PKCS#11 token and the CA certificate that
// goes with it.
//
// +kubebuilder:validation:XValidation:rule="(has(self.tokenLabel) ? 1 : 0) + (has(self.tokenSerial) ? 1 : 0) == 1",message="pkcs11 needs exactly one of tokenLabel or tokenSerial"
// +kubebuilder:validation:XValidation:rule="has(self.keyLabel) || has(self.keyID)",message="pkcs11 needs keyLabel, keyID or both"
// +kubebuilder:validation:XValidation:rule="(has(self.certificateSecretRef) ? 1 : 0) + (has(self.certificateLabel) ? 1 : 0) == 1",message="pkcs11 needs exactly one of certificateSecretRef or certificateLabel"
// +kubebuilder:validation:XValidation:rule="!has(self.issuedBy) || has(self.certificateSecretRef)",message="pkcs11.issuedBy needs certificateSecretRef, where the issued chain is kept"
type PKCS11CA struct {
	// Module names a PKCS#11 library in the controller's allow-list
	// (--pkcs11-module name=path). It is a name, never a path: whoever may
	// create an issuer must not choose which library the controller loads.
	// +required
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9][-a-zA-Z0-9_.]{0,62}$`
	Module string `json:"module"`

	// TokenLabel selects the token by its label. Slot IDs are never used:
	// they change when tokens are added or re-initialised.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=32
	TokenLabel string `json:"tokenLabel,omitempty"`

	// TokenSerial selects the token by its serial number.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=16
	TokenSerial string `json:"tokenSerial,omitempty"`

	// KeyLabel is the private key's CKA_LABEL.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	KeyLabel string `json:"keyLabel,omitempty"`

	// KeyID is the private key's CKA_ID, in hex.
	// +optional
	// +kubebuilder:validation:Pattern=`^([0-9a-fA-F]{2}){1,64}$`
	KeyID string `json:"keyID,omitempty"`

	// PINSecretRef names the Secret key holding the user PIN, read under the
	// same namespace rules as every other Secret of this issuer. The PIN is
	// never logged or shown in status or events. A wrong PIN is not retried
	// until this Secret changes: HSMs lock a PIN after a few failures.
	// +required
	PINSecretRef SecretKeySelector `json:"pinSecretRef"`

	// CertificateSecretRef names a Secret with the CA certificate: tls.crt
	// (the CA certificate followed by its chain) and optionally ca.crt (the
	// root). A tls.key in it is ignored.
	// +optional
	CertificateSecretRef *SecretReference `json:"certificateSecretRef,omitempty"`

	// CertificateLabel reads the CA certificate from the certificate object
	// stored on the token with that CKA_LABEL; it must be self-signed (a
	// root), since the token holds no chain.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	CertificateLabel string `json:"certificateLabel,omitempty"`

	// IssuedBy makes Quill obtain the CA certificate of the HSM key from a
	// parent issuer: it signs a CSR with the key, submits it to the parent
	// as a cert-manager CertificateRequest, keeps the issued chain in
	// certificateSecretRef, and renews it before it expires. The key never
	// leaves the HSM.
	// +optional
	IssuedBy *ParentIssuer `json:"issuedBy,omitempty"`
}

// ParentIssuer is the issuer that signs an HSM-backed intermediate CA, and
// what to ask it for.
//
// +kubebuilder:validation:XValidation:rule="!has(self.duration) || !has(self.renewBefore) || duration(self.renewBefore) < duration(self.duration)",message="issuedBy.renewBefore must be shorter than issuedBy.duration"
type ParentIssuer struct {
	// Name of the parent issuer.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Kind of the parent issuer: QuillIssuer (in the namespace the
	// intermediate's Secrets live in) or QuillClusterIssuer.
	// +optional
	// +kubebuilder:default=QuillClusterIssuer
	// +kubebuilder:validation:Enum=QuillIssuer;QuillClusterIssuer
	Kind string `json:"kind,omitempty"`
	// Subject of the intermediate CA certificate.
	// +required
	Subject Subject `json:"subject"`
	// Duration asked of the parent; the parent may shorten it to its own
	// expiry.
	// +optional
	// +kubebuilder:default="8760h"
	Duration *metav1.Duration `json:"duration,omitempty"`
	// RenewBefore: a new certificate is requested when the current one has
	// less than this left. Defaults to a third of its lifetime.
	// +optional
	RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`
}

// SecretKeySelector names one key of a Secret.
type SecretKeySelector struct {
	// Name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`
	// Key within the Secret; defaults to "pin".
	// +optional
	// +kubebuilder:default=pin
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// SecretReference names a Secret in the namespace the issuer kind implies.
type SecretReference struct {
	// Name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`
}

// BootstrapCA describes the self-signed root CA Quill creates once.
//
// +kubebuilder:validation:XValidation:rule="!has(self.validity) || duration(self.validity) >= duration('24h')",message="bootstrap.validity must be at least 24h"
type BootstrapCA struct {
	// SecretName is where the generated CA is kept (tls.crt, tls.key, ca.crt).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	SecretName string `json:"secretName"`

	// Subject of the root CA certificate.
	// +required
	Subject Subject `json:"subject"`

	// KeyAlgorithm of the root CA key.
	// +optional
	// +kubebuilder:default=ECDSA-P256
	KeyAlgorithm KeyAlgorithm `json:"keyAlgorithm,omitempty"`

	// Validity of the root CA certificate, e.g. 87600h for ten years.
	// +optional
	// +kubebuilder:default="87600h"
	Validity *metav1.Duration `json:"validity,omitempty"`
}

// Subject is an X.509 distinguished name.
//
// +kubebuilder:validation:XValidation:rule="has(self.commonName) && size(self.commonName) > 0 || has(self.organizations) && size(self.organizations) > 0",message="subject needs a commonName or at least one organization"
type Subject struct {
	// CommonName of the subject.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	CommonName string `json:"commonName,omitempty"`
	// Organizations of the subject (O).
	// +optional
	Organizations []string `json:"organizations,omitempty"`
	// OrganizationalUnits of the subject (OU).
	// +optional
	OrganizationalUnits []string `json:"organizationalUnits,omitempty"`
	// Countries of the subject (C).
	// +optional
	Countries []string `json:"countries,omitempty"`
}

// KeyAlgorithm names a CA key type and size.
// +kubebuilder:validation:Enum=ECDSA-P256;ECDSA-P384;ECDSA-P521;RSA-2048;RSA-3072;RSA-4096;Ed25519;ML-DSA-44;ML-DSA-65;ML-DSA-87
type KeyAlgorithm string

// IssuancePolicy holds per-issuer issuance defaults and limits.
//
// +kubebuilder:validation:XValidation:rule="!has(self.defaultDuration) || !has(self.maxDuration) || duration(self.defaultDuration) <= duration(self.maxDuration)",message="issuance.defaultDuration must not exceed issuance.maxDuration"
type IssuancePolicy struct {
	// DefaultDuration applies when a request does not ask for a duration.
	// Defaults to 2160h (90 days).
	// +optional
	DefaultDuration *metav1.Duration `json:"defaultDuration,omitempty"`

	// MaxDuration is the longest lifetime this issuer signs; a request asking
	// for more is refused rather than shortened. Unset means no limit other
	// than the CA's own expiry (every certificate is clamped to it).
	// +optional
	MaxDuration *metav1.Duration `json:"maxDuration,omitempty"`

	// RSASignatureScheme is used when the CA key is RSA: PKCS1v15
	// (default, widest compatibility) or PSS.
	// +optional
	// +kubebuilder:validation:Enum=PKCS1v15;PSS
	RSASignatureScheme string `json:"rsaSignatureScheme,omitempty"`
}

// RSA signature schemes for IssuancePolicy.RSASignatureScheme.
const (
	RSASignatureSchemePKCS1v15 = "PKCS1v15"
	RSASignatureSchemePSS      = "PSS"
)

// IssuerStatus is the observed state of an issuer.
type IssuerStatus struct {
	// Conditions: Ready says whether the issuer can sign, with
	// observedGeneration; requests wait while it is not True. CAValid gives
	// the precise reason when the CA cannot be used.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// CA summarises the signing CA certificate last checked.
	// +optional
	CA *CASummary `json:"ca,omitempty"`
}

// CASummary describes the signing CA certificate.
type CASummary struct {
	// Subject of the CA certificate (RFC 4514).
	// +optional
	Subject string `json:"subject,omitempty"`
	// NotAfter is when the CA certificate expires.
	// +optional
	NotAfter *metav1.Time `json:"notAfter,omitempty"`
	// KeyAlgorithm of the CA key, e.g. ECDSA-P256.
	// +optional
	KeyAlgorithm string `json:"keyAlgorithm,omitempty"`
	// SHA256Fingerprint of the CA certificate, colon-separated hex.
	// +optional
	SHA256Fingerprint string `json:"sha256Fingerprint,omitempty"`
}

// ConditionCAValid is the issuer condition that says whether its CA can
// sign, with a precise reason: ReasonValid, or one of the reasons below.
// Ready (written by the issuer-lib reconciler) follows it; its message
// starts with the same reason.
const ConditionCAValid = "CAValid"

// Reasons of the CAValid condition. Requests wait (Pending) while the
// issuer's CA is not valid.
const (
	// ReasonValid: the CA can sign.
	ReasonValid = "Valid"
	// ReasonSecretNotFound: the referenced Secret does not exist.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonSecretInvalid: the Secret lacks tls.crt or tls.key, or they do
	// not parse.
	ReasonSecretInvalid = "SecretInvalid"
	// ReasonKeyMismatch: the key does not belong to the CA certificate.
	ReasonKeyMismatch = "KeyMismatch"
	// ReasonNotACA: the certificate is not a CA allowed to sign certificates.
	ReasonNotACA = "NotACA"
	// ReasonCAExpired: the CA certificate is outside its validity period.
	ReasonCAExpired = "CAExpired"
	// ReasonInvalidConfig: the issuance settings cannot be used, e.g. a URL
	// that is not absolute.
	ReasonInvalidConfig = "InvalidConfig"
	// ReasonModuleNotAllowed: spec.ca.pkcs11.module is not in the
	// controller's allow-list, or the controller cannot load PKCS#11
	// libraries (a build without cgo).
	ReasonModuleNotAllowed = "ModuleNotAllowed"
	// ReasonPINIncorrect: the HSM refused the PIN. Quill does not try it
	// again until the PIN Secret changes.
	ReasonPINIncorrect = "PINIncorrect"
	// ReasonHSMUnavailable: the token, the key or the library cannot be
	// reached; Quill keeps retrying with backoff.
	ReasonHSMUnavailable = "HSMUnavailable"
	// ReasonAwaitingCertificate: the HSM key's CA certificate has been
	// requested from the parent issuer (spec.ca.pkcs11.issuedBy) and is not
	// issued yet.
	ReasonAwaitingCertificate = "AwaitingCertificate"
)

// Reasons Quill writes on a request it refuses.
const (
	// ReasonInvalidRequest: the CSR or the requested properties cannot be
	// signed as asked; the request must change.
	ReasonInvalidRequest = "InvalidRequest"
)

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=quill;cert-manager,shortName=qi
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="CAValid")].reason`
// +kubebuilder:printcolumn:name="CA",type=string,JSONPath=`.status.ca.subject`
// +kubebuilder:printcolumn:name="CA Expiry",type=date,JSONPath=`.status.ca.notAfter`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// QuillIssuer signs cert-manager CertificateRequests and Kubernetes
// CertificateSigningRequests in its own namespace; it reads Secrets only from
// that namespace.
type QuillIssuer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec IssuerSpec `json:"spec"`
	// +optional
	Status IssuerStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// QuillIssuerList is a list of QuillIssuer.
type QuillIssuerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []QuillIssuer `json:"items"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=quill;cert-manager,shortName=qci
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="CAValid")].reason`
// +kubebuilder:printcolumn:name="CA",type=string,JSONPath=`.status.ca.subject`
// +kubebuilder:printcolumn:name="CA Expiry",type=date,JSONPath=`.status.ca.notAfter`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// QuillClusterIssuer signs requests from every namespace; it reads Secrets
// only from the controller's cluster resource namespace.
type QuillClusterIssuer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec IssuerSpec `json:"spec"`
	// +optional
	Status IssuerStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// QuillClusterIssuerList is a list of QuillClusterIssuer.
type QuillClusterIssuerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []QuillClusterIssuer `json:"items"`
}

func init() {
	SchemeBuilder.Register(&QuillIssuer{}, &QuillIssuerList{}, &QuillClusterIssuer{}, &QuillClusterIssuerList{})
}
