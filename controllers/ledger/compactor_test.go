package ledger

import (
	"context"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
)

var roundT0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func roundEntry(serial int64, notAfter time.Time) ledger.Entry {
	return ledger.Entry{Serial: ledger.SerialHex(big.NewInt(serial)), Fingerprint: strings.Repeat("ab", 32),
		IssuedAt: roundT0.UnixMicro(), NotBefore: roundT0.Unix(), NotAfter: notAfter.Unix(), KeyAlgorithm: "ECDSA-P256",
		Certificate: []byte{1, 2, 3}}
}

type roundFixture struct {
	runner *Runner
	cl     client.Client
	ix     *ledger.Index
	clock  *clocktesting.FakeClock
	rec    *events.FakeRecorder
	m      *Metrics
}

func newRoundFixture(t *testing.T, archive bool, objs ...client.Object) *roundFixture {
	t.Helper()
	s := runtime.NewScheme()
	if err := quillv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	cl := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
	ix := ledger.NewIndex()
	if err := ix.Replace(nil, "1"); err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(roundT0)
	c := &ledger.Compactor{Client: cl, Requests: cl, Index: ix, Clock: clk}
	if archive {
		c.Archive = &ledger.Archive{Dir: t.TempDir()}
	}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rec := events.NewFakeRecorder(20)
	return &roundFixture{
		runner: New(Config{Compactor: c, Issuers: cl, ClusterResourceNamespace: "quill-system", Recorder: rec, Metrics: m}),
		cl:     cl, ix: ix, clock: clk, rec: rec, m: m,
	}
}

func (f *roundFixture) journal(t *testing.T, k quillv1.IssuerID, entries ...ledger.Entry) {
	t.Helper()
	seg, err := ledger.NewSegment(k, k.HomeNamespace("quill-system"), quillv1.LedgerStageJournal, f.clock.Now(), entries)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cl.Create(t.Context(), seg); err != nil {
		t.Fatal(err)
	}
	seg.CreationTimestamp = metav1.NewTime(f.clock.Now())
	f.ix.PutSegment(seg, entries)
}

func (f *roundFixture) stages(t *testing.T) map[string]int {
	t.Helper()
	var list quillv1.LedgerSegmentList
	if err := f.cl.List(t.Context(), &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, s := range list.Items {
		out[s.Spec.Stage]++
	}
	return out
}

// TestRoundSealsAndRetainsPerIssuer checks that a round seals every
// issuer's due journals and archives with each issuer's own retention:
// the namespaced issuer keeps expired entries for 100h, the cluster issuer
// (gone from the API) for the default 72h.
func TestRoundSealsAndRetainsPerIssuer(t *testing.T) {
	t.Parallel()
	ns := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-a", Name: "ca"}
	cluster := quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "root"}
	issuer := &quillv1.QuillIssuer{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "ca"}}
	issuer.Spec.Ledger.RetainExpiredFor = &metav1.Duration{Duration: 100 * time.Hour}
	f := newRoundFixture(t, true, issuer)
	f.journal(t, ns, roundEntry(1, roundT0.Add(time.Hour)))
	f.journal(t, cluster, roundEntry(2, roundT0.Add(time.Hour)))
	f.clock.Step(2 * time.Minute)

	f.runner.Round(t.Context())
	if got := f.stages(t); got[quillv1.LedgerStageJournal] != 0 || got[quillv1.LedgerStageSealed] != 2 {
		t.Fatalf("after a round the ledger has %v; want both journals sealed", got)
	}
	if got := testutil.ToFloat64(f.m.Entries.WithLabelValues(quillv1.IssuerKind, "team-a/ca", stepSeal)); got != 1 {
		t.Fatalf("sealed entries metric = %v; want 1", got)
	}

	f.clock.SetTime(roundT0.Add(80 * time.Hour)) // past 72h, not 100h
	f.runner.Round(t.Context())
	if got := f.stages(t); got[quillv1.LedgerStageSealed] != 1 {
		t.Fatalf("at +80h the ledger has %v; want only the namespaced issuer's segment left", got)
	}
	f.clock.SetTime(roundT0.Add(102 * time.Hour))
	f.runner.Round(t.Context())
	if got := f.stages(t); got[quillv1.LedgerStageSealed] != 0 {
		t.Fatalf("at +102h the ledger has %v; want everything archived", got)
	}
	select {
	case ev := <-f.rec.Events:
		if !strings.Contains(ev, ReasonLedgerArchived) {
			t.Fatalf("event %q; want %s", ev, ReasonLedgerArchived)
		}
	default:
		t.Fatal("no event on the issuer whose entries were archived")
	}
}

// TestRoundWithoutArchiveKeepsEverything checks that without an archive
// nothing leaves the live ledger, however old.
func TestRoundWithoutArchiveKeepsEverything(t *testing.T) {
	t.Parallel()
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-a", Name: "ca"}
	f := newRoundFixture(t, false)
	f.journal(t, k, roundEntry(1, roundT0.Add(time.Hour)))
	f.clock.SetTime(roundT0.Add(24 * 365 * time.Hour))
	f.runner.Round(t.Context())
	f.runner.Round(t.Context())
	if got := f.stages(t); got[quillv1.LedgerStageSealed] != 1 {
		t.Fatalf("without an archive the ledger has %v; want the sealed segment kept", got)
	}
}

// TestStartWaitsForSync checks that nothing is compacted before the
// index has read the whole ledger.
func TestStartWaitsForSync(t *testing.T) {
	t.Parallel()
	s := runtime.NewScheme()
	if err := quillv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	cl := fake.NewClientBuilder().WithScheme(s).Build()
	r := New(Config{Compactor: &ledger.Compactor{Client: cl, Requests: cl, Index: ledger.NewIndex()}})
	if !r.NeedLeaderElection() {
		t.Fatal("the compactor must run on the leader only")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.migrated {
		t.Fatal("migrated before the index was synced")
	}
}

// TestRoundSealsRevocationOnlyJournals checks that a round also looks at
// existing issuers the index holds no record of: a journal of revocation
// lines alone is sealed too.
func TestRoundSealsRevocationOnlyJournals(t *testing.T) {
	t.Parallel()
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-a", Name: "ca"}
	f := newRoundFixture(t, false, &quillv1.QuillIssuer{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "ca"}})
	f.journal(t, k, ledger.Entry{Serial: "abc", NotAfter: roundT0.Add(time.Hour).Unix(),
		Revocation: &ledger.EntryRevocation{Reason: quillv1.ReasonKeyCompromise, At: roundT0.Unix()}})
	if n := f.ix.Count(k); n != 0 {
		t.Fatalf("the index holds %d records of the issuer; the test wants none", n)
	}
	f.clock.Step(2 * time.Minute)
	f.runner.Round(t.Context())
	if got := f.stages(t); got[quillv1.LedgerStageJournal] != 0 || got[quillv1.LedgerStageSealed] != 1 {
		t.Fatalf("after a round the ledger has %v; want the journal sealed", got)
	}
}

// TestRoundMigratesOnceUnlessSkipped checks that the first round converts
// the legacy ledger, and that SkipMigration leaves it alone.
func TestRoundMigratesOnceUnlessSkipped(t *testing.T) {
	t.Parallel()
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-a", Name: "ca"}
	for _, tc := range []struct {
		name string
		skip bool
		left int
	}{
		{"migrates", false, 0},
		{"skipped", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ic := &quillv1.IssuedCertificate{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "qi.ca.0a"},
				Spec: quillv1.IssuedCertificateSpec{IssuerRef: k.Ref(), SerialNumber: "a", NotAfter: metav1.NewTime(roundT0.Add(time.Hour))}}
			f := newRoundFixture(t, false, ic)
			f.runner.cfg.SkipMigration = tc.skip
			f.runner.Round(t.Context())
			var left quillv1.IssuedCertificateList
			if err := f.cl.List(t.Context(), &left); err != nil {
				t.Fatal(err)
			}
			if len(left.Items) != tc.left {
				t.Fatalf("%d IssuedCertificates left after a round; want %d", len(left.Items), tc.left)
			}
			if got := f.stages(t)[quillv1.LedgerStageSealed]; got != 1-tc.left {
				t.Fatalf("%d sealed segments; want %d", got, 1-tc.left)
			}
		})
	}
}

// TestMigrationLeavesLaterObjects checks that the migration converts the
// legacy ledger as the leader found it when it started, not objects
// written after, and that a leader that found none migrates nothing.
func TestMigrationLeavesLaterObjects(t *testing.T) {
	t.Parallel()
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-a", Name: "ca"}
	legacy := func(name, serial string) *quillv1.IssuedCertificate {
		return &quillv1.IssuedCertificate{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name},
			Spec: quillv1.IssuedCertificateSpec{IssuerRef: k.Ref(), SerialNumber: serial, NotAfter: metav1.NewTime(roundT0.Add(time.Hour))}}
	}
	count := func(f *roundFixture) int {
		var left quillv1.IssuedCertificateList
		if err := f.cl.List(t.Context(), &left); err != nil {
			t.Fatal(err)
		}
		return len(left.Items)
	}

	f := newRoundFixture(t, false)
	if snap := f.runner.snapshotLegacy(t.Context()); !snap.empty {
		t.Fatalf("snapshot of no legacy ledger = %+v; want empty", snap)
	}
	f.runner.legacy = legacySnapshot{empty: true}
	if err := f.cl.Create(t.Context(), legacy("qi.ca.0a", "a")); err != nil {
		t.Fatal(err)
	}
	f.runner.Round(t.Context())
	if n := count(f); n != 1 {
		t.Fatalf("%d IssuedCertificates left; want the one written after the start left alone", n)
	}

	// Objects at or before the snapshot's resourceVersion are listed,
	// later ones are not.
	older, newer := legacy("qi.ca.0b", "b"), legacy("qi.ca.0c", "c")
	older.ResourceVersion, newer.ResourceVersion = "5", "9"
	var list quillv1.IssuedCertificateList
	if err := (legacyUpTo{Client: presetList{items: []*quillv1.IssuedCertificate{older, newer}}, rv: 7}).List(t.Context(), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "qi.ca.0b" {
		t.Fatalf("listed %d objects; want only the one at resourceVersion 5", len(list.Items))
	}
}

// presetList is a client whose IssuedCertificate lists hold these objects.
type presetList struct {
	client.Client
	items []*quillv1.IssuedCertificate
}

func (p presetList) List(_ context.Context, list client.ObjectList, _ ...client.ListOption) error {
	ics := list.(*quillv1.IssuedCertificateList)
	for _, ic := range p.items {
		ics.Items = append(ics.Items, *ic)
	}
	return nil
}
