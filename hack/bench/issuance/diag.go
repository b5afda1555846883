package main

// Diagnostics behind flags (off by default, since they add load of their
// own): -stages watches CertificateRequests to time each step of the
// issuance pipeline; -quill-metrics and -cm-metrics scrape
// quill-controller's and cert-manager's own metrics. They cost the same in
// every phase, but make the absolute figures differ from a plain run.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	cmclient "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned"
	cminformers "github.com/cert-manager/cert-manager/pkg/client/informers/externalversions"
	"k8s.io/client-go/tools/cache"
)

// crTimes is when the benchmark saw a CertificateRequest reach each step.
type crTimes struct {
	certificate string
	created     time.Time // first seen
	approved    time.Time // Approved=True
	firstReady  time.Time // first Ready condition of any status
	signed      time.Time // Ready=True
}

type stageWatch struct {
	mu     sync.Mutex
	crs    map[string]*crTimes
	stopCh chan struct{}
	once   sync.Once
}

func startStageWatch(cm cmclient.Interface, ns string) (*stageWatch, error) {
	s := &stageWatch{crs: map[string]*crTimes{}, stopCh: make(chan struct{})}
	factory := cminformers.NewSharedInformerFactoryWithOptions(cm, 0, cminformers.WithNamespace(ns))
	inf := factory.Certmanager().V1().CertificateRequests().Informer()
	handle := func(obj any) {
		now := time.Now()
		cr, ok := obj.(*cmapi.CertificateRequest)
		if !ok {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		t := s.crs[cr.Name]
		if t == nil {
			t = &crTimes{certificate: cr.Annotations[cmapi.CertificateNameKey], created: now}
			s.crs[cr.Name] = t
		}
		for _, c := range cr.Status.Conditions {
			switch {
			case c.Type == cmapi.CertificateRequestConditionApproved && c.Status == cmmeta.ConditionTrue && t.approved.IsZero():
				t.approved = now
			case c.Type == cmapi.CertificateRequestConditionReady:
				if t.firstReady.IsZero() {
					t.firstReady = now
				}
				if c.Status == cmmeta.ConditionTrue && t.signed.IsZero() {
					t.signed = now
				}
			}
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    handle,
		UpdateFunc: func(_, obj any) { handle(obj) },
	}); err != nil {
		return nil, err
	}
	factory.Start(s.stopCh)
	if !cache.WaitForCacheSync(s.stopCh, inf.HasSynced) {
		s.stop()
		return nil, fmt.Errorf("certificaterequests: %w", errNoSync)
	}
	return s, nil
}

func (s *stageWatch) stop() { s.once.Do(func() { close(s.stopCh) }) }

// stages is the pipeline timing of one phase.
type stages struct {
	// per-Certificate durations of each step, sorted
	toCR, toApproved, toSigned, toReady []time.Duration
	// for requests with an interim Ready condition: approved → interim
	// Ready condition seen, interim → Ready=True seen
	toInterim, interimToSigned []time.Duration
	// interim is how many requests got a Ready condition before the one
	// that says Ready=True (issuer-lib's Initializing patch).
	interim int
	// timeline counts, per second since the first create, what happened.
	timeline []timelineRow
}

type timelineRow struct{ created, crs, approved, interim, signed, ready int }

func (s *stageWatch) result(start time.Time, created map[string]time.Time, ready map[string]readySeen) *stages {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &stages{}
	bucket := func(t time.Time) int { return int(t.Sub(start) / time.Second) }
	row := func(t time.Time) *timelineRow {
		i := max(0, bucket(t))
		for len(out.timeline) <= i {
			out.timeline = append(out.timeline, timelineRow{})
		}
		return &out.timeline[i]
	}
	for _, t := range created {
		row(t).created++
	}
	for _, r := range ready {
		row(r.observed).ready++
	}
	for _, t := range s.crs {
		c, ok := created[t.certificate]
		if !ok || t.approved.IsZero() || t.signed.IsZero() {
			continue
		}
		out.toCR = append(out.toCR, t.created.Sub(c))
		out.toApproved = append(out.toApproved, t.approved.Sub(t.created))
		out.toSigned = append(out.toSigned, t.signed.Sub(t.approved))
		out.toReady = append(out.toReady, ready[t.certificate].observed.Sub(t.signed))
		row(t.created).crs++
		row(t.approved).approved++
		row(t.signed).signed++
		if t.firstReady.Before(t.signed) {
			out.interim++
			row(t.firstReady).interim++
			out.toInterim = append(out.toInterim, t.firstReady.Sub(t.approved))
			out.interimToSigned = append(out.interimToSigned, t.signed.Sub(t.firstReady))
		}
	}
	for _, d := range [][]time.Duration{out.toCR, out.toApproved, out.toSigned, out.toReady, out.toInterim, out.interimToSigned} {
		slices.Sort(d)
	}
	return out
}

func stagesReport(w io.Writer, results []*result) {
	fmt.Fprintf(w, "\nPipeline steps per Certificate (seen by a second watch, on CertificateRequests), p50 / p99:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tround\tcreate -> CR\tCR -> Approved\tApproved -> signed\tsigned -> Cert Ready\tinterim Ready writes\tApproved -> interim\tinterim -> signed\t")
	pp := func(d []time.Duration) string {
		if len(d) == 0 {
			return "-"
		}
		return fmtDur(percentile(d, 50)) + " / " + fmtDur(percentile(d, 99))
	}
	for _, r := range results {
		s := r.stages
		if s == nil {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t\n", r.kind, r.round, pp(s.toCR), pp(s.toApproved), pp(s.toSigned), pp(s.toReady),
			s.interim, pp(s.toInterim), pp(s.interimToSigned))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nTimeline, per second since the first create: Certificates created, CRs created, CRs approved, interim Ready writes, CRs signed, Certificates Ready:\n")
	for _, r := range results {
		if r.stages == nil {
			continue
		}
		fmt.Fprintf(w, "%s round %d:\n", r.kind, r.round)
		tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "  s\tcreated\tCRs\tapproved\tinterim\tsigned\tReady\t")
		for i, row := range r.stages.timeline {
			fmt.Fprintf(tw, "  %d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", i, row.created, row.crs, row.approved, row.interim, row.signed, row.ready)
		}
		_ = tw.Flush()
	}
}

// scrapeCertManagerSyncs reads certmanager_controller_sync_call_count by
// controller from cert-manager's metrics endpoint.
func scrapeCertManagerSyncs(ctx context.Context, addr string) (map[string]float64, error) {
	body, err := httpGet(ctx, "http://"+addr+"/metrics")
	if err != nil {
		return nil, fmt.Errorf("scraping cert-manager metrics: %w", err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if name, labels, v, ok := parseSample(line); ok && name == "certmanager_controller_sync_call_count" {
			out[labels["controller"]] += v
		}
	}
	return out, nil
}

func cmSyncReport(w io.Writer, results []*result) {
	fmt.Fprintf(w, "\ncert-manager controller syncs per Certificate in each phase window (certmanager_controller_sync_call_count):\n")
	names := map[string]bool{}
	for _, r := range results {
		for n, v := range r.cmSyncs {
			if v != 0 {
				names[n] = true
			}
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	slices.Sort(sorted)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "controller\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s %d\t", r.kind, r.round)
	}
	fmt.Fprintln(tw)
	for _, n := range sorted {
		fmt.Fprintf(tw, "%s\t", n)
		for _, r := range results {
			fmt.Fprintf(tw, "%.2f\t", r.cmSyncs[n]/float64(r.n))
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
}

func httpGet(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// quillMetrics reads quill-controller's controller-runtime metrics.
type quillMetrics struct{ url string }

// freeLoopbackAddr picks a loopback port for quill-controller's metrics.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// controllerStats are sums and counts of controller-runtime's reconcile and
// workqueue histograms, by controller name.
type controllerStats map[string]*ctrlStat

type ctrlStat struct {
	reconciles, reconcileSecs float64 // controller_runtime_reconcile_time_seconds
	queued, queueSecs         float64 // workqueue_queue_duration_seconds
	worked, workSecs          float64 // workqueue_work_duration_seconds
	errors                    float64 // controller_runtime_reconcile_errors_total
	workers                   float64 // controller_runtime_max_concurrent_reconciles (a gauge)
}

func (q *quillMetrics) scrape(ctx context.Context) (controllerStats, error) {
	body, err := httpGet(ctx, "http://"+q.url+"/metrics")
	if err != nil {
		return nil, fmt.Errorf("scraping quill-controller metrics: %w", err)
	}
	out := controllerStats{}
	get := func(name string) *ctrlStat {
		if out[name] == nil {
			out[name] = &ctrlStat{}
		}
		return out[name]
	}
	for _, line := range strings.Split(string(body), "\n") {
		name, labels, v, ok := parseSample(line)
		if !ok {
			continue
		}
		switch name {
		case "controller_runtime_reconcile_time_seconds_sum":
			get(labels["controller"]).reconcileSecs += v
		case "controller_runtime_reconcile_time_seconds_count":
			get(labels["controller"]).reconciles += v
		case "controller_runtime_reconcile_errors_total":
			get(labels["controller"]).errors += v
		case "workqueue_queue_duration_seconds_sum":
			get(labels["name"]).queueSecs += v
		case "workqueue_queue_duration_seconds_count":
			get(labels["name"]).queued += v
		case "workqueue_work_duration_seconds_sum":
			get(labels["name"]).workSecs += v
		case "workqueue_work_duration_seconds_count":
			get(labels["name"]).worked += v
		case "controller_runtime_max_concurrent_reconciles":
			get(labels["controller"]).workers = v
		}
	}
	return out, nil
}

func (c controllerStats) minus(o controllerStats) controllerStats {
	out := controllerStats{}
	for k, v := range c {
		d := *v
		if ov := o[k]; ov != nil {
			d.reconciles -= ov.reconciles
			d.reconcileSecs -= ov.reconcileSecs
			d.queued -= ov.queued
			d.queueSecs -= ov.queueSecs
			d.worked -= ov.worked
			d.workSecs -= ov.workSecs
			d.errors -= ov.errors
		}
		if d.reconciles != 0 || d.queued != 0 {
			out[k] = &d
		}
	}
	return out
}

func quillMetricsReport(w io.Writer, results []*result) {
	fmt.Fprintf(w, "\nquill-controller reconciles in each phase window (controller-runtime metrics; mean times):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tround\tcontroller\tworkers\treconciles\tmean reconcile\tbusy workers (avg)\tqueued\tmean queue wait\tmean work (get->done)\terrors\t")
	for _, r := range results {
		names := make([]string, 0, len(r.quill))
		for n := range r.quill {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			s := r.quill[n]
			mean := func(sum, count float64) string {
				if count == 0 {
					return "-"
				}
				return fmt.Sprintf("%.1fms", 1000*sum/count)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%.0f\t%s\t%.2f\t%.0f\t%s\t%s\t%.0f\t\n", r.kind, r.round, n, s.workers, s.reconciles,
				mean(s.reconcileSecs, s.reconciles), s.reconcileSecs/r.wall.Seconds(), s.queued, mean(s.queueSecs, s.queued),
				mean(s.workSecs, s.worked), s.errors)
		}
	}
	_ = tw.Flush()
}

// latencies are apiserver_request_duration_seconds sums and counts by
// request kind (codes merged), for the server-side mean latency.
type latencies map[requestKey][2]float64

func (l latencies) minus(o latencies) latencies {
	out := latencies{}
	for k, v := range l {
		out[k] = [2]float64{v[0] - o[k][0], v[1] - o[k][1]}
	}
	return out
}

// parseSample splits a Prometheus text-format sample line into name,
// labels and value.
func parseSample(line string) (string, map[string]string, float64, bool) {
	if line == "" || line[0] == '#' {
		return "", nil, 0, false
	}
	var (
		name   string
		labels = map[string]string{}
		rest   string
	)
	if i := strings.IndexByte(line, '{'); i >= 0 {
		name = line[:i]
		var err error
		if labels, rest, err = parseLabels(line[i+1:]); err != nil {
			return "", nil, 0, false
		}
	} else {
		var ok bool
		if name, rest, ok = strings.Cut(line, " "); !ok {
			return "", nil, 0, false
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return "", nil, 0, false
	}
	var v float64
	if _, err := fmt.Sscan(fields[0], &v); err != nil {
		return "", nil, 0, false
	}
	return name, labels, v, true
}
