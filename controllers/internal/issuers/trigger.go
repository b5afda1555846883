// Package issuers is the plumbing Quill's reconcilers of issuer objects
// share: the field owner of their writes, a trigger that wakes a reconciler
// when an issuer's ledger records change, the event filters, and the watch
// that maps a Secret to the issuers reading it.
package issuers

import (
	"context"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// Trigger enqueues an issuer for a reconciler some time after its
// ledger records change, once per delay however many changes arrive
// meanwhile: a burst of issuance or revocation becomes one reconcile (the
// work queue keeps one entry per issuer, at the earliest time asked). The
// ledger index runs on every replica but the reconcilers only on the
// leader: until a reconciler's queue exists, Fire does nothing, and the
// reconciler's first pass over every issuer covers what it missed.
type Trigger struct {
	delay func(quillv1.IssuerID) time.Duration

	mu     sync.Mutex
	queues map[string]workqueue.TypedRateLimitingInterface[reconcile.Request] // by issuer kind
}

func NewTrigger(delay func(quillv1.IssuerID) time.Duration) *Trigger {
	return &Trigger{delay: delay, queues: map[string]workqueue.TypedRateLimitingInterface[reconcile.Request]{}}
}

// Fire schedules a reconcile of k after its delay, unless one is already
// scheduled sooner. It runs on the ledger watch's goroutine and does not
// block.
func (t *Trigger) Fire(k quillv1.IssuerID) {
	t.mu.Lock()
	q := t.queues[k.Kind]
	t.mu.Unlock()
	if q == nil {
		return // not leading: no reconciler to wake
	}
	q.AddAfter(reconcile.Request{NamespacedName: k.NamespacedName()}, t.delay(k))
}

// Source hands Fire the work queue of the reconciler of one issuer kind
// (an object of that kind), for as long as that reconciler runs.
func (t *Trigger) Source(kind quillv1.GenericIssuer) source.Source {
	k := kind.ID().Kind
	return source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		t.mu.Lock()
		t.queues[k] = q
		t.mu.Unlock()
		go func() {
			<-ctx.Done()
			t.mu.Lock()
			if t.queues[k] == q {
				delete(t.queues, k)
			}
			t.mu.Unlock()
		}()
		return nil
	})
}

// At is an empty issuer of kind (an object of that kind, as
// quillv1.IssuerKinds returns) to read into, and its identity at key.
func At(kind quillv1.GenericIssuer, key types.NamespacedName) (quillv1.GenericIssuer, quillv1.IssuerID) {
	return kind.ID().NewObject(), quillv1.IDOf(kind, key)
}

// SpecChanges passes issuer events that change the spec (and creations and
// deletions): the reconcilers that follow the ledger write the issuer's
// status themselves, and reacting to every status write, theirs and
// issuer-lib's, would make them wake each other in turn for nothing.
var SpecChanges = builder.WithPredicates(predicate.GenerationChangedPredicate{})

// SpecOrCAChanges also passes a change of status.ca: a new CA needs a new
// CRL, and the inventory reports the CA's algorithms.
var SpecOrCAChanges = builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return !equality.Semantic.DeepEqual(caOf(e.ObjectOld), caOf(e.ObjectNew))
	},
	CreateFunc:  func(event.CreateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
}))

func caOf(o client.Object) *quillv1.CASummary {
	if iss, ok := o.(quillv1.GenericIssuer); ok {
		return iss.GetStatus().CA
	}
	return nil
}

// ControllerSuffix names a reconciler's issuer kind in its controller name
// ("issuer", "clusterissuer"), which metrics and logs show.
func ControllerSuffix(kind quillv1.GenericIssuer) string {
	return strings.ToLower(strings.TrimPrefix(kind.ID().Kind, "Quill"))
}
