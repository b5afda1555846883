// Package trustbundle publishes each issuer's CA certificates to a
// ConfigMap (spec.trustBundle) for servers and clients that trust it.
package trustbundle

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/issuers"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/owned"
)

// Event reasons of the trust bundle publisher, on the issuer.
const (
	eventTrustBundlePublished = "TrustBundlePublished"
	eventTrustBundleFailed    = "TrustBundleFailed"
	eventActionPublish        = "PublishTrustBundle"
)

// trustBundleFieldOwner is the server-side apply field manager of the
// published ConfigMaps.
const trustBundleFieldOwner = issuers.FieldOwner + "/trust-bundle"

// bundleTakenRetry is how often an issuer whose bundle name another
// ConfigMap holds looks again: that ConfigMap is not watched.
const bundleTakenRetry = time.Minute

var errBundleName = errors.New("invalid trust bundle ConfigMap name")

// legacyBundle recognises the bundles of a Quill from before the ownership
// mark: they carry no mark, but are controlled (owner reference) by the
// issuer, which only a writer of the ConfigMap can arrange.
func legacyBundle(issuer client.Object) owned.Legacy {
	return func(obj client.Object, _ string) bool {
		ref := metav1.GetControllerOf(obj)
		return ref != nil && ref.UID == issuer.GetUID()
	}
}

// RBAC for publishing trust bundles.
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch;delete

// trustBundleReconciler publishes an issuer's CA certificates to a
// ConfigMap (spec.trustBundle): the root, and with includeIntermediates the
// issuing CA and the CAs between it and the root. It runs again when the
// issuer changes (its health check rewrites status.ca when the CA changes),
// when a Secret the issuer reads changes, and when someone edits or deletes
// a published ConfigMap. One reconciler serves one issuer kind.
type trustBundleReconciler struct {
	client client.Client
	// reader reads the published ConfigMap from the API server. The watch
	// on bundles is metadata-only, so a cached full-object read could still
	// show the old contents when an edit wakes us, and the edit would stand.
	reader           client.Reader
	store            *castore.Store
	secrets          *issuers.SecretWatch
	clusterNamespace string
	// kind is an object of the issuer kind this reconciler serves.
	kind     quillv1.GenericIssuer
	recorder events.EventRecorder
}

func (r *trustBundleReconciler) setup(mgr ctrl.Manager) error {
	published := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetLabels()[quillv1.LabelTrustBundleKind] == r.kind.ID().Kind
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("quill-trust-bundle-"+r.kind.ID().Kind).
		// The bundle follows the spec and the CA, not the status writes of
		// the other reconcilers.
		For(r.kind, issuers.SpecOrCAChanges).
		// Metadata only: the bundles' contents need not sit in the cache,
		// and a changed or deleted bundle is simply written again.
		WatchesMetadata(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.bundleToIssuer), builder.WithPredicates(published)).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return r.secrets.IssuersReading(ctx, r.kind, o.GetNamespace(), o.GetName())
		})).
		Complete(r)
}

// bundleToIssuer maps a published ConfigMap to the issuer named by its
// labels.
func (r *trustBundleReconciler) bundleToIssuer(_ context.Context, o client.Object) []reconcile.Request {
	name := o.GetLabels()[quillv1.LabelTrustBundleIssuer]
	if name == "" {
		return nil
	}
	id := quillv1.IDOf(r.kind, client.ObjectKey{Namespace: o.GetNamespace(), Name: name})
	return []reconcile.Request{{NamespacedName: id.NamespacedName()}}
}

// Reconcile writes the issuer's trust bundle ConfigMap and removes bundles
// it published under a previous name.
func (r *trustBundleReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obj, id := issuers.At(r.kind, req.NamespacedName)
	if err := r.client.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err) // deleted: the owner reference removes its bundle
	}
	spec, ns := obj.GetSpec(), id.HomeNamespace(r.clusterNamespace)
	name, err := bundleName(obj.GetName(), spec.TrustBundle)
	if err != nil {
		r.recorder.Eventf(obj, nil, corev1.EventTypeWarning, eventTrustBundleFailed, eventActionPublish, "%s", err)
		return ctrl.Result{}, reconcile.TerminalError(err) // the issuer must be renamed or name its bundle
	}
	authority, err := r.store.Load(ctx, ns, spec.CA)
	if err != nil {
		var caErr *castore.Error
		if errors.As(err, &caErr) {
			// The issuer's health check reports why; a fix changes the
			// issuer's status or its Secret, which brings us back.
			return ctrl.Result{}, nil // no usable CA: keep what was published
		}
		return ctrl.Result{}, err // API server trouble: retry with backoff
	}
	includeIntermediates := spec.TrustBundle != nil && spec.TrustBundle.IncludeIntermediates
	bundle := bundlePEM(authority.Root, authority.Certificate, authority.Intermediates, includeIntermediates)

	var current corev1.ConfigMap
	err = r.reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &current)
	exists := err == nil
	switch {
	case err != nil && client.IgnoreNotFound(err) != nil:
		return ctrl.Result{}, err // retry with backoff
	case exists && r.taken(obj, &current) != nil:
		// Someone else's ConfigMap (a user's, or another issuer's bundle):
		// taking it over would overwrite it, and make it go when this
		// issuer goes.
		err := fmt.Errorf("%w; set spec.trustBundle.configMapName to another name", r.taken(obj, &current))
		r.recorder.Eventf(obj, nil, corev1.EventTypeWarning, quillv1.ReasonNameCollision, eventActionPublish, "%s", err)
		return ctrl.Result{RequeueAfter: bundleTakenRetry}, nil // a new name brings us back at once; the ConfigMap's deletion, within this
	case exists && owned.Marked(&current, id.String()) && current.Data[quillv1.TrustBundleKey] == bundle &&
		current.Labels[quillv1.LabelTrustBundleIssuer] == obj.GetName() && current.Labels[quillv1.LabelTrustBundleKind] == r.kind.ID().Kind:
		// Unchanged: no write, no event.
	default:
		var from *corev1.ConfigMap
		if exists {
			from = &current
		}
		if err := r.apply(ctx, obj, from, ns, name, bundle); err != nil {
			return ctrl.Result{}, err // retry with backoff
		}
		r.recorder.Eventf(obj, nil, corev1.EventTypeNormal, eventTrustBundlePublished, eventActionPublish,
			"published the CA bundle to ConfigMap %s/%s", ns, name)
	}
	return ctrl.Result{}, r.removeStale(ctx, obj, ns, name) // done, or retry the clean-up with backoff
}

// taken returns nil when cm, the ConfigMap under the bundle's name, is this
// issuer's bundle, and a collision (owned.ErrCollision) otherwise: it lacks
// the issuer's mark (and is not a bundle an earlier Quill published for
// it), or it is controlled by another object, such as a deleted issuer of
// the same name whose bundle is about to be garbage collected.
func (r *trustBundleReconciler) taken(issuer quillv1.GenericIssuer, cm client.Object) error {
	if err := owned.Check("ConfigMap", cm, issuer.ID().String(), legacyBundle(issuer)); err != nil {
		return err
	}
	if ref := metav1.GetControllerOf(cm); ref != nil && ref.UID != issuer.GetUID() {
		return &owned.CollisionError{Kind: "ConfigMap", Namespace: cm.GetNamespace(), Name: cm.GetName(), Owner: issuer.ID().String(), Holder: ref.Kind + " " + ref.Name + " (uid " + string(ref.UID) + ")"}
	}
	return nil
}

// apply writes the bundle, with the ownership mark, owned by the issuer so
// that it goes when the issuer goes. A new bundle is created, so that a
// ConfigMap appearing under its name in the meantime is not merged into
// (AlreadyExists); an existing one (current, checked to be the issuer's) is
// updated with server-side apply on the condition that it is unchanged
// since it was read.
func (r *trustBundleReconciler) apply(ctx context.Context, issuer quillv1.GenericIssuer, current *corev1.ConfigMap, ns, name, bundle string) error {
	gvk := quillv1.GroupVersion.WithKind(r.kind.ID().Kind)
	owner := issuer.ID().String()
	labels := owned.Labels()
	labels[quillv1.LabelTrustBundleKind] = r.kind.ID().Kind
	labels[quillv1.LabelTrustBundleIssuer] = issuer.GetName()
	ref := metav1.NewControllerRef(issuer, gvk)
	if current == nil {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, OwnerReferences: []metav1.OwnerReference{*ref}},
			Data:       map[string]string{quillv1.TrustBundleKey: bundle},
		}
		if err := owned.Create(ctx, r.client, cm, owner, client.FieldOwner(trustBundleFieldOwner)); err != nil {
			return fmt.Errorf("writing trust bundle %s/%s: %w", ns, name, err)
		}
		return nil
	}
	cm := corev1ac.ConfigMap(name, ns).
		WithResourceVersion(current.ResourceVersion).
		WithLabels(labels).
		WithAnnotations(owned.Annotations(owner)).
		WithOwnerReferences(metav1ac.OwnerReference().
			WithAPIVersion(gvk.GroupVersion().String()).
			WithKind(gvk.Kind).
			WithName(issuer.GetName()).
			WithUID(issuer.GetUID()).
			WithController(true)).
		WithData(map[string]string{quillv1.TrustBundleKey: bundle})
	if err := r.client.Apply(ctx, cm, client.FieldOwner(trustBundleFieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("writing trust bundle %s/%s: %w", ns, name, err)
	}
	return nil
}

// removeStale deletes bundles this issuer published under another name:
// only ConfigMaps that are its own (its mark, or an earlier Quill's bundle
// it controls), whatever labels the others carry.
func (r *trustBundleReconciler) removeStale(ctx context.Context, issuer quillv1.GenericIssuer, ns, keep string) error {
	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMapList"))
	if err := r.client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{
		quillv1.LabelTrustBundleKind:   r.kind.ID().Kind,
		quillv1.LabelTrustBundleIssuer: issuer.GetName(),
	}); err != nil {
		return err
	}
	for i := range list.Items {
		if list.Items[i].Name == keep || r.taken(issuer, &list.Items[i]) != nil {
			continue
		}
		err := owned.Delete(ctx, r.client, "ConfigMap", &list.Items[i], issuer.ID().String(), legacyBundle(issuer))
		if apierrors.IsConflict(err) {
			continue // changed since it was listed: the next reconcile looks again
		}
		if client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("removing stale trust bundle %s/%s: %w", ns, list.Items[i].Name, err)
		}
	}
	return nil
}

// bundleName is the ConfigMap name an issuer publishes to.
func bundleName(issuer string, tb *quillv1.TrustBundle) (string, error) {
	name := issuer + quillv1.TrustBundleSuffix
	if tb != nil && tb.ConfigMapName != "" {
		name = tb.ConfigMapName
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return "", fmt.Errorf("%w %q: %v; set spec.trustBundle.configMapName", errBundleName, name, errs)
	}
	return name, nil
}

// bundlePEM is the root, then (when asked) the issuing CA and the CAs
// between it and the root, nearest to the issuing CA first. The root is
// never repeated when the issuing CA is the root itself.
func bundlePEM(root, issuing *x509.Certificate, intermediates []*x509.Certificate, withIntermediates bool) string {
	var b bytes.Buffer
	write := func(c *x509.Certificate) {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	write(root)
	if withIntermediates {
		if !issuing.Equal(root) {
			write(issuing)
		}
		for _, c := range intermediates {
			if !c.Equal(root) {
				write(c)
			}
		}
	}
	return b.String()
}

// Setup adds the trust bundle reconcilers, one per issuer kind, to mgr.
// store reads CAs; secrets maps a changed Secret to the issuers reading it.
func Setup(mgr ctrl.Manager, store *castore.Store, secrets *issuers.SecretWatch, clusterResourceNamespace string, recorder events.EventRecorder) error {
	for _, kind := range quillv1.IssuerKinds() {
		if err := (&trustBundleReconciler{
			client: mgr.GetClient(), reader: mgr.GetAPIReader(), store: store, clusterNamespace: clusterResourceNamespace,
			kind: kind, recorder: recorder, secrets: secrets,
		}).setup(mgr); err != nil {
			return err
		}
	}
	return nil
}
