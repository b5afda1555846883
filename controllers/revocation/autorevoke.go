package revocation

import (
	"context"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/issuers"
	"github.com/quill-pki/quill/pkg/ledger"
)

// RBAC for the automatic revocation rules.
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;list;watch

// lifecyclePeriod is how often the automatic rules are applied to an
// issuer that has them; the walk is over the in-memory index.
const lifecyclePeriod = time.Minute

// lifecycleReconciler applies an issuer's automatic revocation rules:
// revoke the certificates of a deleted cert-manager Certificate, and revoke
// a certificate some time after its Certificate was renewed. It runs on the
// leader, walking the in-memory ledger index; Certificates are watched as
// metadata only.
type lifecycleReconciler struct {
	revoker
	clusterNamespace string
	kind             quillv1.GenericIssuer
}

func (r *lifecycleReconciler) setup(mgr ctrl.Manager) error {
	kind := r.kind.ID().Kind
	// A new certificate may supersede another: look again a moment after
	// the ledger changes (the delay gathers a burst of issuance into one
	// walk).
	trigger := issuers.NewTrigger(func(quillv1.IssuerID) time.Duration { return time.Second })
	r.index.Subscribe(func(c ledger.Change) {
		if c.Issuer.Kind == kind {
			trigger.Fire(c.Issuer)
		}
	})
	cert := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: cmapi.SchemeGroupVersion.String(), Kind: cmapi.CertificateKind}}
	return ctrl.NewControllerManagedBy(mgr).Named("lifecycle-"+issuers.ControllerSuffix(r.kind)).For(r.kind, issuers.SpecChanges).
		WatchesRawSource(trigger.Source(r.kind)).
		WatchesMetadata(cert, handler.Funcs{DeleteFunc: func(_ context.Context, e event.TypedDeleteEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			for _, req := range r.issuersOf(e.Object.GetNamespace(), e.Object.GetName()) {
				q.Add(req)
			}
		}}).
		Complete(r)
}

// issuersOf lists the issuers of this reconciler's kind that issued
// certificates for the cert-manager Certificate namespace/name.
func (r *lifecycleReconciler) issuersOf(namespace, name string) []reconcile.Request {
	var reqs []reconcile.Request
	for _, k := range r.index.Issuers() {
		if k.Kind != r.kind.ID().Kind || len(r.index.ForCertificate(k, namespace, name)) == 0 {
			continue
		}
		reqs = append(reqs, reconcile.Request{NamespacedName: k.NamespacedName()})
	}
	return reqs
}

func (r *lifecycleReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obj, k := issuers.At(r.kind, req.NamespacedName)
	if err := r.client.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	pol := obj.GetSpec().Revocation
	if !pol.RevokeOnCertificateDeletion && pol.RevokeSupersededAfter == nil {
		return ctrl.Result{}, nil
	}
	if !r.index.Synced() {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	now := r.clock.Now()
	next := now.Add(lifecyclePeriod)
	var firstErr error
	r.index.CertificateGroups(k, func(namespace, name string, recs []ledger.Record) {
		if firstErr != nil {
			return
		}
		live := unrevokedUnexpired(recs, now)
		if len(live) == 0 {
			return
		}
		if pol.RevokeOnCertificateDeletion {
			// From the manager's metadata cache, which the watch above fills.
			err := r.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: cmapi.SchemeGroupVersion.String(), Kind: cmapi.CertificateKind}})
			switch {
			case apierrors.IsNotFound(err):
				for _, rec := range revocable(live) {
					if _, firstErr = r.revoke(ctx, rec, quillv1.ReasonCessationOfOperation, "certificate-deleted"); firstErr != nil {
						return
					}
				}
				logf.FromContext(ctx).Info("revoked the certificates of a deleted Certificate", "certificate", namespace+"/"+name, "count", len(live))
				return
			case err != nil:
				firstErr = err
				return
			}
		}
		if d := pol.RevokeSupersededAfter; d != nil && len(live) > 1 {
			newest := live[len(live)-1]
			due := newest.IssuedAt.Add(d.Duration)
			if now.Before(due) {
				if due.Before(next) {
					next = due
				}
				return
			}
			for _, rec := range revocable(live[:len(live)-1]) {
				if _, firstErr = r.revoke(ctx, rec, quillv1.ReasonSuperseded, "superseded"); firstErr != nil {
					return
				}
			}
		}
	})
	if firstErr != nil {
		return ctrl.Result{}, firstErr
	}
	return ctrl.Result{RequeueAfter: max(next.Sub(now), time.Second)}, nil
}

func unrevokedUnexpired(recs []ledger.Record, now time.Time) []ledger.Record {
	var out []ledger.Record
	for _, r := range recs {
		if !r.Revoked && r.NotAfter.After(now) {
			out = append(out, r)
		}
	}
	return out
}
