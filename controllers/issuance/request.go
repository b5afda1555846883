package issuance

import (
	"context"
	"fmt"
	"time"

	cmutil "github.com/cert-manager/cert-manager/pkg/api/util"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	issuerlib "github.com/cert-manager/issuer-lib/controllers"
	"github.com/cert-manager/issuer-lib/controllers/signer"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// Event action of the CertificateRequest reconciler.
const eventActionRequest = "SignRequest"

// requestIssuerIndex indexes CertificateRequests by the Quill issuer they
// name (IssuerID.String()), so that an issuer turning Ready wakes exactly
// the requests waiting for it.
const requestIssuerIndex = "quill.dev/issuer"

// requestReconciler takes every CertificateRequest addressed to a Quill
// issuer to its outcome, in place of issuer-lib's CertificateRequest
// controller: signed (Ready=True, Issued), refused (Ready=False, Failed,
// with InvalidRequest=True when the request itself is at fault), denied by
// an approver (Ready=False, Denied) or, while something it needs is
// missing, Pending with the reason in the Ready condition's message.
//
// An approved request is signed on its first reconcile. issuer-lib
// v0.11.0 first writes a Ready=Unknown "Initializing" condition and signs
// only on the reconcile that write triggers: one more status write and
// one more trip through the watch and the work queue on the critical path
// of every certificate. cert-manager's own issuers write nothing before
// they sign, and neither does Quill: the status is written once per
// reconcile, with the result.
//
// Denied requests are finished here too (issuer-lib acts only on approved
// ones and would leave them without a Ready condition for ever, while
// cert-manager's contract wants Ready=False, Denied and a failureTime so
// that the Certificate stops waiting).
//
// Signing is Signer.Sign, the same gate as for Kubernetes CSRs
// (csrReconciler), so templates, policy, ledger, audit and metrics apply
// identically; a request retried after a crash gets the certificate the
// ledger recorded for it, never a second one.
type requestReconciler struct {
	// client reads requests and issuers (cached) and writes request
	// status.
	client client.Client
	sign   signer.Sign
	// recheck asks issuer-lib's reconciler of the issuer to run its health
	// check again, after a Sign reported an issuer fault.
	recheck  func(quillv1.IssuerID)
	clock    clock.PassiveClock
	recorder events.EventRecorder
	// maxRetry is how long after its creation a request whose signing
	// keeps failing with a retryable error stays Pending before it is
	// marked Failed (issuer-lib's MaxRetryDuration). Waiting for an issuer
	// to exist or be Ready never fails a request: cert-manager's own
	// issuers let it wait too.
	maxRetry time.Duration
}

// requestIssuer is the Quill issuer a CertificateRequest names, if it
// names one: group quill.dev, kind QuillClusterIssuer, or QuillIssuer (the
// default for an empty kind, as issuer-lib reads it) in the request's own
// namespace.
func requestIssuer(cr *cmapi.CertificateRequest) (quillv1.IssuerID, bool) {
	ref := cr.Spec.IssuerRef
	if ref.Group != quillv1.GroupVersion.Group || ref.Name == "" {
		return quillv1.IssuerID{}, false
	}
	switch ref.Kind {
	case "", quillv1.IssuerKind:
		return quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: cr.Namespace, Name: ref.Name}, true
	case quillv1.ClusterIssuerKind:
		return quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: ref.Name}, true
	}
	return quillv1.IssuerID{}, false
}

// requestFinished reports whether a request needs nothing more: signed,
// failed or denied. Requests are one-shot; a finished one is never
// written again.
func requestFinished(cr *cmapi.CertificateRequest) bool {
	ready := cmutil.GetCertificateRequestCondition(cr, cmapi.CertificateRequestConditionReady)
	return ready != nil && (ready.Status == cmmeta.ConditionTrue ||
		ready.Reason == cmapi.CertificateRequestReasonFailed || ready.Reason == cmapi.CertificateRequestReasonDenied)
}

func (r *requestReconciler) setup(ctx context.Context, mgr ctrl.Manager, opts controller.Options) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &cmapi.CertificateRequest{}, requestIssuerIndex, func(o client.Object) []string {
		if id, ok := requestIssuer(o.(*cmapi.CertificateRequest)); ok {
			return []string{id.String()}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing CertificateRequests by issuer: %w", err)
	}
	ours := predicate.NewPredicateFuncs(func(o client.Object) bool {
		cr, ok := o.(*cmapi.CertificateRequest)
		if !ok {
			return false
		}
		_, mine := requestIssuer(cr)
		return mine
	})
	b := ctrl.NewControllerManagedBy(mgr).
		// The name issuer-lib's controller had, so that dashboards on
		// controller_runtime_* metrics keep working.
		Named("certificaterequest").
		// Only what can change the outcome wakes a request: its creation,
		// an approval or denial, an annotation. Quill's own Ready writes do
		// not (issuer-lib's predicate).
		For(&cmapi.CertificateRequest{}, builder.WithPredicates(ours, issuerlib.CertificateRequestPredicate{})).
		WithOptions(opts)
	return wakeWhenIssuerReady(b, r.waitingFor).Complete(r)
}

// waitingFor lists the unfinished requests addressed to the issuer id. It
// reads the cache's own objects, without copying them: an issuer may have
// many requests, finished ones included, and only their keys are kept.
func (r *requestReconciler) waitingFor(ctx context.Context, id quillv1.IssuerID) []reconcile.Request {
	var list cmapi.CertificateRequestList
	if err := r.client.List(ctx, &list, client.MatchingFields{requestIssuerIndex: id.String()}, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if cr := &list.Items[i]; !requestFinished(cr) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(cr)})
		}
	}
	return reqs
}

// Reconcile takes one CertificateRequest for a Quill issuer a step
// towards its outcome, writing its status at most once.
func (r *requestReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return unlessGone(r.reconcile(ctx, req))
}

func (r *requestReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var cr cmapi.CertificateRequest
	if err := r.client.Get(ctx, req.NamespacedName, &cr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err) // gone: nothing to do
	}
	id, ours := requestIssuer(&cr)
	switch {
	case !ours || requestFinished(&cr):
		return ctrl.Result{}, nil // another issuer's, or final
	case cmutil.CertificateRequestIsDenied(&cr):
		return ctrl.Result{}, r.finishDenied(ctx, &cr) // done; retry with backoff if the write failed
	case !cmutil.CertificateRequestIsApproved(&cr):
		return ctrl.Result{}, nil // an approver decides first; its condition wakes the request
	}

	iss, why, err := issuerToSign(ctx, r.client, id)
	if err != nil {
		return ctrl.Result{}, err // retry with backoff
	}
	if why != nil {
		return ctrl.Result{}, r.pending(ctx, &cr, eventWaitingForIssuer, fmt.Sprintf("%s: %s; the request waits for it", why.reason, why.msg)) // an issuer change wakes it
	}
	bundle, err := r.sign(ctx, signer.CertificateRequestObjectFromCertificateRequest(&cr), iss)
	if err != nil {
		return r.signFailed(ctx, &cr, id, classifySign(err))
	}
	st := r.status(&cr, cmmeta.ConditionTrue, cmapi.CertificateRequestReasonIssued, "Signed by "+id.String())
	st.Certificate, st.CA = bundle.ChainPEM, bundle.CAPEM
	// Signer.Sign has recorded CertificateIssued (serial, template,
	// expiry); a second event would say less and cost one more write.
	return ctrl.Result{}, r.write(ctx, &cr, st) // done; retry with backoff (the ledger gives the same certificate back)
}

// signFailed turns Sign's error into the request's outcome.
func (r *requestReconciler) signFailed(ctx context.Context, cr *cmapi.CertificateRequest, id quillv1.IssuerID, f signFailure) (ctrl.Result, error) {
	switch f.class {
	case signPermanent:
		return ctrl.Result{}, r.fail(ctx, cr, f.failedReason(), f.err.Error(), f.condition) // done
	case signIssuerFault:
		r.recheck(id)
		return ctrl.Result{RequeueAfter: recheckWait}, r.pending(ctx, cr, eventWaitingForIssuer, fmt.Sprintf("%s must be checked again: %v", id, f.issuerErr)) // the issuer's check decides
	case signPending:
		after := f.pendingErr.RequeueAfter
		if after <= 0 {
			after = time.Second
		}
		return ctrl.Result{RequeueAfter: after}, r.pending(ctx, cr, "", fmt.Sprintf("signing in progress: %v", f.err)) // look again
	}
	if r.clock.Now().After(cr.CreationTimestamp.Add(r.maxRetry)) {
		return ctrl.Result{}, r.fail(ctx, cr, quillv1.ReasonSigningFailed, fmt.Sprintf("still failing %s after creation: %v", r.maxRetry, f.err), nil) // done
	}
	if err := r.pending(ctx, cr, eventRetryableError, fmt.Sprintf("signing failed, will retry: %v", f.err)); err != nil {
		return ctrl.Result{}, err // retry with backoff
	}
	return ctrl.Result{}, f.err // retry with backoff
}

// pending keeps the request Pending with msg, and records an event with
// reason (none if empty). It writes only when the message changes, so a
// request waiting for its issuer costs nothing each time it looks again.
func (r *requestReconciler) pending(ctx context.Context, cr *cmapi.CertificateRequest, reason, msg string) error {
	if ready := cmutil.GetCertificateRequestCondition(cr, cmapi.CertificateRequestConditionReady); ready != nil &&
		ready.Status == cmmeta.ConditionFalse && ready.Reason == cmapi.CertificateRequestReasonPending && ready.Message == msg {
		return nil // already says so
	}
	if err := r.write(ctx, cr, r.status(cr, cmmeta.ConditionFalse, cmapi.CertificateRequestReasonPending, msg)); err != nil {
		return err
	}
	if reason != "" {
		r.recorder.Eventf(cr, nil, corev1.EventTypeWarning, reason, eventActionRequest, "%s", msg)
	}
	return nil
}

// fail marks the request Failed for good, with failureTime, the refusal's
// own condition if it has one, and an event whose reason says why.
func (r *requestReconciler) fail(ctx context.Context, cr *cmapi.CertificateRequest, reason, msg string, cond *signer.SetCertificateRequestConditionError) error {
	msg = "Quill will not sign this request: " + msg
	st := r.status(cr, cmmeta.ConditionFalse, cmapi.CertificateRequestReasonFailed, msg)
	if cond != nil {
		st.Conditions = append(st.Conditions, r.condition(cr, cond.ConditionType, cond.Status, cond.Reason, cond.Err.Error()))
	}
	if err := r.write(ctx, cr, st); err != nil {
		return err
	}
	r.recorder.Eventf(cr, nil, corev1.EventTypeWarning, reason, eventActionRequest, "%s", msg)
	return nil
}

// finishDenied writes the Denied outcome, carrying the approver's reason.
func (r *requestReconciler) finishDenied(ctx context.Context, cr *cmapi.CertificateRequest) error {
	denial := cmutil.GetCertificateRequestCondition(cr, cmapi.CertificateRequestConditionDenied)
	msg := fmt.Sprintf("The CertificateRequest was denied (%s: %s); Quill will not sign it", denial.Reason, denial.Message)
	st := r.status(cr, cmmeta.ConditionFalse, cmapi.CertificateRequestReasonDenied, msg)
	if err := r.write(ctx, cr, st); err != nil {
		return err
	}
	r.recorder.Eventf(cr, nil, corev1.EventTypeWarning, cmapi.CertificateRequestReasonDenied, "Deny", "%s", msg)
	return nil
}

// status is Quill's part of a request's status with its Ready condition
// set, and failureTime when that condition is final and not Ready.
func (r *requestReconciler) status(cr *cmapi.CertificateRequest, status cmmeta.ConditionStatus, reason, msg string) *cmapi.CertificateRequestStatus {
	st := &cmapi.CertificateRequestStatus{Conditions: []cmapi.CertificateRequestCondition{
		r.condition(cr, cmapi.CertificateRequestConditionReady, status, reason, msg),
	}}
	if status == cmmeta.ConditionFalse && reason != cmapi.CertificateRequestReasonPending {
		now := metav1.NewTime(r.clock.Now())
		st.FailureTime = &now
	}
	return st
}

// condition is a condition of cr as Quill writes it. Its transition time
// is now, unless cr already has that condition with the same status: a
// request Pending since 10:00 that fails at 10:05 has been False since
// 10:00.
func (r *requestReconciler) condition(cr *cmapi.CertificateRequest, typ cmapi.CertificateRequestConditionType,
	status cmmeta.ConditionStatus, reason, msg string,
) cmapi.CertificateRequestCondition {
	now := metav1.NewTime(r.clock.Now())
	c := cmapi.CertificateRequestCondition{Type: typ, Status: status, Reason: reason, Message: msg, LastTransitionTime: &now}
	if old := cmutil.GetCertificateRequestCondition(cr, typ); old != nil && old.Status == status && old.LastTransitionTime != nil {
		c.LastTransitionTime = old.LastTransitionTime
	}
	return c
}

func (r *requestReconciler) write(ctx context.Context, cr *cmapi.CertificateRequest, st *cmapi.CertificateRequestStatus) error {
	return applyStatus(ctx, r.client, cr, cmapi.SchemeGroupVersion.String(), cmapi.CertificateRequestKind, st)
}
