// Package issuance wires Quill's issuers into cert-manager/issuer-lib. The
// issuer health and CertificateRequest reconcile loops (status patches,
// events) are issuer-lib's; this package supplies its Check and Sign
// functions, which call into pkg/. Kubernetes CertificateSigningRequests
// are signed by this package's own reconciler (csr.go), through the same
// Sign, because issuer-lib neither serves namespaced signer names nor fails
// a CSR whose issuer is missing.
package issuance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	issuerapi "github.com/cert-manager/issuer-lib/api/v1alpha1"
	"github.com/cert-manager/issuer-lib/controllers/signer"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/classify"
	"github.com/quill-pki/quill/controllers/revocationdata"
	"github.com/quill-pki/quill/pkg/audit"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/kms"
	"github.com/quill-pki/quill/pkg/metrics"
)

// defaultDuration applies when neither the request nor the issuer sets one;
// it matches cert-manager's own default.
const defaultDuration = 90 * 24 * time.Hour

// Event reasons Quill adds to issuer-lib's own events.
const (
	eventIssuanceAdjusted = "IssuanceAdjusted"
	eventActionSign       = "Sign"
)

var errUnknownIssuerKind = errors.New("unknown issuer kind")

// Signer implements issuer-lib's Check and Sign for Quill's issuer kinds.
type Signer struct {
	// Store loads CA material; it is shared by Check and Sign.
	Store *castore.Store
	// StatusWriter patches status.ca; issuer-lib owns the conditions.
	StatusWriter client.StatusClient
	// ClusterResourceNamespace is where QuillClusterIssuers read Secrets.
	ClusterResourceNamespace string
	// FieldOwner is the server-side-apply field manager for status.ca.
	FieldOwner string
	Clock      clock.PassiveClock
	Recorder   events.EventRecorder
	// Ledger records every signed certificate before it is returned.
	Ledger *Ledger
	// RevocationBaseURL, when set, is where Quill's CRL and OCSP endpoints
	// are reachable; certificates of issuers that set no URLs of their own
	// point there.
	RevocationBaseURL string
	// Templates reads QuillTemplates (built-in templates need none).
	Templates client.Reader
	// Metrics and Audit record issuance, refusals and issuer health; nil
	// and the zero value record nothing.
	Metrics *metrics.Metrics
	Audit   audit.Logger
	// KeySecretReader reads Secret metadata straight from the API server
	// (a Secret Quill has just created may not be in a cache yet), and
	// KeySecretWriter labels CA key Secrets for the admission policies;
	// with either nil, Secrets are left alone.
	KeySecretReader client.Reader
	KeySecretWriter client.Writer
}

// issuerOf is obj as a Quill issuer, its spec, and the namespace its
// Secrets live in: its own for a QuillIssuer, the cluster resource
// namespace for a QuillClusterIssuer (the tenancy rule).
func (s *Signer) issuerOf(obj issuerapi.Issuer) (quillv1.GenericIssuer, *quillv1.IssuerSpec, string, error) {
	iss, ok := obj.(quillv1.GenericIssuer)
	if !ok {
		return nil, nil, "", fmt.Errorf("%w %T", errUnknownIssuerKind, obj)
	}
	return iss, iss.GetSpec(), iss.ID().HomeNamespace(s.ClusterResourceNamespace), nil
}

// Check is the issuer health check issuer-lib runs when an issuer changes
// or a Sign reported an issuer fault. It creates a bootstrap root if needed,
// then requires a usable CA: parseable, a CA with certSign, within validity
// and holding the matching key, and usable issuance settings. The verdict is
// recorded in status (the CAValid condition with a precise reason, and the
// CA summary); any failure also leaves Ready False, and requests wait.
func (s *Signer) Check(ctx context.Context, obj issuerapi.Issuer) error {
	iss, spec, ns, err := s.issuerOf(obj)
	if err != nil {
		return signer.PermanentError{Err: err}
	}
	status := iss.GetStatus()
	a, err := s.Store.Ensure(ctx, ns, spec.CA, iss.ID().String())
	if err != nil && !classify.Is(err, classify.IssuerFault) {
		return err // retry with backoff: the API server failed, not the CA
	}
	now := s.Clock.Now()
	if err == nil {
		if lerr := s.markKeySecret(ctx, iss, ns, spec.CA); lerr != nil {
			return lerr // retry with backoff: the API server failed
		}
		err = checkAuthority(a, now)
	}
	if err == nil {
		if verr := issuanceOptions(spec, now).Validate(); verr != nil {
			err = invalidConfig(verr)
		}
	}
	if err == nil {
		// Policy and templates: a bad pattern or a missing template is the
		// issuer's fault, reported before any request fails on it.
		if perr := s.checkPolicy(ctx, spec); perr != nil {
			if !classify.Is(perr, classify.IssuerFault) {
				return perr // retry with backoff: reading a QuillTemplate failed
			}
			err = perr
		}
	}
	stateErr := s.checkState(iss)
	var notAfter time.Time
	if a != nil {
		notAfter = a.Summary().NotAfter
	}
	s.Metrics.IssuerChecked(iss.ID(), err == nil && stateErr == nil, notAfter)
	if werr := s.recordCAStatus(ctx, iss, status, a, err); werr != nil {
		if err != nil {
			// Ready must still show what is wrong with the CA.
			return fmt.Errorf("%w (recording it in status failed: %v)", err, werr) // retry with backoff
		}
		return werr // retry with backoff
	}
	if err == nil && stateErr != nil {
		return stateErr // Disabled: not Ready until the spec changes
	}
	return err // nil: Ready; otherwise retry with backoff, the Secret or spec may be fixed
}

// Sign signs one approved CertificateRequest or CertificateSigningRequest.
// Bad input is a PermanentError carrying InvalidRequest=True; a CA that has
// become unusable is an IssuerError, which makes issuer-lib re-run Check
// (turning the issuer not Ready) and keep the request Pending.
func (s *Signer) Sign(ctx context.Context, cr signer.CertificateRequestObject, obj issuerapi.Issuer) (signer.PEMBundle, error) {
	iss, spec, ns, err := s.issuerOf(obj)
	if err != nil {
		return signer.PEMBundle{}, signer.PermanentError{Err: err}
	}
	if effectiveState(spec) == quillv1.StateDisabled {
		// The issuer was disabled after issuer-lib saw it Ready: re-check
		// it (it turns not Ready) and let the request wait.
		return signer.PEMBundle{}, signer.IssuerError{Err: errDisabled}
	}
	a, err := s.Store.Load(ctx, ns, spec.CA)
	if err != nil {
		return signer.PEMBundle{}, classify.ForIssuerLib(err) // an unusable CA is the issuer's fault; else retry with backoff
	}
	now := s.Clock.Now()
	if err := checkAuthority(a, now); err != nil {
		return signer.PEMBundle{}, classify.ForIssuerLib(err) // the issuer turns not Ready; the request waits
	}

	details, err := cr.GetCertificateDetails()
	if err != nil {
		// Bad usages or a bad duration annotation: refused like any
		// other request, with an audit line and a count.
		return signer.PEMBundle{}, s.refuse(cr, iss, s.auditRequest(cr, iss), ruleCSR, err)
	}
	opts := issuanceOptions(spec, now)
	req := issuance.Request{
		CSR:         details.CSR,
		Duration:    requestedDuration(cr, details.Duration),
		IsCA:        details.IsCA,
		MaxPathLen:  details.MaxPathLen,
		KeyUsage:    details.KeyUsage,
		ExtKeyUsage: details.ExtKeyUsage,
	}
	k := iss.ID()
	if s.Ledger != nil {
		recalled, ok, err := s.Ledger.recall(ctx, k, cr, a)
		if err != nil {
			return signer.PEMBundle{}, err
		}
		if ok {
			return signer.PEMBundle{ChainPEM: recalled.ChainPEM, CAPEM: recalled.CAPEM}, nil
		}
	}
	if s.RevocationBaseURL != "" {
		crlURL, ocspURL := revocationdata.URLs(s.RevocationBaseURL, k)
		if len(opts.CRLDistributionPoints) == 0 {
			opts.CRLDistributionPoints = []string{crlURL}
		}
		if len(opts.OCSPServers) == 0 {
			opts.OCSPServers = []string{ocspURL}
		}
	}
	// Templates and policy decide before anything is signed; a refusal is
	// final and already recorded.
	v, err := s.vet(ctx, cr, iss, details, req.Duration, opts)
	if err != nil {
		return signer.PEMBundle{}, err
	}
	if v.decision.MaxPathLen != nil {
		req.MaxPathLen = v.decision.MaxPathLen
	}
	req.NameConstraints = v.decision.NameConstraints
	req.OtherNames = v.decision.OtherNames
	if v.decision.Duration > 0 {
		req.Duration = v.decision.Duration // no duration was asked for: policy's maximum, not the default
	}
	issued, err := a.Sign(req, opts)
	if err != nil {
		if hf := castore.HSMFault(err); hf != nil {
			// The HSM failed, not the request: the issuer turns not Ready
			// and the request waits.
			return signer.PEMBundle{}, classify.ForIssuerLib(hf)
		}
		switch {
		case errors.Is(err, issuance.ErrInvalidRequest):
			return signer.PEMBundle{}, s.refuse(cr, iss, v.record, ruleCSR, err)
		case errors.Is(err, issuance.ErrInvalidOptions):
			return signer.PEMBundle{}, classify.ForIssuerLib(invalidConfig(err))
		case errors.Is(err, issuance.ErrCAExpired), errors.Is(err, issuance.ErrCANotYetValid):
			// The CA aged out between the check above and signing.
			return signer.PEMBundle{}, classify.ForIssuerLib(classify.New(classify.IssuerFault, quillv1.ReasonCAExpired, err))
		}
		return signer.PEMBundle{}, err // retry with backoff
	}
	if s.Ledger != nil {
		if err := s.Ledger.record(ctx, k, ns, issued.Certificate, s.Clock.Now(), cr, v.record.Template); err != nil {
			return signer.PEMBundle{}, err // retry with backoff; this certificate is discarded
		}
	}
	if len(issued.Notes) > 0 || len(v.decision.Notes) > 0 {
		// issuer-lib's Ready message is fixed, so what Quill adjusted (a
		// validity clamped to the CA's expiry, a usage dropped, a path
		// length or name constraints added by policy) is told in an event
		// on the request. The event needs the API object itself, not
		// issuer-lib's wrapper around it.
		if c, ok := cr.(interface{ DeepCopyObject() runtime.Object }); ok {
			s.Recorder.Eventf(c.DeepCopyObject(), nil, corev1.EventTypeWarning, eventIssuanceAdjusted, eventActionSign, "%s", joinNotes(v.decision.Notes, issued.Notes))
		}
	}
	s.issued(cr, iss, v, issued.Certificate)
	return signer.PEMBundle{ChainPEM: issued.ChainPEM, CAPEM: issued.CAPEM}, nil
}

// checkAuthority wraps issuance's health check with the Ready reason.
func checkAuthority(a *issuance.Authority, now time.Time) error {
	err := a.Check(now)
	if err == nil {
		return nil
	}
	reason := quillv1.ReasonNotACA
	switch {
	case errors.Is(err, issuance.ErrCAExpired), errors.Is(err, issuance.ErrCANotYetValid):
		reason = quillv1.ReasonCAExpired
	case errors.Is(err, kms.ErrKeyMismatch):
		reason = quillv1.ReasonKeyMismatch
	}
	return classify.New(classify.IssuerFault, reason, err)
}

// invalidRequest marks a request failed for good, with InvalidRequest=True,
// as cert-manager's contract asks for input that cannot be signed.
func invalidRequest(err error) error {
	return signer.PermanentError{Err: signer.SetCertificateRequestConditionError{
		Err:           err,
		ConditionType: cmapi.CertificateRequestConditionInvalidRequest,
		Status:        cmmeta.ConditionTrue,
		Reason:        quillv1.ReasonInvalidRequest,
	}}
}

// requestedDuration is the lifetime the requester asked for, or zero when it
// asked for none, so that the issuer's default applies. issuer-lib fills in
// cert-manager's 90-day default before Quill sees the request, so the
// original object is consulted to tell "asked for 90 days" from "asked for
// nothing".
func requestedDuration(cr signer.CertificateRequestObject, fromDetails time.Duration) time.Duration {
	copier, ok := cr.(interface{ DeepCopyObject() runtime.Object })
	if !ok {
		return fromDetails
	}
	switch o := copier.DeepCopyObject().(type) {
	case *cmapi.CertificateRequest:
		if o.Spec.Duration == nil {
			return 0
		}
	case *certificatesv1.CertificateSigningRequest:
		if o.Spec.ExpirationSeconds == nil && o.Annotations["experimental.cert-manager.io/request-duration"] == "" {
			return 0
		}
	}
	return fromDetails
}

func issuanceOptions(spec *quillv1.IssuerSpec, now time.Time) issuance.Options {
	opts := issuance.Options{
		DefaultDuration:        defaultDuration,
		RSAPSS:                 spec.Issuance.RSASignatureScheme == quillv1.RSASignatureSchemePSS,
		CRLDistributionPoints:  spec.CRLDistributionPoints,
		OCSPServers:            spec.OCSPServers,
		IssuingCertificateURLs: spec.IssuingCertificateURLs,
		MustStaple:             spec.Revocation.OCSP.MustStaple,
		Now:                    now,
	}
	if d := spec.Issuance.DefaultDuration; d != nil {
		opts.DefaultDuration = d.Duration
	}
	if d := spec.Issuance.MaxDuration; d != nil {
		opts.MaxDuration = d.Duration
		// The schema keeps an explicit default within the maximum; an
		// implicit one follows a maximum set below it.
		if spec.Issuance.DefaultDuration == nil && opts.DefaultDuration > d.Duration {
			opts.DefaultDuration = d.Duration
		}
	}
	if sl := spec.Revocation.ShortLived; sl != nil {
		opts.ShortLivedMaxDuration = sl.MaxDuration.Duration
	}
	return opts
}

// recordCAStatus writes the CAValid condition and status.ca when they
// differ from what the issuer shows. issuer-lib's own status patch carries
// only the Ready condition, whose reason it fixes (Checked, Pending,
// Failed); the precise reason goes here, in a server-side apply patch under
// Quill's own field manager, and only when something changed, so a steady
// issuer costs no writes. a may be nil when no CA could be read; checkErr is
// nil for a usable CA, else an issuer fault (classify) with its reason.
func (s *Signer) recordCAStatus(ctx context.Context, obj quillv1.GenericIssuer, status *quillv1.IssuerStatus, a *issuance.Authority, checkErr error) error {
	cond := metav1.Condition{
		Type:               quillv1.ConditionCAValid,
		Status:             metav1.ConditionTrue,
		Reason:             quillv1.ReasonValid,
		Message:            "the CA can sign",
		ObservedGeneration: obj.GetGeneration(),
	}
	if class, reason := classify.Of(checkErr); checkErr != nil && class == classify.IssuerFault {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, reason, classify.Message(checkErr)
	}
	var summary *quillv1.CASummary
	if a != nil {
		sum := a.Summary()
		summary = &quillv1.CASummary{
			Subject:            sum.Subject,
			NotAfter:           &metav1.Time{Time: sum.NotAfter.UTC().Truncate(time.Second)},
			KeyAlgorithm:       string(sum.KeyAlgorithm),
			SignatureAlgorithm: a.SignatureAlgorithmName(obj.GetSpec().Issuance.RSASignatureScheme == quillv1.RSASignatureSchemePSS),
			SHA256Fingerprint:  sum.SHA256Fingerprint,
		}
	}
	state := effectiveState(obj.GetSpec())
	prev := meta.FindStatusCondition(status.Conditions, quillv1.ConditionCAValid)
	if prev != nil && prev.Status == cond.Status && prev.Reason == cond.Reason && prev.Message == cond.Message &&
		prev.ObservedGeneration == cond.ObservedGeneration && summariesEqual(status.CA, summary) && status.State == state {
		return nil
	}
	cond.LastTransitionTime = metav1.NewTime(s.Clock.Now().Truncate(time.Second))
	if prev != nil && prev.Status == cond.Status {
		cond.LastTransitionTime = prev.LastTransitionTime
	}
	st := map[string]any{"conditions": []metav1.Condition{cond}, "state": state}
	if summary != nil {
		st["ca"] = summary
	}
	patch := map[string]any{
		"apiVersion": quillv1.GroupVersion.String(),
		"kind":       obj.ID().Kind,
		"metadata":   map[string]any{"name": obj.GetName(), "namespace": obj.GetNamespace()},
		"status":     st,
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("encoding CA status: %w", err)
	}
	if err := s.StatusWriter.Status().Patch(ctx, obj.DeepCopyIssuer(), client.RawPatch(types.ApplyPatchType, body),
		client.ForceOwnership, client.FieldOwner(s.FieldOwner)); err != nil {
		return fmt.Errorf("recording CA status: %w", err)
	}
	return nil
}

func summariesEqual(a, b *quillv1.CASummary) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Subject == b.Subject && a.KeyAlgorithm == b.KeyAlgorithm && a.SignatureAlgorithm == b.SignatureAlgorithm &&
		a.SHA256Fingerprint == b.SHA256Fingerprint &&
		(a.NotAfter == nil) == (b.NotAfter == nil) && (a.NotAfter == nil || a.NotAfter.Equal(b.NotAfter))
}
