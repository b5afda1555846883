package issuance

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	cmutil "github.com/cert-manager/cert-manager/pkg/api/util"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/issuers"
)

// deniedReconciler finishes CertificateRequests for Quill's issuers that an
// approver denied. cert-manager's contract wants them Ready=False with
// reason Denied and a failureTime, so that the Certificate stops waiting;
// issuer-lib v0.11.0 acts only on approved requests and would leave a
// denied one without a Ready condition for ever.
type deniedReconciler struct {
	client   client.Client
	clock    clock.PassiveClock
	recorder events.EventRecorder
}

func (r *deniedReconciler) setup(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("quill-denied-certificaterequests").
		For(&cmapi.CertificateRequest{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			cr, ok := o.(*cmapi.CertificateRequest)
			return ok && cr.Spec.IssuerRef.Group == quillv1.GroupVersion.Group && cmutil.CertificateRequestIsDenied(cr)
		}))).
		Complete(r)
}

// Reconcile writes the Denied outcome once, in one status patch.
func (r *deniedReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var cr cmapi.CertificateRequest
	if err := r.client.Get(ctx, req.NamespacedName, &cr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err) // gone: nothing to finish
	}
	if cr.Spec.IssuerRef.Group != quillv1.GroupVersion.Group || !cmutil.CertificateRequestIsDenied(&cr) {
		return ctrl.Result{}, nil // not ours, or not denied
	}
	if ready := cmutil.GetCertificateRequestCondition(&cr, cmapi.CertificateRequestConditionReady); ready != nil &&
		(ready.Status == cmmeta.ConditionTrue || ready.Reason == cmapi.CertificateRequestReasonDenied || ready.Reason == cmapi.CertificateRequestReasonFailed) {
		return ctrl.Result{}, nil // already final: requests are one-shot
	}
	denial := cmutil.GetCertificateRequestCondition(&cr, cmapi.CertificateRequestConditionDenied)
	now := metav1.NewTime(r.clock.Now().Truncate(time.Second))
	msg := fmt.Sprintf("The CertificateRequest was denied (%s: %s); Quill will not sign it", denial.Reason, denial.Message)
	patch := map[string]any{
		"apiVersion": cmapi.SchemeGroupVersion.String(),
		"kind":       cmapi.CertificateRequestKind,
		"metadata":   map[string]any{"name": cr.Name, "namespace": cr.Namespace},
		"status": map[string]any{
			"conditions": []cmapi.CertificateRequestCondition{{
				Type: cmapi.CertificateRequestConditionReady, Status: cmmeta.ConditionFalse,
				Reason: cmapi.CertificateRequestReasonDenied, Message: msg, LastTransitionTime: &now,
			}},
			"failureTime": now,
		},
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return ctrl.Result{}, err // retry with backoff
	}
	if err := r.client.Status().Patch(ctx, &cr, client.RawPatch(types.ApplyPatchType, body),
		client.ForceOwnership, client.FieldOwner(issuers.FieldOwner)); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err) // retry with backoff
	}
	r.recorder.Eventf(&cr, nil, corev1.EventTypeWarning, cmapi.CertificateRequestReasonDenied, "Deny", "%s", msg)
	return ctrl.Result{}, nil // done
}
