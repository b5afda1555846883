package controllers

import (
	"context"
	"sync"

	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/audit"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/pkg/metrics"
)

// runnable adapts a function to a manager runnable that runs on every
// replica, leader or not.
type runnable func(context.Context) error

func (f runnable) Start(ctx context.Context) error { return f(ctx) }
func (runnable) NeedLeaderElection() bool          { return false }

// setupRevocation adds the issuance ledger, revocation, CRL publishing and
// the automatic revocation rules to mgr, and gives s its ledger. The ledger
// index and the CRL/OCSP server run on every replica; everything that signs
// or writes runs on the leader.
func setupRevocation(mgr ctrl.Manager, opts Options, store *castore.Store, s *Signer, recorder events.EventRecorder) error {
	watcher, err := client.NewWithWatch(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return err
	}
	index := ledger.NewIndex()
	if err := mgr.Add(runnable(func(ctx context.Context) error { return index.Run(ctx, watcher) })); err != nil {
		return err
	}
	s.Ledger = &Ledger{Index: index, Writer: mgr.GetClient(), Reader: mgr.GetAPIReader()}
	s.RevocationBaseURL = opts.RevocationBaseURL
	countLedger(index, opts.Metrics)
	rv := revoker{client: mgr.GetClient(), reader: mgr.GetAPIReader(), index: index, clock: opts.Clock,
		metrics: opts.Metrics, audit: audit.Logger{Log: opts.AuditLog}}
	if err := (&revocationReconciler{revoker: rv, clusterNamespace: opts.ClusterResourceNamespace, recorder: recorder}).setup(mgr); err != nil {
		return err
	}
	for _, kind := range quillv1.IssuerKinds() {
		if err := (&lifecycleReconciler{revoker: rv, clusterNamespace: opts.ClusterResourceNamespace, kind: kind}).setup(mgr); err != nil {
			return err
		}
	}
	if opts.RevocationBindAddress != "" && opts.RevocationBindAddress != "0" {
		if err := mgr.Add(&revocationServer{
			addr: opts.RevocationBindAddress, tlsConfig: opts.RevocationTLSConfig, reader: mgr.GetAPIReader(), cached: mgr.GetClient(),
			watcher: watcher, store: store, index: index, clusterNamespace: opts.ClusterResourceNamespace, clock: opts.Clock,
		}); err != nil {
			return err
		}
	}
	if err := (&inventoryPublisher{client: mgr.GetClient(), index: index, metrics: opts.Metrics, clock: opts.Clock}).setup(mgr); err != nil {
		return err
	}
	return (&crlPublisher{
		client: mgr.GetClient(), reader: mgr.GetAPIReader(), store: store, index: index,
		clusterNamespace: opts.ClusterResourceNamespace, clock: opts.Clock, baseURL: opts.RevocationBaseURL,
		audit: rv.audit,
	}).setup(mgr)
}

// countLedger keeps the ledger-size gauge in step with the index: each
// change (a record added, revoked or deleted, or a relist) sets its issuer's
// count, which the index keeps without walking records. The lock makes the
// last Set read the count after the last change.
func countLedger(index *ledger.Index, m *metrics.Metrics) {
	if m == nil {
		return
	}
	var mu sync.Mutex
	index.Subscribe(func(c ledger.Change) {
		mu.Lock()
		defer mu.Unlock()
		m.LedgerSize(c.Issuer, index.Count(c.Issuer))
	})
}
