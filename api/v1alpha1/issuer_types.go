package v1alpha1

import (
	"time"

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

	// Revocation configures the CRL, the OCSP responder and automatic
	// revocation for this issuer's certificates.
	// +optional
	Revocation RevocationPolicy `json:"revocation,omitempty"`

	// Ledger configures how long the issuer's ledger keeps entries of
	// expired certificates before moving them to the ledger archive.
	// +optional
	Ledger LedgerPolicy `json:"ledger,omitempty"`

	// TrustBundle configures the ConfigMap in which the issuer publishes
	// the CA certificates that workloads should trust. Every issuer
	// publishes one; this only changes its name and contents.
	// +optional
	TrustBundle *TrustBundle `json:"trustBundle,omitempty"`

	// State is Active (the issuer signs) or Disabled (it signs nothing:
	// it is not Ready and requests wait, while revocation information keeps
	// being served). Quill's admission policies (config/admission) allow
	// deleting an issuer only while it is Disabled, and only by another
	// user than the one who disabled it.
	// +optional
	// +kubebuilder:default=Active
	State IssuerState `json:"state,omitempty"`

	// Templates lists the certificate templates requesters may select with
	// the quill.dev/template annotation: built-in names (end-entity,
	// server-auth, client-auth, code-signing, ocsp-signing,
	// subordinate-ca-pathlen-0 … 3) or QuillTemplate names. When set, every
	// request must select one of them and fit it; unset, requests select
	// none and are signed with the usages they ask for.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +kubebuilder:validation:items:MaxLength=253
	Templates []string `json:"templates,omitempty"`

	// Policy restricts what this issuer signs. Unset, it signs every
	// request its CA and templates allow.
	// +optional
	Policy *RequestPolicy `json:"policy,omitempty"`
}

// IssuerState is the lifecycle state of an issuer's CA.
// +kubebuilder:validation:Enum=Active;Disabled
type IssuerState string

// Issuer states.
const (
	// StateActive: the issuer signs requests.
	StateActive IssuerState = "Active"
	// StateDisabled: the issuer signs nothing; it may be deleted, by a
	// different user than the one who disabled it.
	StateDisabled IssuerState = "Disabled"
)

// Annotations and labels of Quill's CA lifecycle, read by the admission
// policies in config/admission.
const (
	// AnnotationDisabledBy names the user who set spec.state to Disabled
	// (on an issuer) or the quill.dev/state annotation to Disabled (on a
	// CA key Secret). The admission policies accept it only when it equals
	// the requesting user, so it cannot be forged; the mutating policy
	// fills it in.
	AnnotationDisabledBy = "quill.dev/disabled-by"
	// AnnotationState on a CA key Secret is its lifecycle state, Active or
	// Disabled; the Secret can be deleted only while it is Disabled.
	AnnotationState = "quill.dev/state"
	// LabelCAKey marks a Secret holding a CA private key ("true"). Quill
	// sets it on the CA Secret of every issuer; once set it cannot be
	// removed, so the admission policies keep guarding the Secret.
	LabelCAKey = "quill.dev/ca-key"
	// AnnotationCAKeyOf on a CA key Secret names the issuer that uses it,
	// as Kind/name or Kind/namespace/name.
	AnnotationCAKeyOf = "quill.dev/ca-key-of"
)

// RequestPolicy restricts the requests an issuer signs. It is an
// allow-list: once a policy is set, DNS names, IP addresses, URIs and email
// addresses are refused unless the matching list allows them, and CA
// certificates are refused unless ca is set. The other rules restrict only
// when set. A refusal names the rule (its field path) that refused.
//
// Patterns may contain {namespace}, replaced by the requesting
// CertificateRequest's namespace, so that one cluster issuer gives each
// namespace only its own names. A Kubernetes CertificateSigningRequest has
// no namespace: patterns containing {namespace} never match it.
//
// +kubebuilder:validation:XValidation:rule="!has(self.minDuration) || !has(self.maxDuration) || duration(self.minDuration) <= duration(self.maxDuration)",message="policy.minDuration must not exceed policy.maxDuration"
type RequestPolicy struct {
	// DNSNames allowed in the subject alternative names. A pattern's label
	// "*" matches exactly one label; a leading "**" matches one or more
	// labels. A requested wildcard name ("*.team.svc") is allowed only by a
	// pattern with "*" or "**" at that place. Matching ignores case.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=atomic
	DNSNames []string `json:"dnsNames,omitempty"`

	// IPRanges (CIDR) that IP address SANs must fall in.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="policy.ipRanges must be CIDRs such as 10.0.0.0/8 or fd00::/8"
	// +listType=atomic
	IPRanges []string `json:"ipRanges,omitempty"`

	// URIs allowed as URI SANs, e.g. spiffe://cluster.local/ns/{namespace}/sa/*.
	// "*" matches any run of characters other than "/".
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=512
	// +listType=atomic
	URIs []string `json:"uris,omitempty"`

	// EmailAddresses allowed as email SANs, e.g. *@example.com. "*" matches
	// any run of characters other than "@". Matching ignores case.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=320
	// +listType=atomic
	EmailAddresses []string `json:"emailAddresses,omitempty"`

	// AllowedOtherNames lists the otherName SANs (cert-manager's
	// spec.otherNames) this issuer signs, by type-id, each with the values
	// allowed for it. An otherName whose type-id is not listed, or whose
	// value matches none of its patterns, is refused; with no entry (or no
	// policy at all) every otherName is refused. Only UTF8String values are
	// signed.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=typeID
	AllowedOtherNames []OtherNamePolicy `json:"allowedOtherNames,omitempty"`

	// CommonNames allowed in the subject besides the request's own allowed
	// SANs (a common name equal to one of them is always accepted). "*"
	// matches any run of characters. Unset: the common name must be one of
	// the request's SANs.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	// +listType=atomic
	CommonNames []string `json:"commonNames,omitempty"`

	// AllowedSubjectAttributes lists subject attribute types a request may carry
	// besides those policy judges or knows. Common names and emailAddress are
	// names, always judged one by one against commonNames and emailAddresses; O,
	// OU, C, ST, L, street, postalCode and serialNumber (a cert-manager subject's
	// fields) are always allowed. Any other attribute (UID, DC, title, a dotted
	// OID) is refused unless listed here: list only attributes no relying party
	// of this issuer reads as a name. Entries are names (any case) or dotted OIDs.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:items:Pattern=`^([A-Za-z][A-Za-z0-9-]*|[0-2](\.(0|[1-9][0-9]{0,8}))+)$`
	// +kubebuilder:validation:XValidation:rule="!self.exists(a, a.lowerAscii() in ['cn', 'commonname', 'emailaddress', '2.5.4.3', '1.2.840.113549.1.9.1'])",message="common names and emailAddress are judged by commonNames and emailAddresses and cannot be allow-listed"
	// +listType=set
	AllowedSubjectAttributes []string `json:"allowedSubjectAttributes,omitempty"`

	// Namespaces whose requests a cluster issuer signs, as names or
	// patterns ("team-*"). Unset: every namespace.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	// +listType=atomic
	Namespaces []string `json:"namespaces,omitempty"`

	// MinDuration and MaxDuration bound the requested lifetime (or the
	// issuer's default, when the request asks for none).
	// +optional
	MinDuration *metav1.Duration `json:"minDuration,omitempty"`
	// +optional
	MaxDuration *metav1.Duration `json:"maxDuration,omitempty"`

	// KeyAlgorithms allowed for the requester's key: families (RSA, ECDSA,
	// ML-DSA) or exact algorithms (ECDSA-P384, ML-DSA-65, Ed25519). Unset:
	// every algorithm Quill accepts.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=set
	KeyAlgorithms []PolicyKeyAlgorithm `json:"keyAlgorithms,omitempty"`

	// MinRSAKeySize is the smallest RSA modulus accepted, in bits (Quill
	// never accepts less than 2048).
	// +optional
	// +kubebuilder:validation:Minimum=2048
	// +kubebuilder:validation:Maximum=16384
	MinRSAKeySize int `json:"minRSAKeySize,omitempty"`

	// CA allows CA certificates (isCA: true), within its limits. Unset: CA
	// certificates are refused.
	// +optional
	CA *CAPolicy `json:"ca,omitempty"`

	// Subject fields every certificate must carry exactly: a request whose
	// subject has other values for a listed field, or none, is refused.
	// +optional
	Subject *FixedSubject `json:"subject,omitempty"`
}

// OtherNamePolicy allows otherName SANs of one type.
type OtherNamePolicy struct {
	// TypeID is the otherName's type-id as a dotted OID, such as
	// 1.3.6.1.4.1.311.20.2.3 (the Microsoft UPN).
	// +required
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[0-2](\.(0|[1-9][0-9]{0,8}))+$`
	TypeID string `json:"typeID"`

	// Values allowed for this type, as patterns: "*" matches any run of
	// characters other than "@", "{namespace}" is the request's namespace,
	// and matching ignores case (e.g. "*@{namespace}.example.com").
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=atomic
	Values []string `json:"values"`
}

// PolicyKeyAlgorithm is a key algorithm family or exact algorithm.
// +kubebuilder:validation:Enum=RSA;ECDSA;ECDSA-P256;ECDSA-P384;ECDSA-P521;Ed25519;ML-DSA;ML-DSA-44;ML-DSA-65;ML-DSA-87
type PolicyKeyAlgorithm string

// CAPolicy limits the CA certificates an issuer signs.
type CAPolicy struct {
	// MaxPathLen is the largest pathLenConstraint allowed. A request that
	// asks for none gets this one encoded (cert-manager cannot ask for a
	// path length); one asking for more is refused. Unset: only the CA
	// chain's own constraints apply.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=8
	MaxPathLen *int `json:"maxPathLen,omitempty"`

	// NameConstraints are written, critical, into every CA certificate
	// this issuer signs, so the subordinate CA can only certify these
	// names, whatever it is asked.
	// +optional
	NameConstraints *NameConstraints `json:"nameConstraints,omitempty"`
}

// NameConstraints is an X.509 name constraints extension (RFC 5280, 4.2.1.10).
//
// +kubebuilder:validation:XValidation:rule="has(self.permitted) || has(self.excluded)",message="nameConstraints needs permitted or excluded"
type NameConstraints struct {
	// Permitted subtrees.
	// +optional
	Permitted *NameConstraintItems `json:"permitted,omitempty"`
	// Excluded subtrees.
	// +optional
	Excluded *NameConstraintItems `json:"excluded,omitempty"`
}

// NameConstraintItems are the subtrees of one side of a name constraint.
type NameConstraintItems struct {
	// DNSDomains, e.g. example.com (the domain and every name below it) or
	// .example.com (only names below it).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=atomic
	DNSDomains []string `json:"dnsDomains,omitempty"`
	// IPRanges in CIDR notation.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="nameConstraints ipRanges must be CIDRs"
	// +listType=atomic
	IPRanges []string `json:"ipRanges,omitempty"`
	// EmailAddresses: a mailbox, a host (example.com) or a domain (.example.com).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=320
	// +listType=atomic
	EmailAddresses []string `json:"emailAddresses,omitempty"`
	// URIDomains: hosts of URIs, as DNS domains.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=atomic
	URIDomains []string `json:"uriDomains,omitempty"`
}

// FixedSubject lists subject fields whose values are fixed by policy.
type FixedSubject struct {
	// Organizations (O).
	// +optional
	// +listType=atomic
	Organizations []string `json:"organizations,omitempty"`
	// OrganizationalUnits (OU).
	// +optional
	// +listType=atomic
	OrganizationalUnits []string `json:"organizationalUnits,omitempty"`
	// Countries (C).
	// +optional
	// +listType=atomic
	Countries []string `json:"countries,omitempty"`
	// Provinces (ST).
	// +optional
	// +listType=atomic
	Provinces []string `json:"provinces,omitempty"`
	// Localities (L).
	// +optional
	// +listType=atomic
	Localities []string `json:"localities,omitempty"`
}

// RevocationPolicy configures how an issuer publishes revocation and when
// Quill revokes on its own.
type RevocationPolicy struct {
	// RevokeOnCertificateDeletion revokes (cessationOfOperation) every
	// unexpired certificate issued for a cert-manager Certificate when that
	// Certificate is deleted.
	// +optional
	RevokeOnCertificateDeletion bool `json:"revokeOnCertificateDeletion,omitempty"`

	// RevokeSupersededAfter revokes (superseded) a certificate this long
	// after a newer certificate was issued for the same cert-manager
	// Certificate, giving workloads time to pick up the new one. Unset:
	// superseded certificates stay valid until they expire.
	// +optional
	RevokeSupersededAfter *metav1.Duration `json:"revokeSupersededAfter,omitempty"`

	// CRL configures the certificate revocation list.
	// +optional
	CRL CRLPolicy `json:"crl,omitempty"`

	// OCSP configures the OCSP responder.
	// +optional
	OCSP OCSPPolicy `json:"ocsp,omitempty"`

	// ShortLived, when set, signs certificates whose lifetime is at most
	// shortLived.maxDuration as short-lived certificates (RFC 9608): with
	// the noRevAvail extension and without CRL distribution points or an
	// OCSP pointer. They are recorded in the ledger for audit, cost the
	// CRL and the OCSP responder nothing, and cannot be revoked: they
	// simply expire. Longer certificates are signed as before.
	// +optional
	ShortLived *ShortLivedPolicy `json:"shortLived,omitempty"`
}

// LedgerPolicy configures an issuer's ledger retention. Entries leave the
// live ledger only into the archive (the controller's --ledger-archive-dir):
// without an archive they stay live.
// +kubebuilder:validation:XValidation:rule="!has(self.retainExpiredFor) || duration(self.retainExpiredFor) >= duration('1h')",message="ledger.retainExpiredFor must be at least 1h"
type LedgerPolicy struct {
	// RetainExpiredFor is the safety margin: how long after its notAfter a
	// certificate's entry stays in the live ledger, where OCSP, the CRL,
	// revocation and crash recall read it, before it is appended to the
	// compressed archive and removed from the cluster. `quillctl audit
	// report` reads both. Default 72h.
	// +optional
	RetainExpiredFor *metav1.Duration `json:"retainExpiredFor,omitempty"`
}

// DefaultRetainExpiredFor is the default of spec.ledger.retainExpiredFor.
const DefaultRetainExpiredFor = 72 * time.Hour

// ShortLivedPolicy bounds which certificates an issuer signs without
// revocation information (RFC 9608).
// +kubebuilder:validation:XValidation:rule="duration(self.maxDuration) <= duration('168h')",message="shortLived.maxDuration must be at most 168h: the CA/Browser Forum's bound for certificates that need no revocation, since a compromised key then stays usable until expiry"
type ShortLivedPolicy struct {
	// MaxDuration is the longest lifetime (notAfter - notBefore) signed as
	// short-lived, at most 168h (7 days).
	// +required
	MaxDuration metav1.Duration `json:"maxDuration"`
}

// CRLPolicy configures an issuer's CRL.
// +kubebuilder:validation:XValidation:rule="!has(self.validity) || duration(self.validity) >= duration('1h')",message="crl.validity must be at least 1h"
type CRLPolicy struct {
	// Validity is the time between a CRL's thisUpdate and nextUpdate. A new
	// CRL is signed when revocations change and once half of this has
	// passed. Default 24h.
	// +optional
	Validity *metav1.Duration `json:"validity,omitempty"`

	// BatchDelay gathers revocations that arrive close together into one
	// new CRL. Default 5s.
	// +optional
	BatchDelay *metav1.Duration `json:"batchDelay,omitempty"`
}

// OCSPResponderKind says who signs OCSP responses.
// +kubebuilder:validation:Enum=CA;Delegated
type OCSPResponderKind string

// The OCSP responder kinds.
const (
	// OCSPResponderCA signs responses with the CA key.
	OCSPResponderCA OCSPResponderKind = "CA"
	// OCSPResponderDelegated signs responses with a short-lived responder
	// certificate (id-pkix-ocsp-nocheck) that Quill issues and rotates.
	OCSPResponderDelegated OCSPResponderKind = "Delegated"
)

// OCSPPolicy configures an issuer's OCSP responder.
// +kubebuilder:validation:XValidation:rule="!has(self.responseValidity) || duration(self.responseValidity) >= duration('1m')",message="ocsp.responseValidity must be at least 1m"
type OCSPPolicy struct {
	// Responder chooses who signs responses. Default: Delegated for a CA
	// key in an HSM (so answering OCSP does not load the HSM), CA otherwise.
	// +optional
	Responder OCSPResponderKind `json:"responder,omitempty"`

	// ResponseValidity is the time between a response's thisUpdate and
	// nextUpdate, and how long it is cached. Default 1h.
	// +optional
	ResponseValidity *metav1.Duration `json:"responseValidity,omitempty"`

	// MustStaple adds the TLS feature extension (OCSP Must-Staple, RFC
	// 7633) to every certificate this issuer signs.
	// +optional
	MustStaple bool `json:"mustStaple,omitempty"`

	// MaxNonceSignaturesPerSecond bounds the fresh signatures each replica
	// makes for OCSP requests carrying a nonce (RFC 8954); above it such
	// requests get the cached answer without the nonce. Lower it for slow
	// keys (an HSM without a delegated responder, ML-DSA). Default 100.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	MaxNonceSignaturesPerSecond *int32 `json:"maxNonceSignaturesPerSecond,omitempty"`
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

	// Revocation describes the issuer's ledger, CRL and OCSP endpoints.
	// +optional
	Revocation *RevocationStatus `json:"revocation,omitempty"`

	// State is the spec.state the controller last acted on; a change is
	// logged as a CA state change for audit.
	// +optional
	State IssuerState `json:"state,omitempty"`

	// Inventory counts the issuer's unexpired certificates by algorithm,
	// from its issuance ledger, for crypto-agility planning.
	// +optional
	Inventory *InventoryStatus `json:"inventory,omitempty"`

	// PINRefusal records that the HSM token of spec.ca.pkcs11 refused the
	// PIN its PIN Secret holds. Every controller process reads it before
	// it opens a session on that token, for every issuer using the same
	// token and PIN Secret, and presents that PIN again only once the PIN
	// Secret changes: real HSMs lock a PIN after a few failures. The
	// controller clears it when the token accepts a PIN.
	// +optional
	PINRefusal *PINRefusal `json:"pinRefusal,omitempty"`
}

// PINRefusal names a PIN a PKCS#11 token refused by the version of the
// Secret that held it. It holds nothing derived from the PIN, since more
// people may read an issuer's status than its PIN Secret.
type PINRefusal struct {
	// Token is the token that refused it: a pkcs11: URI with the module's
	// allow-list name and the token's label or serial, without a key
	// (pkcs11:token=Root%20CA?module-name=hsm).
	// +required
	Token string `json:"token"`
	// PINSecretName and PINSecretKey locate the PIN: a Secret in the
	// issuer's namespace (the cluster resource namespace for a
	// QuillClusterIssuer) and its key.
	// +required
	PINSecretName string `json:"pinSecretName"`
	// +required
	PINSecretKey string `json:"pinSecretKey"`
	// PINSecretUID and PINSecretResourceVersion identify the version of
	// the PIN Secret whose PIN the token refused; any other version may
	// hold another PIN and is presented once.
	// +required
	PINSecretUID string `json:"pinSecretUID"`
	// +required
	PINSecretResourceVersion string `json:"pinSecretResourceVersion"`
	// RefusedAt is when the token refused the PIN.
	// +required
	RefusedAt metav1.Time `json:"refusedAt"`
}

// InventoryStatus is an issuer's crypto-agility inventory: its unexpired
// certificates (those in the ledger whose notAfter has not passed) by key
// and signature algorithm. The controller refreshes it when certificates
// are issued, revoked or expire, and at least every few minutes.
//
// A certificate is quantum-vulnerable when its public key is classical
// (RSA, ECDSA, Ed25519: a quantum computer recovers the private key) or
// when it is signed with a classical signature (the CA's key falls the
// same way, and certificates like it can be forged). Only an ML-DSA (or
// SLH-DSA) key signed with ML-DSA (or SLH-DSA) is not. The CA certificate
// itself is described in status.ca.
type InventoryStatus struct {
	// UnexpiredCertificates counts the unexpired certificates, revoked ones
	// included: relying parties that do not check revocation still accept
	// them.
	UnexpiredCertificates int `json:"unexpiredCertificates"`
	// QuantumVulnerable counts those that are quantum-vulnerable.
	QuantumVulnerable int `json:"quantumVulnerable"`
	// Revoked counts those that are revoked; they need no reissuing.
	Revoked int `json:"revoked"`
	// KeyAlgorithms breaks the counts down by the certificates' public key
	// algorithm (ECDSA-P256, RSA-2048, ML-DSA-65, …).
	// +optional
	// +listType=map
	// +listMapKey=algorithm
	KeyAlgorithms []AlgorithmCount `json:"keyAlgorithms,omitempty"`
	// SignatureAlgorithms breaks the counts down by the algorithm the CA
	// signed them with (ECDSA-SHA256, SHA256-RSA, ML-DSA-65, …): more than
	// one while certificates from a replaced CA are still unexpired.
	// +optional
	// +listType=map
	// +listMapKey=algorithm
	SignatureAlgorithms []AlgorithmCount `json:"signatureAlgorithms,omitempty"`
	// NextExpiry is when the earliest of them expires.
	// +optional
	NextExpiry *metav1.Time `json:"nextExpiry,omitempty"`
}

// AlgorithmCount is the part of an issuer's inventory that uses one
// algorithm.
type AlgorithmCount struct {
	// Algorithm is the key or signature algorithm's name.
	// +required
	Algorithm string `json:"algorithm"`
	// Certificates counts the unexpired certificates using it.
	// +required
	Certificates int `json:"certificates"`
	// QuantumVulnerable counts those of them that are quantum-vulnerable.
	// +required
	QuantumVulnerable int `json:"quantumVulnerable"`
	// Revoked counts those of them that are revoked.
	// +optional
	Revoked int `json:"revoked,omitempty"`
}

// RevocationStatus describes an issuer's published revocation state.
type RevocationStatus struct {
	// RevokedCertificates is the number of entries on the current CRL:
	// revoked certificates that have not expired.
	RevokedCertificates int `json:"revokedCertificates"`
	// Message explains why no CRL is published, when none can be.
	// +optional
	Message string `json:"message,omitempty"`
	// CRLNumber of the current CRL.
	// +optional
	CRLNumber string `json:"crlNumber,omitempty"`
	// +optional
	CRLThisUpdate *metav1.Time `json:"crlThisUpdate,omitempty"`
	// +optional
	CRLNextUpdate *metav1.Time `json:"crlNextUpdate,omitempty"`
	// CRLConfigMap is the ConfigMap in the issuer's namespace (the cluster
	// resource namespace for a QuillClusterIssuer) that holds the CRL as
	// crl.pem and crl.der.
	// +optional
	CRLConfigMap string `json:"crlConfigMap,omitempty"`
	// CRLURL and OCSPURL are Quill's endpoints for this issuer, when the
	// controller knows its public base URL (--revocation-base-url).
	// +optional
	CRLURL string `json:"crlURL,omitempty"`
	// +optional
	OCSPURL string `json:"ocspURL,omitempty"`
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
	// SignatureAlgorithm the CA signs certificates with, e.g. ECDSA-SHA256,
	// SHA256-RSAPSS or ML-DSA-65 (pure ML-DSA, RFC 9881).
	// +optional
	SignatureAlgorithm string `json:"signatureAlgorithm,omitempty"`
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

// ReasonDisabled is the Ready message's reason while spec.state is
// Disabled: the issuer signs nothing and requests wait.
const ReasonDisabled = "Disabled"

// Reasons Quill writes on a request it refuses.
const (
	// ReasonInvalidRequest: the CSR or the requested properties cannot be
	// signed as asked; the request must change.
	ReasonInvalidRequest = "InvalidRequest"
	// ReasonPolicyDenied: the request does not fit the issuer's policy or
	// the selected template; the message names the rule.
	ReasonPolicyDenied = "PolicyDenied"
)

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=quill;cert-manager,shortName=qi
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="CAValid")].reason`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.spec.state`
// +kubebuilder:printcolumn:name="CA",type=string,JSONPath=`.status.ca.subject`
// +kubebuilder:printcolumn:name="CA Expiry",type=string,JSONPath=`.status.ca.notAfter`
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
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.spec.state`
// +kubebuilder:printcolumn:name="CA",type=string,JSONPath=`.status.ca.subject`
// +kubebuilder:printcolumn:name="CA Expiry",type=string,JSONPath=`.status.ca.notAfter`
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
