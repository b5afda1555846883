package issuance

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	experimentalapi "github.com/cert-manager/cert-manager/pkg/apis/experimental/v1alpha1"
	"github.com/cert-manager/issuer-lib/controllers/signer"
	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

var (
	errIsCAValue           = errors.New("annotation " + experimentalapi.CertificateSigningRequestIsCAAnnotationKey + ` must be "true" or "false"`)
	errDurationNotPositive = errors.New("the requested duration is not positive")
	errDurationsDisagree   = errors.New("spec.expirationSeconds and annotation " + experimentalapi.CertificateSigningRequestDurationAnnotationKey + " ask for different durations")
)

// oidBasicConstraints is the X.509 basicConstraints extension.
var oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}

// csrRequest is a Kubernetes CertificateSigningRequest as Signer.Sign
// reads it. It is issuer-lib's reading of the CSR, made strict where
// issuer-lib lets a request silently mean less than it says:
//
//   - experimental.cert-manager.io/request-is-ca counts only as "true";
//     any value but "true" or "false" is refused rather than read as false.
//   - a CA request's path length comes from the CSR's own basicConstraints
//     extension (a Kubernetes CSR has no other place for it; cert-manager
//     defines no annotation), so that policy decides on it and a requested
//     pathLenConstraint is never dropped.
//   - a duration that is not positive, or spec.expirationSeconds and the
//     request-duration annotation disagreeing, is refused.
//
// Errors are refusals: Sign records them and fails the CSR for good.
type csrRequest struct {
	*certificatesv1.CertificateSigningRequest
}

var _ signer.CertificateRequestObject = csrRequest{}

// GetCertificateDetails implements signer.CertificateRequestObject.
func (c csrRequest) GetCertificateDetails() (signer.CertificateDetails, error) {
	lib := signer.CertificateRequestObjectFromCertificateSigningRequest(c.CertificateSigningRequest)
	d, err := lib.GetCertificateDetails()
	if err != nil {
		return d, err
	}
	switch v, set := c.Annotations[experimentalapi.CertificateSigningRequestIsCAAnnotationKey]; {
	case !set || v == "false":
		d.IsCA = false
	case v == "true":
		d.IsCA = true
	default:
		return d, fmt.Errorf("%w, not %q", errIsCAValue, v)
	}
	if d.Duration <= 0 {
		return d, fmt.Errorf("%w: %s", errDurationNotPositive, d.Duration)
	}
	if s := c.Spec.ExpirationSeconds; s != nil && c.Annotations[experimentalapi.CertificateSigningRequestDurationAnnotationKey] != "" {
		if exp := time.Duration(*s) * time.Second; exp != d.Duration {
			return d, fmt.Errorf("%w: %s and %s", errDurationsDisagree, exp, d.Duration)
		}
	}
	if d.IsCA {
		d.MaxPathLen = requestedPathLen(d.CSR)
	}
	return d, nil
}

// GetConditions implements signer.CertificateRequestObject.
func (c csrRequest) GetConditions() []metav1.Condition {
	return signer.CertificateRequestObjectFromCertificateSigningRequest(c.CertificateSigningRequest).GetConditions()
}

// requestedPathLen is the pathLenConstraint the CSR's own basicConstraints
// extension asks for, or nil. A CSR that does not parse yields nil: Sign
// refuses it with the precise reason.
func requestedPathLen(csrPEM []byte) *int {
	block, _ := pem.Decode(csrPEM)
	if block == nil {
		return nil
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil
	}
	for _, e := range csr.Extensions {
		if !e.Id.Equal(oidBasicConstraints) {
			continue
		}
		var bc struct {
			IsCA       bool `asn1:"optional"`
			MaxPathLen int  `asn1:"optional,default:-1"`
		}
		if rest, err := asn1.Unmarshal(e.Value, &bc); err != nil || len(rest) > 0 || bc.MaxPathLen < 0 {
			return nil
		}
		return &bc.MaxPathLen
	}
	return nil
}

// policyNamespace is the namespace policy sees for a request: {namespace}
// in patterns and the namespaces rule. A CertificateRequest has its own. A
// Kubernetes CSR is cluster-scoped: addressed to a QuillIssuer it acts in
// the issuer's namespace, the one whose issuer its requester was allowed
// to reference; addressed to a QuillClusterIssuer it has none, so patterns
// with {namespace} never match it.
func policyNamespace(cr signer.CertificateRequestObject, iss quillv1.GenericIssuer) string {
	if ns := cr.GetNamespace(); ns != "" {
		return ns
	}
	return iss.ID().Namespace
}
