package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// Defaults of the Compactor's zero fields.
const (
	// DefaultSealAfter is how old a journal must be before it is sealed:
	// long enough that a request signed just before a crash is retried
	// and served from the journal, short enough that certificates (about
	// 1 KB each) leave etcd within minutes.
	DefaultSealAfter = time.Minute
	// DefaultMaxEntries bounds the lines of a sealed segment: 2,000
	// entries encode to about 250–300 KB, under MaxSegmentBytes, and one
	// segment is what a reader decodes at a time.
	DefaultMaxEntries = 2000
)

// ErrNoArchive is returned by Retain when the compactor has no archive:
// entries leave the live ledger only into the archive.
var ErrNoArchive = errors.New("ledger retention needs an archive (--ledger-archive-dir)")

// Compactor keeps an issuer's live ledger small: it seals journals into
// sealed segments (Seal), moves segments past retention into the archive
// (Retain) and converts the legacy one-object-per-certificate ledger
// (Migrate). Only the leader runs it (controllers/ledger), one call at a
// time per issuer.
//
// Every step writes before it deletes (the new segment, or the fsynced
// archive file, before the objects it replaces), so a crash or a failed
// delete at any point leaves entries twice, never zero times; a rerun
// completes the step without writing a third copy, because it skips
// entries the index already places in a sealed segment. Readers dedupe by
// serial.
type Compactor struct {
	// Client reads segments and IssuedCertificates and writes segments. It
	// must read from the API server, not from a cache: a cache would hold
	// every segment's data in memory.
	Client client.Client
	// Requests reads CertificateRequests and CertificateSigningRequests;
	// the manager's cache.
	Requests client.Reader
	// Index is the ledger index: which segments exist, and the final
	// revocation state of each serial.
	Index *Index
	// Archive receives the entries retention removes; nil turns retention
	// off.
	Archive *Archive
	// Clock is the compactor's time; nil means the real clock.
	Clock clock.PassiveClock
	// SealAfter is how old a journal must be to be sealed; zero means
	// DefaultSealAfter.
	SealAfter time.Duration
	// MaxEntries bounds the lines of a sealed segment; zero means
	// DefaultMaxEntries.
	MaxEntries int
}

// SealStats says what one Seal did.
type SealStats struct {
	// Journals counts the journals sealed and deleted, Segments the sealed
	// segments created.
	Journals, Segments int
	// Entries counts the issued entries written, Revocations the
	// revocations written (folded into an entry or as a line of their
	// own).
	Entries, Revocations int
	// CertificatesKept counts the entries that kept their certificate
	// because their request may still need it; CertificatesDropped those
	// that lost it.
	CertificatesKept, CertificatesDropped int
	// Duplicates counts entries already in a sealed segment, left out
	// (an earlier Seal or merge wrote them but could not delete the
	// objects it read them from).
	Duplicates int
	// Corrupt names the journals and small sealed segments that could not
	// be decoded; they are left in place.
	Corrupt []string
	// Merged counts the small sealed segments merged into larger ones and
	// deleted, MergedInto the sealed segments the merge created.
	Merged, MergedInto int
}

// RetainStats says what one Retain did.
type RetainStats struct {
	// Segments counts the segments archived and deleted; Entries and
	// Revocations their issued entries and revocations.
	Segments, Entries, Revocations int
	// Corrupt names the segments that could not be decoded; they are
	// left in place.
	Corrupt []string
	// Unexpired counts the segments due by their spec but holding a line
	// whose certificate is not past the margin (or whose notAfter is
	// unknown); they are left in place.
	Unexpired int
}

func (c *Compactor) now() time.Time {
	if c.Clock == nil {
		return time.Now()
	}
	return c.Clock.Now()
}

func (c *Compactor) sealAfter() time.Duration {
	if c.SealAfter <= 0 {
		return DefaultSealAfter
	}
	return c.SealAfter
}

func (c *Compactor) maxEntries() int {
	if c.MaxEntries <= 0 {
		return DefaultMaxEntries
	}
	return c.MaxEntries
}

// sealBatchLines bounds how many lines one round of Seal holds in memory
// (journals keep certificates: about 1.3 KB a line decoded).
func (c *Compactor) sealBatchLines() int { return 5 * c.maxEntries() }

// Seal merges issuer k's journals in home older than SealAfter into sealed
// segments, then deletes them; then it merges small sealed segments (see
// merge). It returns ErrNotSynced before the index has read the whole
// ledger. A journal or small sealed segment that cannot be decoded is left
// in place, named in the stats, and reported by an error wrapping
// ErrCorruptSegment after the others are done.
func (c *Compactor) Seal(ctx context.Context, k quillv1.IssuerID, home string) (SealStats, error) {
	var st SealStats
	if !c.Index.Synced() {
		return st, ErrNotSynced
	}
	cutoff := c.now().Add(-c.sealAfter())
	var due []SegmentInfo
	for _, s := range c.Index.Segments(k) {
		if s.Stage == quillv1.LedgerStageJournal && s.Namespace == home && !s.Created.After(cutoff) {
			due = append(due, s)
		}
	}
	sort.Slice(due, func(i, j int) bool { return due[i].Name < due[j].Name })
	var corrupt []error
	for len(due) > 0 {
		n, lines := 0, 0
		for n < len(due) && (n == 0 || lines+int(due[n].Entries+due[n].Revocations) <= c.sealBatchLines()) {
			lines += int(due[n].Entries + due[n].Revocations)
			n++
		}
		if err := c.sealBatch(ctx, k, home, due[:n], &st, &corrupt); err != nil {
			return st, err
		}
		due = due[n:]
	}
	if err := c.merge(ctx, k, home, &st, &corrupt); err != nil {
		return st, err
	}
	return st, errors.Join(corrupt...)
}

func (c *Compactor) sealBatch(ctx context.Context, k quillv1.IssuerID, home string, batch []SegmentInfo, st *SealStats, corrupt *[]error) error {
	in, err := c.readLines(ctx, k, quillv1.LedgerStageJournal, batch, st, corrupt)
	if err != nil || len(in.objs) == 0 {
		return err
	}
	entries, lines, err := c.outputOf(ctx, k, in, st, nil)
	if err != nil {
		return err
	}
	out := append(entries, lines...)
	n, err := c.writeSealed(ctx, k, home, out)
	st.Segments += n
	if err != nil {
		return err
	}
	for i := range out {
		if !out[i].IsRevocationLine() {
			st.Entries++
		}
		if out[i].Revocation != nil {
			st.Revocations++
		}
	}
	for _, j := range in.objs {
		if err := c.deleteObject(ctx, j); err != nil {
			return fmt.Errorf("deleting sealed journal %s/%s: %w", j.Namespace, j.Name, err)
		}
		st.Journals++
	}
	return nil
}

// lineSet is what one seal or merge read from its input segments.
type lineSet struct {
	// objs are the inputs read, without their data: what is deleted once
	// the output is written.
	objs []*quillv1.LedgerSegment
	// names holds objs' names.
	names map[string]bool
	// issued holds each serial's issued entry, copies folded; revoked the
	// winning revocation line of each serial, folded into issued's entry
	// by outputOf when it has one.
	issued, revoked map[string]*Entry
}

// readLines reads the segments of batch that are still issuer k's and at
// stage. One that is gone was handled by an earlier run whose deletion the
// index has not seen yet; one that does not decode is named in st and
// corrupt, contributes nothing and is not deleted.
func (c *Compactor) readLines(ctx context.Context, k quillv1.IssuerID, stage string, batch []SegmentInfo, st *SealStats, corrupt *[]error) (*lineSet, error) {
	in := &lineSet{names: map[string]bool{}, issued: map[string]*Entry{}, revoked: map[string]*Entry{}}
	segs, err := c.fetch(ctx, k, stage, batch)
	if err != nil {
		return nil, err
	}
	for _, seg := range segs {
		if seg.Spec.Stage != stage || seg.Spec.IssuerRef.ID() != k {
			continue
		}
		// Decode into a scratch list first, so that a segment corrupt half
		// way through contributes nothing.
		var lines []*Entry
		if err := SegmentEntries(seg, func(e *Entry) error { lines = append(lines, e); return nil }); err != nil {
			st.Corrupt = append(st.Corrupt, seg.Name)
			*corrupt = append(*corrupt, err)
			continue
		}
		for _, e := range lines {
			if e.IsRevocationLine() {
				foldRevocation(in.revoked, e)
				continue
			}
			if prev := in.issued[e.Serial]; prev != nil {
				mergeEntry(prev, e)
				continue
			}
			in.issued[e.Serial] = e
		}
		seg.Spec.Data = nil
		in.objs = append(in.objs, seg)
		in.names[seg.Name] = true
	}
	return in, nil
}

// listAbove is the number of journals from which fetch lists instead of
// getting each, and listPage the page size of that list (journals are
// small: a group commit's entries, usually one).
const (
	listAbove = 8
	listPage  = 100
)

// fetch reads the segments of batch (all in one namespace) from the API
// server, leaving out those that are gone. Sealed segments, and a few
// journals, are read with a GET each. Many journals, such as the hundreds
// of one-entry journals a burst of signing leaves, are read with a paged
// List of the issuer's journals, which the labels select, keeping those of
// batch: a GET each would cost the API server as many requests as the
// burst's own journal writes, while issuance may still be going on. Labels
// only narrow the List; what is kept is decided by name, and the caller
// checks each object's spec.
func (c *Compactor) fetch(ctx context.Context, k quillv1.IssuerID, stage string, batch []SegmentInfo) ([]*quillv1.LedgerSegment, error) {
	var out []*quillv1.LedgerSegment
	if stage != quillv1.LedgerStageJournal || len(batch) <= listAbove {
		for _, info := range batch {
			seg := &quillv1.LedgerSegment{}
			if err := c.Client.Get(ctx, types.NamespacedName{Namespace: info.Namespace, Name: info.Name}, seg); err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				return nil, fmt.Errorf("reading ledger segment %s/%s: %w", info.Namespace, info.Name, err)
			}
			out = append(out, seg)
		}
		return out, nil
	}
	want := make(map[string]bool, len(batch))
	for _, info := range batch {
		want[info.Name] = true
	}
	labels := client.MatchingLabels{LabelIssuerKind: k.Kind, LabelStage: stage}
	if len(k.Name) <= 63 {
		labels[LabelIssuerName] = k.Name
	}
	opts := []client.ListOption{client.InNamespace(batch[0].Namespace), labels, client.Limit(listPage)}
	for {
		var page quillv1.LedgerSegmentList
		if err := c.Client.List(ctx, &page, opts...); err != nil {
			return nil, fmt.Errorf("listing the ledger segments of %s in %s: %w", k, batch[0].Namespace, err)
		}
		for i := range page.Items {
			if want[page.Items[i].Name] {
				out = append(out, &page.Items[i])
			}
		}
		if page.Continue == "" {
			return out, nil
		}
		opts = append(opts[:3:3], client.Continue(page.Continue))
	}
}

// outputOf builds the lines that replace in: its issued entries with their
// revocation lines folded in and their certificates kept only where the
// request may still need them, and, sorted apart, the revocation lines
// whose entries are not in in. An entry the index places in a sealed
// segment outside in was written by an earlier run that could not delete
// its inputs: it is left out, and only its revocation kept as a line. With
// held (what sealed segments outside in are known to hold, see
// heldRevocations), a revocation line is left out too when a segment there
// already holds that revocation or one that wins over it.
func (c *Compactor) outputOf(ctx context.Context, k quillv1.IssuerID, in *lineSet, st *SealStats, held map[string]*EntryRevocation) (entries, lines []Entry, err error) {
	addLine := func(rl Entry) {
		if h := held[rl.Serial]; h != nil && !rl.Revocation.Wins(h) {
			return
		}
		lines = append(lines, rl)
	}
	for serial, e := range in.issued {
		if rl := in.revoked[serial]; rl != nil {
			if rl.Revocation.Wins(e.Revocation) {
				e.Revocation = rl.Revocation
			}
			delete(in.revoked, serial)
		}
		if c.sealedElsewhere(k, e, in) {
			st.Duplicates++
			if e.Revocation != nil {
				addLine(Entry{Serial: e.Serial, NotAfter: e.NotAfter, Revocation: e.Revocation})
			}
			continue
		}
		if len(e.Certificate) > 0 {
			keep, err := c.requestMayNeed(ctx, e.Origin)
			if err != nil {
				return nil, nil, err
			}
			if keep {
				st.CertificatesKept++
			} else {
				e.Certificate = nil
				st.CertificatesDropped++
			}
		}
		entries = append(entries, *e)
	}
	for _, rl := range in.revoked {
		if rl.NotAfter == 0 {
			// Retention reads a segment's expiry from its lines: a
			// revocation line must carry its certificate's notAfter.
			if sn, ok := rl.SerialInt(); ok {
				if rec, found := c.Index.Lookup(k, sn); found {
					rl.NotAfter = rec.NotAfter.Unix()
				}
			}
		}
		addLine(*rl)
	}
	sortEntries(entries)
	sortEntries(lines)
	return entries, lines, nil
}

// sealedElsewhere reports whether the index places e in a sealed segment
// that is not one of in's inputs.
func (c *Compactor) sealedElsewhere(k quillv1.IssuerID, e *Entry, in *lineSet) bool {
	sn, ok := e.SerialInt()
	if !ok {
		return false
	}
	rec, found := c.Index.Lookup(k, sn)
	return found && !rec.Legacy && !in.names[rec.Segment] && isSealedSegmentName(rec.Segment)
}

// smallLines is the size, in lines, under which a sealed segment is
// merged with others: a quarter of a full one. An issuer that signs slowly
// seals a segment of a line or two a minute; left alone, 100k live
// certificates would be 100k objects.
func (c *Compactor) smallLines() int { return max(1, c.maxEntries()/4) }

// mergeRoundLines bounds the lines one merge reads and holds (sealed
// entries mostly lack their certificate: a few hundred bytes a line).
func (c *Compactor) mergeRoundLines() int { return 5 * c.maxEntries() }

// mergeProbes bounds how many sealed segments outside a merge it reads to
// learn which revocations they hold already (see heldRevocations): more
// than the segments one merge writes (mergeRoundLines / MaxEntries, a few
// more when certificates make one too large), so that a rerun finds all
// of its earlier run's.
const mergeProbes = 8

// linesOf is a segment's size in lines by its spec (revoked entries count
// twice: an upper bound), at least one.
func linesOf(s SegmentInfo) int { return max(1, int(s.Entries)+int(s.Revocations)) }

// merge merges issuer k's small sealed segments in home, older than
// SealAfter, into sealed segments of up to MaxEntries lines, by the same
// rules as sealing (revocation lines folded into their entries, a
// certificate kept only while its request may need it, entries sealed
// elsewhere left out), then deletes them. It creates before it deletes:
// the new segments sort after their inputs (names begin with the creation
// time) and the index applies them first, so every record moves to them
// and deleting the inputs removes none. A crash in between leaves the
// inputs, whose entries the next run finds sealed elsewhere and does not
// write again. Journals, other issuers' segments and segments that do not
// decode are never merged.
func (c *Compactor) merge(ctx context.Context, k quillv1.IssuerID, home string, st *SealStats, corrupt *[]error) error {
	cutoff := c.now().Add(-c.sealAfter())
	var small []SegmentInfo
	for _, s := range c.Index.Segments(k) { // by name: oldest first
		if s.Stage == quillv1.LedgerStageSealed && s.Namespace == home && !s.Created.After(cutoff) && linesOf(s) < c.smallLines() {
			small = append(small, s)
		}
	}
	batch := mergeChoice(small, c.mergeRoundLines())
	if len(batch) < 2 {
		return nil
	}
	in, err := c.readLines(ctx, k, quillv1.LedgerStageSealed, batch, st, corrupt)
	if err != nil || len(in.objs) < 2 {
		return err // one segment alone would only be written again
	}
	entries, lines, err := c.outputOf(ctx, k, in, st, c.heldRevocations(ctx, k, home, in))
	if err != nil {
		return err
	}
	// Revocation lines first, so that they share a segment with entries:
	// a rerun after a crash finds that segment through the entries'
	// records and need not write the lines again.
	out := append(lines, entries...)
	n, err := c.writeSealed(ctx, k, home, out)
	st.MergedInto += n
	if err != nil {
		return err
	}
	for _, seg := range in.objs {
		if err := c.deleteObject(ctx, seg); err != nil {
			return fmt.Errorf("deleting merged ledger segment %s/%s: %w", seg.Namespace, seg.Name, err)
		}
		st.Merged++
	}
	return nil
}

// mergeChoice picks the small segments one merge reads, returned in name
// order: the smallest, then, by size, each next one of at most twice the
// lines picked so far, while within budget; none unless two are picked. A
// segment grown by merges thus waits until the smaller ones add up to
// half of it, rather than being rewritten every round for a line or two
// more: each line is rewritten a few times (about log2(MaxEntries/4))
// before its segment is no longer small, and an issuer keeps only a
// handful of small segments. Size, not age, decides, because a merge's
// output is named after the young segments it leaves out.
func mergeChoice(small []SegmentInfo, budget int) []SegmentInfo {
	if len(small) < 2 {
		return nil
	}
	bySize := slices.Clone(small)
	sort.SliceStable(bySize, func(i, j int) bool { return linesOf(bySize[i]) < linesOf(bySize[j]) })
	picked, lines := 1, linesOf(bySize[0])
	for ; picked < len(bySize); picked++ {
		n := linesOf(bySize[picked])
		if n > 2*lines || lines+n > budget {
			break
		}
		lines += n
	}
	if picked < 2 {
		return nil
	}
	out := bySize[:picked]
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// heldRevocations reads the sealed segments outside in that the index
// says hold in's entries (at most mergeProbes, newest first) and returns
// each serial's winning revocation among their lines. After a merge whose
// deletes failed those are its outputs, which hold every revocation of
// in: the rerun writes none again. A segment that cannot be read only
// costs lines written again.
func (c *Compactor) heldRevocations(ctx context.Context, k quillv1.IssuerID, home string, in *lineSet) map[string]*EntryRevocation {
	seen := map[string]bool{}
	var holders []string
	for _, e := range in.issued {
		sn, ok := e.SerialInt()
		if !ok {
			continue
		}
		if rec, found := c.Index.Lookup(k, sn); found && !rec.Legacy && rec.Namespace == home && !in.names[rec.Segment] &&
			isSealedSegmentName(rec.Segment) && !seen[rec.Segment] {
			seen[rec.Segment] = true
			holders = append(holders, rec.Segment)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(holders)))
	held := map[string]*EntryRevocation{}
	for _, name := range holders[:min(len(holders), mergeProbes)] {
		seg := &quillv1.LedgerSegment{}
		if err := c.Client.Get(ctx, types.NamespacedName{Namespace: home, Name: name}, seg); err != nil ||
			seg.Spec.Stage != quillv1.LedgerStageSealed || seg.Spec.IssuerRef.ID() != k {
			continue
		}
		revs := map[string]*EntryRevocation{}
		if err := SegmentEntries(seg, func(e *Entry) error {
			if e.Revocation.Wins(revs[e.Serial]) {
				revs[e.Serial] = e.Revocation
			}
			return nil
		}); err != nil {
			continue // the index ignores a corrupt segment: so does this
		}
		for serial, r := range revs {
			if r.Wins(held[serial]) {
				held[serial] = r
			}
		}
	}
	return held
}

// foldRevocation keeps in byserial the winning revocation line of e's serial.
func foldRevocation(bySerial map[string]*Entry, e *Entry) {
	if e.Revocation == nil {
		return
	}
	prev := bySerial[e.Serial]
	if prev == nil {
		bySerial[e.Serial] = e
		return
	}
	if e.Revocation.Wins(prev.Revocation) {
		prev.Revocation = e.Revocation
	}
	if e.NotAfter > prev.NotAfter {
		prev.NotAfter = e.NotAfter
	}
}

// mergeEntry folds a second copy of an issued entry (the same serial is
// the same certificate) into prev: the winning revocation, and the
// certificate if only the copy kept it.
func mergeEntry(prev, e *Entry) {
	if e.Revocation.Wins(prev.Revocation) {
		prev.Revocation = e.Revocation
	}
	if len(prev.Certificate) == 0 {
		prev.Certificate = e.Certificate
	}
}

func sortEntries(es []Entry) {
	sort.Slice(es, func(i, j int) bool {
		if es[i].IssuedAt != es[j].IssuedAt {
			return es[i].IssuedAt < es[j].IssuedAt
		}
		if len(es[i].Serial) != len(es[j].Serial) {
			return len(es[i].Serial) < len(es[j].Serial)
		}
		return es[i].Serial < es[j].Serial
	})
}

// writeSealed creates sealed segments holding entries, each at most
// MaxEntries lines and MaxSegmentBytes encoded, and puts each in the
// index. It returns how many it created.
func (c *Compactor) writeSealed(ctx context.Context, k quillv1.IssuerID, home string, entries []Entry) (int, error) {
	created := 0
	for len(entries) > 0 {
		n := min(len(entries), c.maxEntries())
		m, err := c.writeChunk(ctx, k, home, entries[:n])
		created += m
		if err != nil {
			return created, err
		}
		entries = entries[n:]
	}
	return created, nil
}

func (c *Compactor) writeChunk(ctx context.Context, k quillv1.IssuerID, home string, entries []Entry) (int, error) {
	seg, err := NewSegment(k, home, quillv1.LedgerStageSealed, c.now(), entries)
	if err != nil {
		return 0, err
	}
	if len(seg.Spec.Data) > MaxSegmentBytes {
		if len(entries) == 1 {
			return 0, fmt.Errorf("ledger entry %s encodes to %d bytes, more than a segment holds", entries[0].Serial, len(seg.Spec.Data))
		}
		half := len(entries) / 2
		a, err := c.writeChunk(ctx, k, home, entries[:half])
		if err != nil {
			return a, err
		}
		b, err := c.writeChunk(ctx, k, home, entries[half:])
		return a + b, err
	}
	if err := c.Client.Create(ctx, seg); err != nil {
		return 0, fmt.Errorf("creating sealed ledger segment %s/%s: %w", seg.Namespace, seg.Name, err)
	}
	if seg.CreationTimestamp.IsZero() {
		// The API server always sets it; a client that does not (a fake)
		// would make the segment look old enough to merge at once.
		seg.CreationTimestamp = metav1.NewTime(c.now())
	}
	c.Index.PutSegment(seg, entries)
	return 1, nil
}

// deleteObject deletes obj if it is still the object read (same UID); one
// already gone counts as deleted.
func (c *Compactor) deleteObject(ctx context.Context, obj client.Object) error {
	uid := obj.GetUID()
	err := c.Client.Delete(ctx, obj, client.Preconditions{UID: &uid})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// requestMayNeed reports whether the request o names may still need its
// certificate back from the ledger: it exists with the same UID, has no
// certificate in its status, and has neither failed nor been denied. Only
// such a request can be retried into Quill's crash recall.
func (c *Compactor) requestMayNeed(ctx context.Context, o *EntryOrigin) (bool, error) {
	if o == nil {
		return false, nil
	}
	key := types.NamespacedName{Namespace: o.Namespace, Name: o.Name}
	switch o.Kind {
	case quillv1.OriginKindCertificateRequest:
		var cr cmapi.CertificateRequest
		if err := c.Requests.Get(ctx, key, &cr); err != nil {
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return false, fmt.Errorf("reading CertificateRequest %s: %w", key, err)
		}
		if string(cr.UID) != o.UID || len(cr.Status.Certificate) > 0 || cr.Status.FailureTime != nil {
			return false, nil
		}
		for _, cond := range cr.Status.Conditions {
			if cond.Type == cmapi.CertificateRequestConditionDenied && cond.Status == cmmeta.ConditionTrue {
				return false, nil
			}
			if cond.Type == cmapi.CertificateRequestConditionReady && cond.Status == cmmeta.ConditionFalse &&
				(cond.Reason == cmapi.CertificateRequestReasonFailed || cond.Reason == cmapi.CertificateRequestReasonDenied) {
				return false, nil
			}
		}
		return true, nil
	case quillv1.OriginKindCertificateSigningRequest:
		var csr certificatesv1.CertificateSigningRequest
		if err := c.Requests.Get(ctx, types.NamespacedName{Name: o.Name}, &csr); err != nil {
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return false, fmt.Errorf("reading CertificateSigningRequest %s: %w", o.Name, err)
		}
		if string(csr.UID) != o.UID || len(csr.Status.Certificate) > 0 {
			return false, nil
		}
		for _, cond := range csr.Status.Conditions {
			if (cond.Type == certificatesv1.CertificateDenied || cond.Type == certificatesv1.CertificateFailed) && cond.Status == corev1.ConditionTrue {
				return false, nil
			}
		}
		return true, nil
	}
	// A delegated OCSP responder's certificate lives in its Secret; no
	// request is ever retried for it.
	return false, nil
}

// isSealedSegmentName reports whether name is a sealed segment's (see
// SegmentName): the part after the last dot starts with the sealed letter.
func isSealedSegmentName(name string) bool {
	i := strings.LastIndexByte(name, '.')
	return i >= 0 && strings.HasPrefix(name[i+1:], segmentSealedLetter)
}

// reasonOfCode is the reason whose RFC 5280 code is code; unspecified when
// none is.
func reasonOfCode(code int) quillv1.RevocationReason {
	for r, c := range quillv1.RevocationReasonCodes {
		if c == code {
			return r
		}
	}
	return quillv1.ReasonUnspecified
}

// Retain archives and deletes issuer k's sealed segments in home whose
// certificates all expired more than margin ago (the issuer's
// spec.ledger.retainExpiredFor; zero means DefaultRetainExpiredFor).
// Journals are never retained: they are sealed first. Each segment's
// entries reach the archive with their final revocation state, taken from
// the index (a revocation may have been written in a later segment), and
// the archive file is on disk before the segment is deleted. It returns
// ErrNoArchive without an archive and ErrNotSynced before the index has
// read the whole ledger.
func (c *Compactor) Retain(ctx context.Context, k quillv1.IssuerID, home string, margin time.Duration) (RetainStats, error) {
	var st RetainStats
	if c.Archive == nil {
		return st, ErrNoArchive
	}
	if !c.Index.Synced() {
		return st, ErrNotSynced
	}
	if margin <= 0 {
		margin = quillv1.DefaultRetainExpiredFor
	}
	cutoff := c.now().Add(-margin)
	var corrupt []error
	for _, info := range c.Index.Segments(k) {
		if info.Stage != quillv1.LedgerStageSealed || info.Namespace != home || !info.ExpiresAfter.Before(cutoff) {
			continue
		}
		seg := &quillv1.LedgerSegment{}
		if err := c.Client.Get(ctx, types.NamespacedName{Namespace: info.Namespace, Name: info.Name}, seg); err != nil {
			if apierrors.IsNotFound(err) {
				continue // archived by an earlier run
			}
			return st, fmt.Errorf("reading ledger segment %s/%s: %w", info.Namespace, info.Name, err)
		}
		// The spec, not the index's copy, decides: it is what is deleted.
		if seg.Spec.Stage != quillv1.LedgerStageSealed || seg.Spec.IssuerRef.ID() != k || !seg.Spec.ExpiresAfter.Time.Before(cutoff) {
			continue
		}
		var entries []Entry
		if err := SegmentEntries(seg, func(e *Entry) error { entries = append(entries, *e); return nil }); err != nil {
			st.Corrupt = append(st.Corrupt, seg.Name)
			corrupt = append(corrupt, err)
			continue
		}
		if !c.allExpired(k, entries, cutoff) {
			st.Unexpired++
			continue
		}
		revs := 0
		for i := range entries {
			c.finalRevocation(k, &entries[i])
			if entries[i].Revocation != nil {
				revs++
			}
		}
		if err := c.Archive.Append(k, seg.Name, entries); err != nil {
			return st, fmt.Errorf("archiving ledger segment %s/%s: %w", seg.Namespace, seg.Name, err)
		}
		if err := c.deleteObject(ctx, seg); err != nil {
			return st, fmt.Errorf("deleting archived ledger segment %s/%s: %w", seg.Namespace, seg.Name, err)
		}
		st.Segments++
		st.Entries += int(seg.Spec.Entries)
		st.Revocations += revs
	}
	return st, errors.Join(corrupt...)
}

// allExpired reports whether every line of entries names a certificate
// that expired before cutoff. A line without a notAfter (a revocation
// line some writer left without one) takes it from the index; when that
// is unknown too the segment is kept: archiving a revocation while its
// certificate is still valid would make OCSP answer good.
func (c *Compactor) allExpired(k quillv1.IssuerID, entries []Entry, cutoff time.Time) bool {
	for i := range entries {
		na := entries[i].NotAfter
		if na == 0 {
			if sn, ok := entries[i].SerialInt(); ok {
				if rec, found := c.Index.Lookup(k, sn); found {
					na = rec.NotAfter.Unix()
				}
			}
		}
		if na == 0 || !time.Unix(na, 0).Before(cutoff) {
			return false
		}
	}
	return true
}

// finalRevocation sets e's revocation to the index's when that one wins:
// a revocation line written after the entry was sealed lives in another
// segment.
func (c *Compactor) finalRevocation(k quillv1.IssuerID, e *Entry) {
	serial, ok := e.SerialInt()
	if !ok {
		return
	}
	rec, ok := c.Index.Lookup(k, serial)
	if !ok || !rec.Revoked {
		return
	}
	rev := &EntryRevocation{Reason: reasonOfCode(rec.Reason), At: rec.RevokedAt.Unix()}
	if rev.Wins(e.Revocation) {
		e.Revocation = rev
	}
}

// migratePageSize is how many IssuedCertificates one list page holds.
const migratePageSize = 500

// migrateGroup collects the IssuedCertificates of one issuer in one
// namespace until they fill a sealed segment.
type migrateGroup struct {
	k       quillv1.IssuerID
	home    string
	entries []Entry
	objs    []*quillv1.IssuedCertificate
	// already holds objects whose entry is already sealed: deleted only.
	already []*quillv1.IssuedCertificate
}

// identity keeps what deleting ic needs, so that a group of 2,000 waiting
// to be flushed does not hold 2,000 certificates.
func identity(ic *quillv1.IssuedCertificate) *quillv1.IssuedCertificate {
	out := &quillv1.IssuedCertificate{}
	out.Namespace, out.Name, out.UID = ic.Namespace, ic.Name, ic.UID
	return out
}

// Migrate converts the legacy ledger, every IssuedCertificate in every
// namespace, into sealed segments of its issuer in the same namespace, then
// deletes the IssuedCertificates it converted. Each certificate is kept
// only if its request may still need it. An IssuedCertificate whose serial
// does not parse is left alone (the index ignores it too). It returns how
// many IssuedCertificates it deleted.
func (c *Compactor) Migrate(ctx context.Context) (int, error) {
	if !c.Index.Synced() {
		return 0, ErrNotSynced
	}
	groups := map[[4]string]*migrateGroup{}
	migrated := 0
	flush := func(g *migrateGroup) error {
		if len(g.entries) > 0 {
			if _, err := c.writeSealed(ctx, g.k, g.home, g.entries); err != nil {
				return err
			}
		}
		for _, ic := range append(g.objs, g.already...) {
			if err := c.deleteObject(ctx, ic); err != nil {
				return fmt.Errorf("deleting migrated IssuedCertificate %s/%s: %w", ic.Namespace, ic.Name, err)
			}
			migrated++
		}
		g.entries, g.objs, g.already = nil, nil, nil
		return nil
	}
	cont, restarts := "", 0
	for {
		var list quillv1.IssuedCertificateList
		if err := c.Client.List(ctx, &list, client.Limit(migratePageSize), client.Continue(cont)); err != nil {
			// A continue token expires with etcd's compaction; what was
			// migrated is gone, so listing again from the start is safe.
			if apierrors.IsResourceExpired(err) && restarts < 3 {
				cont, restarts = "", restarts+1
				continue
			}
			return migrated, fmt.Errorf("listing IssuedCertificates: %w", err)
		}
		for i := range list.Items {
			ic := &list.Items[i]
			e, err := EntryOfLegacy(ic)
			if err != nil {
				continue
			}
			k := ic.Spec.IssuerRef.ID()
			gk := [4]string{k.Kind, k.Namespace, k.Name, ic.Namespace}
			g := groups[gk]
			if g == nil {
				g = &migrateGroup{k: k, home: ic.Namespace}
				groups[gk] = g
			}
			serial, _ := e.SerialInt()
			if rec, ok := c.Index.Lookup(k, serial); ok && !rec.Legacy && isSealedSegmentName(rec.Segment) && (rec.Revoked || e.Revocation == nil) {
				g.already = append(g.already, identity(ic)) // an earlier run wrote it
				continue
			}
			if len(e.Certificate) > 0 {
				keep, err := c.requestMayNeed(ctx, e.Origin)
				if err != nil {
					return migrated, err
				}
				if !keep {
					e.Certificate = nil
				}
			}
			g.entries = append(g.entries, e)
			g.objs = append(g.objs, identity(ic))
			if len(g.entries) >= c.maxEntries() {
				if err := flush(g); err != nil {
					return migrated, err
				}
			}
		}
		if cont = list.Continue; cont == "" {
			break
		}
	}
	keys := make([][4]string, 0, len(groups))
	for gk := range groups {
		keys = append(keys, gk)
	}
	sort.Slice(keys, func(i, j int) bool { return strings.Join(keys[i][:], "/") < strings.Join(keys[j][:], "/") })
	for _, gk := range keys {
		g := groups[gk]
		sortEntries(g.entries)
		if err := flush(g); err != nil {
			return migrated, err
		}
	}
	return migrated, nil
}
