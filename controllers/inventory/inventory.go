// Package inventory keeps each issuer's crypto-agility inventory
// (status.inventory and the quill_certificates_unexpired and quill_ca_info
// metrics) in step with its ledger records.
package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/issuers"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/pkg/metrics"
)

const (
	// inventoryStatusFieldOwner is the server-side apply field manager of
	// status.inventory, apart from the writers of the rest of the status.
	inventoryStatusFieldOwner = issuers.FieldOwner + "/inventory"
	// InventoryRefresh is the longest status.inventory and the inventory
	// metrics go without a recount; certificates also expire with no event
	// at all, and the earliest expiry is recounted on time.
	InventoryRefresh = 5 * time.Minute
	// inventoryBatchDelay gathers certificates issued or revoked close
	// together into one recount and one status write.
	inventoryBatchDelay = 2 * time.Second
)

// inventoryPublisher keeps each issuer's crypto-agility inventory
// (status.inventory, quill_certificates_unexpired, quill_ca_info) in step
// with its ledger, on the leader. It counts from the in-memory ledger
// index, so a recount reads nothing from the API server.
type inventoryPublisher struct {
	client  client.Client
	index   *ledger.Index
	metrics *metrics.Metrics
	clock   clock.PassiveClock

	trigger *issuers.Trigger
}

func (p *inventoryPublisher) setup(mgr ctrl.Manager) error {
	// Any change of the ledger (issued, revoked, deleted, or everything
	// after a relist) may change the counts.
	p.trigger = issuers.NewTrigger(func(quillv1.IssuerID) time.Duration { return inventoryBatchDelay })
	p.index.Subscribe(func(c ledger.Change) { p.trigger.Fire(c.Issuer) })
	// Issuer events bring status.ca changes into quill_ca_info and count a
	// new issuer's certificates at once.
	for _, kind := range quillv1.IssuerKinds() {
		if err := ctrl.NewControllerManagedBy(mgr).Named("inventory-"+issuers.ControllerSuffix(kind)).For(kind, issuers.SpecOrCAChanges).
			WatchesRawSource(p.trigger.Source(kind)).
			Complete(&inventoryReconciler{p: p, kind: kind}); err != nil {
			return err
		}
	}
	return nil
}

type inventoryReconciler struct {
	p    *inventoryPublisher
	kind quillv1.GenericIssuer
}

func (r *inventoryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := r.p
	obj, k := issuers.At(r.kind, req.NamespacedName)
	status := obj.GetStatus()
	if err := p.client.Get(ctx, req.NamespacedName, obj); err != nil {
		if client.IgnoreNotFound(err) == nil {
			// A deleted CA must not look like one about to expire or
			// down: its gauges go (its counters stay, as history).
			p.metrics.ForgetInventory(k)
			p.metrics.ForgetIssuer(k)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err) // deleted: done; else retry with backoff
	}
	if !p.index.Synced() {
		// Counting a partly read ledger would publish too small a count.
		return ctrl.Result{RequeueAfter: time.Second}, nil // wait for the ledger
	}
	now := p.clock.Now()
	inv := p.index.Inventory(k, now)
	var caKey, caSig string
	if ca := status.CA; ca != nil {
		caKey, caSig = ca.KeyAlgorithm, ca.SignatureAlgorithm
	}
	p.metrics.SetInventory(k, unexpiredSeries(inv), caKey, caSig)
	if want := inventoryStatus(inv); !equality.Semantic.DeepEqual(status.Inventory, want) {
		if err := p.recordStatus(ctx, obj, k, want); err != nil {
			return ctrl.Result{}, err // retry with backoff
		}
	}
	next := InventoryRefresh
	if !inv.NextExpiry.IsZero() {
		// A moment after the earliest expiry, so that it has passed.
		next = min(next, max(inv.NextExpiry.Sub(now)+time.Second, time.Second))
	}
	return ctrl.Result{RequeueAfter: next}, nil // recount when certificates expire
}

// recordStatus writes status.inventory under its own field manager.
func (p *inventoryPublisher) recordStatus(ctx context.Context, obj client.Object, k quillv1.IssuerID, want *quillv1.InventoryStatus) error {
	patch := map[string]any{
		"apiVersion": quillv1.GroupVersion.String(),
		"kind":       k.Kind,
		"metadata":   map[string]any{"name": obj.GetName(), "namespace": obj.GetNamespace()},
		"status":     map[string]any{"inventory": want},
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	if err := p.client.Status().Patch(ctx, obj, client.RawPatch(types.ApplyPatchType, body), client.ForceOwnership, client.FieldOwner(inventoryStatusFieldOwner)); err != nil {
		return fmt.Errorf("recording the certificate inventory in status: %w", err)
	}
	return nil
}

// inventoryStatus is inv as the issuer's status shows it.
func inventoryStatus(inv ledger.Inventory) *quillv1.InventoryStatus {
	st := &quillv1.InventoryStatus{
		UnexpiredCertificates: inv.Unexpired,
		QuantumVulnerable:     inv.QuantumVulnerable,
		Revoked:               inv.Revoked,
		KeyAlgorithms:         algorithmCounts(inv.KeyAlgorithms),
		SignatureAlgorithms:   algorithmCounts(inv.SignatureAlgorithms),
	}
	if !inv.NextExpiry.IsZero() {
		// Whole seconds, as the API stores it, so that an unchanged
		// inventory compares equal to what was written.
		st.NextExpiry = &metav1.Time{Time: inv.NextExpiry.UTC().Truncate(time.Second)}
	}
	return st
}

func algorithmCounts(in []ledger.AlgorithmCount) []quillv1.AlgorithmCount {
	if len(in) == 0 {
		return nil
	}
	out := make([]quillv1.AlgorithmCount, len(in))
	for i, c := range in {
		out[i] = quillv1.AlgorithmCount{Algorithm: c.Algorithm, Certificates: c.Certificates, QuantumVulnerable: c.QuantumVulnerable, Revoked: c.Revoked}
	}
	return out
}

// unexpiredSeries splits each key algorithm's count into its
// quantum-vulnerable part and the rest, one quill_certificates_unexpired
// series each; a part with no certificates has no series.
func unexpiredSeries(inv ledger.Inventory) []metrics.UnexpiredCount {
	var out []metrics.UnexpiredCount
	for _, c := range inv.KeyAlgorithms {
		if c.QuantumVulnerable > 0 {
			out = append(out, metrics.UnexpiredCount{KeyAlgorithm: c.Algorithm, QuantumVulnerable: true, Certificates: c.QuantumVulnerable})
		}
		if rest := c.Certificates - c.QuantumVulnerable; rest > 0 {
			out = append(out, metrics.UnexpiredCount{KeyAlgorithm: c.Algorithm, Certificates: rest})
		}
	}
	return out
}

// Setup adds the inventory reconcilers, one per issuer kind, to mgr; they
// count from index and run on the leader.
func Setup(mgr ctrl.Manager, index *ledger.Index, m *metrics.Metrics, clk clock.PassiveClock) error {
	return (&inventoryPublisher{client: mgr.GetClient(), index: index, metrics: m, clock: clk}).setup(mgr)
}
