package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
)

// issuerTrigger enqueues an issuer for a reconciler some time after its
// ledger records change, once per delay however many changes arrive
// meanwhile: a burst of issuance or revocation becomes one reconcile. fire
// runs on the ledger watch's goroutine, so it only starts a timer.
type issuerTrigger struct {
	delay func(ledger.IssuerKey) time.Duration

	mu             sync.Mutex
	pending        map[ledger.IssuerKey]bool
	issuers        chan event.GenericEvent
	clusterIssuers chan event.GenericEvent
}

func newIssuerTrigger(delay func(ledger.IssuerKey) time.Duration) *issuerTrigger {
	return &issuerTrigger{
		delay:          delay,
		pending:        map[ledger.IssuerKey]bool{},
		issuers:        make(chan event.GenericEvent, 1024),
		clusterIssuers: make(chan event.GenericEvent, 1024),
	}
}

// fire schedules a reconcile of k unless one is already scheduled.
func (t *issuerTrigger) fire(k ledger.IssuerKey) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending[k] {
		return
	}
	t.pending[k] = true
	time.AfterFunc(t.delay(k), func() {
		t.mu.Lock()
		delete(t.pending, k)
		t.mu.Unlock()
		if k.Kind == ledger.KindClusterIssuer {
			t.clusterIssuers <- event.GenericEvent{Object: &quillv1.QuillClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: k.Name}}}
		} else {
			t.issuers <- event.GenericEvent{Object: &quillv1.QuillIssuer{ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name}}}
		}
	})
}

// source is the trigger's events for the reconciler of one issuer kind.
func (t *issuerTrigger) source(cluster bool) source.Source {
	if cluster {
		return source.Channel(t.clusterIssuers, &handler.EnqueueRequestForObject{})
	}
	return source.Channel(t.issuers, &handler.EnqueueRequestForObject{})
}

// issuerObject is a Quill issuer of either kind as a reconciler reads it:
// obj to Get into, and views of its spec, status, ledger key and home
// namespace (its own, or the cluster resource namespace for a
// QuillClusterIssuer).
type issuerObject struct {
	obj    client.Object
	spec   *quillv1.IssuerSpec
	status *quillv1.IssuerStatus
	key    ledger.IssuerKey
	home   string
}

func newIssuerObject(cluster bool, name types.NamespacedName, clusterNamespace string) issuerObject {
	if cluster {
		iss := &quillv1.QuillClusterIssuer{}
		return issuerObject{obj: iss, spec: &iss.Spec, status: &iss.Status, home: clusterNamespace,
			key: ledger.IssuerKey{Kind: ledger.KindClusterIssuer, Name: name.Name}}
	}
	iss := &quillv1.QuillIssuer{}
	return issuerObject{obj: iss, spec: &iss.Spec, status: &iss.Status, home: name.Namespace,
		key: ledger.IssuerKey{Kind: ledger.KindIssuer, Namespace: name.Namespace, Name: name.Name}}
}

// specChanges passes issuer events that change the spec (and creations and
// deletions): the reconcilers that follow the ledger write the issuer's
// status themselves, and reacting to every status write, theirs and
// issuer-lib's, would make them wake each other in turn for nothing.
var specChanges = builder.WithPredicates(predicate.GenerationChangedPredicate{})

// specOrCAChanges also passes a change of status.ca: a new CA needs a new
// CRL, and the inventory reports the CA's algorithms.
var specOrCAChanges = builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return !equality.Semantic.DeepEqual(caOf(e.ObjectOld), caOf(e.ObjectNew))
	},
	CreateFunc:  func(event.CreateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
}))

func caOf(o client.Object) *quillv1.CASummary {
	switch iss := o.(type) {
	case *quillv1.QuillIssuer:
		return iss.Status.CA
	case *quillv1.QuillClusterIssuer:
		return iss.Status.CA
	}
	return nil
}
