package issuers

import (
	"context"
	"errors"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/castore"
)

// FieldOwner is the server-side apply field manager of everything Quill's
// controllers write; writers of one part of a status add a suffix.
const FieldOwner = "quill.dev"

// ErrLedgerNotSynced makes work that needs the whole ledger wait until the
// ledger index has read it: before that, "no record" might only mean "not
// read yet". It is a pending condition, never a failure.
var ErrLedgerNotSynced = errors.New("the issuance ledger is still loading; the request will be retried")

// SecretWatch re-runs a reconciler of issuers when a Secret one of them
// reads changes, so that a replaced, repaired or deleted CA shows without
// waiting for a signing failure. It watches Secret metadata only, so Secret
// contents are never cached in the controller's memory.
type SecretWatch struct {
	Client           client.Reader
	ClusterNamespace string
}

// Add is issuer-lib's PreSetupWithManager hook: it adds the Secret watch to
// the issuer reconcilers and leaves the request reconcilers alone.
func (w *SecretWatch) Add(_ context.Context, gvk schema.GroupVersionKind, _ ctrl.Manager, b *builder.Builder) error {
	kind := quillv1.IssuerID{Kind: gvk.Kind}.NewObject()
	if gvk.Group != quillv1.GroupVersion.Group || kind == nil {
		return nil // request controllers need no Secret events
	}
	b.WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		return w.IssuersReading(ctx, kind, o.GetNamespace(), o.GetName())
	}))
	return nil
}

// IssuersReading lists the issuers of one kind (an object of that kind)
// that read the Secret namespace/name (CA, certificate or PIN Secret).
func (w *SecretWatch) IssuersReading(ctx context.Context, kind quillv1.GenericIssuer, namespace, name string) []reconcile.Request {
	var opts []client.ListOption
	if kind.ID().IsCluster() {
		if namespace != w.ClusterNamespace {
			return nil
		}
	} else {
		opts = append(opts, client.InNamespace(namespace))
	}
	list := kind.NewList()
	if err := w.Client.List(ctx, list, opts...); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, iss := range list.Issuers() {
		if slices.Contains(castore.SecretNames(iss.GetSpec().CA), name) {
			reqs = append(reqs, reconcile.Request{NamespacedName: iss.ID().NamespacedName()})
		}
	}
	return reqs
}

// Runnable adapts a function to a manager runnable that runs on every
// replica, leader or not.
type Runnable func(context.Context) error

// Start runs the function.
func (f Runnable) Start(ctx context.Context) error { return f(ctx) }

// NeedLeaderElection is false: every replica runs it.
func (Runnable) NeedLeaderElection() bool { return false }
