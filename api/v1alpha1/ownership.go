package v1alpha1

// The ownership mark. Every Kubernetes object Quill creates (CRL
// ConfigMaps and their parts, trust-bundle ConfigMaps, OCSP responder
// Secrets, bootstrap CA Secrets, intermediate CA certificate Secrets)
// carries both: the label, so that Quill can select what it owns, and the
// annotation, naming the one issuer (IssuerID.String()) it was created for.
// Quill updates, labels or deletes only objects whose mark names the
// issuer at hand; any other object with the name it wants is a collision,
// reported on the issuer and never overwritten.
const (
	LabelManagedBy  = "app.kubernetes.io/managed-by"
	ManagedByQuill  = "quill"
	AnnotationOwner = "quill.dev/owner"
)

// ReasonNameCollision is the reason (of the CAValid condition, of events
// and of status messages) when an object Quill would write for an issuer
// already exists and its ownership mark does not name that issuer: Quill
// leaves it alone, and the object or the issuer must be renamed.
const ReasonNameCollision = "NameCollision"
