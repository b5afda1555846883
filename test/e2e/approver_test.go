package e2e

import (
	"context"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// labelDeny makes the suite's approver deny a CertificateRequest.
const labelDeny = "e2e.quill.dev/deny"

// policyApprover stands in for an approval policy (approver-policy in a real
// cluster, where cert-manager's built-in approver is turned off): it approves
// every CertificateRequest except those labelled e2e.quill.dev/deny=true,
// which it denies. The suite needs it to produce Denied requests, which
// cert-manager's built-in approver never does.
type policyApprover struct{ client client.Client }

func (a *policyApprover) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var cr cmapi.CertificateRequest
	if err := a.client.Get(ctx, req.NamespacedName, &cr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	for _, c := range cr.Status.Conditions {
		if c.Type == cmapi.CertificateRequestConditionApproved || c.Type == cmapi.CertificateRequestConditionDenied {
			return ctrl.Result{}, nil // already decided
		}
	}
	cond := cmapi.CertificateRequestCondition{
		Type: cmapi.CertificateRequestConditionApproved, Status: cmmeta.ConditionTrue,
		Reason: "e2e-policy", Message: "approved by the e2e suite's policy", LastTransitionTime: &metav1.Time{Time: time.Now()},
	}
	if cr.Labels[labelDeny] == "true" {
		cond.Type, cond.Message = cmapi.CertificateRequestConditionDenied, "denied by the e2e suite's policy"
	}
	cr.Status.Conditions = append(cr.Status.Conditions, cond)
	return ctrl.Result{}, a.client.Status().Update(ctx, &cr) // a conflict retries with backoff
}
