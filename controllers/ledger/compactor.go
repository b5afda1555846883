// Package ledger runs the ledger's compactor on the leader: once the
// ledger index has read the whole ledger, it migrates the legacy
// IssuedCertificates, then every minute or so, per issuer, seals the
// journals the signing path wrote and, when the controller has an archive,
// moves segments whose certificates expired longer ago than the issuer's
// spec.ledger.retainExpiredFor into it. What it does is logged, counted in
// quill_ledger_compactor_* metrics and, when entries leave the cluster or
// something is wrong, told as events on the issuer.
package ledger

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/pkg/metrics"
)

// Event reasons of the compactor, on the issuer whose ledger it changed.
// Migration of the legacy ledger runs over every issuer at once; it is
// logged and counted (quill_ledger_compactor_entries_total and
// _failures_total with step="migrate"), not recorded as events.
const (
	// ReasonLedgerArchived: segments past retention moved to the archive.
	ReasonLedgerArchived = "LedgerArchived"
	// ReasonLedgerCorrupt: a segment could not be decoded and stays in
	// place until someone looks at it.
	ReasonLedgerCorrupt = "LedgerSegmentCorrupt"
	// ReasonLedgerCompactionFailed: sealing or retention failed; it is
	// retried at the next tick.
	ReasonLedgerCompactionFailed = "LedgerCompactionFailed"
)

// The compactor reads and writes segments, deletes migrated
// IssuedCertificates, and reads issuers and requests from the cache.
// +kubebuilder:rbac:groups=quill.dev,resources=ledgersegments,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=quill.dev,resources=issuedcertificates,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=quill.dev,resources=quillissuers;quillclusterissuers,verbs=get;list;watch
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificaterequests,verbs=get;list;watch
// +kubebuilder:rbac:groups=certificates.k8s.io,resources=certificatesigningrequests,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// DefaultInterval is how often the compactor looks at every issuer.
const DefaultInterval = time.Minute

// Config configures the Runner.
type Config struct {
	// Compactor does the work; its Index is the one the signing path and
	// OCSP read.
	Compactor *ledger.Compactor
	// Issuers reads QuillIssuers and QuillClusterIssuers (the manager's
	// cache), for their retention and as the object of events.
	Issuers client.Reader
	// ClusterResourceNamespace is a QuillClusterIssuer's home namespace.
	ClusterResourceNamespace string
	// Interval between rounds; zero means DefaultInterval.
	Interval time.Duration
	// Recorder receives the events; nil records none.
	Recorder events.EventRecorder
	// Log receives a line per round that did something; the zero value
	// logs nothing.
	Log logr.Logger
	// Metrics records the counters; nil records nothing.
	Metrics *Metrics
	// SkipMigration leaves IssuedCertificates alone (the index still
	// reads them): to postpone the migration, or in tests that write the
	// legacy ledger while a controller runs.
	SkipMigration bool
}

// Runner is the compactor's leader-only manager.Runnable.
type Runner struct {
	cfg Config

	mu       sync.Mutex
	migrated bool
	// legacy is the legacy ledger as this leader found it when it
	// started; only that is migrated (see snapshotLegacy).
	legacy legacySnapshot
	// kick asks for a round before the next tick.
	kick chan struct{}
}

// New returns a Runner for cfg.
func New(cfg Config) *Runner {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	return &Runner{cfg: cfg, kick: make(chan struct{}, 1)}
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: only the
// leader writes the ledger.
func (*Runner) NeedLeaderElection() bool { return true }

// Kick asks for a round soon, e.g. after a burst of signing; it never
// blocks.
func (r *Runner) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Start waits for the index to be synced, then runs a round at once and
// one every Interval until ctx ends. A failed round is retried at the next
// tick; Start itself returns only when ctx ends.
func (r *Runner) Start(ctx context.Context) error {
	if !r.cfg.SkipMigration {
		r.mu.Lock()
		r.legacy = r.snapshotLegacy(ctx)
		r.mu.Unlock()
	}
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for !r.cfg.Compactor.Index.Synced() {
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
		}
	}
	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	for {
		r.Round(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-r.kick:
		}
	}
}

// Round migrates the legacy ledger (until that has once succeeded), then
// seals and retains every issuer's ledger. Errors are logged, counted and
// told; the next round retries.
func (r *Runner) Round(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.cfg.Compactor
	if !r.migrated && !r.cfg.SkipMigration && r.legacy.empty {
		r.migrated = true // there was no legacy ledger when this leader started
	}
	if !r.migrated && !r.cfg.SkipMigration {
		mc := *c
		if r.legacy.known {
			mc.Client = legacyUpTo{Client: c.Client, rv: r.legacy.rv}
		}
		n, err := mc.Migrate(ctx)
		r.cfg.Metrics.add(quillv1.IssuerID{}, stepMigrate, n)
		if err != nil {
			r.cfg.Metrics.fail(quillv1.IssuerID{}, stepMigrate)
			r.cfg.Log.Error(err, "migrating the legacy ledger; retrying at the next round", "migrated", n)
		} else {
			r.migrated = true
			if n > 0 {
				r.cfg.Log.Info("migrated the legacy ledger into sealed segments", "issuedCertificates", n)
			}
		}
	}
	for _, k := range r.issuers(ctx) {
		if ctx.Err() != nil {
			return
		}
		r.compact(ctx, k)
	}
}

// legacySnapshot is what one list request said of the legacy ledger.
type legacySnapshot struct {
	// empty: there was no IssuedCertificate at all.
	empty bool
	// known: rv is the list's resourceVersion, a number.
	known bool
	rv    uint64
}

// snapshotLegacy asks the API server whether a legacy ledger exists, and
// as of which resourceVersion. The migration converts only objects at or
// before it: the ledger this leader found when it started. Nothing writes
// IssuedCertificates after that in a cluster whose leader runs this
// version; something that does (a test, say) is left alone rather than
// raced.
func (r *Runner) snapshotLegacy(ctx context.Context) legacySnapshot {
	var list quillv1.IssuedCertificateList
	if err := r.cfg.Compactor.Client.List(ctx, &list, client.Limit(1)); err != nil {
		r.cfg.Log.Error(err, "looking for a legacy ledger; the first round migrates whatever it finds")
		return legacySnapshot{}
	}
	snap := legacySnapshot{empty: len(list.Items) == 0 && list.Continue == ""}
	if rv, err := strconv.ParseUint(list.ResourceVersion, 10, 64); err == nil {
		snap.known, snap.rv = true, rv
	}
	return snap
}

// legacyUpTo is a client whose lists of IssuedCertificates leave out the
// objects written after rv. resourceVersions are compared as numbers, as
// the ledger index does: an etcd-backed API server gives every write a
// number from one increasing counter.
type legacyUpTo struct {
	client.Client
	rv uint64
}

func (c legacyUpTo) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if err := c.Client.List(ctx, list, opts...); err != nil {
		return err
	}
	if ics, ok := list.(*quillv1.IssuedCertificateList); ok {
		kept := ics.Items[:0]
		for _, ic := range ics.Items {
			if rv, err := strconv.ParseUint(ic.ResourceVersion, 10, 64); err != nil || rv <= c.rv {
				kept = append(kept, ic)
			}
		}
		ics.Items = kept
	}
	return nil
}

// issuers lists the issuers whose ledgers a round looks at: those the
// index has records of (an issuer's ledger outlives the issuer) and every
// existing issuer (a journal of revocations alone may hold no record).
func (r *Runner) issuers(ctx context.Context) []quillv1.IssuerID {
	seen := map[quillv1.IssuerID]bool{}
	var out []quillv1.IssuerID
	add := func(k quillv1.IssuerID) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, k := range r.cfg.Compactor.Index.Issuers() {
		add(k)
	}
	if r.cfg.Issuers != nil {
		for _, kind := range quillv1.IssuerKinds() {
			list := kind.NewList()
			if err := r.cfg.Issuers.List(ctx, list); err != nil {
				r.cfg.Log.Error(err, "listing issuers for ledger compaction")
				continue
			}
			for _, iss := range list.Issuers() {
				add(iss.ID())
			}
		}
	}
	return out
}

func (r *Runner) compact(ctx context.Context, k quillv1.IssuerID) {
	c := r.cfg.Compactor
	home := k.HomeNamespace(r.cfg.ClusterResourceNamespace)
	log := r.cfg.Log.WithValues("issuer", k.String())
	issuer := r.issuer(ctx, k)

	st, err := c.Seal(ctx, k, home)
	r.cfg.Metrics.add(k, stepSeal, st.Entries)
	r.cfg.Metrics.dropped(k, st.CertificatesDropped)
	if st.Journals > 0 || st.Merged > 0 {
		log.V(1).Info("sealed journals", "journals", st.Journals, "segments", st.Segments, "entries", st.Entries,
			"revocations", st.Revocations, "certificatesKept", st.CertificatesKept, "duplicates", st.Duplicates,
			"mergedSegments", st.Merged, "mergedInto", st.MergedInto)
	}
	r.report(issuer, log, stepSeal, st.Corrupt, err)

	if c.Archive == nil {
		return // without an archive nothing leaves the live ledger
	}
	margin := quillv1.DefaultRetainExpiredFor
	if issuer != nil {
		if d := issuer.GetSpec().Ledger.RetainExpiredFor; d != nil && d.Duration > 0 {
			margin = d.Duration
		}
	}
	rst, err := c.Retain(ctx, k, home, margin)
	r.cfg.Metrics.add(k, stepArchive, rst.Entries)
	if rst.Segments > 0 {
		log.Info("archived ledger segments past retention", "segments", rst.Segments, "entries", rst.Entries,
			"retainExpiredFor", margin.String(), "archive", c.Archive.Dir)
		if issuer != nil && r.cfg.Recorder != nil {
			r.cfg.Recorder.Eventf(issuer, nil, corev1.EventTypeNormal, ReasonLedgerArchived, "Archive",
				"moved %d ledger entries (%d segments) whose certificates expired more than %s ago to the archive",
				rst.Entries, rst.Segments, margin)
		}
	}
	r.report(issuer, log, stepArchive, rst.Corrupt, err)
}

// report logs, counts and tells a step's failure.
func (r *Runner) report(issuer quillv1.GenericIssuer, log logr.Logger, step string, corrupt []string, err error) {
	if err == nil || errors.Is(err, ledger.ErrNotSynced) {
		return
	}
	k := quillv1.IssuerID{}
	if issuer != nil {
		k = issuer.ID()
	}
	r.cfg.Metrics.fail(k, step)
	reason := ReasonLedgerCompactionFailed
	if len(corrupt) > 0 {
		reason = ReasonLedgerCorrupt
		r.cfg.Metrics.corrupt(k, len(corrupt))
	}
	log.Error(err, "ledger compaction step failed; retrying at the next round", "step", step, "corrupt", corrupt)
	if issuer != nil && r.cfg.Recorder != nil {
		r.cfg.Recorder.Eventf(issuer, nil, corev1.EventTypeWarning, reason, step, "ledger %s: %v", step, err)
	}
}

// issuer reads k's issuer, nil when it is gone (its ledger stays and is
// compacted with the default retention).
func (r *Runner) issuer(ctx context.Context, k quillv1.IssuerID) quillv1.GenericIssuer {
	if r.cfg.Issuers == nil {
		return nil
	}
	obj := k.NewObject()
	if obj == nil {
		return nil
	}
	if err := r.cfg.Issuers.Get(ctx, types.NamespacedName{Namespace: k.Namespace, Name: k.Name}, obj); err != nil {
		return nil
	}
	return obj
}

// Compactor steps, the step label's values.
const (
	stepSeal    = "seal"
	stepArchive = "archive"
	stepMigrate = "migrate"
)

// Metrics are the compactor's counters. A nil *Metrics records nothing.
type Metrics struct {
	// Entries counts ledger entries sealed, archived and migrated, by
	// issuer and step.
	Entries *prometheus.CounterVec
	// CertificatesDropped counts certificates sealing dropped from entries
	// whose requests no longer need them.
	CertificatesDropped *prometheus.CounterVec
	// Failures counts failed steps, by issuer and step.
	Failures *prometheus.CounterVec
	// CorruptSegments counts segments found undecodable (each round that
	// meets them again counts them again).
	CorruptSegments *prometheus.CounterVec
}

var labels = []string{metrics.LabelIssuerKind, metrics.LabelIssuer}

// NewMetrics builds the compactor's metrics and registers them with reg
// (nil: not registered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Entries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quill_ledger_compactor_entries_total",
			Help: "Ledger entries sealed, archived or migrated by the leader's compactor, by step."}, append(labels, "step")),
		CertificatesDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quill_ledger_compactor_certificates_dropped_total",
			Help: "Certificates dropped from sealed ledger entries because their requests no longer need them."}, labels),
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quill_ledger_compactor_failures_total",
			Help: "Failed compactor steps (seal, archive, migrate); each is retried at the next round."}, append(labels, "step")),
		CorruptSegments: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quill_ledger_compactor_corrupt_segments_total",
			Help: "Ledger segments the compactor could not decode and left in place."}, labels),
	}
	if reg == nil {
		return m, nil
	}
	// A second manager in one process (tests) shares the first one's
	// collectors.
	for _, c := range []**prometheus.CounterVec{&m.Entries, &m.CertificatesDropped, &m.Failures, &m.CorruptSegments} {
		if err := reg.Register(*c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, err
			}
			*c = existing
		}
	}
	return m, nil
}

func issuerValues(k quillv1.IssuerID) []string {
	if k.Namespace == "" {
		return []string{k.Kind, k.Name}
	}
	return []string{k.Kind, k.Namespace + "/" + k.Name}
}

func (m *Metrics) add(k quillv1.IssuerID, step string, n int) {
	if m == nil || n == 0 {
		return
	}
	m.Entries.WithLabelValues(append(issuerValues(k), step)...).Add(float64(n))
}

func (m *Metrics) dropped(k quillv1.IssuerID, n int) {
	if m == nil || n == 0 {
		return
	}
	m.CertificatesDropped.WithLabelValues(issuerValues(k)...).Add(float64(n))
}

func (m *Metrics) fail(k quillv1.IssuerID, step string) {
	if m == nil {
		return
	}
	m.Failures.WithLabelValues(append(issuerValues(k), step)...).Inc()
}

func (m *Metrics) corrupt(k quillv1.IssuerID, n int) {
	if m == nil {
		return
	}
	m.CorruptSegments.WithLabelValues(issuerValues(k)...).Add(float64(n))
}
