package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// loadPageSize is how many IssuedCertificates one list request returns
// while the index loads. Each page is compacted into records and dropped
// before the next is asked for, so the load's memory peak is the index plus
// one page, not every decoded object at once (client-go's reflector holds
// the whole list before it hands it over: about 6 KB per record at
// start-up, above the chart's memory limit near 80k records).
const loadPageSize = 500

// segmentPageSize is the same for LedgerSegments, which are up to
// MaxSegmentBytes each: a page is at most 8 MiB of segment data.
const segmentPageSize = 16

// errRelist ends a watch whose resourceVersion the API server no longer
// has; the ledger is then listed again.
var errRelist = errors.New("watch expired")

// cursor is where the watches of the two kinds resume.
type cursor struct {
	ic, seg string
	// deferred holds IssuedCertificate deletions that wait for the
	// segment watch to reach their resourceVersion (see watchEvent).
	deferred []deferredDelete
}

type deferredDelete struct {
	rv  uint64
	obj *quillv1.IssuedCertificate
}

// Run keeps the index in step with the ledger until ctx ends: it lists the
// IssuedCertificates and then the LedgerSegments in pages, compacting each
// page as it arrives, marks the index synced once both lists are in, then
// watches both kinds from their lists' resourceVersions, and lists again
// when a watch has expired. It needs list and watch rights on
// issuedcertificates and ledgersegments in every namespace that holds
// ledger objects.
func (ix *Index) Run(ctx context.Context, c client.WithWatch) error {
	logger := log.FromContext(ctx).WithName("ledger-index")
	backoff := time.Second
	var cur *cursor
	for ctx.Err() == nil {
		if cur == nil {
			var err error
			if cur, err = ix.load(ctx, c, logger); err != nil {
				if ctx.Err() != nil {
					break
				}
				logger.Error(err, "listing the ledger failed; retrying", "after", backoff)
				sleep(ctx, backoff)
				backoff = min(2*backoff, 30*time.Second)
				continue
			}
			backoff = time.Second
		}
		err := ix.watch(ctx, c, cur, logger)
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, errRelist):
			logger.Info("ledger watch expired; listing the ledger again")
			cur = nil
		case err != nil:
			logger.Error(err, "watching the ledger failed; retrying", "after", backoff)
			sleep(ctx, backoff)
			backoff = min(2*backoff, 30*time.Second)
		default: // the server closed a watch; resume where they were
		}
	}
	return nil
}

// load lists the whole ledger page by page into a fresh store, swaps it in
// and returns where the watches start. All pages of one kind come from one
// consistent snapshot (the continue token pins the first page's version);
// a token that expired mid-way starts the load again.
//
// IssuedCertificates are listed before segments: migration writes a
// record's segment before it deletes its IssuedCertificate, so a record
// migrated between the two lists is in the second, never in neither.
func (ix *Index) load(ctx context.Context, c client.WithWatch, logger logr.Logger) (*cursor, error) {
	for {
		fresh := newStore()
		icRV, err := listPages(ctx, c, &quillv1.IssuedCertificateList{}, loadPageSize, func(l client.ObjectList) {
			page := l.(*quillv1.IssuedCertificateList)
			for i := range page.Items {
				var ch changes
				fresh.applyLegacy(&page.Items[i], &ch)
			}
		})
		if errors.Is(err, errRelist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing issued certificates: %w", err)
		}
		segRV, err := listPages(ctx, c, &quillv1.LedgerSegmentList{}, segmentPageSize, func(l client.ObjectList) {
			page := l.(*quillv1.LedgerSegmentList)
			for i := range page.Items {
				_ = fresh.load(&page.Items[i], logger) // cannot fail for a segment
				page.Items[i].Spec.Data = nil          // decoded, applied, dropped
			}
		})
		if errors.Is(err, errRelist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing ledger segments: %w", err)
		}
		ix.replace(fresh, icRV, segRV)
		return &cursor{ic: icRV, seg: segRV}, nil
	}
}

// listPages lists every object of list's kind in pages of limit, calls fn
// with each page and returns the first page's resourceVersion, or
// errRelist when the snapshot expired half-way.
func listPages(ctx context.Context, c client.WithWatch, list client.ObjectList, limit int64, fn func(client.ObjectList)) (string, error) {
	// Limit and Continue go in client.ListOptions' own fields:
	// controller-runtime overwrites Raw's with them.
	opts := &client.ListOptions{Limit: limit}
	rv := ""
	for {
		page := list.DeepCopyObject().(client.ObjectList)
		if err := c.List(ctx, page, opts); err != nil {
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				return "", errRelist // the snapshot is gone: list again from the start
			}
			return "", err
		}
		fn(page)
		if rv == "" {
			rv = page.GetResourceVersion()
		}
		if page.GetContinue() == "" {
			return rv, nil
		}
		opts.Continue = page.GetContinue()
	}
}

// watch applies the ledger's changes after cur until a watch ends,
// advancing cur as it goes.
func (ix *Index) watch(ctx context.Context, c client.WithWatch, cur *cursor, logger logr.Logger) error {
	watchOf := func(list client.ObjectList, rv, what string) (watch.Interface, error) {
		w, err := c.Watch(ctx, list, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}})
		if err != nil {
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				return nil, errRelist
			}
			return nil, fmt.Errorf("watching %s: %w", what, err)
		}
		return w, nil
	}
	wic, err := watchOf(&quillv1.IssuedCertificateList{}, cur.ic, "issued certificates")
	if err != nil {
		return err
	}
	defer wic.Stop()
	wseg, err := watchOf(&quillv1.LedgerSegmentList{}, cur.seg, "ledger segments")
	if err != nil {
		return err
	}
	defer wseg.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-wic.ResultChan():
			if !ok {
				return nil
			}
			if err := ix.watchEvent(ev, &cur.ic, cur, logger); err != nil {
				return fmt.Errorf("watching issued certificates: %w", err)
			}
		case ev, ok := <-wseg.ResultChan():
			if !ok {
				return nil
			}
			if err := ix.watchEvent(ev, &cur.seg, cur, logger); err != nil {
				return fmt.Errorf("watching ledger segments: %w", err)
			}
			ix.flushDeferred(cur)
		}
	}
}

// watchEvent applies one event and advances *rv.
//
// The two kinds are watched apart, so their events are not ordered
// against each other: the deletion of a migrated IssuedCertificate could
// come before the segment it was migrated into, and for that moment the
// record would be missing. Such a deletion is held until the segment watch
// has reached its resourceVersion (comparable as numbers on an
// etcd-backed API server; when either is not a number it is applied at
// once).
func (ix *Index) watchEvent(ev watch.Event, rv *string, cur *cursor, logger logr.Logger) error {
	switch ev.Type {
	case watch.Error:
		status := apierrors.FromObject(ev.Object)
		if apierrors.IsResourceExpired(status) || apierrors.IsGone(status) {
			return errRelist
		}
		return status
	case watch.Bookmark:
		if o, ok := ev.Object.(client.Object); ok {
			*rv = o.GetResourceVersion()
		}
		return nil
	}
	o, ok := ev.Object.(client.Object)
	if !ok {
		return fmt.Errorf("unexpected object %T", ev.Object)
	}
	switch ev.Type {
	case watch.Added, watch.Modified:
		if err := ix.apply(o, logger); err != nil {
			return err
		}
	case watch.Deleted:
		ic, isLegacy := o.(*quillv1.IssuedCertificate)
		delRV, err1 := strconv.ParseUint(o.GetResourceVersion(), 10, 64)
		segRV, err2 := strconv.ParseUint(cur.seg, 10, 64)
		if isLegacy && err1 == nil && err2 == nil && delRV > segRV {
			cur.deferred = append(cur.deferred, deferredDelete{rv: delRV, obj: ic})
		} else if err := ix.Delete(o); err != nil {
			return err
		}
	}
	*rv = o.GetResourceVersion()
	return nil
}

// flushDeferred applies the held deletions the segment watch has caught
// up with.
func (ix *Index) flushDeferred(cur *cursor) {
	segRV, err := strconv.ParseUint(cur.seg, 10, 64)
	kept := cur.deferred[:0]
	for _, d := range cur.deferred {
		if err != nil || d.rv <= segRV {
			_ = ix.Delete(d.obj)
			continue
		}
		kept = append(kept, d)
	}
	cur.deferred = kept
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
