package issuance

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"github.com/cert-manager/issuer-lib/controllers/signer"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/classify"
	"github.com/quill-pki/quill/pkg/audit"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/policy"
)

// Event reasons of policy, issuance and lifecycle.
const (
	eventPolicyDenied      = "PolicyDenied"
	eventCertificateIssued = "CertificateIssued"
	eventStateChanged      = "StateChanged"
	eventActionCheck       = "Check"
)

// ruleCSR names refusals that come from the signing core (a CSR or request
// Quill can never sign) rather than from a policy rule.
const ruleCSR = "request"

// +kubebuilder:rbac:groups=quill.dev,resources=quilltemplates,verbs=get;list;watch

var (
	errNoTemplateReader = errors.New("no reader for QuillTemplates is configured")
	errDisabled         = errors.New("spec.state is Disabled: this issuer signs nothing until it is set to Active")
)

// vetted is a request that passed template and policy, with what Quill
// adds to it, and the description audit lines and metrics use.
type vetted struct {
	decision policy.Decision
	record   audit.Request
	started  time.Time
}

// vet parses the request's CSR and decides it against the issuer's
// templates and policy; requested is the duration the request asked for,
// zero for none (requestedDuration), and opts supply the default then.
// Refusals come back already recorded (audit line,
// metric, event) and classified as permanent with InvalidRequest=True;
// problems with the issuer's own templates are IssuerErrors.
func (s *Signer) vet(ctx context.Context, cr signer.CertificateRequestObject, obj quillv1.GenericIssuer,
	details signer.CertificateDetails, requested time.Duration, opts issuance.Options,
) (*vetted, error) {
	spec := obj.GetSpec()
	// Latency is measured on the real monotonic clock: it is an
	// observation of this process, not a decision that tests must steer.
	v := &vetted{started: time.Now()}
	v.record = s.auditRequest(cr, obj)
	csr, err := issuance.ParseCSR(details.CSR)
	if err != nil {
		return nil, s.refuse(cr, obj, v.record, ruleCSR, err)
	}
	v.record.CSR = csr
	if alg, err := issuance.KeyAlgorithmOf(csr.PublicKey); err == nil {
		v.record.KeyAlgorithm = string(alg)
	}
	name, err := policy.SelectTemplate(spec.Templates, cr.GetAnnotations()[quillv1.AnnotationTemplate])
	if err != nil {
		v.record.Template = cr.GetAnnotations()[quillv1.AnnotationTemplate]
		return nil, s.refuse(cr, obj, v.record, policy.RuleTemplates, err)
	}
	v.record.Template = name
	var tmpl *policy.Template
	if name != "" {
		if tmpl, err = s.template(ctx, name); err != nil {
			return nil, classify.ForIssuerLib(err) // the issuer's fault, or retry with backoff
		}
	}
	v.decision, err = policy.Evaluate(spec.Policy, tmpl, policy.Request{
		CSR:               csr,
		Namespace:         policyNamespace(cr, obj),
		Template:          name,
		Duration:          effectiveDuration(requested, opts),
		DurationDefaulted: requested == 0,
		IsCA:              details.IsCA,
		MaxPathLen:        details.MaxPathLen,
		KeyUsage:          details.KeyUsage,
		ExtKeyUsage:       details.ExtKeyUsage,
	})
	var denial *policy.Denial
	switch {
	case errors.As(err, &denial):
		return nil, s.refuse(cr, obj, v.record, denial.Rule, err)
	case err != nil:
		return nil, classify.ForIssuerLib(invalidConfig(err))
	}
	return v, nil
}

// template resolves a template name: a built-in, else a QuillTemplate.
// A listed template that does not exist or cannot be used is the issuer's
// fault (classified so): the issuer turns not Ready and requests wait.
func (s *Signer) template(ctx context.Context, name string) (*policy.Template, error) {
	if spec, ok := policy.Builtin(name); ok {
		return &policy.Template{Name: name, Spec: spec}, nil
	}
	if s.Templates == nil {
		return nil, errNoTemplateReader
	}
	var qt quillv1.QuillTemplate
	if err := s.Templates.Get(ctx, client.ObjectKey{Name: name}, &qt); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, invalidConfig(fmt.Errorf("spec.templates lists %q, which is neither a built-in template nor a QuillTemplate", name))
		}
		return nil, err // retry with backoff
	}
	t := &policy.Template{Name: name, Spec: qt.Spec}
	if err := policy.ValidateTemplate(*t); err != nil {
		return nil, invalidConfig(err)
	}
	return t, nil
}

// checkPolicy is the issuer health check's part for policy and templates:
// every listed template must resolve and the policy's patterns must parse.
func (s *Signer) checkPolicy(ctx context.Context, spec *quillv1.IssuerSpec) error {
	if err := policy.Validate(spec.Policy); err != nil {
		return invalidConfig(err)
	}
	for _, name := range spec.Templates {
		if _, err := s.template(ctx, name); err != nil {
			return err // an issuer fault, or an API server failure to retry
		}
	}
	return nil
}

// templateNotListed is the template label of a request refused for asking
// for a template its issuer does not allow.
const templateNotListed = "(not listed)"

// refuse records a refusal (audit line, metric, event on the request) and
// returns it as a permanent failure with InvalidRequest=True.
func (s *Signer) refuse(cr signer.CertificateRequestObject, obj quillv1.GenericIssuer, rec audit.Request, rule string, err error) error {
	s.Audit.Deny(rec, rule, err.Error())
	template := rec.Template
	if rule == policy.RuleTemplates && template != "" {
		// The name the requester asked for is not one the issuer lists:
		// the audit line keeps it, but as a metric label anyone able to
		// create a Certificate could make series without end.
		template = templateNotListed
	}
	s.Metrics.Deny(obj.ID(), template, rec.KeyAlgorithm, rule)
	reason := quillv1.ReasonInvalidRequest
	if errors.Is(err, policy.ErrDenied) {
		reason = quillv1.ReasonPolicyDenied
		s.event(cr, corev1.EventTypeWarning, eventPolicyDenied, err.Error())
	}
	return signer.PermanentError{Err: signer.SetCertificateRequestConditionError{
		Err:           err,
		ConditionType: cmapi.CertificateRequestConditionInvalidRequest,
		Status:        cmmeta.ConditionTrue,
		Reason:        reason,
	}}
}

// issued records a signed certificate.
func (s *Signer) issued(cr signer.CertificateRequestObject, obj quillv1.GenericIssuer, v *vetted, cert *x509.Certificate) {
	s.Metrics.Issue(obj.ID(), v.record.Template, v.record.KeyAlgorithm, time.Since(v.started))
	s.Audit.Issue(v.record, cert)
	tmpl := "no template"
	if v.record.Template != "" {
		tmpl = "template " + v.record.Template
	}
	s.event(cr, corev1.EventTypeNormal, eventCertificateIssued, fmt.Sprintf("serial %x, %s, valid until %s",
		cert.SerialNumber, tmpl, cert.NotAfter.UTC().Format(time.RFC3339)))
}

// event records an event on the request object itself (issuer-lib's
// wrapper is not an API object).
func (s *Signer) event(cr signer.CertificateRequestObject, eventType, reason, msg string) {
	if s.Recorder == nil {
		return
	}
	if c, ok := cr.(interface{ DeepCopyObject() runtime.Object }); ok {
		s.Recorder.Eventf(c.DeepCopyObject(), nil, eventType, reason, eventActionSign, "%s", msg)
	}
}

// auditRequest describes a request for audit lines.
func (s *Signer) auditRequest(cr signer.CertificateRequestObject, obj quillv1.GenericIssuer) audit.Request {
	r := audit.Request{Issuer: obj.ID(), Namespace: cr.GetNamespace(), Name: cr.GetName()}
	if c, ok := cr.(interface{ DeepCopyObject() runtime.Object }); ok {
		switch o := c.DeepCopyObject().(type) {
		case *cmapi.CertificateRequest:
			r.Kind, r.Requester = quillv1.OriginKindCertificateRequest, o.Spec.Username
		case *certificatesv1.CertificateSigningRequest:
			r.Kind, r.Requester = quillv1.OriginKindCertificateSigningRequest, o.Spec.Username
		}
	}
	return r
}

// checkState is the lifecycle part of the issuer health check: it logs a
// change of spec.state once (status.state remembers the last one acted
// on) and refuses a Disabled issuer for good, until its spec changes.
func (s *Signer) checkState(obj quillv1.GenericIssuer) error {
	state, status := effectiveState(obj.GetSpec()), obj.GetStatus()
	if last := status.State; last != state && (last != "" || state != quillv1.StateActive) {
		by := ""
		if state == quillv1.StateDisabled {
			by = obj.GetAnnotations()[quillv1.AnnotationDisabledBy]
		}
		s.Audit.StateChange(obj.ID(), string(last), string(state), by)
		if s.Recorder != nil {
			msg := fmt.Sprintf("state changed from %q to %s", last, state)
			if by != "" {
				msg += " by " + by
			}
			s.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, eventStateChanged, eventActionCheck, "%s", msg)
		}
	}
	if state == quillv1.StateDisabled {
		return classify.ForIssuerLib(classify.New(classify.Permanent, quillv1.ReasonDisabled, errDisabled))
	}
	return nil
}

func effectiveState(spec *quillv1.IssuerSpec) quillv1.IssuerState {
	if spec.State == "" {
		return quillv1.StateActive
	}
	return spec.State
}

// effectiveDuration is what policy compares with its limits: the requested
// lifetime, or the issuer's default when none was asked for.
func effectiveDuration(requested time.Duration, opts issuance.Options) time.Duration {
	if requested > 0 {
		return requested
	}
	if opts.DefaultDuration > 0 {
		return opts.DefaultDuration
	}
	return issuance.DefaultCertificateDuration
}

// joinNotes merges the notes of policy and signing for one event.
func joinNotes(a, b []string) string {
	return strings.Join(append(append([]string{}, a...), b...), "; ")
}

// invalidConfig classifies err, a problem with the issuer's own settings
// (policy, templates, issuance options), as the issuer's fault.
func invalidConfig(err error) error {
	return classify.New(classify.IssuerFault, quillv1.ReasonInvalidConfig, err)
}
