package integration

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/test/harness"
)

// compactCrash is a client whose deletes fail, as if the compactor
// crashed after writing and before deleting.
type compactCrash struct{ client.Client }

var errCompactCrash = errors.New("crashed before deleting")

func (compactCrash) Delete(context.Context, client.Object, ...client.DeleteOption) error {
	return errCompactCrash
}

// compactInNamespace is a client whose lists see one namespace only, so that
// Migrate, which lists every namespace, leaves other tests' ledgers alone.
type compactInNamespace struct {
	client.Client
	ns string
}

func (c compactInNamespace) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return c.Client.List(ctx, list, append(opts, client.InNamespace(c.ns))...)
}

// compactLedger is what the API server and the archive hold of one
// namespace's ledger: every issued entry's copies by serial, and each
// serial's winning revocation.
type compactLedger struct {
	copies      map[string]int
	revocations map[string]*ledger.EntryRevocation
	journals    int
	legacy      int
	archived    int
}

func readCompactLedger(t *testing.T, ns, archiveDir string, k quillv1.IssuerID) compactLedger {
	t.Helper()
	ctx := t.Context()
	l := compactLedger{copies: map[string]int{}, revocations: map[string]*ledger.EntryRevocation{}}
	add := func(e *ledger.Entry) error {
		if !e.IsRevocationLine() {
			l.copies[e.Serial]++
		}
		if e.Revocation != nil && e.Revocation.Wins(l.revocations[e.Serial]) {
			l.revocations[e.Serial] = e.Revocation
		}
		return nil
	}
	var segs quillv1.LedgerSegmentList
	if err := env.Client.List(ctx, &segs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for i := range segs.Items {
		if segs.Items[i].Spec.Stage == quillv1.LedgerStageJournal {
			l.journals++
		}
		if err := ledger.SegmentEntries(&segs.Items[i], add); err != nil {
			t.Fatal(err)
		}
	}
	var ics quillv1.IssuedCertificateList
	if err := env.Client.List(ctx, &ics, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for i := range ics.Items {
		e, err := ledger.EntryOfLegacy(&ics.Items[i])
		if err != nil {
			t.Fatal(err)
		}
		l.legacy++
		_ = add(&e)
	}
	if archiveDir != "" {
		if err := ledger.ReadArchive(archiveDir, k, func(e *ledger.Entry) error { l.archived++; return add(e) }); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// feedCompactIndex puts ns's segments into ix, as the index's watch would.
func feedCompactIndex(t *testing.T, ix *ledger.Index, ns string) {
	t.Helper()
	var segs quillv1.LedgerSegmentList
	if err := env.Client.List(t.Context(), &segs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for i := range segs.Items {
		var entries []ledger.Entry
		if err := ledger.SegmentEntries(&segs.Items[i], func(e *ledger.Entry) error { entries = append(entries, *e); return nil }); err != nil {
			t.Fatal(err)
		}
		ix.PutSegment(&segs.Items[i], entries)
	}
}

// check fails unless every serial in want is held exactly once (or, with
// atLeastOnce, once or more) and revoked ones carry their revocation.
func (l compactLedger) check(t *testing.T, stage string, want []string, revoked map[string]quillv1.RevocationReason, atLeastOnce bool) {
	t.Helper()
	if len(l.copies) != len(want) {
		t.Fatalf("%s: the ledger holds %d serials; want %d", stage, len(l.copies), len(want))
	}
	for _, s := range want {
		n := l.copies[s]
		if n == 0 || (!atLeastOnce && n != 1) {
			t.Fatalf("%s: serial %s is held %d times", stage, s, n)
		}
	}
	for s, reason := range revoked {
		if rv := l.revocations[s]; rv == nil || rv.Reason != reason {
			t.Fatalf("%s: serial %s has revocation %+v; want %s", stage, s, rv, reason)
		}
	}
}

// TestLedgerCompactNothingLostAcrossCrashes runs the compactor's three
// steps (migrate the legacy ledger, seal journals, archive expired
// segments) against the real API server, each first with deletes that
// fail as if the process crashed between writing and deleting, then again:
// every serial stays in the live ledger or the archive throughout, and
// ends there exactly once, with its revocation.
func TestLedgerCompactNothingLostAcrossCrashes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ns := newNamespace(t)
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: ns, Name: "compact"}
	now := time.Now().UTC().Truncate(time.Second)
	certs := leaves(t, "compact", 300, now)
	origin := func(i int) ledger.Origin {
		return ledger.Origin{Kind: quillv1.OriginKindCertificateRequest, Namespace: ns, Name: fmt.Sprintf("r%d", i), UID: types.UID(fmt.Sprintf("u%d", i))}
	}
	var want []string
	revoked := map[string]quillv1.RevocationReason{}

	// The controller this package runs migrates the legacy ledger once,
	// when it starts: wait until a sentinel IssuedCertificate stays put,
	// so that this test's compactor is the only one at work.
	sentinelNS := newNamespace(t)
	sentinel, err := ledger.NewEntry(k, sentinelNS, leaves(t, "sentinel", 1, now)[0], now, ledger.Origin{Kind: quillv1.OriginKindOCSPResponder, Name: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, sentinel); err != nil {
		t.Fatal(err)
	}
	settled := 0
	harness.Eventually(t, "the running controller's start-up migration to end", time.Minute, func() (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(sentinel), sentinel); err != nil {
			if client.IgnoreNotFound(err) != nil {
				return false, err
			}
			again := sentinel.DeepCopy()
			again.ResourceVersion, again.UID = "", ""
			if err := env.Client.Create(ctx, again); client.IgnoreAlreadyExists(err) != nil {
				return false, err
			}
			settled = 0
		}
		settled++
		time.Sleep(500 * time.Millisecond)
		return settled >= 6, nil
	})

	// 120 legacy IssuedCertificates, one of them revoked the old way.
	for i, cert := range certs[:120] {
		ic, err := ledger.NewEntry(k, ns, cert, now, origin(i))
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Create(ctx, ic); err != nil {
			t.Fatal(err)
		}
		if i == 7 {
			ic.Status.Revocation = &quillv1.RevocationRecord{Reason: quillv1.ReasonCACompromise, RevokedAt: metav1.NewTime(now), By: "test"}
			if err := env.Client.Status().Update(ctx, ic); err != nil {
				t.Fatal(err)
			}
			revoked[ic.Spec.SerialNumber] = quillv1.ReasonCACompromise
		}
		want = append(want, ic.Spec.SerialNumber)
	}

	ix := ledger.NewIndex()
	if err := ix.Replace(nil, "0"); err != nil { // the ledger index, synced
		t.Fatal(err)
	}
	feedCompactIndex(t, ix, ns)
	// 180 journals of one entry, as the signing path writes them one
	// request at a time (more than one page of the List that Seal reads
	// many journals with); the last also revokes a journal entry and a
	// legacy one.
	const journals = 180
	for j := range journals {
		var entries []ledger.Entry
		for i := 120 + j; i < 121+j; i++ {
			e, err := ledger.EntryOf(certs[i], now, origin(i))
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries, e)
			want = append(want, e.Serial)
		}
		if j == journals-1 {
			for _, s := range []string{want[130], want[3]} {
				entries = append(entries, ledger.Entry{Serial: s, NotAfter: now.Add(time.Hour).Unix(),
					Revocation: &ledger.EntryRevocation{Reason: quillv1.ReasonKeyCompromise, At: now.Unix(), By: "test"}})
				revoked[s] = quillv1.ReasonKeyCompromise
			}
		}
		seg, err := ledger.NewSegment(k, ns, quillv1.LedgerStageJournal, now, entries)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Create(ctx, seg); err != nil {
			t.Fatal(err)
		}
		seg.CreationTimestamp = metav1.NewTime(now) // what the index reads from the object
		ix.PutSegment(seg, entries)
	}
	readCompactLedger(t, ns, "", k).check(t, "before compaction", want, revoked, false)

	clk := clocktesting.NewFakeClock(now.Add(2 * time.Minute))
	archiveDir := t.TempDir()
	c := &ledger.Compactor{Client: compactInNamespace{env.Client, ns}, Requests: env.Client, Index: ix, Clock: clk, MaxEntries: 100,
		Archive: &ledger.Archive{Dir: archiveDir}}
	crashing := *c
	crashing.Client = compactCrash{c.Client}

	// Migration.
	if _, err := crashing.Migrate(ctx); !errors.Is(err, errCompactCrash) {
		t.Fatalf("Migrate with failing deletes: %v", err)
	}
	readCompactLedger(t, ns, "", k).check(t, "after a crashed migration", want, revoked, true)
	if _, err := c.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	// Sealing.
	if _, err := crashing.Seal(ctx, k, ns); !errors.Is(err, errCompactCrash) {
		t.Fatalf("Seal with failing deletes: %v", err)
	}
	readCompactLedger(t, ns, "", k).check(t, "after a crashed seal", want, revoked, true)
	st, err := c.Seal(ctx, k, ns)
	if err != nil {
		t.Fatal(err)
	}
	if st.Journals != journals || st.Entries != 0 {
		t.Fatalf("Seal after the crash = %+v; want the %d journals deleted and nothing written again", st, journals)
	}
	l := readCompactLedger(t, ns, "", k)
	l.check(t, "after migration and sealing", want, revoked, false)
	if l.journals != 0 || l.legacy != 0 {
		t.Fatalf("%d journals and %d IssuedCertificates left; want none", l.journals, l.legacy)
	}

	// Retention, at notAfter plus the default margin.
	clk.SetTime(now.Add(time.Hour + quillv1.DefaultRetainExpiredFor + time.Minute))
	if _, err := crashing.Retain(ctx, k, ns, 0); !errors.Is(err, errCompactCrash) {
		t.Fatalf("Retain with failing deletes: %v", err)
	}
	readCompactLedger(t, ns, archiveDir, k).check(t, "after a crashed retention", want, revoked, true)
	rst, err := c.Retain(ctx, k, ns, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rst.Segments == 0 {
		t.Fatalf("Retain after the crash = %+v; want the segments deleted", rst)
	}
	l = readCompactLedger(t, ns, archiveDir, k)
	l.check(t, "after retention", want, revoked, false)
	var segs quillv1.LedgerSegmentList
	if err := env.Client.List(ctx, &segs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(segs.Items) != 0 || l.archived < len(want) {
		t.Fatalf("%d segments live and %d lines archived after retention; want every segment archived", len(segs.Items), l.archived)
	}
}

// TestLedgerCompactMergesSmallSegments checks, against the real API
// server, that Seal merges the one-minute sealed segments of an issuer
// that signs slowly into one, across a crash between writing and
// deleting: every serial ends held once, with its revocation, and another
// issuer's segments are left alone.
func TestLedgerCompactMergesSmallSegments(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ns := newNamespace(t)
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: ns, Name: "slow"}
	other := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: ns, Name: "other"}
	now := time.Now().UTC().Truncate(time.Second)
	certs := leaves(t, "merge", 212, now)
	notAfter := now.Add(time.Hour).Unix()
	var want []string
	revoked := map[string]quillv1.RevocationReason{}
	entry := func(i int) ledger.Entry {
		e, err := ledger.EntryOf(certs[i], now, ledger.Origin{Kind: quillv1.OriginKindCertificateRequest, Namespace: ns,
			Name: fmt.Sprintf("r%d", i), UID: types.UID(fmt.Sprintf("u%d", i))})
		if err != nil {
			t.Fatal(err)
		}
		e.Certificate = nil // sealed: its request no longer needs it
		return e
	}
	revocation := func(serial string, reason quillv1.RevocationReason) ledger.Entry {
		revoked[serial] = reason
		return ledger.Entry{Serial: serial, NotAfter: notAfter, Revocation: &ledger.EntryRevocation{Reason: reason, At: now.Unix(), By: "test"}}
	}
	created := now.Add(-time.Hour)
	create := func(issuer quillv1.IssuerID, lines []ledger.Entry) {
		created = created.Add(time.Millisecond) // names order segments by this time
		seg, err := ledger.NewSegment(issuer, ns, quillv1.LedgerStageSealed, created, lines)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Create(ctx, seg); err != nil {
			t.Fatal(err)
		}
	}

	// A full segment of 60 entries (not small), then 50 sealed a minute
	// apart with 3 entries each; two carry revocation lines, of an entry
	// in the full segment and of one in another small segment.
	var full []ledger.Entry
	for i := range 60 {
		full = append(full, entry(i))
		want = append(want, full[i].Serial)
	}
	create(k, full)
	for s := range 50 {
		var lines []ledger.Entry
		for i := 60 + 3*s; i < 63+3*s; i++ {
			lines = append(lines, entry(i))
			want = append(want, lines[len(lines)-1].Serial)
		}
		switch s {
		case 10:
			lines = append(lines, revocation(want[7], quillv1.ReasonKeyCompromise))
		case 20:
			lines = append(lines, revocation(want[60+3*4], quillv1.ReasonSuperseded))
		}
		create(k, lines)
	}
	create(other, []ledger.Entry{entry(210)})
	create(other, []ledger.Entry{entry(211)})

	ix := ledger.NewIndex()
	if err := ix.Replace(nil, "0"); err != nil { // the ledger index, synced
		t.Fatal(err)
	}
	feedCompactIndex(t, ix, ns)
	clk := clocktesting.NewFakeClock(now.Add(2 * time.Minute))
	c := &ledger.Compactor{Client: compactInNamespace{env.Client, ns}, Requests: env.Client, Index: ix, Clock: clk, MaxEntries: 200}
	crashing := *c
	crashing.Client = compactCrash{c.Client}

	if _, err := crashing.Seal(ctx, k, ns); !errors.Is(err, errCompactCrash) {
		t.Fatalf("Seal with failing deletes: %v; want the merge's delete to fail", err)
	}
	readCompactLedger(t, ns, "", k).check(t, "after a crashed merge", append(want, entry(210).Serial, entry(211).Serial), revoked, true)
	st, err := c.Seal(ctx, k, ns)
	if err != nil {
		t.Fatal(err)
	}
	if st.Merged != 50 || st.MergedInto != 0 {
		t.Fatalf("Seal after the crash = %+v; want the 50 small segments deleted and nothing written again", st)
	}
	// Later rounds have nothing left to merge.
	clk.Step(2 * time.Minute)
	if st, err := c.Seal(ctx, k, ns); err != nil || st.Merged != 0 {
		t.Fatalf("a later Seal = %+v, %v; want nothing merged", st, err)
	}

	var segs quillv1.LedgerSegmentList
	if err := env.Client.List(ctx, &segs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	mine, others := 0, 0
	for _, s := range segs.Items {
		switch s.Spec.IssuerRef.ID() {
		case k:
			mine++
		case other:
			others++
		}
	}
	if mine != 2 || others != 2 {
		t.Fatalf("%d sealed segments of the slow issuer and %d of the other; want the full one and the merged one, and the other's 2", mine, others)
	}
	readCompactLedger(t, ns, "", k).check(t, "after merging", append(want, entry(210).Serial, entry(211).Serial), revoked, false)

	// A restarted index, reading the ledger as it now is, has every serial.
	fresh := ledger.NewIndex()
	if err := fresh.Replace(nil, "0"); err != nil {
		t.Fatal(err)
	}
	feedCompactIndex(t, fresh, ns)
	for _, s := range want {
		serial, _ := new(big.Int).SetString(s, 16)
		rec, ok := fresh.Lookup(k, serial)
		if !ok {
			t.Fatalf("serial %s is not in a fresh index", s)
		}
		if _, isRevoked := revoked[s]; rec.Revoked != isRevoked {
			t.Fatalf("serial %s revoked %v in a fresh index; want %v", s, rec.Revoked, isRevoked)
		}
	}
}
