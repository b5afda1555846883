package issuance

import (
	"context"
	"fmt"
	"time"

	"github.com/cert-manager/issuer-lib/controllers/signer"
	authzv1 "k8s.io/api/authorization/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/audit"
)

// The controller needs to ask the API server whether a CSR's requester may
// use a namespaced issuer.
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// Event actions and reasons of the Kubernetes CSR reconciler, beside the
// Failed reasons in api/ (quillv1.Reason*).
const (
	eventActionCSR        = "SignCSR"
	eventWaitingForIssuer = "WaitingForIssuer"
	eventRetryableError   = "RetryableError"
)

// recheckWait is how soon a CSR whose signing reported an issuer fault is
// tried again: by then the issuer's health check has usually run and
// turned it not Ready, and the CSR waits for it instead.
const recheckWait = 2 * time.Second

// csrReconciler signs Kubernetes CertificateSigningRequests addressed to
// Quill's signer names (quillv1.ParseSignerName), for both issuer kinds, in
// place of issuer-lib's CSR controller. issuer-lib v0.11.0 refuses
// namespaced issuer types for Kubernetes CSRs and says so only in a debug
// log, and for cluster issuers it leaves a CSR whose issuer is missing, not
// Ready or whose signer name does not parse without any condition:
// Kubernetes CSRs have no Pending state, so such a CSR would sit Approved
// and unsigned until the API server garbage-collects it. Here every
// approved CSR for a Quill signer name ends either with a certificate or
// with a Failed condition whose reason says why.
//
// Signing itself is Signer.Sign, the same gate as for cert-manager
// CertificateRequests, so templates, policy, ledger, audit and metrics
// apply identically. What only a CSR needs happens before it: for a
// QuillIssuer, a SubjectAccessReview that the requester may "reference"
// that issuer in its namespace (cert-manager's rule for its namespaced
// Issuers; a CSR is cluster-scoped, so without it anyone allowed to create
// CSRs could use any namespace's CA).
type csrReconciler struct {
	// client reads CSRs and issuers (cached), writes CSR status and creates
	// SubjectAccessReviews.
	client client.Client
	sign   signer.Sign
	// recheck asks issuer-lib's reconciler of the issuer to run its health
	// check again, as issuer-lib does after a Sign reported an issuer fault.
	recheck  func(quillv1.IssuerID)
	audit    audit.Logger
	clock    clock.PassiveClock
	recorder events.EventRecorder
	// maxWait is how long after approval a CSR may wait for its issuer (to
	// exist, to become Ready) or retry a failing signature before it is
	// marked Failed.
	maxWait time.Duration
}

func (r *csrReconciler) setup(mgr ctrl.Manager, opts controller.Options) error {
	ours := predicate.NewPredicateFuncs(func(o client.Object) bool {
		csr, ok := o.(*certificatesv1.CertificateSigningRequest)
		if !ok {
			return false
		}
		_, mine, _ := quillv1.ParseSignerName(csr.Spec.SignerName)
		return mine
	})
	b := ctrl.NewControllerManagedBy(mgr).
		Named("quill-kubernetes-csrs").
		For(&certificatesv1.CertificateSigningRequest{}, builder.WithPredicates(ours)).
		WithOptions(opts)
	return wakeWhenIssuerReady(b, r.waitingFor).Complete(r)
}

// waitingFor lists the unfinished CSRs addressed to the issuer id, reading
// the cache's own objects without copying them (only their names are
// kept).
func (r *csrReconciler) waitingFor(ctx context.Context, id quillv1.IssuerID) []reconcile.Request {
	var list certificatesv1.CertificateSigningRequestList
	if err := r.client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		csr := &list.Items[i]
		if got, _, err := quillv1.ParseSignerName(csr.Spec.SignerName); err == nil && got == id && !finished(csr) {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: csr.Name}})
		}
	}
	return reqs
}

// finished reports whether a CSR needs nothing more from Quill: signed,
// failed or denied. An unapproved CSR is not finished but not yet Quill's
// to act on.
func finished(csr *certificatesv1.CertificateSigningRequest) bool {
	return len(csr.Status.Certificate) > 0 || csrCondition(csr, certificatesv1.CertificateFailed) ||
		csrCondition(csr, certificatesv1.CertificateDenied)
}

func csrCondition(csr *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// Reconcile takes one approved CSR for a Quill signer name to a
// certificate or a Failed condition.
func (r *csrReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return unlessGone(r.reconcile(ctx, req))
}

func (r *csrReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var csr certificatesv1.CertificateSigningRequest
	if err := r.client.Get(ctx, req.NamespacedName, &csr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err) // gone: nothing to do
	}
	id, ours, parseErr := quillv1.ParseSignerName(csr.Spec.SignerName)
	if !ours || finished(&csr) || !csrCondition(&csr, certificatesv1.CertificateApproved) {
		return ctrl.Result{}, nil // another signer's, final, or not approved yet: left alone
	}
	if parseErr != nil {
		return r.fail(ctx, &csr, quillv1.ReasonInvalidSignerName, parseErr.Error()) // done
	}
	now := r.clock.Now()
	deadline := approvedAt(&csr).Add(r.maxWait)

	if !id.IsCluster() {
		ok, err := r.mayReference(ctx, &csr, id)
		if err != nil {
			return ctrl.Result{}, fmt.Errorf("asking whether %q may reference %s: %w", csr.Spec.Username, id, err) // retry with backoff
		}
		if !ok {
			msg := fmt.Sprintf("the requester %q may not reference %s: it needs the verb %q on %s %q (resource name %q) in namespace %q",
				csr.Spec.Username, id, quillv1.VerbReference, quillv1.GroupVersion.Group, quillv1.SignerResource, id.Name, id.Namespace)
			r.audit.Deny(r.auditRecord(&csr, id), quillv1.ReasonDeniedReference, msg)
			return r.fail(ctx, &csr, quillv1.ReasonDeniedReference, msg) // done
		}
	}

	iss, why, err := issuerToSign(ctx, r.client, id)
	switch {
	case err != nil:
		return ctrl.Result{}, err // retry with backoff
	case why != nil && why.final:
		// Failed for good (e.g. Disabled): nothing changes until its spec
		// does, so the CSR does not wait.
		return r.fail(ctx, &csr, why.reason, why.msg) // done
	case why != nil:
		return r.wait(ctx, &csr, now, deadline, why.reason, why.msg) // done, or requeue at the deadline
	}

	bundle, err := r.sign(ctx, csrRequest{&csr}, iss)
	if err == nil {
		return ctrl.Result{}, r.apply(ctx, &csr, map[string]any{"certificate": bundle.ChainPEM}) // done; retry with backoff if the write failed
	}
	return r.signFailed(ctx, &csr, id, now, deadline, classifySign(err))
}

// signFailed turns Sign's error into the CSR's outcome.
func (r *csrReconciler) signFailed(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, id quillv1.IssuerID,
	now, deadline time.Time, f signFailure,
) (ctrl.Result, error) {
	switch {
	case f.class == signPermanent:
		return r.fail(ctx, csr, f.failedReason(), f.err.Error()) // done
	case now.After(deadline):
		reason := quillv1.ReasonSigningFailed
		if f.class == signIssuerFault {
			reason = quillv1.ReasonIssuerNotReady
		}
		return r.fail(ctx, csr, reason, fmt.Sprintf("still failing %s after approval: %v", r.maxWait, f.err)) // done
	case f.class == signIssuerFault:
		r.recheck(id)
		r.recorder.Eventf(csr, nil, corev1.EventTypeWarning, eventWaitingForIssuer, eventActionCSR, "%s must be checked again: %v", id, f.issuerErr)
		return ctrl.Result{RequeueAfter: recheckWait}, nil // requeue: the issuer's check decides
	case f.class == signPending:
		after := f.pendingErr.RequeueAfter
		if after <= 0 {
			after = time.Second
		}
		return ctrl.Result{RequeueAfter: after}, nil // requeue: signing is in progress
	}
	r.recorder.Eventf(csr, nil, corev1.EventTypeWarning, eventRetryableError, eventActionCSR, "signing failed, will retry: %v", f.err)
	return ctrl.Result{}, f.err // retry with backoff
}

// wait tells, in an event, what the CSR waits for, and fails it with
// reason once the deadline has passed.
func (r *csrReconciler) wait(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, now, deadline time.Time, reason, msg string) (ctrl.Result, error) {
	if !now.Before(deadline) {
		return r.fail(ctx, csr, reason, fmt.Sprintf("%s, %s after approval", msg, r.maxWait)) // done
	}
	r.recorder.Eventf(csr, nil, corev1.EventTypeWarning, eventWaitingForIssuer, eventActionCSR,
		"%s: %s; the request fails at %s unless that changes", reason, msg, deadline.UTC().Format(time.RFC3339))
	return ctrl.Result{RequeueAfter: deadline.Sub(now) + time.Second}, nil // requeue at the deadline; an issuer change comes sooner
}

// fail writes the Failed condition, final for the CSR, and an event.
func (r *csrReconciler) fail(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, reason, msg string) (ctrl.Result, error) {
	now := metav1.NewTime(r.clock.Now().Truncate(time.Second))
	cond := certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateFailed, Status: corev1.ConditionTrue,
		Reason: reason, Message: "Quill will not sign this request: " + msg,
		LastUpdateTime: now, LastTransitionTime: now,
	}
	if err := r.apply(ctx, csr, map[string]any{"conditions": []certificatesv1.CertificateSigningRequestCondition{cond}}); err != nil {
		return ctrl.Result{}, err // retry with backoff
	}
	r.recorder.Eventf(csr, nil, corev1.EventTypeWarning, reason, eventActionCSR, "%s", cond.Message)
	return ctrl.Result{}, nil // done
}

// apply writes status fields of csr.
func (r *csrReconciler) apply(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, status map[string]any) error {
	return applyStatus(ctx, r.client, csr, certificatesv1.SchemeGroupVersion.String(), "CertificateSigningRequest", status)
}

// mayReference asks the API server whether the CSR's requester may use the
// QuillIssuer id: the verb "reference" on quill.dev "signers" named after
// the issuer, or "*", in its namespace. The requester is the user the API
// server recorded in the CSR's spec when it was created, never anything
// the requester wrote.
func (r *csrReconciler) mayReference(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, id quillv1.IssuerID) (bool, error) {
	extra := make(map[string]authzv1.ExtraValue, len(csr.Spec.Extra))
	for k, v := range csr.Spec.Extra {
		extra[k] = authzv1.ExtraValue(v)
	}
	for _, name := range []string{id.Name, quillv1.SignerNameAllOf} {
		sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User: csr.Spec.Username, Groups: csr.Spec.Groups, Extra: extra, UID: csr.Spec.UID,
			ResourceAttributes: &authzv1.ResourceAttributes{
				Group: quillv1.GroupVersion.Group, Version: "*", Resource: quillv1.SignerResource,
				Verb: quillv1.VerbReference, Namespace: id.Namespace, Name: name,
			},
		}}
		if err := r.client.Create(ctx, sar); err != nil {
			return false, err
		}
		if sar.Status.Allowed {
			return true, nil
		}
	}
	return false, nil
}

// auditRecord describes a CSR refused before Sign saw it.
func (r *csrReconciler) auditRecord(csr *certificatesv1.CertificateSigningRequest, id quillv1.IssuerID) audit.Request {
	return audit.Request{Issuer: id, Kind: quillv1.OriginKindCertificateSigningRequest, Name: csr.Name, Requester: csr.Spec.Username}
}

// approvedAt is when the CSR was approved (the API server stamps the
// condition), or its creation when the condition carries no time.
func approvedAt(csr *certificatesv1.CertificateSigningRequest) time.Time {
	for _, c := range csr.Status.Conditions {
		if c.Type == certificatesv1.CertificateApproved && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time
		}
	}
	return csr.CreationTimestamp.Time
}
