package main

import (
	"context"
	"errors"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
)

// retainer runs production retention (ledger.Compactor.Retain) for the
// benchmark's issuer, as the leader's compactor does, on a clock the
// estate sets to each simulated day: an index fed by the same paged list
// and watch as the controller's, told at once of every segment the fill
// creates (PutSegment, as the journal and the compactor tell it of their
// own writes), and the archive in a directory.
type retainer struct {
	index  *ledger.Index
	comp   *ledger.Compactor
	clock  *clocktesting.FakePassiveClock
	margin time.Duration
}

var errIndexNotSynced = errors.New("the ledger index did not load within a minute")

// newRetainer starts the index; stop ends its watch.
func newRetainer(ctx context.Context, b *bench, archiveDir string, margin time.Duration) (r *retainer, stop func(), err error) {
	wc, err := client.NewWithWatch(b.env.Config, client.Options{Scheme: b.env.Scheme})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	r = &retainer{index: ledger.NewIndex(), clock: clocktesting.NewFakePassiveClock(time.Now()), margin: margin}
	go func() { _ = r.index.Run(ctx, wc) }()
	for end := time.Now().Add(time.Minute); !r.index.Synced(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			cancel()
			return nil, nil, errIndexNotSynced
		}
	}
	r.comp = &ledger.Compactor{Client: b.c, Requests: b.c, Index: r.index, Archive: &ledger.Archive{Dir: archiveDir}, Clock: r.clock}
	return r, cancel, nil
}

// created tells the index of a segment the fill wrote.
func (r *retainer) created(seg *quillv1.LedgerSegment, entries []ledger.Entry) {
	r.index.PutSegment(seg, entries)
}

// retain runs retention with the clock at now and returns the entries it
// archived.
func (r *retainer) retain(ctx context.Context, now time.Time) (int, error) {
	r.clock.SetTime(now)
	st, err := r.comp.Retain(ctx, issuerID, clusterNS, r.margin)
	return st.Entries, err
}

// newArchive is the archive the fill writes the archived part of a ledger
// to: the production one.
func newArchive(dir string) *ledger.Archive { return &ledger.Archive{Dir: dir} }
