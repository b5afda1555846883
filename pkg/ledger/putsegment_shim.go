package ledger

// TEMPORARY SHIM, owned by helper "journal": delete this file at merge.
//
// Helper "index" is writing Index.PutSegment and an Index.Run that loads
// LedgerSegments. Until that lands, this file gives the journal something
// to compile and run against: PutSegment decodes nothing (the journal
// hands over the entries) and applies them with the current upsert, and
// RunWithSegmentsShim loads and watches segments next to the legacy
// IssuedCertificates, so that the crash and end-to-end suites run on
// segments. controllers/setup.go calls RunWithSegmentsShim on one line
// marked TEMPORARY; at merge it goes back to index.Run.

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// PutSegment applies the entries of seg, a segment just created, at once.
// (Shim: see the file comment.)
func (ix *Index) PutSegment(seg *quillv1.LedgerSegment, entries []Entry) {
	ix.mu.Lock()
	changes := shimApply(ix, seg, entries)
	ix.mu.Unlock()
	ix.notify(changes...)
}

// shimApply applies entries of seg to ix, issued entries first; the caller
// holds ix.mu or owns ix.
func shimApply(ix *Index, seg *quillv1.LedgerSegment, entries []Entry) []Change {
	var changes []Change
	k := seg.Spec.IssuerRef.ID()
	for i := range entries {
		if e := &entries[i]; !e.IsRevocationLine() {
			if r, ok := shimRecordOf(k, seg, e); ok {
				changes = append(changes, ix.upsert(r))
			}
		}
	}
	for i := range entries {
		if e := &entries[i]; e.IsRevocationLine() && e.Revocation != nil {
			if c, ok := shimRevoke(ix, k, e); ok {
				changes = append(changes, c)
			}
		}
	}
	return changes
}

// shimRevoke applies a revocation line to the record it names, keeping an
// earlier revocation; false when the record is not (yet) there.
func shimRevoke(ix *Index, k quillv1.IssuerID, e *Entry) (Change, bool) {
	ii := ix.issuers[k]
	if ii == nil {
		return Change{}, false
	}
	r, ok := ii.bySerial[e.Serial]
	if !ok {
		return Change{}, false
	}
	if r.Revoked && !e.Revocation.Wins(&EntryRevocation{Reason: revocationOf(r).Reason, At: r.RevokedAt.Unix()}) {
		return Change{}, true
	}
	r.Revoked, r.RevokedAt, r.Reason = true, time.Unix(e.Revocation.At, 0).UTC(), quillv1.RevocationReasonCodes[e.Revocation.Reason]
	return ix.upsert(r), true
}

func shimRecordOf(k quillv1.IssuerID, seg *quillv1.LedgerSegment, e *Entry) (Record, bool) {
	serial, ok := new(big.Int).SetString(e.Serial, 16)
	if !ok {
		return Record{}, false
	}
	r := Record{
		Segment: seg.Name, Namespace: seg.Namespace, HasCertificate: len(e.Certificate) > 0,
		Issuer: k, Serial: serial,
		IssuedAt:  time.UnixMicro(e.IssuedAt).UTC(),
		NotBefore: time.Unix(e.NotBefore, 0).UTC(), NotAfter: time.Unix(e.NotAfter, 0).UTC(),
		KeyAlgorithm: e.KeyAlgorithm, SignatureAlgorithm: e.SignatureAlgorithm, Template: e.Template,
		NoRevocationAvailable: e.NoRevAvail,
	}
	if o := e.Origin; o != nil {
		r.RequestUID, r.OriginKind, r.RequestName = types.UID(o.UID), o.Kind, o.Name
		r.OriginNamespace, r.Certificate = o.Namespace, o.Certificate
	}
	if rv := e.Revocation; rv != nil {
		r.Revoked, r.RevokedAt, r.Reason = true, time.Unix(rv.At, 0).UTC(), quillv1.RevocationReasonCodes[rv.Reason]
	}
	return r, true
}

// RunWithSegmentsShim is Run over IssuedCertificates and LedgerSegments.
// (Shim: see the file comment.)
func (ix *Index) RunWithSegmentsShim(ctx context.Context, c client.WithWatch) error {
	logger := log.FromContext(ctx).WithName("ledger-index")
	for ctx.Err() == nil {
		icRV, segRV, err := ix.shimLoad(ctx, c)
		if err != nil {
			logger.Error(err, "listing the ledger failed; retrying")
			sleep(ctx, time.Second)
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 2)
		go func() { _, err := ix.watch(wctx, c, icRV); done <- err }()
		go func() { done <- ix.shimWatchSegments(wctx, c, segRV) }()
		if err := <-done; err != nil && ctx.Err() == nil && !errors.Is(err, errRelist) {
			logger.Error(err, "watching the ledger failed; listing again")
		}
		cancel()
		<-done
	}
	return nil
}

func (ix *Index) shimLoad(ctx context.Context, c client.WithWatch) (icRV, segRV string, err error) {
	fresh := &Index{issuers: map[quillv1.IssuerID]*issuerIndex{}}
	listed := map[string]bool{}
	opts := &client.ListOptions{Limit: loadPageSize}
	for {
		page := &quillv1.IssuedCertificateList{}
		if err := c.List(ctx, page, opts); err != nil {
			return "", "", fmt.Errorf("listing issued certificates: %w", err)
		}
		for i := range page.Items {
			e := &page.Items[i]
			listed[e.Namespace+"/"+e.Name] = true
			if r, ok := recordOf(e); ok {
				fresh.upsert(r)
			}
		}
		if icRV == "" {
			icRV = page.ResourceVersion
		}
		if page.Continue == "" {
			break
		}
		opts.Continue = page.Continue
	}
	var lines []struct {
		k quillv1.IssuerID
		e Entry
	}
	opts = &client.ListOptions{Limit: 50}
	for {
		page := &quillv1.LedgerSegmentList{}
		if err := c.List(ctx, page, opts); err != nil {
			return "", "", fmt.Errorf("listing ledger segments: %w", err)
		}
		for i := range page.Items {
			seg := &page.Items[i]
			var entries []Entry
			if err := SegmentEntries(seg, func(e *Entry) error { entries = append(entries, *e); return nil }); err != nil {
				log.FromContext(ctx).Error(err, "skipping a corrupt ledger segment")
				continue
			}
			shimApply(fresh, seg, entries)
			for _, e := range entries {
				if e.IsRevocationLine() {
					lines = append(lines, struct {
						k quillv1.IssuerID
						e Entry
					}{seg.Spec.IssuerRef.ID(), e})
				}
			}
		}
		if segRV == "" {
			segRV = page.ResourceVersion
		}
		if page.Continue == "" {
			break
		}
		opts.Continue = page.Continue
	}
	for i := range lines { // revocation lines read before their entries
		shimRevoke(fresh, lines[i].k, &lines[i].e)
	}
	ix.replace(fresh, listed, icRV)
	return icRV, segRV, nil
}

func (ix *Index) shimWatchSegments(ctx context.Context, c client.WithWatch, rv string) error {
	w, err := c.Watch(ctx, &quillv1.LedgerSegmentList{}, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}})
	if err != nil {
		return fmt.Errorf("watching ledger segments: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil
			}
			seg, isSeg := ev.Object.(*quillv1.LedgerSegment)
			switch {
			case ev.Type == watch.Error:
				return fmt.Errorf("watching ledger segments: %w", apierrors.FromObject(ev.Object))
			case !isSeg || ev.Type == watch.Bookmark || ev.Type == watch.Deleted:
				// Deletions: no compactor runs before the merge.
			default:
				var entries []Entry
				if err := SegmentEntries(seg, func(e *Entry) error { entries = append(entries, *e); return nil }); err != nil {
					log.FromContext(ctx).Error(err, "skipping a corrupt ledger segment")
					continue
				}
				ix.PutSegment(seg, entries)
			}
		}
	}
}
