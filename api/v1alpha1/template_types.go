package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AnnotationTemplate selects the certificate template a request is signed
// with. Set it on a cert-manager Certificate (cert-manager copies a
// Certificate's annotations to each CertificateRequest it creates) or
// directly on a CertificateRequest or Kubernetes CertificateSigningRequest.
// Its value is a built-in template name or the name of a QuillTemplate, and
// it must be one of the issuer's spec.templates.
const AnnotationTemplate = "quill.dev/template"

// Names of the built-in templates. They are reserved: no QuillTemplate may
// use them.
const (
	// TemplateEndEntity: TLS server and client authentication.
	TemplateEndEntity = "end-entity"
	// TemplateServerAuth: TLS server authentication only.
	TemplateServerAuth = "server-auth"
	// TemplateClientAuth: TLS client authentication only.
	TemplateClientAuth = "client-auth"
	// TemplateCodeSigning: code signing only.
	TemplateCodeSigning = "code-signing"
	// TemplateOCSPSigning: OCSP response signing only (a delegated OCSP
	// responder).
	TemplateOCSPSigning = "ocsp-signing"
	// TemplateSubordinateCAPathLen0 to 3: a subordinate CA whose
	// pathLenConstraint is 0 to 3.
	TemplateSubordinateCAPathLen0 = "subordinate-ca-pathlen-0"
	TemplateSubordinateCAPathLen1 = "subordinate-ca-pathlen-1"
	TemplateSubordinateCAPathLen2 = "subordinate-ca-pathlen-2"
	TemplateSubordinateCAPathLen3 = "subordinate-ca-pathlen-3"
)

// KeyUsage is a key usage or extended key usage, spelled as in a
// cert-manager Certificate's spec.usages.
// +kubebuilder:validation:Enum="digital signature";"content commitment";"key encipherment";"data encipherment";"key agreement";"cert sign";"crl sign";"encipher only";"decipher only";"any";"server auth";"client auth";"code signing";"email protection";"ipsec end system";"ipsec tunnel";"ipsec user";"timestamping";"ocsp signing";"microsoft sgc";"netscape sgc"
type KeyUsage string

// TemplateSpec is what a certificate template allows. A request fits the
// template when its key usages are among KeyUsages, its extended key usages
// are a non-empty subset of ExtKeyUsages (when the template lists any: a
// certificate without the extension would be valid for every purpose), its
// isCA equals IsCA, its path length (if any) equals MaxPathLen, and its
// duration is within MaxDuration. A request that does not fit is refused;
// it is never signed under another template or with other usages.
//
// +kubebuilder:validation:XValidation:rule="!has(self.maxPathLen) || self.isCA",message="maxPathLen needs isCA: true"
// +kubebuilder:validation:XValidation:rule="self.isCA || !self.keyUsages.exists(u, u == 'cert sign')",message="key usage 'cert sign' needs isCA: true"
type TemplateSpec struct {
	// Description says what the template is for, for people choosing one.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Description string `json:"description,omitempty"`

	// KeyUsages a request may ask for (cert-manager spelling: "digital
	// signature", "key encipherment", …). For a CA template "cert sign" is
	// implied.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +listType=set
	KeyUsages []KeyUsage `json:"keyUsages"`

	// ExtKeyUsages a request may ask for ("server auth", "client auth", …).
	// When set, a request must ask for at least one of them and for no
	// other. Unset: the request may carry no extended key usage at all.
	// +optional
	// +listType=set
	ExtKeyUsages []KeyUsage `json:"extKeyUsages,omitempty"`

	// IsCA: the template issues CA certificates (isCA: true on the
	// Certificate), and only those.
	// +optional
	// +kubebuilder:default=false
	IsCA bool `json:"isCA,omitempty"`

	// MaxPathLen is the pathLenConstraint of the CA certificates the
	// template issues. cert-manager cannot ask for one, so Quill encodes
	// it; a CSR asking for another value is refused.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=8
	MaxPathLen *int `json:"maxPathLen,omitempty"`

	// MaxDuration caps the lifetime of certificates issued under the
	// template; a longer request is refused.
	// +optional
	MaxDuration *metav1.Duration `json:"maxDuration,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=quill,shortName=qt
// +kubebuilder:printcolumn:name="CA",type=boolean,JSONPath=`.spec.isCA`
// +kubebuilder:printcolumn:name="Extended usages",type=string,JSONPath=`.spec.extKeyUsages`
// +kubebuilder:printcolumn:name="Description",type=string,JSONPath=`.spec.description`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="!(self.metadata.name in ['end-entity','server-auth','client-auth','code-signing','ocsp-signing','subordinate-ca-pathlen-0','subordinate-ca-pathlen-1','subordinate-ca-pathlen-2','subordinate-ca-pathlen-3'])",message="this name belongs to a built-in template; choose another"

// QuillTemplate is a custom certificate template. Templates are
// cluster-scoped: they are defined by CA administrators, and each issuer
// says which ones its requesters may use (spec.templates). Built-in
// templates need no object.
type QuillTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec TemplateSpec `json:"spec"`
}

// +kubebuilder:object:root=true

// QuillTemplateList is a list of QuillTemplate.
type QuillTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []QuillTemplate `json:"items"`
}

func init() {
	SchemeBuilder.Register(&QuillTemplate{}, &QuillTemplateList{})
}
