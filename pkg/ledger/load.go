package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// loadPageSize is how many records one list request returns while the
// index loads. Each page is compacted into Records and dropped before the
// next is asked for, so the load's memory peak is the index plus one page,
// not every decoded object at once (client-go's reflector holds the whole
// list before it hands it over: about 6 KB per record at start-up, above the
// chart's memory limit near 80k records).
const loadPageSize = 500

// errRelist ends a watch whose resourceVersion the API server no longer
// has; the ledger is then listed again.
var errRelist = errors.New("watch expired")

// Run keeps the index in step with the ledger until ctx ends: it lists the
// ledger in pages of loadPageSize, compacting each page as it arrives, marks
// the index synced once the whole list is in, then watches from the list's
// resourceVersion, and lists again when the watch has expired. It needs
// list and watch rights on issuedcertificates in every namespace that holds
// records.
func (ix *Index) Run(ctx context.Context, c client.WithWatch) error {
	logger := log.FromContext(ctx).WithName("ledger-index")
	backoff := time.Second
	rv := ""
	for ctx.Err() == nil {
		if rv == "" {
			var err error
			if rv, err = ix.load(ctx, c); err != nil {
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
		next, err := ix.watch(ctx, c, rv)
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, errRelist):
			logger.Info("ledger watch expired; listing the ledger again")
			rv = ""
		case err != nil:
			logger.Error(err, "watching the ledger failed; retrying", "after", backoff)
			sleep(ctx, backoff)
			backoff = min(2*backoff, 30*time.Second)
			rv = next
		default:
			rv = next // the server closed the watch; resume where it was
		}
	}
	return nil
}

// load lists the whole ledger page by page into a fresh index, swaps it in
// and returns the list's resourceVersion. All pages come from one
// consistent snapshot (the continue token pins the first page's version);
// a token that expired mid-way starts the list again.
func (ix *Index) load(ctx context.Context, c client.WithWatch) (string, error) {
	for {
		fresh := &Index{issuers: map[quillv1.IssuerID]*issuerIndex{}}
		listed := map[string]bool{}
		// Limit and Continue go in client.ListOptions' own fields:
		// controller-runtime overwrites Raw's with them.
		opts := &client.ListOptions{Limit: loadPageSize}
		var rv string
		for {
			page := &quillv1.IssuedCertificateList{}
			if err := c.List(ctx, page, opts); err != nil {
				if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
					break // the snapshot is gone: list again from the start
				}
				return "", fmt.Errorf("listing issued certificates: %w", err)
			}
			for i := range page.Items {
				e := &page.Items[i]
				listed[e.Namespace+"/"+e.Name] = true
				if r, ok := recordOf(e); ok {
					fresh.upsert(r)
				}
			}
			if rv == "" {
				rv = page.ResourceVersion
			}
			if page.Continue == "" {
				ix.replace(fresh, listed, rv)
				return rv, nil
			}
			opts.Continue = page.Continue
		}
	}
}

// watch applies the ledger's changes after resourceVersion rv until the
// watch ends, and returns the last resourceVersion it saw.
func (ix *Index) watch(ctx context.Context, c client.WithWatch, rv string) (string, error) {
	w, err := c.Watch(ctx, &quillv1.IssuedCertificateList{}, &client.ListOptions{Raw: &metav1.ListOptions{
		ResourceVersion: rv, AllowWatchBookmarks: true,
	}})
	if err != nil {
		if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
			return rv, errRelist
		}
		return rv, fmt.Errorf("watching issued certificates: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return rv, nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return rv, nil
			}
			switch ev.Type {
			case watch.Error:
				if status := apierrors.FromObject(ev.Object); apierrors.IsResourceExpired(status) || apierrors.IsGone(status) {
					return rv, errRelist
				}
				return rv, fmt.Errorf("watching issued certificates: %w", apierrors.FromObject(ev.Object))
			case watch.Bookmark:
				if e, ok := ev.Object.(*quillv1.IssuedCertificate); ok {
					rv = e.ResourceVersion
				}
			case watch.Added, watch.Modified:
				if err := ix.Update(ev.Object); err != nil {
					return rv, err
				}
				rv = ev.Object.(*quillv1.IssuedCertificate).ResourceVersion
			case watch.Deleted:
				if err := ix.Delete(ev.Object); err != nil {
					return rv, err
				}
				rv = ev.Object.(*quillv1.IssuedCertificate).ResourceVersion
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
