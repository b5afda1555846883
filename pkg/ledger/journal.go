package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// ErrOutcomeUnknown is wrapped by a Journal error when the segment's
// creation may have happened all the same (a timeout, a 5xx, a lost
// reply). The error comes with the segment's name, so that whoever needs
// to know (a retried request) can read the segment by name.
var ErrOutcomeUnknown = errors.New("the ledger write may or may not have happened")

// ErrSerialTaken is returned by Journal.Record for an entry whose serial the
// issuer's ledger already holds (or is about to): nothing is written, and
// the signer discards the certificate and signs again with a new serial.
var ErrSerialTaken = errors.New("the serial number is already in the issuer's ledger")

// errNotAnEntry refuses a Record of a revocation line or an unparsable
// serial: a programming error, never a ledger state.
var errNotAnEntry = errors.New("not an issued ledger entry")

// Bounds of one journal segment. A batch is also cut before its encoding
// could pass MaxSegmentBytes (see takeBatch).
const (
	maxJournalEntries = 2000
	// journalWriteTimeout bounds one segment's creation: the write runs
	// on behalf of many callers, so no single caller's context governs it.
	journalWriteTimeout = 30 * time.Second
	// entryOverhead is a generous bound on the JSON of an entry's fields
	// besides its certificate and names; lineOverhead that of a
	// revocation line.
	entryOverhead = 512
	lineOverhead  = 160
)

// Journal writes the ledger on the signing path: issued entries and
// revocation lines of one issuer go into Journal segments by group commit.
// While one segment of an issuer is being created, whatever else is
// recorded for that issuer waits and goes into the next segment, in one
// Create; nothing waits when nothing is in flight, so a single signature
// costs one write and a burst costs a few. The leader's compactor later
// seals journals into sealed segments.
//
// A Journal must be the only writer of journals for its issuers (the
// leader's): the serial-collision and first-revocation checks are made
// under its lock against the index and its own queue. It is safe for
// concurrent use.
type Journal struct {
	client client.Client
	index  *Index
	clock  clock.PassiveClock

	mu     sync.Mutex
	queues map[journalKey]*journalQueue
}

// NewJournal returns a Journal that creates segments with c and hands
// each created segment to ix (Index.PutSegment) before its callers return.
func NewJournal(c client.Client, ix *Index, clk clock.PassiveClock) *Journal {
	return &Journal{client: c, index: ix, clock: clk, queues: map[journalKey]*journalQueue{}}
}

type journalKey struct {
	issuer quillv1.IssuerID
	home   string
}

// journalQueue is one issuer's group commit; every field is guarded by
// Journal.mu.
type journalQueue struct {
	pending []*journalOp
	// writing is true while a drain goroutine owns the queue.
	writing bool
	// serials are the issued entries queued or in flight, revocations the
	// revocation lines, by serial: a second Record of a serial is refused
	// and a second Revoke waits for the first's outcome.
	serials     map[string]*journalOp
	revocations map[string]*journalOp
}

// journalOp is one caller's line. Its result fields are set before done is
// closed.
type journalOp struct {
	ctx   context.Context
	entry Entry
	// taken is set once a batch holds the op; a cancelled caller may only
	// withdraw an op not taken yet.
	taken bool
	done  chan struct{}

	segment string
	err     error
}

// Record writes e, an issued entry (EntryOf) of issuer k, into a Journal
// segment in homeNamespace, and returns the segment's name once the
// segment is created and in the index. The certificate must not be given
// to anyone before Record returns nil.
//
// Errors: ErrSerialTaken when the serial is already in k's ledger (nothing
// written; sign again with a new serial); an error wrapping
// ErrOutcomeUnknown, with the segment's name, when the creation may have
// happened; any other error means nothing was written.
func (j *Journal) Record(ctx context.Context, k quillv1.IssuerID, homeNamespace string, e Entry) (segment string, err error) {
	serial, ok := e.SerialInt()
	if !ok || e.IsRevocationLine() {
		return "", fmt.Errorf("%w: serial %q", errNotAnEntry, e.Serial)
	}
	e.Serial = SerialHex(serial) // the one spelling the queue and index key by
	op := &journalOp{ctx: ctx, entry: e, done: make(chan struct{})}
	j.mu.Lock()
	q := j.queue(k, homeNamespace)
	if _, queued := q.serials[e.Serial]; queued {
		j.mu.Unlock()
		return "", fmt.Errorf("%w: serial %s of %s", ErrSerialTaken, e.Serial, k)
	}
	if _, known := j.index.Lookup(k, serial); known {
		j.mu.Unlock()
		return "", fmt.Errorf("%w: serial %s of %s", ErrSerialTaken, e.Serial, k)
	}
	q.serials[e.Serial] = op
	j.enqueue(k, homeNamespace, q, op)
	j.mu.Unlock()
	return j.wait(k, homeNamespace, op)
}

// Revoke records the revocation rev of rec, a record of issuer k, unless
// the certificate is already revoked: the first revocation stands.
// It returns the revocation the ledger holds afterwards and whether it is
// this call's. Two concurrent calls for one serial write one line: the
// second waits for the first and reports it.
//
// Errors are Record's; an error wrapping ErrOutcomeUnknown means the line
// may have been written, and calling Revoke again is harmless (of two
// lines for a serial the index keeps the one that Wins).
func (j *Journal) Revoke(ctx context.Context, k quillv1.IssuerID, homeNamespace string, rec Record, rev EntryRevocation) (holding EntryRevocation, revokedNow bool, err error) {
	s := SerialHex(rec.Serial)
	j.mu.Lock()
	q := j.queue(k, homeNamespace)
	if cur, ok := j.index.Lookup(k, rec.Serial); ok && cur.Revoked {
		j.mu.Unlock()
		return revocationOf(cur), false, nil
	}
	if first, ok := q.revocations[s]; ok {
		j.mu.Unlock()
		select {
		case <-first.done:
		case <-ctx.Done():
			return EntryRevocation{}, false, fmt.Errorf("waiting for the revocation of serial %s: %w", s, ctx.Err())
		}
		if first.err != nil {
			return EntryRevocation{}, false, first.err
		}
		return *first.entry.Revocation, false, nil
	}
	line := Entry{Serial: s, NotAfter: rec.NotAfter.Unix(), Revocation: &rev}
	op := &journalOp{ctx: ctx, entry: line, done: make(chan struct{})}
	q.revocations[s] = op
	j.enqueue(k, homeNamespace, q, op)
	j.mu.Unlock()
	if _, err := j.wait(k, homeNamespace, op); err != nil {
		return EntryRevocation{}, false, err
	}
	return rev, true, nil
}

// revocationOf is the revocation an index record holds.
func revocationOf(r Record) EntryRevocation {
	out := EntryRevocation{At: r.RevokedAt.Unix()}
	for reason, code := range quillv1.RevocationReasonCodes {
		if code == r.Reason {
			out.Reason = reason
			break
		}
	}
	return out
}

// queue returns k's queue; the caller holds mu.
func (j *Journal) queue(k quillv1.IssuerID, home string) *journalQueue {
	key := journalKey{k, home}
	q := j.queues[key]
	if q == nil {
		q = &journalQueue{serials: map[string]*journalOp{}, revocations: map[string]*journalOp{}}
		j.queues[key] = q
	}
	return q
}

// enqueue adds op to q and starts q's drain unless one runs; the caller
// holds mu. Starting at once is what keeps a lone signature from waiting.
func (j *Journal) enqueue(k quillv1.IssuerID, home string, q *journalQueue, op *journalOp) {
	q.pending = append(q.pending, op)
	if !q.writing {
		q.writing = true
		go j.drain(k, home, q)
	}
}

// wait waits for op's outcome and returns its segment's name. A caller
// that gives up before its line is in a batch withdraws it (nothing
// written); one that gives up later gets ErrOutcomeUnknown with the
// segment's name.
func (j *Journal) wait(k quillv1.IssuerID, home string, op *journalOp) (string, error) {
	select {
	case <-op.done:
		return op.segment, op.err // written before done was closed
	case <-op.ctx.Done():
	}
	j.mu.Lock()
	select {
	case <-op.done: // finished meanwhile: the outcome is known
		j.mu.Unlock()
		return op.segment, op.err
	default:
	}
	if !op.taken {
		q := j.queue(k, home)
		for i, p := range q.pending {
			if p == op {
				q.pending = append(q.pending[:i], q.pending[i+1:]...)
				break
			}
		}
		j.forget(q, op)
		op.err = fmt.Errorf("recording serial %s in the ledger: %w", op.entry.Serial, op.ctx.Err())
		close(op.done) // a second Revoke waiting on this one tries again
		j.mu.Unlock()
		return "", op.err
	}
	segment := op.segment
	j.mu.Unlock()
	if segment == "" {
		// The batch is being encoded; its name is a moment away, and
		// without it the outcome could never be looked up.
		<-op.done
		return op.segment, op.err
	}
	return segment, fmt.Errorf("%w: serial %s, segment %s: %v", ErrOutcomeUnknown, op.entry.Serial, segment, op.ctx.Err())
}

// forget drops op from q's serial maps; the caller holds mu.
func (j *Journal) forget(q *journalQueue, op *journalOp) {
	m := q.serials
	if op.entry.IsRevocationLine() {
		m = q.revocations
	}
	if m[op.entry.Serial] == op {
		delete(m, op.entry.Serial)
	}
}

// drain writes q's pending lines, a batch per segment, until none is left.
func (j *Journal) drain(k quillv1.IssuerID, home string, q *journalQueue) {
	for {
		j.mu.Lock()
		batch := takeBatch(q)
		if len(batch) == 0 {
			q.writing = false
			j.mu.Unlock()
			return
		}
		j.mu.Unlock()
		j.write(k, home, q, batch)
	}
}

// takeBatch takes the longest prefix of q's pending ops that fits a
// journal segment: at most maxJournalEntries lines, and a size estimate
// (uncompressed, so an upper bound of the gzip output but for a few bytes)
// within MaxSegmentBytes. The first op is always taken. The caller holds
// mu.
func takeBatch(q *journalQueue) []*journalOp {
	n, size := 0, 0
	for n < len(q.pending) && n < maxJournalEntries {
		size += estimatedSize(&q.pending[n].entry)
		if n > 0 && size > MaxSegmentBytes {
			break
		}
		n++
	}
	batch := q.pending[:n:n]
	q.pending = append([]*journalOp(nil), q.pending[n:]...)
	for _, op := range batch {
		op.taken = true
	}
	return batch
}

// estimatedSize bounds the JSON line of e from above: its certificate in
// base64, its names, and a fixed overhead for the rest.
func estimatedSize(e *Entry) int {
	if e.IsRevocationLine() {
		return lineOverhead
	}
	n := entryOverhead + len(e.Requester) + len(e.Template) + (len(e.Certificate)+2)/3*4 + len(e.Subject)
	for _, list := range [][]string{e.DNSNames, e.IPAddresses, e.URIs, e.EmailAddresses} {
		for _, s := range list {
			n += len(s) + 3
		}
	}
	for _, o := range e.OtherNames {
		n += len(o.TypeID) + len(o.Value) + 16
	}
	return n
}

// write creates one segment holding batch and hands every op its outcome.
func (j *Journal) write(k quillv1.IssuerID, home string, q *journalQueue, batch []*journalOp) {
	entries := make([]Entry, len(batch))
	for i, op := range batch {
		entries[i] = op.entry
	}
	seg, err := NewSegment(k, home, quillv1.LedgerStageJournal, j.clock.Now(), entries)
	if err == nil && len(seg.Spec.Data) > MaxSegmentBytes && len(batch) > 1 {
		// The estimate let through a batch that encodes too large (it
		// cannot, short of a bug in estimatedSize): write it in halves.
		half := len(batch) / 2
		j.write(k, home, q, batch[:half])
		j.write(k, home, q, batch[half:])
		return
	}
	if err != nil {
		j.finish(q, batch, "", fmt.Errorf("encoding a ledger journal of %s: %w", k, err))
		return
	}
	j.mu.Lock()
	for _, op := range batch {
		op.segment = seg.Name
	}
	j.mu.Unlock()

	// The write serves every caller in the batch, so it outlives any one
	// caller's cancellation, within its own timeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(batch[0].ctx), journalWriteTimeout)
	defer cancel()
	if err := j.client.Create(ctx, seg); err != nil {
		if outcomeUnknown(err) {
			err = fmt.Errorf("%w: creating ledger segment %s/%s: %v", ErrOutcomeUnknown, home, seg.Name, err)
		} else {
			err = fmt.Errorf("creating ledger segment %s/%s: %w", home, seg.Name, err)
		}
		j.finish(q, batch, seg.Name, err)
		return
	}
	// In the index before anyone is told: a retry of any of these
	// requests, or a second revocation, must find its line.
	j.index.PutSegment(seg, entries)
	j.finish(q, batch, seg.Name, nil)
}

// finish hands batch its outcome and forgets its serials.
func (j *Journal) finish(q *journalQueue, batch []*journalOp, segment string, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, op := range batch {
		op.segment, op.err = segment, err
		j.forget(q, op)
		close(op.done)
	}
}

// outcomeUnknown reports whether a failed Create may have created the
// object: anything but a 4xx answer from the API server (a 4xx is a
// refusal, AlreadyExists included: the name was someone else's).
func outcomeUnknown(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return true
	}
	code := status.Status().Code
	return code < 400 || code >= 500
}
