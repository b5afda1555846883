package main

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Targets from the issues Quill's benchmark answers. The ledger's cost is
// judged by the first two: Quill records every certificate before it
// returns it, and must still be at least as fast as the CA issuer, which
// records nothing.
const (
	targetThroughputRatio = 1.0 // Quill certs/s ≥ this × the CA issuer's
	targetP99Ratio        = 1.0 // Quill p99 ≤ this × the CA issuer's
	targetExtraRequests   = 1.0 // Quill requests per Certificate ≤ the CA issuer's + this
	targetPKCS11Ratio     = 0.9 // Quill (PKCS#11) certs/s ≥ this × Quill's with the key in a Secret
)

// label is a kind's name in column headings and differences.
func (k issuerKind) label() string {
	switch k {
	case kindQuill:
		return "Quill"
	case kindPKCS11:
		return "PKCS#11"
	}
	return "CA"
}

// comparison is one pair of kinds the report sets side by side: other
// against base.
type comparison struct{ base, other issuerKind }

func (c comparison) String() string { return c.other.label() + " - " + c.base.label() }

// comparisons are Quill against the CA issuer and, with -pkcs11, Quill
// with its key on the token against Quill with its key in a Secret.
func comparisons(kinds []issuerKind) []comparison {
	c := []comparison{{base: kindCA, other: kindQuill}}
	if slices.Contains(kinds, kindPKCS11) {
		c = append(c, comparison{base: kindQuill, other: kindPKCS11})
	}
	return c
}

// phaseOf is the result of kind in round.
func phaseOf(results []*result, round int, kind issuerKind) *result {
	for _, r := range results {
		if r.round == round && r.kind == kind {
			return r
		}
	}
	return nil
}

func report(w io.Writer, o options, env environment, idle *idleSample, results []*result) {
	kinds := o.kinds()
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.String()
	}
	fmt.Fprintf(w, "Issuance through cert-manager: Quill vs cert-manager's CA issuer")
	if o.pkcs11 {
		fmt.Fprintf(w, ", and Quill with its CA key on a PKCS#11 token")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s memory; %s; kube-apiserver %s; cert-manager %s\n",
		runtime.NumCPU(), env.cpuModel, env.memory, runtime.Version(), env.apiserver, env.certManager)
	fmt.Fprintf(w, "N=%d Certificates per phase, %d rounds, phases in order %s, reversed in even rounds; warm-up %d per issuer; %d concurrent creates\n",
		o.n, o.rounds, strings.Join(names, ", "), o.warmup, o.concurrency)
	if o.pkcs11 {
		fmt.Fprintf(w, "Quill (PKCS#11): spec.ca.pkcs11, ECDSA P-256 key on a SoftHSM2 token (%s, %s) used by quill-controller; "+
			"its own CA, of the same algorithm as the one the CA issuer and Quill share\n", softHSMModule, env.softHSM)
	}
	fmt.Fprintf(w, "time to Ready: create call returned -> Ready=True seen by the benchmark's watch (LTT: condition lastTransitionTime, 1 s resolution)\n")
	fmt.Fprintf(w, "req/cert: kube-apiserver apiserver_request_total in the phase window / N; 'ctrl' excludes the benchmark's own requests\n\n")

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tround\tN\tcreates\tall Ready\tcerts/s\tp50\tp99\tmax\tp50 LTT\tp99 LTT\treq/cert\tctrl req/cert\town req\tCRs\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%.1f\t%.1f\t%d\t%d\t\n",
			r.kind, r.round, r.n, fmtDur(r.createSpan), fmtDur(r.wall), r.certsPerSecond(),
			fmtDur(percentile(r.ttr, 50)), fmtDur(percentile(r.ttr, 99)), fmtDur(r.ttr[len(r.ttr)-1]),
			fmtDur(percentile(r.ttrLTT, 50)), fmtDur(percentile(r.ttrLTT, 99)),
			r.perCert(true), r.perCert(false), r.own, r.crCount)
	}
	meds := map[issuerKind]summary{}
	for _, k := range kinds {
		s := summarize(results, k)
		meds[k] = s
		fmt.Fprintf(tw, "%s\tmedian\t%d\t\t\t%.1f\t%s\t%s\t\t\t\t%.1f\t%.1f\t\t\t\n",
			k, o.n, s.certsPerSecond, fmtDur(s.p50), fmtDur(s.p99), s.perCert, s.ctrlPerCert)
	}
	_ = tw.Flush()

	ca, q := meds[kindCA], meds[kindQuill]
	thr := q.certsPerSecond / ca.certsPerSecond
	p99 := q.p99.Seconds() / ca.p99.Seconds()
	extra := q.perCert - ca.perCert
	fmt.Fprintf(w, "\nQuill, every certificate in the ledger / CA issuer (medians of %d rounds):\n", o.rounds)
	fmt.Fprintf(w, "  certs/s             x%.2f   target >= x%.1f   %s\n", thr, targetThroughputRatio, verdict(thr >= targetThroughputRatio))
	fmt.Fprintf(w, "  p99 time to Ready   x%.2f   target <= x%.1f   %s\n", p99, targetP99Ratio, verdict(p99 <= targetP99Ratio))
	fmt.Fprintf(w, "  p50 time to Ready   x%.2f\n", q.p50.Seconds()/ca.p50.Seconds())
	fmt.Fprintf(w, "  requests per cert   %+.2f   target <= %+.1f   %s\n", extra, targetExtraRequests, verdict(extra <= targetExtraRequests))
	perRound(w, results, o.rounds, comparison{base: kindCA, other: kindQuill})

	if o.pkcs11 {
		// The target is on throughput; the latencies are shown
		// beside it, without a target of their own.
		p := meds[kindPKCS11]
		pthr := p.certsPerSecond / q.certsPerSecond
		fmt.Fprintf(w, "\nQuill (PKCS#11) / Quill (software), CA key on the token / in a Secret (medians of %d rounds):\n", o.rounds)
		fmt.Fprintf(w, "  certs/s             x%.2f   target >= x%.1f   %s\n", pthr, targetPKCS11Ratio, verdict(pthr >= targetPKCS11Ratio))
		fmt.Fprintf(w, "  p99 time to Ready   x%.2f\n", p.p99.Seconds()/q.p99.Seconds())
		fmt.Fprintf(w, "  p50 time to Ready   x%.2f\n", p.p50.Seconds()/q.p50.Seconds())
		fmt.Fprintf(w, "  requests per cert   %+.2f\n", p.perCert-q.perCert)
		perRound(w, results, o.rounds, comparison{base: kindQuill, other: kindPKCS11})
	}

	cpuTable(w, results)
	breakdown(w, kinds, results)
	eventsReport(w, kinds, results)
	if o.stages {
		stagesReport(w, results)
	}
	if o.quillMetrics {
		quillMetricsReport(w, results)
	}
	if o.cmMetrics {
		cmSyncReport(w, results)
	}
	if idle != nil {
		secs := idle.window.Seconds()
		fmt.Fprintf(w, "\nBackground while idle (%s, no Certificates being issued): %.1f API requests/s (%.0f in total); CPU seconds:",
			idle.window.Round(time.Millisecond), (idle.requests.total()-float64(idle.own))/secs, idle.requests.total())
		for _, name := range procNames {
			fmt.Fprintf(w, " %s %.2fs", name, idle.cpu[name].Seconds())
		}
		fmt.Fprintf(w, "; other processes %.2fs", idle.cpu.others().Seconds())
		fmt.Fprintln(w)
		top := sortedKeys(idle.requests.byResource(), func(k requestKey) float64 { return idle.requests.byResource()[k] })
		for _, k := range top[:min(8, len(top))] {
			fmt.Fprintf(w, "  %-60s %4.0f\n", k, idle.requests.byResource()[k])
		}
	}
}

// perRound prints c's ratios round by round.
func perRound(w io.Writer, results []*result, rounds int, c comparison) {
	fmt.Fprintf(w, "  per round:")
	for r := 1; r <= rounds; r++ {
		a, b := phaseOf(results, r, c.base), phaseOf(results, r, c.other)
		if a == nil || b == nil {
			continue
		}
		fmt.Fprintf(w, "  [round %d: certs/s x%.2f, p99 x%.2f, req/cert %+.2f]", r,
			b.certsPerSecond()/a.certsPerSecond(), percentile(b.ttr, 99).Seconds()/percentile(a.ttr, 99).Seconds(), b.perCert(true)-a.perCert(true))
	}
	fmt.Fprintln(w)
}

type summary struct {
	certsPerSecond float64
	p50, p99       time.Duration
	perCert        float64
	ctrlPerCert    float64
}

func summarize(results []*result, k issuerKind) summary {
	var thr, p50, p99, pc, cpc []float64
	for _, r := range results {
		if r.kind != k {
			continue
		}
		thr = append(thr, r.certsPerSecond())
		p50 = append(p50, percentile(r.ttr, 50).Seconds())
		p99 = append(p99, percentile(r.ttr, 99).Seconds())
		pc = append(pc, r.perCert(true))
		cpc = append(cpc, r.perCert(false))
	}
	secs := func(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }
	return summary{certsPerSecond: median(thr), p50: secs(median(p50)), p99: secs(median(p99)), perCert: median(pc), ctrlPerCert: median(cpc)}
}

func cpuTable(w io.Writer, results []*result) {
	fmt.Fprintf(w, "\nCPU seconds in each phase window (scrape to scrape; %% of the machine's %d cores in brackets; other processes: the rest of the machine's busy time, i.e. load not ours):\n", runtime.NumCPU())
	cores := float64(runtime.NumCPU())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "phase\tround\twindow\t")
	for _, name := range procNames {
		fmt.Fprintf(tw, "%s\t", name)
	}
	fmt.Fprintln(tw, "total\tms/cert\tother processes\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%s\t", r.kind, r.round, fmtDur(r.window))
		for _, name := range procNames {
			fmt.Fprintf(tw, "%.1f\t", r.cpu[name].Seconds())
		}
		total := r.cpu.total()
		fmt.Fprintf(tw, "%.1f (%.0f%%)\t%.0f\t%.1f (%.0f%%)\t\n", total.Seconds(), 100*total.Seconds()/(cores*r.window.Seconds()),
			float64(total.Milliseconds())/float64(r.n), r.cpu.others().Seconds(), 100*r.cpu.others().Seconds()/(cores*r.window.Seconds()))
	}
	_ = tw.Flush()
}

// breakdown prints API requests per Certificate by verb and resource,
// summed over the rounds of each kind, and the non-2xx responses.
func breakdown(w io.Writer, kinds []issuerKind, results []*result) {
	sum := map[issuerKind]requestCounts{}
	fails := map[issuerKind]requestCounts{}
	lat := map[issuerKind]latencies{}
	for _, k := range kinds {
		sum[k], fails[k], lat[k] = requestCounts{}, requestCounts{}, latencies{}
	}
	n := map[issuerKind]float64{}
	own := map[issuerKind]float64{}
	for _, r := range results {
		for k, v := range r.latency {
			l := lat[r.kind][k]
			lat[r.kind][k] = [2]float64{l[0] + v[0], l[1] + v[1]}
		}
		for k, v := range r.requests.byResource() {
			sum[r.kind][k] += v
		}
		for k, v := range r.requests.failures() {
			fails[r.kind][k] += v
		}
		n[r.kind] += float64(r.n)
		own[r.kind] += float64(r.own)
	}
	comps := comparisons(kinds)
	meanMs := func(k issuerKind, key requestKey) string {
		l := lat[k][key]
		if l[1] == 0 || key.verb == "WATCH" {
			return "-"
		}
		return fmt.Sprintf("%.0f", 1000*l[0]/l[1])
	}
	print := func(title string, c map[issuerKind]requestCounts, withLatency bool) {
		per := func(k issuerKind, key requestKey) float64 { return c[k][key] / n[k] }
		all := requestCounts{}
		for _, k := range kinds {
			for key, v := range c[k] {
				all[key] += math.Abs(v / n[k])
			}
		}
		// The rows that differ most between compared kinds first.
		keys := sortedKeys(all, func(key requestKey) float64 {
			var d float64
			for _, cp := range comps {
				d = max(d, math.Abs(per(cp.other, key)-per(cp.base, key)))
			}
			return d*1000 + all[key]
		})
		fmt.Fprintf(w, "\n%s\n", title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, "request\t")
		for _, k := range kinds {
			fmt.Fprintf(tw, "%s\t", k)
		}
		for _, cp := range comps {
			fmt.Fprintf(tw, "%s\t", cp)
		}
		if withLatency {
			for _, k := range kinds {
				fmt.Fprintf(tw, "server ms %s\t", k.label())
			}
		}
		fmt.Fprintln(tw)
		totals := map[issuerKind]float64{}
		for _, key := range keys {
			shown := false
			for _, k := range kinds {
				totals[k] += per(k, key)
				shown = shown || math.Abs(per(k, key)) >= 0.005
			}
			if !shown {
				continue
			}
			fmt.Fprintf(tw, "%s\t", key)
			for _, k := range kinds {
				fmt.Fprintf(tw, "%.2f\t", per(k, key))
			}
			for _, cp := range comps {
				fmt.Fprintf(tw, "%+.2f\t", per(cp.other, key)-per(cp.base, key))
			}
			if withLatency {
				for _, k := range kinds {
					fmt.Fprintf(tw, "%s\t", meanMs(k, key))
				}
			}
			fmt.Fprintln(tw)
		}
		fmt.Fprint(tw, "total\t")
		for _, k := range kinds {
			fmt.Fprintf(tw, "%.2f\t", totals[k])
		}
		for _, cp := range comps {
			fmt.Fprintf(tw, "%+.2f\t", totals[cp.other]-totals[cp.base])
		}
		if withLatency {
			fmt.Fprint(tw, strings.Repeat("\t", len(kinds)))
		}
		fmt.Fprintln(tw)
		_ = tw.Flush()
	}
	owns := make([]string, len(kinds))
	for i, k := range kinds {
		owns[i] = fmt.Sprintf("%.2f/cert for %s phases", own[k]/n[k], k)
	}
	print("kube-apiserver requests per Certificate by verb and resource (all rounds; includes the benchmark's own: "+
		strings.Join(owns, ", ")+"; server ms: mean API server latency of that request kind):", sum, true)
	print("of which not 2xx, by response code:", fails, false)
}

func sortedKeys(c requestCounts, weight func(requestKey) float64) []requestKey {
	keys := make([]requestKey, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b requestKey) int {
		if c := cmp.Compare(weight(b), weight(a)); c != 0 {
			return c
		}
		return cmp.Compare(a.String(), b.String())
	})
	return keys
}

// eventsReport prints Events per Certificate by reporter, kind and reason,
// summed over the rounds of each kind.
func eventsReport(w io.Writer, kinds []issuerKind, results []*result) {
	sum := map[issuerKind]map[string]float64{}
	for _, k := range kinds {
		sum[k] = map[string]float64{}
	}
	n := map[issuerKind]float64{}
	keys := map[string]bool{}
	for _, r := range results {
		for k, v := range r.events {
			sum[r.kind][k] += v
			keys[k] = true
		}
		n[r.kind] += float64(r.n)
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	comps := comparisons(kinds)
	per := func(k issuerKind, key string) float64 { return sum[k][key] / n[k] }
	fmt.Fprintf(w, "\nEvents per Certificate by reporter, object kind and reason (listed after each phase):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "event\t")
	for _, k := range kinds {
		fmt.Fprintf(tw, "%s\t", k)
	}
	for _, cp := range comps {
		fmt.Fprintf(tw, "%s\t", cp)
	}
	fmt.Fprintln(tw)
	totals := map[issuerKind]float64{}
	for _, key := range sorted {
		fmt.Fprintf(tw, "%s\t", key)
		for _, k := range kinds {
			totals[k] += per(k, key)
			fmt.Fprintf(tw, "%.2f\t", per(k, key))
		}
		for _, cp := range comps {
			fmt.Fprintf(tw, "%+.2f\t", per(cp.other, key)-per(cp.base, key))
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprint(tw, "total\t")
	for _, k := range kinds {
		fmt.Fprintf(tw, "%.2f\t", totals[k])
	}
	for _, cp := range comps {
		fmt.Fprintf(tw, "%+.2f\t", totals[cp.other]-totals[cp.base])
	}
	fmt.Fprintln(tw)
	_ = tw.Flush()
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func sortDurations(d []time.Duration) { slices.Sort(d) }

func fmtDur(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}
