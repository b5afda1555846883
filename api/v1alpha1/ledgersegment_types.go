package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Ledger segment stages.
const (
	// LedgerStageJournal is a segment written while signing: one group
	// commit's entries and revocations, each issued entry with its
	// certificate, so that a request retried after a crash receives the
	// certificate already signed for it. The leader seals journals into
	// sealed segments within minutes.
	LedgerStageJournal = "Journal"
	// LedgerStageSealed is a compacted segment of many entries, which keeps
	// a certificate only while its request may still need it.
	LedgerStageSealed = "Sealed"
)

// LedgerFormatGzipJSONLines is the format of spec.data: gzip-compressed
// JSON lines, one ledger entry or revocation per line (pkg/ledger.Entry).
const LedgerFormatGzipJSONLines = "gzip+jsonl/v1"

// LedgerSegmentSpec holds part of an issuer's issuance ledger: many
// entries, compressed into one value, so that a certificate costs etcd,
// the API server and every watcher a hundred-odd bytes instead of an
// object of its own. A segment is written once and never changes; it is
// deleted only when its entries have moved into a sealed segment or, past
// the issuer's retention, into the ledger archive.
//
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a ledger segment is immutable"
type LedgerSegmentSpec struct {
	// IssuerRef names the issuer whose ledger this is part of.
	// +required
	IssuerRef LedgerIssuerRef `json:"issuerRef"`

	// Stage is Journal or Sealed.
	// +required
	// +kubebuilder:validation:Enum=Journal;Sealed
	Stage string `json:"stage"`

	// Entries counts the issued certificates in data, Revocations the
	// revocation lines.
	// +optional
	Entries int32 `json:"entries,omitempty"`
	// +optional
	Revocations int32 `json:"revocations,omitempty"`
	// Certificates counts the entries that still carry their certificate.
	// +optional
	Certificates int32 `json:"certificates,omitempty"`

	// FirstIssuedAt and LastIssuedAt bound the signing times of the
	// entries; unset for a segment of revocations only.
	// +optional
	FirstIssuedAt *metav1.MicroTime `json:"firstIssuedAt,omitempty"`
	// +optional
	LastIssuedAt *metav1.MicroTime `json:"lastIssuedAt,omitempty"`
	// ExpiresAfter is the latest notAfter of the certificates the segment
	// names (issued or revoked): once it is further in the past than the
	// issuer's retention, the whole segment may be archived.
	// +required
	ExpiresAfter metav1.Time `json:"expiresAfter"`

	// Format of data; gzip+jsonl/v1.
	// +required
	// +kubebuilder:validation:Enum="gzip+jsonl/v1"
	Format string `json:"format"`
	// Data holds the entries, encoded as format says.
	// +required
	// +kubebuilder:validation:MaxLength=1048576
	Data []byte `json:"data"`
}

// LedgerSegment is part of an issuer's issuance ledger, in the issuer's
// home namespace (the cluster resource namespace for a
// QuillClusterIssuer). `quillctl ledger` reads it.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,categories=quill,shortName=qseg
// +kubebuilder:printcolumn:name="Issuer",type=string,JSONPath=`.spec.issuerRef.name`
// +kubebuilder:printcolumn:name="Stage",type=string,JSONPath=`.spec.stage`
// +kubebuilder:printcolumn:name="Entries",type=integer,JSONPath=`.spec.entries`
// +kubebuilder:printcolumn:name="Revocations",type=integer,JSONPath=`.spec.revocations`
// +kubebuilder:printcolumn:name="First Issued",type=string,JSONPath=`.spec.firstIssuedAt`
// +kubebuilder:printcolumn:name="Expires After",type=string,JSONPath=`.spec.expiresAfter`
type LedgerSegment struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec LedgerSegmentSpec `json:"spec"`
}

// +kubebuilder:object:root=true

// LedgerSegmentList is a list of ledger segments.
type LedgerSegmentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LedgerSegment `json:"items"`
}

func init() {
	SchemeBuilder.Register(&LedgerSegment{}, &LedgerSegmentList{})
}
