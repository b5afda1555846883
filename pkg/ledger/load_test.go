package ledger

import (
	"context"
	"fmt"
	"math/big"
	"strconv"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// fakeLedger serves lists in pages and hands each watch to the test.
type fakeLedger struct {
	client.WithWatch
	mu      sync.Mutex
	ics     []quillv1.IssuedCertificate
	segs    []quillv1.LedgerSegment
	rv      string
	limits  map[string][]int64
	segGate chan struct{} // the first segment page waits for it
	watches chan fakeWatch
}

type fakeWatch struct {
	kind, rv string
	w        *watch.FakeWatcher
}

func kindOf(list client.ObjectList) string {
	if _, ok := list.(*quillv1.LedgerSegmentList); ok {
		return "segments"
	}
	return "issued"
}

func (f *fakeLedger) List(_ context.Context, list client.ObjectList, opts ...client.ListOption) error {
	o := &client.ListOptions{}
	o.ApplyOptions(opts)
	start, _ := strconv.Atoi(o.Continue)
	if gate := f.segGate; gate != nil && kindOf(list) == "segments" && start == 0 {
		<-gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limits[kindOf(list)] = append(f.limits[kindOf(list)], o.Limit)
	end := func(n int) (int, string) {
		if e := start + int(o.Limit); e < n {
			return e, strconv.Itoa(e)
		}
		return n, ""
	}
	switch l := list.(type) {
	case *quillv1.IssuedCertificateList:
		e, next := end(len(f.ics))
		l.Items, l.Continue, l.ResourceVersion = append([]quillv1.IssuedCertificate{}, f.ics[start:e]...), next, f.rv
	case *quillv1.LedgerSegmentList:
		e, next := end(len(f.segs))
		l.Items, l.Continue, l.ResourceVersion = append([]quillv1.LedgerSegment{}, f.segs[start:e]...), next, f.rv
	}
	return nil
}

func (f *fakeLedger) Watch(_ context.Context, list client.ObjectList, opts ...client.ListOption) (watch.Interface, error) {
	o := &client.ListOptions{}
	o.ApplyOptions(opts)
	w := watch.NewFake()
	f.watches <- fakeWatch{kind: kindOf(list), rv: o.Raw.ResourceVersion, w: w}
	return w, nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// nextWatches returns the issued-certificate and segment watches Run opened.
func nextWatches(t *testing.T, f *fakeLedger, rv string) (ic, seg *watch.FakeWatcher) {
	t.Helper()
	for range 2 {
		select {
		case w := <-f.watches:
			if w.rv != rv {
				t.Fatalf("%s watch from %q, want %q", w.kind, w.rv, rv)
			}
			if w.kind == "segments" {
				seg = w.w
			} else {
				ic = w.w
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run opened no watch")
		}
	}
	return ic, seg
}

// TestIndexRunLoadsAndWatches runs the loader against a fake API server:
// both kinds listed in pages, synced only after both, a corrupt segment
// skipped, deletions of migrated IssuedCertificates held until the segment
// watch has caught up, and a relist after an expired watch.
func TestIndexRunLoadsAndWatches(t *testing.T) {
	t.Parallel()
	f := &fakeLedger{rv: "10", limits: map[string][]int64{}, segGate: make(chan struct{}), watches: make(chan fakeWatch, 4)}
	for i := int64(1); i <= 3; i++ {
		f.ics = append(f.ics, *entry(issuerA, i, fmt.Sprint("u", i), "", t0, t0.Add(time.Hour)))
	}
	for i := range 20 {
		f.segs = append(f.segs, *segment(t, quillv1.LedgerStageJournal, fmt.Sprintf("qi.ca.j%02d", i), "5", issued(int64(100+i), fmt.Sprint("s", i))))
	}
	f.segs[7].Spec.Data = []byte("corrupt")
	f.segs = append(f.segs, *segment(t, quillv1.LedgerStageJournal, "qi.ca.j99", "6", revocationLine(2, quillv1.ReasonKeyCompromise, 1)))

	ix := NewIndex()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = ix.Run(ctx, f) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "the IssuedCertificates to be listed", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.limits["issued"]) > 0
	})
	time.Sleep(20 * time.Millisecond)
	if ix.Synced() {
		t.Fatal("synced before the segments were listed")
	}
	close(f.segGate)
	waitFor(t, "the index to sync", ix.Synced)
	if got := ix.Count(issuerA); got != 3+19 {
		t.Fatalf("%d records after the load, want 22 (one segment corrupt)", got)
	}
	if r, _ := ix.Lookup(issuerA, big.NewInt(2)); !r.Revoked || ix.CorruptSegments() != 1 {
		t.Fatalf("serial 2 revoked %v, %d corrupt; want revoked by the journal's line and one corrupt", r.Revoked, ix.CorruptSegments())
	}
	f.mu.Lock()
	if fmt.Sprint(f.limits) != "map[issued:[500] segments:[16 16]]" {
		t.Errorf("list requests %v; want one page of 500 IssuedCertificates and two of 16 segments", f.limits)
	}
	f.mu.Unlock()

	ic, seg := nextWatches(t, f, "10")
	// Serial 3 migrated at revision 11 into a sealed segment; its
	// IssuedCertificate deleted at 12. The IssuedCertificate watch is ahead.
	ic.Delete(withRV(&f.ics[2], "12"))
	ic.Add(withRV(entry(issuerA, 4, "u4", "", t0, t0.Add(time.Hour)), "13")) // after the deletion
	waitFor(t, "serial 4", func() bool { _, ok := ix.Lookup(issuerA, big.NewInt(4)); return ok })
	if _, ok := ix.Lookup(issuerA, big.NewInt(3)); !ok {
		t.Fatal("a migrated record went missing before its segment arrived")
	}
	seg.Add(segment(t, quillv1.LedgerStageSealed, "qi.ca.s01", "11", issued(3, "u3")))
	// Serial 1, never migrated, deleted at 14: gone once the segment watch
	// passes 14.
	ic.Delete(withRV(&f.ics[0], "14"))
	ic.Add(withRV(entry(issuerA, 5, "u5", "", t0, t0.Add(time.Hour)), "15"))
	waitFor(t, "serial 5", func() bool { _, ok := ix.Lookup(issuerA, big.NewInt(5)); return ok })
	if _, ok := ix.Lookup(issuerA, big.NewInt(1)); !ok {
		t.Fatal("a deletion was applied before the segment watch reached it")
	}
	seg.Action(watch.Bookmark, &quillv1.LedgerSegment{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "16"}})
	waitFor(t, "serial 1 to go", func() bool { _, ok := ix.Lookup(issuerA, big.NewInt(1)); return !ok })
	if r, ok := ix.Lookup(issuerA, big.NewInt(3)); !ok || r.Segment != "qi.ca.s01" {
		t.Fatalf("serial 3: %v at %s; want it in its sealed segment", ok, r.Segment)
	}

	// An expired watch lists again, from the new revision.
	f.mu.Lock()
	f.rv = "30"
	f.segs = append(f.segs, *segment(t, quillv1.LedgerStageSealed, "qi.ca.s02", "29", issued(6, "u6")))
	f.mu.Unlock()
	seg.Error(&metav1.Status{Status: metav1.StatusFailure, Code: 410, Reason: metav1.StatusReasonExpired})
	nextWatches(t, f, "30")
	if _, ok := ix.Lookup(issuerA, big.NewInt(6)); !ok {
		t.Fatal("the relist did not bring a segment created meanwhile")
	}
}

func withRV[T interface{ SetResourceVersion(string) }](o T, rv string) T {
	o.SetResourceVersion(rv)
	return o
}
