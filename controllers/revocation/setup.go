// Package revocation carries out revocation and publishes it: the
// QuillRevocation reconciler and the automatic revocation rules mark ledger
// records revoked; the CRL publisher signs each issuer's CRL into a
// ConfigMap and keeps its delegated OCSP responder certificate current
// (recorded in the ledger and the audit log like every certificate signed
// with the CA key). All of it runs on the leader; the HTTP side is
// controllers/revocationhttp.
package revocation

import (
	"sync"
	"time"

	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/audit"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/pkg/metrics"
)

// Config is what the revocation controllers need; controllers.Setup fills
// it.
type Config struct {
	// Index is the ledger index, kept by a watch on every replica.
	Index *ledger.Index
	// Journal writes revocation lines into the ledger; the signer shares
	// it.
	Journal *ledger.Journal
	// Store loads issuers' CAs to sign CRLs and responder certificates.
	Store *castore.Store
	// ClusterResourceNamespace is the home of QuillClusterIssuers.
	ClusterResourceNamespace string
	// BaseURL is --revocation-base-url; empty leaves the URLs out of
	// status.
	BaseURL  string
	Clock    clock.PassiveClock
	Recorder events.EventRecorder
	// Metrics and Audit record revocations, CRLs and responder
	// certificates; nil and the zero value record nothing.
	Metrics *metrics.Metrics
	Audit   audit.Logger
	// CertManagerUsername is the requester of the CertificateRequests
	// cert-manager's controller creates: supersession is decided only from
	// those.
	CertManagerUsername string

	// CRLPartSize is for tests only: the most CRL bytes one ConfigMap
	// holds; zero means the production limit, well under the API server's
	// object size limit.
	CRLPartSize int
}

// Setup adds the QuillRevocation reconciler, the automatic revocation
// rules, the CRL publisher and the ledger-size metric to mgr.
func Setup(mgr ctrl.Manager, cfg Config) error {
	countLedger(cfg.Index, cfg.Metrics)
	rv := revoker{client: mgr.GetClient(), reader: mgr.GetAPIReader(), index: cfg.Index, journal: cfg.Journal, clock: cfg.Clock,
		metrics: cfg.Metrics, audit: cfg.Audit}
	if err := (&revocationReconciler{revoker: rv, clusterNamespace: cfg.ClusterResourceNamespace, recorder: cfg.Recorder}).setup(mgr); err != nil {
		return err
	}
	for _, kind := range quillv1.IssuerKinds() {
		if err := (&lifecycleReconciler{revoker: rv, clusterNamespace: cfg.ClusterResourceNamespace, kind: kind,
			certManagerUsername: cfg.CertManagerUsername, recorder: cfg.Recorder}).setup(mgr); err != nil {
			return err
		}
	}
	return (&crlPublisher{
		client: mgr.GetClient(), reader: mgr.GetAPIReader(), store: cfg.Store, index: cfg.Index, journal: cfg.Journal,
		clusterNamespace: cfg.ClusterResourceNamespace, clock: cfg.Clock, baseURL: cfg.BaseURL, audit: cfg.Audit,
		recorder: cfg.Recorder, partSize: cfg.CRLPartSize,
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
		m.LedgerIgnoredObjects(index.CorruptSegments(), index.ForeignObjects())
	})
}

// revocationRetry is how soon a revocation that found nothing to revoke is
// tried again: the certificate may be recorded a moment later.
const revocationRetry = 30 * time.Second
