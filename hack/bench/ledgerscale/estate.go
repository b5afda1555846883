package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/hack/bench/ledgerfill"
)

// estateOptions describe issue 15's steady-state estate: pods each
// renewing a short-lived certificate all day, every day.
type estateOptions struct {
	run            bool
	days, pods     int
	renewalsPerDay int
	lifetime       time.Duration
	retain         time.Duration
	signPool       int
}

func (e *estateOptions) register() {
	flag.IntVar(&e.days, "estate-days", 30, "estate: simulated days")
	flag.IntVar(&e.pods, "estate-pods", 5000, "estate: pods, each with its own Certificate")
	flag.IntVar(&e.renewalsPerDay, "estate-renewals", 24, "estate: certificates per pod and day")
	flag.DurationVar(&e.lifetime, "estate-lifetime", time.Hour, "estate: certificate lifetime")
	flag.DurationVar(&e.retain, "estate-retain", quillv1.DefaultRetainExpiredFor, "estate: the issuer's spec.ledger.retainExpiredFor")
	flag.IntVar(&e.signPool, "estate-sign-pool", 1000, "estate: real certificates signed; every entry is one of them re-stamped (ledgerfill.Spec.SignPool); 0 signs every one")
}

// estateDay is one simulated day's figures, taken after that day's
// retention.
type estateDay struct {
	day                      int
	written, live, segments  int
	archivedToday            int
	archiveBytes             int64
	etcd                     etcdSizes
	apiRSS, apiHeap          int64
	fill, retainTook, elapse time.Duration
}

// runEstate writes the estate's entries day by day with past timestamps
// (day 1 is o.estate.days days ago), then runs retention with the clock at
// the end of that day, and records the live ledger and etcd after each.
func runEstate(o options) (err error) {
	e := o.estate
	ctx := context.Background()
	perDay := e.pods * e.renewalsPerDay
	end := time.Now().UTC().Truncate(time.Hour)
	first := end.Add(-time.Duration(e.days) * 24 * time.Hour)
	step("estate: %d pods × %d certificates of %s a day = %d entries a day, %d days from %s, retention %s",
		e.pods, e.renewalsPerDay, e.lifetime, perDay, e.days, first.Format(time.DateOnly), e.retain)
	b, err := startBench(ctx, first.Add(-48*time.Hour))
	if err != nil {
		return err
	}
	defer func() {
		if stopErr := b.env.Stop(); err == nil {
			err = stopErr
		}
	}()
	gw, err := newEtcdGateway(b.procs["etcd"])
	if err != nil {
		return err
	}
	empty, err := gw.measure(b.procs["etcd"])
	if err != nil {
		return err
	}
	apiEmpty := rss(b.procs["kube-apiserver"], "VmRSS")
	archiveDir, err := os.MkdirTemp("", "ledgerscale-estate-archive-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(archiveDir)
	ret, stop, err := newRetainer(ctx, b, archiveDir, e.retain)
	if err != nil {
		return err
	}
	defer stop()

	began := time.Now()
	var days []estateDay
	for d := range e.days {
		dayStart := first.Add(time.Duration(d) * 24 * time.Hour)
		row := estateDay{day: d + 1}
		t0 := time.Now()
		res, err := ledgerfill.Fill(ctx, b.c, ledgerfill.Spec{Issuer: issuerID, Home: clusterNS, Authority: b.ca.Authority,
			Format: ledgerfill.FormatSegments, N: perDay, IssuedFrom: dayStart, IssuedSpan: 24 * time.Hour, Lifetime: e.lifetime,
			FirstIndex: d * perDay, Pods: e.pods, RevokedPercent: o.revokedPct, Concurrency: 2, SignPool: e.signPool, Created: ret.created})
		if err != nil {
			return fmt.Errorf("day %d: %w", d+1, err)
		}
		row.written, row.fill = res.Live, time.Since(t0)
		t1 := time.Now()
		if row.archivedToday, err = ret.retain(ctx, dayStart.Add(24*time.Hour)); err != nil {
			return fmt.Errorf("day %d: retention: %w", d+1, err)
		}
		row.retainTook = time.Since(t1)
		if row.live, row.segments, err = liveLedger(ctx, b.c); err != nil {
			return err
		}
		row.archiveBytes = dirSize(archiveDir)
		row.apiRSS, row.apiHeap = rss(b.procs["kube-apiserver"], "VmRSS"), apiHeap(b.env.Config)
		if row.etcd, err = gw.measure(b.procs["etcd"]); err != nil {
			return fmt.Errorf("day %d: %w", d+1, err)
		}
		row.elapse = time.Since(began)
		days = append(days, row)
		step("estate: day %d: %d written, %d archived, %d live in %d segments, archive %s, etcd %s (compacted in use %s, defragmented %s), kube-apiserver %s (heap in use %s)",
			row.day, row.written, row.archivedToday, row.live, row.segments, mib(row.archiveBytes),
			mib(row.etcd.file), mib(row.etcd.inUseCompacted), mib(row.etcd.fileDefragged), mib(row.apiRSS), mib(row.apiHeap))
	}
	printEstate(os.Stdout, days, empty, apiEmpty, e, perDay)
	return nil
}

// liveLedger counts the entries and segments of the benchmark's issuer in
// the API.
func liveLedger(ctx context.Context, c client.Client) (entries, segments int, err error) {
	var list quillv1.LedgerSegmentList
	if err := c.List(ctx, &list, client.InNamespace(clusterNS)); err != nil {
		return 0, 0, err
	}
	for i := range list.Items {
		if list.Items[i].Spec.IssuerRef.ID() == issuerID {
			entries += int(list.Items[i].Spec.Entries)
			segments++
		}
	}
	return entries, segments, nil
}

func printEstate(w io.Writer, days []estateDay, empty etcdSizes, apiEmpty int64, e estateOptions, perDay int) {
	fmt.Fprintf(w, "\n%d pods, %d certificates of %s each a day (%d entries a day), retainExpiredFor %s; empty control plane: etcd %s defragmented, kube-apiserver %s\n\n",
		e.pods, e.renewalsPerDay, e.lifetime, perDay, e.retain, mib(empty.fileDefragged), mib(apiEmpty))
	fmt.Fprintln(w, "| day | entries written (total) | archived that day | live entries | live segments | archive | etcd DB as written | etcd in use after compaction | etcd DB defragmented | kube-apiserver RSS (Go heap in use) | fill / retention | elapsed |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	total := 0
	for _, d := range days {
		total += d.written
		fmt.Fprintf(w, "| %d | %d (%d) | %d | %d | %d | %s | %s | %s | %s | %s (%s) | %s / %s | %s |\n",
			d.day, d.written, total, d.archivedToday, d.live, d.segments, mib(d.archiveBytes),
			mib(d.etcd.file), mib(d.etcd.inUseCompacted), mib(d.etcd.fileDefragged), mib(d.apiRSS), mib(d.apiHeap),
			d.fill.Round(100*time.Millisecond), d.retainTook.Round(100*time.Millisecond), d.elapse.Round(time.Second))
	}
	if total > 0 && len(days) > 0 {
		last := days[len(days)-1]
		fmt.Fprintf(w, "\narchive: %.1f bytes per entry archived (%d archived of %d written)\n",
			float64(last.archiveBytes)/float64(max(1, total-last.live)), total-last.live, total)
	}
}
