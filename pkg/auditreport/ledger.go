package auditreport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
)

// SegmentChunkSize is the most LedgerSegments one list request asks for.
// A segment holds up to ledger.MaxSegmentBytes of entries, so a page of
// them is a few megabytes where a page of legacy records of the same
// count would be a few kilobytes; Options.ChunkSize applies to segments
// only below it.
const SegmentChunkSize = 8

// Where a ledger line was read from (Place.Kind).
const (
	// PlaceSegment is a LedgerSegment, Journal or Sealed.
	PlaceSegment = "segment"
	// PlaceLegacy is an IssuedCertificate, the per-certificate object of a
	// ledger the controller has not migrated to segments yet.
	PlaceLegacy = "legacy"
	// PlaceArchive is the ledger archive (Options.ArchiveDir), where
	// entries go once their certificate expired longer ago than the
	// issuer's retention.
	PlaceArchive = "archive"
)

// Place says which object or file holds a ledger line.
type Place struct {
	// Kind is PlaceSegment, PlaceLegacy or PlaceArchive.
	Kind string `json:"kind"`
	// Namespace and Name of the LedgerSegment or IssuedCertificate; for
	// the archive, Name is its directory.
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Stage of a segment: Journal or Sealed.
	Stage string `json:"stage,omitempty"`
	// RevocationOnly says the line there only revokes the certificate,
	// whose entry is elsewhere.
	RevocationOnly bool `json:"revocationOnly,omitempty"`
}

func (p Place) String() string {
	var s string
	switch p.Kind {
	case PlaceSegment:
		s = fmt.Sprintf("LedgerSegment %s/%s (%s)", p.Namespace, p.Name, p.Stage)
	case PlaceLegacy:
		s = fmt.Sprintf("IssuedCertificate %s/%s (legacy, not migrated yet)", p.Namespace, p.Name)
	default:
		s = "archive " + p.Name
	}
	if p.RevocationOnly {
		s += ", revocation only"
	}
	return s
}

// Walk calls fn for every line of opts.Issuer's ledger, as it is read:
// its LedgerSegments, listed a page at a time and decoded one at a time;
// then the IssuedCertificates of a ledger not migrated yet; then, with
// opts.ArchiveDir, the archive. A serial may come more than once (an entry
// sealed or archived while its old segment was not deleted yet, a
// revocation line apart from its entry): Merger puts them together.
//
// A segment, record or archive file that cannot be decoded is skipped with
// a warning (opts.Warn); once everything else is read, Walk returns an
// error wrapping ledger.ErrCorruptSegment. Any other error, including fn's,
// ends the walk and is returned: listing errors wrap ErrNoAccess or
// ErrExpired where they apply.
func Walk(ctx context.Context, c client.Reader, opts Options, fn func(*ledger.Entry, Place) error) error {
	if err := opts.validate(); err != nil {
		return err
	}
	var corrupt []string
	skip := func(what string, err error) {
		corrupt = append(corrupt, what)
		if opts.Warn != nil {
			opts.Warn(fmt.Sprintf("skipping %s: %v", what, err))
		}
	}
	if err := walkSegments(ctx, c, opts, skip, fn); err != nil {
		return err
	}
	err := ListLegacy(ctx, c, opts, func(ic *quillv1.IssuedCertificate) error {
		e, err := ledger.EntryOfLegacy(ic)
		if err != nil {
			skip("IssuedCertificate "+ic.Namespace+"/"+ic.Name, err)
			return nil
		}
		return fn(&e, Place{Kind: PlaceLegacy, Namespace: ic.Namespace, Name: ic.Name})
	})
	if err != nil {
		return err
	}
	if opts.ArchiveDir != "" {
		// A mistyped directory must not pass for an empty archive.
		if st, err := os.Stat(opts.ArchiveDir); err != nil {
			return fmt.Errorf("the ledger archive: %w", err)
		} else if !st.IsDir() {
			return fmt.Errorf("%w: the ledger archive %s is not a directory", ErrInvalid, opts.ArchiveDir)
		}
		p := Place{Kind: PlaceArchive, Name: opts.ArchiveDir}
		err := ledger.ReadArchive(opts.ArchiveDir, opts.Issuer, func(e *ledger.Entry) error {
			p := p
			p.RevocationOnly = e.IsRevocationLine()
			return fn(e, p)
		})
		switch {
		case errors.Is(err, ledger.ErrCorruptSegment):
			skip("the rest of the archive in "+opts.ArchiveDir, err)
		case err != nil:
			return fmt.Errorf("reading the ledger archive in %s: %w", opts.ArchiveDir, err)
		}
	}
	if len(corrupt) > 0 {
		return fmt.Errorf("%w: skipped %s", ledger.ErrCorruptSegment, strings.Join(corrupt, ", "))
	}
	return nil
}

// walkSegments is Walk's part over segments. Decoding is most of a
// report's time, so segments are decoded by up to GOMAXPROCS goroutines
// while the next page is listed; fn still sees them one at a time, in list
// order. At most a few decoded segments wait, so memory stays bounded.
func walkSegments(ctx context.Context, c client.Reader, opts Options, skip func(string, error), fn func(*ledger.Entry, Place) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type decoded struct {
		place Place
		lines []*ledger.Entry
		err   error
		done  chan struct{}
	}
	workers := max(1, runtime.GOMAXPROCS(0))
	queue := make(chan *decoded, workers)
	listed := make(chan error, 1)
	go func() {
		defer close(queue)
		listed <- ListSegments(ctx, c, opts, func(seg *quillv1.LedgerSegment) error {
			d := &decoded{place: Place{Kind: PlaceSegment, Namespace: seg.Namespace, Name: seg.Name, Stage: seg.Spec.Stage}, done: make(chan struct{})}
			select {
			case queue <- d:
			case <-ctx.Done():
				return ctx.Err()
			}
			// ListSegments clears its page's copy once this returns; the
			// data's bytes are never written, so a shallow copy is enough.
			s := *seg
			go func() {
				defer close(d.done)
				d.err = ledger.SegmentEntries(&s, func(e *ledger.Entry) error {
					d.lines = append(d.lines, e)
					return nil
				})
			}()
			return nil
		})
	}()
	var err error
	for d := range queue {
		<-d.done
		if err != nil {
			continue // draining after a failure
		}
		switch {
		case errors.Is(d.err, ledger.ErrCorruptSegment):
			skip("LedgerSegment "+d.place.Namespace+"/"+d.place.Name, d.err)
		case d.err != nil:
			err = d.err
		default:
			for _, e := range d.lines {
				p := d.place
				p.RevocationOnly = e.IsRevocationLine()
				if err = fn(e, p); err != nil {
					break
				}
			}
		}
		if err != nil {
			cancel()
		}
	}
	if lerr := <-listed; err == nil {
		err = lerr
	}
	return err
}

// ListSegments calls fn for each LedgerSegment of opts.Issuer, listed
// SegmentChunkSize (or a smaller opts.ChunkSize) at a time, in name order:
// by issuer, stage, then creation time. fn must not keep the segment.
func ListSegments(ctx context.Context, c client.Reader, opts Options, fn func(*quillv1.LedgerSegment) error) error {
	chunk := min(opts.chunk(), SegmentChunkSize)
	list := listOptions(opts, chunk)
	for {
		var page quillv1.LedgerSegmentList
		if err := c.List(ctx, &page, list...); err != nil {
			return listError(err, "ledgersegments", opts)
		}
		for i := range page.Items {
			seg := &page.Items[i]
			if seg.Spec.IssuerRef.ID() != opts.Issuer {
				continue
			}
			if err := fn(seg); err != nil {
				return err
			}
			page.Items[i] = quillv1.LedgerSegment{} // decoded: let its data go
		}
		if page.Continue == "" {
			return nil
		}
		list = append(listOptions(opts, chunk), client.Continue(page.Continue))
	}
}

// ListLegacy calls fn for each IssuedCertificate of opts.Issuer, the
// per-certificate records of a ledger the controller has not migrated to
// segments yet, opts.ChunkSize at a time.
func ListLegacy(ctx context.Context, c client.Reader, opts Options, fn func(*quillv1.IssuedCertificate) error) error {
	chunk := opts.chunk()
	list := listOptions(opts, chunk)
	for {
		var page quillv1.IssuedCertificateList
		if err := c.List(ctx, &page, list...); err != nil {
			return listError(err, "issuedcertificates", opts)
		}
		for i := range page.Items {
			if page.Items[i].Spec.IssuerRef.ID() != opts.Issuer {
				continue
			}
			if err := fn(&page.Items[i]); err != nil {
				return err
			}
		}
		if page.Continue == "" {
			return nil
		}
		list = append(listOptions(opts, chunk), client.Continue(page.Continue))
	}
}

// listOptions select the issuer's objects by the labels Quill sets on
// them. The name label is missing for names longer than a label value may
// be; the callers then tell the issuer's objects apart by issuerRef.
func listOptions(opts Options, chunk int64) []client.ListOption {
	sel := labels.Set{ledger.LabelIssuerKind: opts.Issuer.Kind}
	if len(opts.Issuer.Name) <= 63 {
		sel[ledger.LabelIssuerName] = opts.Issuer.Name
	}
	return []client.ListOption{
		client.InNamespace(opts.homeNamespace()),
		client.MatchingLabels(sel),
		client.Limit(chunk),
	}
}

func listError(err error, resource string, opts Options) error {
	switch {
	case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
		return fmt.Errorf("%w: listing %s in namespace %s: %s", ErrNoAccess, resource, opts.homeNamespace(), err.Error())
	case apierrors.IsResourceExpired(err) || apierrors.IsGone(err):
		return fmt.Errorf("%w: %s (run it again, with a larger --chunk-size if it keeps happening)", ErrExpired, err.Error())
	}
	return fmt.Errorf("listing %s in namespace %s: %w", resource, opts.homeNamespace(), err)
}

// Merged is one certificate of a ledger, put together from every line
// about its serial.
type Merged struct {
	// Entry is the issued entry with the winning revocation
	// (ledger.EntryRevocation.Wins) of all lines about the serial. Its
	// Certificate is kept only by a Merger with KeepCertificates.
	Entry *ledger.Entry
	// Places lists where its lines were read, in reading order; only a
	// Merger with KeepPlaces fills it.
	Places []Place
}

// Merger puts a ledger's lines together by serial, in any order: an
// issued entry read twice is kept once, a revocation applies to its
// entry wherever either is read, and among several revocations the
// earliest wins. Its zero value keeps neither certificates nor places, as
// a report needs; it interns the strings entries repeat (requesters,
// templates, namespaces), so memory grows by a few hundred bytes per
// certificate.
type Merger struct {
	// KeepCertificates keeps each entry's DER certificate, from whichever
	// line still has it.
	KeepCertificates bool
	// KeepPlaces records where each serial's lines were read.
	KeepPlaces bool

	bySerial map[string]int
	entries  []Merged
	// pending holds revocations whose entry has not been read (yet).
	pending map[string]*pendingRevocation
	strs    map[string]string
}

type pendingRevocation struct {
	rev    *ledger.EntryRevocation
	places []Place
}

// Add merges one line read at p. Merger keeps e and may change it: the
// caller must not use it afterwards (Walk's entries are fresh each time).
func (m *Merger) Add(e *ledger.Entry, p Place) error {
	if m.bySerial == nil {
		m.bySerial, m.pending, m.strs = map[string]int{}, map[string]*pendingRevocation{}, map[string]string{}
	}
	serial := canonicalSerial(e.Serial)
	if e.IsRevocationLine() {
		if i, ok := m.bySerial[serial]; ok {
			m.revoke(m.entries[i].Entry, e.Revocation)
			if m.KeepPlaces {
				m.entries[i].Places = append(m.entries[i].Places, p)
			}
			return nil
		}
		pr := m.pending[serial]
		if pr == nil {
			pr = &pendingRevocation{}
			m.pending[serial] = pr
		}
		if e.Revocation.Wins(pr.rev) {
			pr.rev = e.Revocation
		}
		if m.KeepPlaces {
			pr.places = append(pr.places, p)
		}
		return nil
	}
	if i, ok := m.bySerial[serial]; ok {
		have := &m.entries[i]
		m.revoke(have.Entry, e.Revocation)
		if m.KeepCertificates && len(have.Entry.Certificate) == 0 {
			have.Entry.Certificate = e.Certificate
		}
		if m.KeepPlaces {
			have.Places = append(have.Places, p)
		}
		return nil
	}
	// Walk's entries are fresh: keep e itself rather than a copy.
	me := Merged{Entry: e}
	ne := e
	ne.Serial = serial
	if !m.KeepCertificates {
		ne.Certificate = nil
	}
	ne.Requester, ne.Template = m.intern(ne.Requester), m.intern(ne.Template)
	ne.KeyAlgorithm, ne.SignatureAlgorithm = m.intern(ne.KeyAlgorithm), m.intern(ne.SignatureAlgorithm)
	if o := ne.Origin; o != nil {
		o.Kind, o.Namespace, o.Certificate = m.intern(o.Kind), m.intern(o.Namespace), m.intern(o.Certificate)
	}
	if m.KeepPlaces {
		me.Places = []Place{p}
	}
	if pr, ok := m.pending[serial]; ok {
		m.revoke(ne, pr.rev)
		if m.KeepPlaces {
			me.Places = append(me.Places, pr.places...)
		}
		delete(m.pending, serial)
	}
	m.bySerial[serial] = len(m.entries)
	m.entries = append(m.entries, me)
	return nil
}

func (m *Merger) revoke(e *ledger.Entry, rev *ledger.EntryRevocation) {
	if rev.Wins(e.Revocation) {
		r := *rev
		r.By = m.intern(r.By)
		e.Revocation = &r
	}
}

func (m *Merger) intern(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := m.strs[s]; ok {
		return v
	}
	m.strs[s] = s
	return s
}

// Len is the number of certificates merged so far.
func (m *Merger) Len() int { return len(m.entries) }

// Entries returns the merged certificates in serial number order. The
// slice is the Merger's own.
func (m *Merger) Entries() []Merged {
	sort.Slice(m.entries, func(i, j int) bool { return serialLess(m.entries[i].Entry.Serial, m.entries[j].Entry.Serial) })
	for i := range m.entries {
		m.bySerial[m.entries[i].Entry.Serial] = i
	}
	return m.entries
}

// Unmatched lists, in serial order, the serials revoked by lines whose
// entry was not read: entries archived while their revocation line is
// still live (read the archive too), or a ledger damaged by hand.
func (m *Merger) Unmatched() []string {
	out := make([]string, 0, len(m.pending))
	for s := range m.pending {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return serialLess(out[i], out[j]) })
	return out
}

// serialLess orders canonical hex serials by value.
func serialLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// canonicalSerial spells s as ledger.SerialHex does; lines Quill wrote
// already are.
func canonicalSerial(s string) string {
	if !strings.HasPrefix(s, "0") && strings.ToLower(s) == s {
		return s
	}
	e := ledger.Entry{Serial: s}
	if n, ok := e.SerialInt(); ok {
		return ledger.SerialHex(n)
	}
	return s
}
