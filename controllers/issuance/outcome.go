package issuance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	issuerapi "github.com/cert-manager/issuer-lib/api/v1alpha1"
	issuerlib "github.com/cert-manager/issuer-lib/controllers"
	"github.com/cert-manager/issuer-lib/controllers/signer"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/issuers"
)

// This file holds what the two request reconcilers (requestReconciler for
// cert-manager CertificateRequests, csrReconciler for Kubernetes CSRs)
// decide alike: whether the issuer can sign now, what Sign's error means,
// and how a request's status is written.

// blocked is why an issuer cannot sign now.
type blocked struct {
	// reason is quillv1.ReasonIssuerNotFound or ReasonIssuerNotReady.
	reason, msg string
	// final is true when nothing changes until the issuer's spec does (it
	// failed its check for good, e.g. Disabled).
	final bool
}

// issuerToSign reads the issuer id and tells whether it can sign now: it
// exists and issuer-lib's health check found its current generation
// Ready. A nil *blocked means it can. An error is the API server's.
func issuerToSign(ctx context.Context, c client.Reader, id quillv1.IssuerID) (quillv1.GenericIssuer, *blocked, error) {
	iss := id.NewObject()
	if err := c.Get(ctx, id.NamespacedName(), iss); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, nil, err // retry with backoff
		}
		return nil, &blocked{reason: quillv1.ReasonIssuerNotFound, msg: fmt.Sprintf("%s does not exist", id)}, nil
	}
	ready := meta.FindStatusCondition(iss.GetConditions(), issuerapi.IssuerConditionTypeReady)
	switch {
	case ready == nil || ready.ObservedGeneration < iss.GetGeneration():
		return nil, &blocked{reason: quillv1.ReasonIssuerNotReady, msg: fmt.Sprintf("%s has not been checked yet", id)}, nil
	case ready.Status != metav1.ConditionTrue:
		return nil, &blocked{
			reason: quillv1.ReasonIssuerNotReady, msg: fmt.Sprintf("%s is not Ready: %s", id, ready.Message),
			final: ready.Reason == issuerapi.IssuerConditionReasonFailed,
		}, nil
	}
	return iss, nil, nil
}

// wakeWhenIssuerReady adds to b a watch of both issuer kinds that
// enqueues waiting(issuer) whenever an issuer appears, changes its Ready
// status or has a new generation checked (issuer-lib's predicate), so that
// a request waiting for its issuer moves on at once.
func wakeWhenIssuerReady(b *builder.Builder, waiting func(context.Context, quillv1.IssuerID) []reconcile.Request) *builder.Builder {
	for _, kind := range quillv1.IssuerKinds() {
		b = b.Watches(kind.DeepCopyIssuer(), handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return waiting(ctx, quillv1.IDOf(kind, client.ObjectKeyFromObject(o)))
		}), builder.WithPredicates(issuerlib.LinkedIssuerPredicate{}))
	}
	return b
}

// signClass is what a Sign error asks of the request's reconciler.
type signClass int

const (
	// signRetry: anything unclassified (the API server, a timeout);
	// retried with backoff until the request's retry window closes.
	signRetry signClass = iota
	// signPending: signing is in progress; look again after a while.
	signPending
	// signIssuerFault: the issuer must be checked again; the request waits
	// for its verdict.
	signIssuerFault
	// signPermanent: the request fails for good.
	signPermanent
)

// signFailure reads Sign's error contract (issuer-lib's typed errors,
// which Signer.Sign returns through classify.ForIssuerLib).
type signFailure struct {
	class signClass
	err   error
	// condition is the condition a refusal sets beside Ready=False
	// (InvalidRequest=True with reason InvalidRequest or PolicyDenied), or
	// nil.
	condition *signer.SetCertificateRequestConditionError
	// issuerErr is the issuer's fault, for signIssuerFault.
	issuerErr error
	// pendingErr is the PendingError, for signPending.
	pendingErr signer.PendingError
}

func classifySign(err error) signFailure {
	f := signFailure{err: err}
	if condErr := new(signer.SetCertificateRequestConditionError); errors.As(err, condErr) {
		f.condition = condErr
	}
	var issuerErr signer.IssuerError
	switch {
	case errors.As(err, &signer.PermanentError{}):
		f.class = signPermanent
	case errors.As(err, &issuerErr):
		f.class, f.issuerErr = signIssuerFault, issuerErr.Err
	case errors.As(err, &f.pendingErr):
		f.class = signPending
	}
	return f
}

// failedReason is the reason a request that failed with f shows: the
// refusal's own (InvalidRequest, PolicyDenied) or ReasonSigningFailed.
func (f signFailure) failedReason() string {
	if f.condition != nil && f.condition.Reason != "" {
		return f.condition.Reason
	}
	return quillv1.ReasonSigningFailed
}

// errGone is applyStatus's error for a request deleted before its status
// was written: nothing is left to write to, and nothing to retry.
var errGone = errors.New("the request was deleted")

// applyStatus writes status as the whole of Quill's part of obj's status,
// in one forced server-side apply of the status subresource under the
// field owner issuer-lib used for the same writes, so that fields Quill
// wrote before are taken over rather than duplicated. A request deleted
// meanwhile is errGone.
func applyStatus(ctx context.Context, c client.Client, obj client.Object, apiVersion, kind string, status any) error {
	metadata := map[string]any{"name": obj.GetName()}
	if ns := obj.GetNamespace(); ns != "" {
		metadata["namespace"] = ns
	}
	body, err := json.Marshal(map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": metadata, "status": status})
	if err != nil {
		return fmt.Errorf("encoding the status of %s %s: %w", kind, obj.GetName(), err)
	}
	if err := c.Status().Patch(ctx, obj.DeepCopyObject().(client.Object), client.RawPatch(types.ApplyPatchType, body),
		client.ForceOwnership, client.FieldOwner(issuers.FieldOwner)); err != nil {
		if apierrors.IsNotFound(err) {
			return errGone
		}
		return fmt.Errorf("writing the status of %s %s: %w", kind, client.ObjectKeyFromObject(obj), err)
	}
	return nil
}

// unlessGone is a reconcile's outcome with errGone read as done.
func unlessGone(res ctrl.Result, err error) (ctrl.Result, error) {
	if errors.Is(err, errGone) {
		return ctrl.Result{}, nil // deleted meanwhile: done
	}
	return res, err
}
