package v1alpha1

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Kubernetes CertificateSigningRequests name their signer in
// spec.signerName. Quill serves two forms, one per issuer kind:
//
//	quillclusterissuers.quill.dev/<name>
//	quillissuers.quill.dev/<namespace>.<name>
//
// cert-manager uses the same shape for its own issuers. A namespace is a
// DNS label and has no dot, so the first dot of a QuillIssuer's form
// separates the namespace from the name, which may contain dots.

// ErrInvalidSignerName marks a signerName that starts with one of Quill's
// prefixes but does not name an issuer in that kind's form.
var ErrInvalidSignerName = errors.New("invalid Quill signer name")

// Signer verbs and resource of the SubjectAccessReview Quill makes before
// it signs a Kubernetes CertificateSigningRequest for a QuillIssuer: the
// requester must be allowed the verb "reference" on the resource "signers"
// of group quill.dev, in the issuer's namespace, with the issuer's name (or
// "*") as resource name. This mirrors cert-manager's rule for its own
// namespaced Issuers (verb "reference" on cert-manager.io "signers").
const (
	SignerResource  = "signers"
	VerbReference   = "reference"
	SignerNameAllOf = "*"
)

// Reasons of the Failed condition Quill writes on a Kubernetes
// CertificateSigningRequest addressed to one of its signer names that it
// will not sign. Refusals that come from signing itself carry
// ReasonInvalidRequest or ReasonPolicyDenied.
const (
	// ReasonInvalidSignerName: the signerName starts with a Quill prefix
	// but names no issuer (see ParseSignerName).
	ReasonInvalidSignerName = "InvalidSignerName"
	// ReasonDeniedReference: the requester (spec.username, groups, uid,
	// extra) may not "reference" the QuillIssuer in its namespace.
	ReasonDeniedReference = "DeniedReference"
	// ReasonIssuerNotReady: the issuer did not become Ready within the
	// controller's retry window, or failed for good (e.g. Disabled).
	ReasonIssuerNotReady = "IssuerNotReady"
	// ReasonSigningFailed: signing kept failing with a retryable error
	// beyond the controller's retry window.
	ReasonSigningFailed = "SigningFailed"
)

// SignerName is the spec.signerName of Kubernetes CertificateSigningRequests
// addressed to the issuer id.
func (id IssuerID) SignerName() string {
	obj := id.NewObject()
	if obj == nil {
		return ""
	}
	if id.IsCluster() {
		return obj.GetIssuerTypeIdentifier() + "/" + id.Name
	}
	return obj.GetIssuerTypeIdentifier() + "/" + id.Namespace + "." + id.Name
}

// ParseSignerName reads a CertificateSigningRequest's spec.signerName.
// ours is false for a signer name that is not Quill's (the request belongs
// to another signer and must be left alone). For one of Quill's prefixes,
// the error (wrapping ErrInvalidSignerName) says what is wrong with the
// rest; otherwise id names the issuer.
func ParseSignerName(signerName string) (id IssuerID, ours bool, err error) {
	for _, kind := range IssuerKinds() {
		rest, found := strings.CutPrefix(signerName, kind.GetIssuerTypeIdentifier()+"/")
		if !found {
			continue
		}
		id = kind.ID()
		if id.IsCluster() {
			id.Name = rest
			if errs := validation.IsDNS1123Subdomain(rest); len(errs) > 0 {
				return IssuerID{}, true, fmt.Errorf("%w %q: want %s/<name> with the name of a %s (%s)",
					ErrInvalidSignerName, signerName, kind.GetIssuerTypeIdentifier(), id.Kind, strings.Join(errs, "; "))
			}
			return id, true, nil
		}
		ns, name, _ := strings.Cut(rest, ".")
		id.Namespace, id.Name = ns, name
		errs := append(validation.IsDNS1123Label(ns), validation.IsDNS1123Subdomain(name)...)
		if len(errs) > 0 {
			return IssuerID{}, true, fmt.Errorf("%w %q: want %s/<namespace>.<name> naming a %s (%s)",
				ErrInvalidSignerName, signerName, kind.GetIssuerTypeIdentifier(), id.Kind, strings.Join(errs, "; "))
		}
		return id, true, nil
	}
	return IssuerID{}, false, nil
}
