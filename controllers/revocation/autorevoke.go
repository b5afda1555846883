package revocation

import (
	"context"
	"fmt"
	"strconv"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/issuers"
	"github.com/quill-pki/quill/controllers/issuance"
	"github.com/quill-pki/quill/pkg/ledger"
)

// RBAC for the automatic revocation rules.
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;list;watch
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificaterequests,verbs=get

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
	// certManagerUsername is the requester of the CertificateRequests
	// cert-manager's controller creates; see supersedes.
	certManagerUsername string
	// recorder reports on the issuer why a renewal revoked nothing; nil
	// reports nothing.
	recorder events.EventRecorder
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
			doubt, transient, err := r.supersedes(ctx, namespace, name, newest)
			if err != nil {
				firstErr = err
				return
			}
			if doubt != "" {
				log := logf.FromContext(ctx).WithValues("certificate", namespace+"/"+name, "serial", ledger.SerialHex(newest.Serial))
				if transient {
					// cert-manager has not caught up with the newest
					// certificate yet; look again soon.
					log.V(1).Info("not revoking superseded certificates yet", "why", doubt)
					if soon := now.Add(supersessionRecheck); soon.Before(next) {
						next = soon
					}
					return
				}
				log.Info("not revoking superseded certificates", "why", doubt)
				if r.recorder != nil {
					r.recorder.Eventf(obj, nil, corev1.EventTypeWarning, reasonSupersessionUnverified, "RevokeSuperseded",
						"not revoking the certificates of Certificate %s/%s as superseded: %s", namespace, name, doubt)
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

// reasonSupersessionUnverified is the reason of the Warning event on an
// issuer whose revokeSupersededAfter rule left certificates alone because
// their supersession could not be verified.
const reasonSupersessionUnverified = "SupersessionUnverified"

// supersessionRecheck is how soon a supersession that waits for cert-manager
// to record the renewal in the Certificate's status is looked at again.
const supersessionRecheck = 5 * time.Second

// supersedes decides whether newest, the latest live certificate recorded
// for the cert-manager Certificate namespace/name, is that Certificate's
// renewal, so that the certificates before it are superseded. It returns
// why not ("" when it is), and whether that may change by itself soon.
//
// The ledger's Certificate name comes from a request annotation that anyone
// allowed to create CertificateRequests can write, so it is not trusted
// alone: the request must still exist, have been created by cert-manager's
// controller (spec.username, which cert-manager's webhook sets and freezes)
// and be controlled by the live Certificate of that name (its UID), and the
// Certificate's status.revision must have reached the request's
// certificate-revision, so cert-manager itself has taken newest as the
// Certificate's current certificate. Any doubt revokes nothing.
func (r *lifecycleReconciler) supersedes(ctx context.Context, namespace, name string, newest ledger.Record) (doubt string, transient bool, err error) {
	// The index holds the origin: no segment is read.
	if newest.OriginKind != quillv1.OriginKindCertificateRequest || newest.OriginNamespace != namespace {
		return "the newest certificate was not signed for a CertificateRequest in " + namespace, false, nil
	}
	var cr cmapi.CertificateRequest
	if err := r.reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: newest.RequestName}, &cr); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Sprintf("its CertificateRequest %s is gone", newest.RequestName), false, nil
		}
		return "", false, fmt.Errorf("reading CertificateRequest %s/%s: %w", namespace, newest.RequestName, err)
	}
	if cr.UID != newest.RequestUID {
		return fmt.Sprintf("its CertificateRequest %s was replaced by another of that name", newest.RequestName), false, nil
	}
	if issuance.CertificateOf(&cr, r.certManagerUsername) != name {
		return fmt.Sprintf("CertificateRequest %s was not created by cert-manager (%q) for Certificate %s: requested by %q, controlled by %s",
			newest.RequestName, r.certManagerUsername, name, cr.Spec.Username, describeController(&cr)), false, nil
	}
	var crt cmapi.Certificate
	if err := r.reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &crt); err != nil {
		if apierrors.IsNotFound(err) {
			return "the Certificate is gone", false, nil
		}
		return "", false, fmt.Errorf("reading Certificate %s/%s: %w", namespace, name, err)
	}
	if owner := metav1.GetControllerOf(&cr); owner == nil || owner.UID != crt.UID {
		return fmt.Sprintf("CertificateRequest %s belongs to an earlier Certificate of that name", newest.RequestName), false, nil
	}
	rev, err := strconv.Atoi(cr.Annotations[cmapi.CertificateRequestRevisionAnnotationKey])
	if err != nil {
		return fmt.Sprintf("CertificateRequest %s carries no valid %s", newest.RequestName, cmapi.CertificateRequestRevisionAnnotationKey), false, nil
	}
	switch {
	case crt.Status.Revision == nil || *crt.Status.Revision < rev:
		return fmt.Sprintf("the Certificate's status.revision has not reached revision %d of CertificateRequest %s", rev, newest.RequestName), true, nil
	case *crt.Status.Revision > rev:
		// A later revision is current, and not signed here (or not
		// recorded yet): its certificate, once in the ledger, is the
		// one that supersedes.
		return fmt.Sprintf("the Certificate is at revision %d, past revision %d of CertificateRequest %s", *crt.Status.Revision, rev, newest.RequestName), false, nil
	}
	return "", false, nil
}

// describeController names cr's controlling owner for a log line.
func describeController(cr *cmapi.CertificateRequest) string {
	owner := metav1.GetControllerOf(cr)
	if owner == nil {
		return "nothing"
	}
	return owner.Kind + " " + owner.Name
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
