package ledger

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

var journalIssuer = quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-a", Name: "ca"}

// journalEntry is an issued entry of serial, requested by request uid.
func journalEntry(serial int64, uid string) Entry {
	return Entry{
		Serial: SerialHex(big.NewInt(serial)), Fingerprint: fmt.Sprintf("%064x", serial),
		IssuedAt: t0.UnixMicro(), NotBefore: t0.Unix(), NotAfter: t0.Add(time.Hour).Unix(),
		KeyAlgorithm: "ECDSA-P256", SignatureAlgorithm: "ECDSA-SHA256",
		Origin:      &EntryOrigin{Kind: quillv1.OriginKindCertificateRequest, Namespace: "team-a", Name: uid, UID: uid},
		Certificate: []byte("der of " + uid),
	}
}

// journalAPI is a fake API server whose segment creations take delay and
// are counted; create, when set, decides each creation instead.
type journalAPI struct {
	client.WithWatch
	creates atomic.Int32
}

func newJournalAPI(t *testing.T, delay time.Duration, create func(context.Context, client.WithWatch, client.Object) error) *journalAPI {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := quillv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	api := &journalAPI{}
	api.WithWatch = interceptor.NewClient(fake.NewClientBuilder().WithScheme(scheme).Build(), interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			api.creates.Add(1)
			time.Sleep(delay)
			if create != nil {
				return create(ctx, c, obj)
			}
			return c.Create(ctx, obj, opts...)
		},
	})
	return api
}

// segments reads every segment's entries by serial, with the segment's
// name.
func (api *journalAPI) segments(t *testing.T) (bySerial map[string]string, lines map[string][]Entry) {
	t.Helper()
	var list quillv1.LedgerSegmentList
	if err := api.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	bySerial, lines = map[string]string{}, map[string][]Entry{}
	for i := range list.Items {
		seg := &list.Items[i]
		if seg.Spec.Stage != quillv1.LedgerStageJournal || seg.Spec.IssuerRef.ID() != journalIssuer {
			t.Errorf("segment %s: stage %s, issuer %+v", seg.Name, seg.Spec.Stage, seg.Spec.IssuerRef)
		}
		if err := SegmentEntries(seg, func(e *Entry) error {
			if e.IsRevocationLine() {
				lines[e.Serial] = append(lines[e.Serial], *e)
				return nil
			}
			if prev, dup := bySerial[e.Serial]; dup {
				t.Errorf("serial %s written twice, in %s and %s", e.Serial, prev, seg.Name)
			}
			bySerial[e.Serial] = seg.Name
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return bySerial, lines
}

// TestJournalGroupCommit: fifty signatures recorded at once take a handful
// of segment creations, not fifty; each caller learns the segment holding
// its entry, which is in the index when Record returns.
func TestJournalGroupCommit(t *testing.T) {
	t.Parallel()
	const n = 50
	api := newJournalAPI(t, 20*time.Millisecond, nil)
	ix := NewIndex()
	j := NewJournal(api, ix, clocktesting.NewFakePassiveClock(t0))

	segmentOf := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			seg, err := j.Record(context.Background(), journalIssuer, "team-a", journalEntry(int64(1000+i), fmt.Sprintf("uid-%d", i)))
			if err != nil {
				t.Errorf("Record %d: %v", i, err)
				return
			}
			// In the index by the time Record returns.
			if r, ok := ix.ByRequest(journalIssuer, types.UID(fmt.Sprint("uid-", i))); !ok || r.Segment != seg || !r.HasCertificate {
				t.Errorf("Record %d returned segment %s; the index has %+v (found %v)", i, seg, r, ok)
			}
			segmentOf[i] = seg
		})
	}
	wg.Wait()
	if c := api.creates.Load(); c > n/5 {
		t.Errorf("%d segment creations for %d concurrent records; want group commits (at most %d)", c, n, n/5)
	}
	bySerial, _ := api.segments(t)
	if len(bySerial) != n {
		t.Fatalf("the segments hold %d entries; want %d", len(bySerial), n)
	}
	for i, seg := range segmentOf {
		if got := bySerial[SerialHex(big.NewInt(int64(1000+i)))]; got != seg {
			t.Errorf("Record %d said segment %s; its entry is in %q", i, seg, got)
		}
	}
	if got := ix.Count(journalIssuer); got != n {
		t.Errorf("index holds %d records; want %d", got, n)
	}

	// At low load, a lone record is written at once, in its own segment.
	before := api.creates.Load()
	start := time.Now()
	if _, err := j.Record(context.Background(), journalIssuer, "team-a", journalEntry(1, "alone")); err != nil {
		t.Fatal(err)
	}
	if c := api.creates.Load() - before; c != 1 {
		t.Errorf("a lone record took %d creations; want 1", c)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a lone record took %v", d)
	}
}

// TestJournalRefusedWritesNothing: when the API server refuses the
// segment, every caller in the batch gets the refusal (not an unknown
// outcome), the index holds none of their entries, and a later write of
// the same serials is not refused as a collision.
func TestJournalRefusedWritesNothing(t *testing.T) {
	t.Parallel()
	const n = 20
	var refuse atomic.Bool
	refuse.Store(true)
	api := newJournalAPI(t, 10*time.Millisecond, func(ctx context.Context, c client.WithWatch, obj client.Object) error {
		if refuse.Load() {
			return apierrors.NewForbidden(schema.GroupResource{Group: "quill.dev", Resource: "ledgersegments"}, obj.GetName(), errors.New("no"))
		}
		return c.Create(ctx, obj)
	})
	ix := NewIndex()
	j := NewJournal(api, ix, clocktesting.NewFakePassiveClock(t0))
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := j.Record(context.Background(), journalIssuer, "team-a", journalEntry(int64(i+1), fmt.Sprint("uid-", i)))
			if !apierrors.IsForbidden(err) || errors.Is(err, ErrOutcomeUnknown) {
				t.Errorf("Record %d: %v; want the refusal, with a known outcome", i, err)
			}
		})
	}
	wg.Wait()
	if got := ix.Count(journalIssuer); got != 0 {
		t.Errorf("the index holds %d records after a refused write; want 0", got)
	}
	if bySerial, _ := api.segments(t); len(bySerial) != 0 {
		t.Errorf("segments hold %d entries after a refused write", len(bySerial))
	}
	refuse.Store(false)
	if _, err := j.Record(context.Background(), journalIssuer, "team-a", journalEntry(1, "uid-0")); err != nil {
		t.Errorf("recording again after the refusal: %v", err)
	}
}

// TestJournalOutcomeUnknown: a write whose reply is lost reports
// ErrOutcomeUnknown with the name of the segment, which exists.
func TestJournalOutcomeUnknown(t *testing.T) {
	t.Parallel()
	api := newJournalAPI(t, 0, func(ctx context.Context, c client.WithWatch, obj client.Object) error {
		if err := c.Create(ctx, obj); err != nil {
			return err
		}
		return apierrors.NewTimeoutError("the reply was lost", 1)
	})
	ix := NewIndex()
	j := NewJournal(api, ix, clocktesting.NewFakePassiveClock(t0))
	seg, err := j.Record(context.Background(), journalIssuer, "team-a", journalEntry(7, "uid-7"))
	if !errors.Is(err, ErrOutcomeUnknown) || seg == "" {
		t.Fatalf("Record = %q, %v; want a segment name and ErrOutcomeUnknown", seg, err)
	}
	if bySerial, _ := api.segments(t); bySerial["7"] != seg {
		t.Fatalf("the entry is in segment %q; Record named %q", bySerial["7"], seg)
	}
	if e, err := ReadEntry(context.Background(), api, Record{Segment: seg, Namespace: "team-a", Serial: big.NewInt(7)}); err != nil || string(e.Certificate) != "der of uid-7" {
		t.Fatalf("ReadEntry of the named segment: %+v, %v", e, err)
	}
}

// TestJournalSerialTaken: a serial already in the ledger, or queued, is
// refused before anything is written.
func TestJournalSerialTaken(t *testing.T) {
	t.Parallel()
	api := newJournalAPI(t, 0, nil)
	j := NewJournal(api, NewIndex(), clocktesting.NewFakePassiveClock(t0))
	if _, err := j.Record(context.Background(), journalIssuer, "team-a", journalEntry(9, "first")); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Record(context.Background(), journalIssuer, "team-a", journalEntry(9, "second")); !errors.Is(err, ErrSerialTaken) {
		t.Fatalf("a colliding serial: %v; want ErrSerialTaken", err)
	}
	if c := api.creates.Load(); c != 1 {
		t.Fatalf("%d creations; want 1", c)
	}
	if _, err := j.Record(context.Background(), journalIssuer, "team-a", Entry{Serial: "9", NotAfter: 1, Revocation: &EntryRevocation{}}); err == nil {
		t.Fatal("Record accepted a revocation line")
	}
}

// TestJournalRevokeOnce: concurrent revocations of one serial write one
// line; the first revocation stands for every later one.
func TestJournalRevokeOnce(t *testing.T) {
	t.Parallel()
	api := newJournalAPI(t, 20*time.Millisecond, nil)
	ix := NewIndex()
	j := NewJournal(api, ix, clocktesting.NewFakePassiveClock(t0))
	if _, err := j.Record(context.Background(), journalIssuer, "team-a", journalEntry(42, "uid-42")); err != nil {
		t.Fatal(err)
	}
	rec, _ := ix.Lookup(journalIssuer, big.NewInt(42))
	const n = 10
	var wg sync.WaitGroup
	var now atomic.Int32
	for i := range n {
		wg.Go(func() {
			rev := EntryRevocation{Reason: quillv1.ReasonKeyCompromise, At: t0.Unix() + int64(i), By: fmt.Sprint("caller-", i)}
			held, revoked, err := j.Revoke(context.Background(), journalIssuer, "team-a", rec, rev)
			if err != nil {
				t.Errorf("Revoke %d: %v", i, err)
				return
			}
			if revoked {
				now.Add(1)
				if held != rev {
					t.Errorf("Revoke %d revoked, but holds %+v", i, held)
				}
			}
		})
	}
	wg.Wait()
	_, lines := api.segments(t)
	if got := len(lines["2a"]); got != 1 || now.Load() != 1 {
		t.Fatalf("%d revocation lines written, %d callers told they revoked; want 1 and 1", got, now.Load())
	}
	first := *lines["2a"][0].Revocation
	if r, _ := ix.Lookup(journalIssuer, big.NewInt(42)); !r.Revoked || r.RevokedAt.Unix() != first.At {
		t.Fatalf("index record after revocation: %+v; want revoked at %d", r, first.At)
	}
	held, revoked, err := j.Revoke(context.Background(), journalIssuer, "team-a", rec, EntryRevocation{Reason: quillv1.ReasonSuperseded, At: t0.Unix() + 100})
	if err != nil || revoked || held.Reason != quillv1.ReasonKeyCompromise || held.At != first.At {
		t.Fatalf("a later revocation: holding %+v, revoked %v, %v; want the first one to stand", held, revoked, err)
	}
	if _, lines := api.segments(t); len(lines["2a"]) != 1 {
		t.Fatalf("a later revocation wrote another line")
	}
}

// TestJournalBatchBounds: a batch never passes MaxSegmentBytes, however
// many lines wait.
func TestJournalBatchBounds(t *testing.T) {
	t.Parallel()
	q := &journalQueue{}
	big := make([]byte, 64<<10)
	for i := range 40 {
		e := journalEntry(int64(i+1), "u")
		e.Certificate = big
		q.pending = append(q.pending, &journalOp{entry: e})
	}
	var sizes []int
	for len(q.pending) > 0 {
		sizes = append(sizes, len(takeBatch(q)))
	}
	for _, n := range sizes {
		if n*(64<<10) > MaxSegmentBytes {
			t.Fatalf("batches of %v entries of 64 KiB: over MaxSegmentBytes", sizes)
		}
	}
	q.pending = nil
	for i := range maxJournalEntries + 10 {
		q.pending = append(q.pending, &journalOp{entry: Entry{Serial: fmt.Sprintf("%x", i+1), NotAfter: 1, Revocation: &EntryRevocation{}}})
	}
	if n := len(takeBatch(q)); n != maxJournalEntries {
		t.Fatalf("a batch of %d lines; want %d", n, maxJournalEntries)
	}
}
