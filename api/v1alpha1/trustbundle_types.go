package v1alpha1

// TrustBundle configures the ConfigMap an issuer publishes its CA
// certificates in, for workloads and for trust-manager to consume. The
// ConfigMap lives in the issuer's namespace for a QuillIssuer and in the
// controller's cluster resource namespace for a QuillClusterIssuer. Quill
// rewrites it whenever the CA changes, and it is deleted with its issuer
// (an owner reference). Its key TrustBundleKey holds PEM certificates.
type TrustBundle struct {
	// ConfigMapName is the name of the published ConfigMap. Defaults to
	// "<issuer name>-ca-bundle". When it changes, the ConfigMap published
	// under the previous name is deleted.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	ConfigMapName string `json:"configMapName,omitempty"`

	// IncludeIntermediates adds the issuing CA and the CAs between it and
	// the root to the bundle, after the root. Off by default: a bundle of
	// roots is what relying parties should anchor trust in; intermediates
	// help only clients that cannot build a chain from what the server
	// sends.
	// +optional
	IncludeIntermediates bool `json:"includeIntermediates,omitempty"`
}

// TrustBundleKey is the key of the published ConfigMap that holds the PEM
// bundle.
const TrustBundleKey = "ca.crt"

// TrustBundleSuffix is appended to the issuer's name to make the default
// ConfigMap name.
const TrustBundleSuffix = "-ca-bundle"

// Labels on every published trust bundle ConfigMap, naming the issuer it
// comes from. They let Quill find a bundle left behind by a renamed
// spec.trustBundle.configMapName, and let users select bundles.
const (
	LabelTrustBundleKind   = "quill.dev/trust-bundle-kind"
	LabelTrustBundleIssuer = "quill.dev/trust-bundle-issuer"
)
