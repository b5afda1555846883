// Package controllers wires Quill's controllers into a manager. Each
// concern lives in its own package:
//
//   - issuance: issuer-lib's Check and Sign (health check, policy and
//     templates, signing, the ledger record of each certificate) and
//     denied requests;
//   - revocation: QuillRevocations, automatic revocation, CRL publishing and
//     delegated OCSP responder certificates;
//   - revocationhttp: the CRL and OCSP HTTP server and its router;
//   - revocationdata: the names of what revocation publishes (CRL
//     ConfigMaps, responder Secrets, URLs), shared by the three above;
//   - trustbundle, intermediate, inventory: CA bundles, HSM-backed
//     intermediates' certificates, and the crypto-agility inventory.
//   - ledger: the leader's ledger compactor (sealing journals, retention
//     into the archive, migration of IssuedCertificates).
//
// What they share sits under internal/: issuers (reconciler plumbing),
// classify (errors to reasons and retry behaviour) and fixture (unit-test
// fixtures).
package controllers

import (
	"context"
	"crypto/tls"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/quill-pki/quill/controllers/intermediate"
	"github.com/quill-pki/quill/controllers/internal/issuers"
	"github.com/quill-pki/quill/controllers/inventory"
	"github.com/quill-pki/quill/controllers/issuance"
	ledgercontroller "github.com/quill-pki/quill/controllers/ledger"
	"github.com/quill-pki/quill/controllers/revocation"
	"github.com/quill-pki/quill/controllers/revocationhttp"
	"github.com/quill-pki/quill/controllers/trustbundle"
	"github.com/quill-pki/quill/pkg/audit"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/kms"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/pkg/metrics"
)

// FieldOwner is the server-side apply field manager of everything Quill's
// controllers write.
const FieldOwner = issuers.FieldOwner

// DefaultCertManagerUsername is the user cert-manager's controller runs as in
// a default installation: the service account of its Helm chart.
const DefaultCertManagerUsername = "system:serviceaccount:cert-manager:cert-manager"

// Options configure the controllers; cmd/controller fills them from flags.
type Options struct {
	// ClusterResourceNamespace is the only namespace QuillClusterIssuers
	// read Secrets from.
	ClusterResourceNamespace string
	// MaxRetryDuration is how long a request whose signing keeps failing
	// with a retryable error stays Pending before it is marked Failed.
	MaxRetryDuration time.Duration
	// MaxConcurrentReconciles of the issuer reconcilers. issuer-lib v0.11.0
	// does not pass it on to its request reconcilers: set the manager's
	// Controller.MaxConcurrentReconciles too (cmd/controller does).
	MaxConcurrentReconciles int
	// DisableKubernetesCSRs turns off signing of Kubernetes
	// CertificateSigningRequests.
	DisableKubernetesCSRs bool
	// PKCS11Modules is the allow-list of PKCS#11 libraries issuers may name
	// in spec.ca.pkcs11.module: name -> library path.
	PKCS11Modules map[string]string
	// Clock is the controllers' time; nil means the real clock.
	Clock clock.PassiveClock
	// RevocationBaseURL is where clients reach Quill's CRL and OCSP
	// endpoints (e.g. http://quill.quill-system.svc:8082); certificates of
	// issuers that name no URLs of their own point there.
	RevocationBaseURL string
	// RevocationBindAddress is the listen address of the CRL and OCSP HTTP
	// server; empty or "0" serves nothing.
	RevocationBindAddress string
	// RevocationTLSConfig, when set, serves CRL and OCSP over HTTPS with
	// it instead of plain HTTP.
	RevocationTLSConfig *tls.Config
	// OCSPNonceSignaturesPerSecond is the replica's ceiling on fresh OCSP
	// nonce signatures, all issuers together (revocationhttp.Config);
	// zero or less means none.
	OCSPNonceSignaturesPerSecond float64
	// AuditLog receives the audit lines (pkg/audit); the zero value means
	// the manager's logger, named "audit". Tests set it to read them.
	AuditLog logr.Logger
	// LedgerIndex is the in-memory ledger index Setup runs and every
	// controller reads; nil makes a new one. cmd/controller passes its own
	// to put Index.ReadyCheck on /readyz.
	LedgerIndex *ledger.Index
	// Metrics records Quill's quill_ metrics; nil means a set registered
	// with controller-runtime's registry, served on the manager's metrics
	// endpoint.
	Metrics *metrics.Metrics
	// CertManagerUsername is the requester (spec.username, as cert-manager's
	// webhook records it) of the CertificateRequests cert-manager's
	// controller creates; only those are taken to belong to a Certificate.
	// Empty means DefaultCertManagerUsername.
	CertManagerUsername string

	// LedgerArchiveDir is the ledger archive's directory (a mounted
	// volume): entries whose certificates expired longer ago than their
	// issuer's spec.ledger.retainExpiredFor move there. Empty turns
	// retention off: nothing leaves the live ledger.
	LedgerArchiveDir string
	// LedgerSealAfter is how old a journal is before the compactor seals
	// it; zero means ledger.DefaultSealAfter.
	LedgerSealAfter time.Duration
	// SkipLedgerMigration leaves the legacy IssuedCertificates in place
	// instead of converting them into sealed segments when the leader
	// starts.
	SkipLedgerMigration bool

	// CRLPartSize is for tests only: the most CRL bytes one ConfigMap
	// holds, so that a CRL of a few entries is published in parts; zero
	// means the production limit (revocation.Config.CRLPartSize).
	CRLPartSize int
}

// Setup registers Quill's controllers with mgr. The ledger index and the
// CRL/OCSP server run on every replica; everything that signs or writes
// runs on the leader.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
		if err := opts.Metrics.Register(crmetrics.Registry); err != nil {
			return err
		}
	}
	if opts.CertManagerUsername == "" {
		opts.CertManagerUsername = DefaultCertManagerUsername
	}
	if opts.AuditLog.GetSink() == nil {
		opts.AuditLog = mgr.GetLogger().WithName("audit")
	}
	auditLog := audit.Logger{Log: opts.AuditLog}
	store := &castore.Store{
		Reader:        mgr.GetAPIReader(),
		Metadata:      mgr.GetCache(),
		Writer:        mgr.GetClient(),
		Clock:         opts.Clock,
		PKCS11Modules: opts.PKCS11Modules,
		PKCS11Login: func(module, token string, r kms.LoginResult) {
			opts.Metrics.PKCS11Login(module, token, string(r))
		},
		Refusals: &castore.RefusalLog{
			Client: mgr.GetClient(), ClusterResourceNamespace: opts.ClusterResourceNamespace, FieldOwner: FieldOwner + "/pin-refusal",
		},
	}
	recorder := mgr.GetEventRecorder(FieldOwner)
	secrets := &issuers.SecretWatch{Client: mgr.GetClient(), ClusterNamespace: opts.ClusterResourceNamespace}

	// The ledger index, fed by its own watch, on every replica.
	watcher, err := client.NewWithWatch(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return err
	}
	index := opts.LedgerIndex
	if index == nil {
		index = ledger.NewIndex()
	}
	if err := mgr.Add(issuers.Runnable(func(ctx context.Context) error { return index.Run(ctx, watcher) })); err != nil {
		return err
	}

	s := &issuance.Signer{
		Store:                    store,
		StatusWriter:             mgr.GetClient(),
		ClusterResourceNamespace: opts.ClusterResourceNamespace,
		FieldOwner:               FieldOwner + "/ca-status",
		Clock:                    opts.Clock,
		Recorder:                 recorder,
		Ledger:                   &issuance.Ledger{Index: index, Writer: mgr.GetClient(), Reader: mgr.GetAPIReader(), CertManagerUsername: opts.CertManagerUsername},
		RevocationBaseURL:        opts.RevocationBaseURL,
		Templates:                mgr.GetClient(),
		Metrics:                  opts.Metrics,
		Audit:                    auditLog,
		KeySecretReader:          mgr.GetAPIReader(),
		KeySecretWriter:          mgr.GetClient(),
	}
	if err := revocation.Setup(mgr, revocation.Config{
		Index: index, Store: store, ClusterResourceNamespace: opts.ClusterResourceNamespace, BaseURL: opts.RevocationBaseURL,
		Clock: opts.Clock, Recorder: recorder, Metrics: opts.Metrics, Audit: auditLog,
		CertManagerUsername: opts.CertManagerUsername,
		CRLPartSize:         opts.CRLPartSize,
	}); err != nil {
		return err
	}
	if opts.RevocationBindAddress != "" && opts.RevocationBindAddress != "0" {
		if err := mgr.Add(revocationhttp.New(revocationhttp.Config{
			Addr: opts.RevocationBindAddress, TLSConfig: opts.RevocationTLSConfig, Reader: mgr.GetAPIReader(), Cached: mgr.GetClient(),
			Watcher: watcher, Store: store, Index: index, ClusterResourceNamespace: opts.ClusterResourceNamespace, Clock: opts.Clock,
			NonceSignaturesPerSecond: opts.OCSPNonceSignaturesPerSecond,
		})); err != nil {
			return err
		}
	}
	if err := inventory.Setup(mgr, index, opts.Metrics, opts.Clock); err != nil {
		return err
	}
	// The ledger's compactor, on the leader: seals journals, applies
	// retention into the archive, migrates IssuedCertificates. It reads
	// segments through the uncached watcher client, never the cache.
	compactor := &ledger.Compactor{Client: watcher, Requests: mgr.GetClient(), Index: index, Clock: opts.Clock, SealAfter: opts.LedgerSealAfter}
	if opts.LedgerArchiveDir != "" {
		compactor.Archive = &ledger.Archive{Dir: opts.LedgerArchiveDir}
	}
	compactorMetrics, err := ledgercontroller.NewMetrics(crmetrics.Registry)
	if err != nil {
		return err
	}
	if err := mgr.Add(ledgercontroller.New(ledgercontroller.Config{
		Compactor: compactor, Issuers: mgr.GetClient(), ClusterResourceNamespace: opts.ClusterResourceNamespace,
		Recorder: recorder, Log: mgr.GetLogger().WithName("ledger-compactor"), Metrics: compactorMetrics,
		SkipMigration: opts.SkipLedgerMigration,
	})); err != nil {
		return err
	}

	if err := intermediate.Setup(mgr, store, opts.ClusterResourceNamespace, opts.Clock, recorder); err != nil {
		return err
	}
	if err := trustbundle.Setup(mgr, store, secrets, opts.ClusterResourceNamespace, recorder); err != nil {
		return err
	}
	return s.Setup(ctx, mgr, issuance.Config{
		MaxRetryDuration: opts.MaxRetryDuration, MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
		DisableKubernetesCSRs: opts.DisableKubernetesCSRs, Secrets: secrets, Clock: opts.Clock, Recorder: recorder,
	})
}
