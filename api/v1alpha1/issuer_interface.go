package v1alpha1

import (
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The two issuer kinds, as API objects and CertificateRequest issuerRefs
// name them. Code outside this package never spells them out: it asks an
// issuer (GenericIssuer.ID) or an identity (IssuerID.Kind) instead.
const (
	IssuerKind        = "QuillIssuer"
	ClusterIssuerKind = "QuillClusterIssuer"
)

// GenericIssuer is what QuillIssuer and QuillClusterIssuer have in common:
// the same spec and status, with a kind-specific identity and Secret
// namespace. Controllers hold issuers as a GenericIssuer, so that nothing
// outside this package switches on the kind; a difference between the kinds
// is a method here.
//
// Both kinds also satisfy issuer-lib's Issuer interface (GetConditions,
// GetIssuerTypeIdentifier), which the issuance controllers hand to
// cert-manager/issuer-lib.
//
// +kubebuilder:object:generate=false
type GenericIssuer interface {
	client.Object
	// GetConditions returns the issuer's status conditions.
	GetConditions() []metav1.Condition
	// GetIssuerTypeIdentifier is the signer-name prefix of Kubernetes
	// CertificateSigningRequests for this kind.
	GetIssuerTypeIdentifier() string
	// GetSpec and GetStatus return pointers into the object: writing
	// through them changes it.
	GetSpec() *IssuerSpec
	GetStatus() *IssuerStatus
	// ID is the issuer's identity in the ledger, metrics and audit lines.
	// It depends on the Go type and the object's name and namespace, not
	// on TypeMeta, which a typed client leaves empty.
	ID() IssuerID
	// DeepCopyIssuer copies the object.
	DeepCopyIssuer() GenericIssuer
	// NewList returns an empty list of issuers of the same kind.
	NewList() GenericIssuerList
}

// GenericIssuerList is a list of issuers of one kind.
//
// +kubebuilder:object:generate=false
type GenericIssuerList interface {
	client.ObjectList
	// Issuers returns pointers to the list's items.
	Issuers() []GenericIssuer
}

// IssuerKinds returns an empty object of each issuer kind, namespaced
// first; controllers that serve both kinds set up one reconciler per
// element.
func IssuerKinds() []GenericIssuer {
	return []GenericIssuer{&QuillIssuer{}, &QuillClusterIssuer{}}
}

// IssuerID identifies one Quill issuer: the ledger keys its records by it
// (pkg/ledger.IssuerKey is this type), metrics label series with it and
// audit lines name it. It is comparable and can key maps.
//
// +kubebuilder:object:generate=false
type IssuerID struct {
	// Kind is IssuerKind or ClusterIssuerKind.
	Kind string
	// Namespace is the QuillIssuer's namespace; empty for a
	// QuillClusterIssuer.
	Namespace string
	Name      string
}

// String is "QuillClusterIssuer/name" or "QuillIssuer/namespace/name", the
// form audit lines, ledger annotations and events use.
func (id IssuerID) String() string {
	if id.Namespace == "" {
		return id.Kind + "/" + id.Name
	}
	return id.Kind + "/" + id.Namespace + "/" + id.Name
}

// IsCluster reports whether id names a QuillClusterIssuer.
func (id IssuerID) IsCluster() bool { return id.Kind == ClusterIssuerKind }

// HomeNamespace is where the issuer's Secrets, ledger records, CRL and
// responder live: its own namespace, or for a QuillClusterIssuer the
// controller's cluster resource namespace (the tenancy rule).
func (id IssuerID) HomeNamespace(clusterResourceNamespace string) string {
	if id.IsCluster() {
		return clusterResourceNamespace
	}
	return id.Namespace
}

// Ref is the identity as a ledger record stores it (spec.issuerRef).
func (id IssuerID) Ref() LedgerIssuerRef {
	return LedgerIssuerRef{Kind: id.Kind, Namespace: id.Namespace, Name: id.Name}
}

// NewObject returns an empty issuer of id's kind, to read id into; nil
// when the kind is not a Quill issuer kind.
func (id IssuerID) NewObject() GenericIssuer {
	switch id.Kind {
	case IssuerKind:
		return &QuillIssuer{}
	case ClusterIssuerKind:
		return &QuillClusterIssuer{}
	}
	return nil
}

// ID is the identity a ledger record's issuerRef names.
func (r LedgerIssuerRef) ID() IssuerID {
	return IssuerID{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
}

// IDIn is the identity of the issuer a QuillRevocation in namespace names:
// a QuillIssuer lives in the revocation's own namespace.
func (r RevocationIssuerRef) IDIn(namespace string) IssuerID {
	if r.Kind == ClusterIssuerKind {
		return IssuerID{Kind: ClusterIssuerKind, Name: r.Name}
	}
	return IssuerID{Kind: IssuerKind, Namespace: namespace, Name: r.Name}
}

// ParentKind is the parent's kind with the schema's default applied, for
// objects that did not pass through the API server's defaulting.
func (p *ParentIssuer) ParentKind() string {
	if p.Kind == "" {
		return ClusterIssuerKind
	}
	return p.Kind
}

// GetConditions returns the issuer's status conditions.
func (i *QuillIssuer) GetConditions() []metav1.Condition { return i.Status.Conditions }

// GetIssuerTypeIdentifier is the signer-name prefix of Kubernetes
// CertificateSigningRequests for this kind: quillissuers.quill.dev/<namespace>.<name>.
func (i *QuillIssuer) GetIssuerTypeIdentifier() string { return "quillissuers.quill.dev" }

// GetSpec returns the issuer's spec.
func (i *QuillIssuer) GetSpec() *IssuerSpec { return &i.Spec }

// GetStatus returns the issuer's status.
func (i *QuillIssuer) GetStatus() *IssuerStatus { return &i.Status }

// ID is the issuer's identity.
func (i *QuillIssuer) ID() IssuerID {
	return IssuerID{Kind: IssuerKind, Namespace: i.Namespace, Name: i.Name}
}

// DeepCopyIssuer copies the issuer.
func (i *QuillIssuer) DeepCopyIssuer() GenericIssuer { return i.DeepCopy() }

// NewList returns an empty QuillIssuerList.
func (i *QuillIssuer) NewList() GenericIssuerList { return &QuillIssuerList{} }

// Issuers returns pointers to the list's items.
func (l *QuillIssuerList) Issuers() []GenericIssuer {
	out := make([]GenericIssuer, len(l.Items))
	for i := range l.Items {
		out[i] = &l.Items[i]
	}
	return out
}

// GetConditions returns the issuer's status conditions.
func (i *QuillClusterIssuer) GetConditions() []metav1.Condition { return i.Status.Conditions }

// GetIssuerTypeIdentifier is the signer-name prefix of Kubernetes
// CertificateSigningRequests for this kind: quillclusterissuers.quill.dev/<name>.
func (i *QuillClusterIssuer) GetIssuerTypeIdentifier() string {
	return "quillclusterissuers.quill.dev"
}

// GetSpec returns the issuer's spec.
func (i *QuillClusterIssuer) GetSpec() *IssuerSpec { return &i.Spec }

// GetStatus returns the issuer's status.
func (i *QuillClusterIssuer) GetStatus() *IssuerStatus { return &i.Status }

// ID is the issuer's identity; a cluster issuer has no namespace, whatever
// the object's metadata says.
func (i *QuillClusterIssuer) ID() IssuerID { return IssuerID{Kind: ClusterIssuerKind, Name: i.Name} }

// DeepCopyIssuer copies the issuer.
func (i *QuillClusterIssuer) DeepCopyIssuer() GenericIssuer { return i.DeepCopy() }

// NewList returns an empty QuillClusterIssuerList.
func (i *QuillClusterIssuer) NewList() GenericIssuerList { return &QuillClusterIssuerList{} }

// Issuers returns pointers to the list's items.
func (l *QuillClusterIssuerList) Issuers() []GenericIssuer {
	out := make([]GenericIssuer, len(l.Items))
	for i := range l.Items {
		out[i] = &l.Items[i]
	}
	return out
}

// ParseIssuerID reads the String form of an identity back.
func ParseIssuerID(s string) (IssuerID, bool) {
	kind, rest, ok := strings.Cut(s, "/")
	if !ok || rest == "" {
		return IssuerID{}, false
	}
	switch kind {
	case ClusterIssuerKind:
		if strings.Contains(rest, "/") {
			return IssuerID{}, false
		}
		return IssuerID{Kind: kind, Name: rest}, true
	case IssuerKind:
		ns, name, ok := strings.Cut(rest, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return IssuerID{}, false
		}
		return IssuerID{Kind: kind, Namespace: ns, Name: name}, true
	}
	return IssuerID{}, false
}

// NamespacedName is the issuer's object key.
func (id IssuerID) NamespacedName() types.NamespacedName {
	return types.NamespacedName{Namespace: id.Namespace, Name: id.Name}
}

// IDOf is the identity of the issuer of kind (an object of that kind, as
// IssuerKinds returns) at key: a QuillClusterIssuer has no namespace.
func IDOf(kind GenericIssuer, key types.NamespacedName) IssuerID {
	id := kind.ID()
	id.Name = key.Name
	if !id.IsCluster() {
		id.Namespace = key.Namespace
	}
	return id
}
