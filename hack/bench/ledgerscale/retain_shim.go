package main

import (
	"context"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
)

// retainer runs the ledger's retention for the benchmark's issuer with the
// clock at now and says how many entries it archived.
type retainer interface {
	retain(ctx context.Context, now time.Time) (archived int, err error)
}

// shimRetainer stands in for pkg/ledger's Compactor.Retain until helper
// "compactor"'s branch lands: sealed segments whose expiresAfter is more
// than margin before now are appended to the archive, then deleted.
// TEMPORARY: replaced by the production Compactor (retain.go).
type shimRetainer struct {
	c       client.Client
	archive *shimArchive
	margin  time.Duration
}

func newRetainer(_ context.Context, b *bench, archiveDir string, margin time.Duration) (retainer, func(), error) {
	return &shimRetainer{c: b.c, archive: &shimArchive{dir: archiveDir}, margin: margin}, func() {}, nil
}

func (r *shimRetainer) retain(ctx context.Context, now time.Time) (int, error) {
	var list quillv1.LedgerSegmentList
	if err := r.c.List(ctx, &list, client.InNamespace(clusterNS)); err != nil {
		return 0, err
	}
	archived := 0
	for i := range list.Items {
		seg := &list.Items[i]
		if seg.Spec.Stage != quillv1.LedgerStageSealed || !seg.Spec.ExpiresAfter.Add(r.margin).Before(now) {
			continue
		}
		var entries []ledger.Entry
		if err := ledger.SegmentEntries(seg, func(e *ledger.Entry) error { entries = append(entries, *e); return nil }); err != nil {
			return archived, err
		}
		if err := r.archive.Append(seg.Spec.IssuerRef.ID(), seg.Name, entries); err != nil {
			return archived, err
		}
		if err := r.c.Delete(ctx, seg); err != nil {
			return archived, err
		}
		archived += int(seg.Spec.Entries)
	}
	return archived, nil
}
