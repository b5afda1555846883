// Command issuance is `make bench-issuance`: it compares how fast
// cert-manager Certificates are issued by cert-manager's built-in CA Issuer
// and by Quill (a QuillIssuer served by the real bin/quill-controller), on
// one local control plane, in one run, signing with the same CA key; and,
// with -pkcs11 (the default), by Quill with its CA key on a PKCS#11 token.
//
// It starts kube-apiserver and etcd (test/harness), the cert-manager
// controller with its default controllers (the built-in approver included)
// and quill-controller; both controllers run through every phase, so each
// phase sees the same background. Phases run in their own namespaces in
// the order CA, Quill, Quill (PKCS#11), CA, Quill, Quill (PKCS#11), …
// (-rounds rounds), after an unmeasured warm-up of each. A phase creates
// -n Certificates (ECDSA P-256 keys, one DNS name each) as fast as the
// client allows and waits until all are Ready, measuring:
//
//   - Certificates per second: n / (first create call starts → last Ready
//     observed);
//   - time to Ready per Certificate: from its create call returning to the
//     moment the benchmark's watch sees Ready=True (wall clock, so
//     sub-second; the Ready condition's lastTransitionTime has only second
//     resolution and is printed alongside as a cross-check);
//   - kube-apiserver requests per Certificate: apiserver_request_total
//     summed over all label sets, from the API server's /metrics before and
//     after the phase. The benchmark's own requests (the creates and its
//     watch; the API server does not count /metrics scrapes) are counted
//     client-side and shown apart; they are the same in every phase;
//   - CPU seconds of kube-apiserver, etcd, cert-manager, quill-controller
//     and the benchmark itself, from /proc.
//
// The Quill (PKCS#11) phases use a QuillIssuer with spec.ca.pkcs11: an
// ECDSA P-256 key generated on a SoftHSM2 token in a temporary directory
// (removed at exit), and a self-signed CA certificate for it in a Secret.
// SoftHSM runs inside quill-controller (--pkcs11-module softhsm=…), so its
// CPU time is quill-controller's. The key cannot be the software phases'
// (it is generated on the token), but it has the same algorithm. Without
// SoftHSM2 installed the benchmark fails rather than leave the phases out;
// -pkcs11=false leaves them out.
//
// It prints a table per phase, the median of the rounds, the ratios
// Quill / CA issuer and Quill (PKCS#11) / Quill against the issues'
// targets, and the per-resource request breakdown. Quill / CA issuer is
// also what the issuance ledger costs: Quill writes every certificate to
// the ledger before the request sees it, and the CA issuer records
// nothing, so Quill at ×1.0 or better is the ledger's target (there is no
// switch that turns the ledger off to compare against). It exits non-zero when
// a Certificate is not Ready within -timeout. docs/benchmarks.md has a run
// and how to read it.
//
// Flags -stages, -quill-metrics and -cm-metrics add diagnostics (pipeline
// step timings, quill-controller's and cert-manager's own metrics); they
// add load of their own, so plain runs leave them off.
package main

import (
	"context"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	cmclient "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/test/harness"
)

const (
	clusterNS    = "quill-system"
	caSecretName = "bench-ca"
	issuerName   = "bench"
)

var (
	errNotReady   = errors.New("not ready")
	errBadFlag    = errors.New("bad flag")
	errWrongChain = errors.New("issued certificate does not chain to the phase's CA")
	errNoSync     = errors.New("informer did not sync")
)

// issuerKind is the system under test in a phase.
type issuerKind int

const (
	kindCA     issuerKind = iota // cert-manager's built-in CA Issuer
	kindQuill                    // QuillIssuer with its CA key in a Secret, signed by quill-controller
	kindPKCS11                   // QuillIssuer with its CA key on a SoftHSM2 token, signed by quill-controller
)

func (k issuerKind) String() string {
	switch k {
	case kindQuill:
		return "Quill"
	case kindPKCS11:
		return "Quill (PKCS#11)"
	}
	return "CA issuer"
}

func (k issuerKind) short() string {
	switch k {
	case kindQuill:
		return "quill"
	case kindPKCS11:
		return "pkcs11"
	}
	return "ca"
}

type options struct {
	n           int
	rounds      int
	warmup      int
	concurrency int
	settle      time.Duration
	idle        time.Duration
	timeout     time.Duration
	pkcs11      bool

	// diagnostics
	stages       bool
	quillMetrics bool
	cmMetrics    bool
	quillArgs    string
}

// roundKinds are the phases of round r (from 1), in order: kinds, reversed
// in even rounds. Every phase leaves N more Certificates in the cluster,
// and cert-manager's own work grows with them (at N = 1,000 the CA
// issuer's second phase ran at 9.1 certs/s against its first's 14.6), so a
// fixed order would always hand the first issuer the emptier cluster.
func (o options) roundKinds(r int) []issuerKind {
	kinds := o.kinds()
	if r%2 == 0 {
		slices.Reverse(kinds)
	}
	return kinds
}

// kinds are the phases of a round, in order.
func (o options) kinds() []issuerKind {
	kinds := []issuerKind{kindCA, kindQuill}
	if o.pkcs11 {
		kinds = append(kinds, kindPKCS11)
	}
	return kinds
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 200, "Certificates per phase")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds; each runs a CA issuer phase, then a Quill phase, then (with -pkcs11) a Quill (PKCS#11) phase, in the reverse order in even rounds")
	flag.IntVar(&o.warmup, "warmup", 10, "Certificates per issuer in the unmeasured warm-up (0: none)")
	flag.IntVar(&o.concurrency, "concurrency", 8, "concurrent create calls")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "quiet time before and after each phase's measurement window")
	flag.DurationVar(&o.idle, "idle", 10*time.Second, "length of the idle window that measures background API requests (0: skip)")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long a phase may take until every Certificate is Ready")
	flag.BoolVar(&o.pkcs11, "pkcs11", true, "also run Quill (PKCS#11) phases: a QuillIssuer whose ECDSA P-256 CA key is on a SoftHSM2 token "+
		"(needs the softhsm2 and opensc packages; fails without them)")
	flag.BoolVar(&o.stages, "stages", false, "diagnostics: also watch CertificateRequests and time each pipeline step (adds a watch)")
	flag.BoolVar(&o.quillMetrics, "quill-metrics", false, "diagnostics: serve quill-controller's metrics on loopback and report its reconciles")
	flag.BoolVar(&o.cmMetrics, "cm-metrics", false, "diagnostics: serve cert-manager's metrics on loopback and report its controllers' syncs")
	flag.StringVar(&o.quillArgs, "quill-args", "", "diagnostics: extra space-separated quill-controller flags, e.g. --workers=8")
	flag.Parse()
	if o.n < 1 || o.rounds < 1 || o.warmup < 0 || o.concurrency < 1 {
		fmt.Fprintln(os.Stderr, "bench-issuance:", fmt.Errorf("%w: -n, -rounds and -concurrency must be positive, -warmup not negative", errBadFlag))
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-issuance: FAILED:", err)
		os.Exit(1)
	}
}

func run(o options) (err error) {
	var hsm *hsmCA
	if o.pkcs11 {
		// Before anything starts: quill-controller and the control plane
		// inherit SOFTHSM2_CONF, and the token must exist before
		// quill-controller first loads the library. Deferred first, the
		// removal runs after quill-controller has stopped.
		step("creating a SoftHSM2 token and an ECDSA P-256 CA key on it, for the Quill (PKCS#11) issuer")
		if hsm, err = newHSMCA(); err != nil {
			return err
		}
		defer func() {
			if rmErr := hsm.remove(); rmErr != nil && err == nil {
				err = rmErr
			}
		}()
	}
	step("starting kube-apiserver and etcd")
	env, err := harness.Start()
	if err != nil {
		return err
	}
	defer func() {
		step("stopping quill-controller, cert-manager and the control plane")
		if stopErr := env.Stop(); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	for _, ns := range []string{"cert-manager", clusterNS} {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	step("starting cert-manager (default controllers, built-in approver) and quill-controller")
	var cmArgs []string
	cmAddr := ""
	if o.cmMetrics {
		if cmAddr, err = freeLoopbackAddr(); err != nil {
			return err
		}
		cmArgs = append(cmArgs, "--metrics-listen-address", cmAddr)
	}
	if _, err := env.StartCertManager(cmArgs...); err != nil {
		return err
	}
	metricsAddr := "0"
	if o.quillMetrics {
		if metricsAddr, err = freeLoopbackAddr(); err != nil {
			return err
		}
	}
	quillArgs := append([]string{"--kubeconfig", env.Kubeconfig, "--cluster-resource-namespace", clusterNS,
		"--metrics-bind-address", metricsAddr, "--health-probe-bind-address", "0"}, strings.Fields(o.quillArgs)...)
	if o.pkcs11 {
		quillArgs = append(quillArgs, "--pkcs11-module", hsmModuleName+"="+softHSMModule)
	}
	if _, err := env.StartProcess("quill-controller", quillArgs...); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			fmt.Fprintf(os.Stderr, "--- quill-controller log (tail) ---\n%s\n--- cert-manager log (tail) ---\n%s\n",
				tail(env.Log("quill-controller"), 30), tail(env.Log("cert-manager-controller"), 30))
		}
	}()

	b, err := newBench(env, o)
	if err != nil {
		return err
	}
	b.hsm = hsm
	if o.quillMetrics {
		b.quill = &quillMetrics{url: metricsAddr}
	}
	if o.cmMetrics {
		b.cmURL = cmAddr
	}
	step("generating the benchmark CA (ECDSA P-256), shared by the CA issuer and Quill")
	if b.caCert, b.caKey, err = issuance.NewSelfSignedRoot(pkix.Name{CommonName: "Quill benchmark CA", Organization: []string{"Quill"}},
		issuance.ECDSAP256, 365*24*time.Hour, time.Now()); err != nil {
		return err
	}

	if o.warmup > 0 {
		for _, k := range o.kinds() {
			step(fmt.Sprintf("warm-up: %d Certificates from the %s (not measured)", o.warmup, k))
			if _, err := b.phase(ctx, k, 0, o.warmup); err != nil {
				return fmt.Errorf("warm-up %s: %w", k, err)
			}
		}
	}
	var idle *idleSample
	if o.idle > 0 {
		step(fmt.Sprintf("measuring background API requests while idle for %s", o.idle))
		if idle, err = b.idle(ctx); err != nil {
			return err
		}
	}
	var results []*result
	for r := 1; r <= o.rounds; r++ {
		for _, k := range o.roundKinds(r) {
			step(fmt.Sprintf("round %d: %d Certificates from the %s", r, o.n, k))
			res, err := b.phase(ctx, k, r, o.n)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r, k, err)
			}
			fmt.Printf("    %s\n", res.oneLine())
			results = append(results, res)
		}
	}
	fmt.Println()
	report(os.Stdout, o, b.describe(), idle, results)
	// The harness removes the logs when it stops.
	throttleReport(os.Stdout, env)
	return nil
}

// bench holds the clients and CA shared by all phases.
type bench struct {
	env  *harness.Env
	opts options
	// cm and kube go through a counting transport: own counts every
	// request the benchmark sends, so that it can be told apart from the
	// controllers' requests in the API server's totals.
	cm    cmclient.Interface
	kube  kubernetes.Interface
	own   *atomic.Int64
	procs *procSet
	quill *quillMetrics // nil unless -quill-metrics
	cmURL string        // empty unless -cm-metrics

	caCert, caKey []byte
	hsm           *hsmCA // nil unless -pkcs11
}

func newBench(env *harness.Env, o options) (*bench, error) {
	own := &atomic.Int64{}
	cfg := rest.CopyConfig(env.Config)
	// The harness's own client limits: high enough that the API server,
	// not client-side throttling, paces the creates.
	cfg.QPS, cfg.Burst = 200, 400
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return &countingTransport{next: rt, n: own} }
	cm, err := cmclient.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &bench{env: env, opts: o, cm: cm, kube: kube, own: own, procs: findProcs()}, nil
}

type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

// RoundTrip counts every request but the /metrics scrapes, which the API
// server does not count in apiserver_request_total either.
func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path != "/metrics" {
		t.n.Add(1)
	}
	return t.next.RoundTrip(r)
}

// sample is the state of the counters at one instant.
type sample struct {
	at       time.Time
	requests requestCounts
	latency  latencies
	own      int64
	cpu      cpuTimes
	quill    controllerStats
	cmSyncs  map[string]float64
}

// snapshot reads the benchmark's own request count and the API server's
// request totals.
func (b *bench) snapshot(ctx context.Context) (sample, error) {
	s := sample{own: b.own.Load(), cpu: b.procs.read()}
	var err error
	if s.requests, s.latency, err = scrapeAPI(ctx, b.kube); err != nil {
		return s, err
	}
	if b.quill != nil {
		if s.quill, err = b.quill.scrape(ctx); err != nil {
			return s, err
		}
	}
	if b.cmURL != "" {
		if s.cmSyncs, err = scrapeCertManagerSyncs(ctx, b.cmURL); err != nil {
			return s, err
		}
	}
	s.at = time.Now()
	return s, nil
}

type idleSample struct {
	window   time.Duration
	requests requestCounts
	own      int64
	cpu      cpuTimes
}

func (b *bench) idle(ctx context.Context) (*idleSample, error) {
	before, err := b.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	if err := sleep(ctx, b.opts.idle); err != nil {
		return nil, err
	}
	after, err := b.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return &idleSample{window: after.at.Sub(before.at), requests: after.requests.minus(before.requests),
		own: after.own - before.own, cpu: after.cpu.minus(before.cpu)}, nil
}

// result is one measured phase.
type result struct {
	kind  issuerKind
	round int
	n     int

	createSpan time.Duration   // first create call starts → last create call returns
	wall       time.Duration   // first create call starts → last Ready observed
	ttr        []time.Duration // per Certificate, by the watch; sorted
	ttrLTT     []time.Duration // per Certificate, by lastTransitionTime; sorted

	window   time.Duration // between the two /metrics scrapes
	requests requestCounts // API server totals in the window
	latency  latencies     // API server latency sums and counts in the window
	own      int64         // the benchmark's own requests in the window
	cpu      cpuTimes

	stages  *stages            // nil unless -stages
	quill   controllerStats    // nil unless -quill-metrics
	cmSyncs map[string]float64 // nil unless -cm-metrics
	crCount int                // CertificateRequests found afterwards: n unless one was retried
	events  map[string]float64 // Events in the namespace afterwards, by reporter, kind and reason
}

func (r *result) certsPerSecond() float64 { return float64(r.n) / r.wall.Seconds() }

// perCert is API server requests per Certificate, all of them or without
// the benchmark's own.
func (r *result) perCert(withOwn bool) float64 {
	t := r.requests.total()
	if !withOwn {
		t -= float64(r.own)
	}
	return t / float64(r.n)
}

func (r *result) oneLine() string {
	return fmt.Sprintf("%d Ready in %s (creates took %s): %.1f certs/s, p50 %s, p99 %s, %.1f API requests per Certificate (%.1f without the benchmark's own)",
		r.n, r.wall.Round(time.Millisecond), r.createSpan.Round(time.Millisecond), r.certsPerSecond(),
		fmtDur(percentile(r.ttr, 50)), fmtDur(percentile(r.ttr, 99)), r.perCert(true), r.perCert(false))
}

// phase runs one measured (round ≥ 1) or warm-up (round 0) phase in a
// namespace of its own.
func (b *bench) phase(ctx context.Context, kind issuerKind, round, n int) (*result, error) {
	ns := fmt.Sprintf("bench-%s-%d", kind.short(), round)
	if round == 0 {
		ns = "bench-warmup-" + kind.short()
	}
	if err := b.setupIssuer(ctx, ns, kind); err != nil {
		return nil, err
	}
	if err := sleep(ctx, b.opts.settle); err != nil {
		return nil, err
	}

	before, err := b.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	// The watch starts inside the window, so its requests are in both the
	// API server's count and the benchmark's own.
	w, err := startWatch(b.cm, ns, n)
	if err != nil {
		return nil, err
	}
	defer w.stop()
	var sw *stageWatch
	if b.opts.stages {
		if sw, err = startStageWatch(b.cm, ns); err != nil {
			return nil, err
		}
		defer sw.stop()
	}
	start := time.Now()
	created, err := b.createCertificates(ctx, ns, kind, n)
	if err != nil {
		return nil, err
	}
	createSpan := time.Since(start)
	waitCtx, cancel := context.WithDeadline(ctx, start.Add(b.opts.timeout))
	defer cancel()
	select {
	case <-w.done:
	case <-waitCtx.Done():
		return nil, fmt.Errorf("%w: %d of %d Certificates Ready after %s; %s", errNotReady, w.readyCount(), n, b.opts.timeout, b.notReady(ctx, ns))
	}
	// Stopping the watch before the quiet time lets the API server count it
	// (a watch is counted when it ends) inside this window.
	w.stop()
	if sw != nil {
		sw.stop()
	}
	if err := sleep(ctx, b.opts.settle); err != nil {
		return nil, err
	}
	after, err := b.snapshot(ctx)
	if err != nil {
		return nil, err
	}

	res := &result{
		kind: kind, round: round, n: n, createSpan: createSpan,
		window: after.at.Sub(before.at), requests: after.requests.minus(before.requests),
		latency: after.latency.minus(before.latency), own: after.own - before.own, cpu: after.cpu.minus(before.cpu),
	}
	if b.quill != nil {
		res.quill = after.quill.minus(before.quill)
	}
	if b.cmURL != "" {
		res.cmSyncs = map[string]float64{}
		for k, v := range after.cmSyncs {
			res.cmSyncs[k] = v - before.cmSyncs[k]
		}
	}
	var last time.Time
	seenAll := w.results()
	for name, createdAt := range created {
		seen := seenAll[name]
		if seen.observed.After(last) {
			last = seen.observed
		}
		res.ttr = append(res.ttr, seen.observed.Sub(createdAt))
		res.ttrLTT = append(res.ttrLTT, seen.transition.Sub(createdAt))
	}
	res.wall = last.Sub(start)
	if sw != nil {
		res.stages = sw.result(start, created, seenAll)
	}
	sortDurations(res.ttr)
	sortDurations(res.ttrLTT)
	// Checks after the window, so they cost the measurement nothing.
	if res.crCount, err = b.checkPhase(ctx, ns, kind); err != nil {
		return nil, err
	}
	if res.events, err = b.eventReasons(ctx, ns); err != nil {
		return nil, err
	}
	return res, nil
}

// setupIssuer creates the namespace, the Secrets and the issuer of kind,
// and waits until the issuer is Ready.
func (b *bench) setupIssuer(ctx context.Context, ns string, kind issuerKind) error {
	c := b.env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	switch kind {
	case kindCA:
		if err := b.createCASecret(ctx, ns); err != nil {
			return err
		}
		iss := &cmapi.Issuer{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: issuerName},
			Spec:       cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{CA: &cmapi.CAIssuer{SecretName: caSecretName}}},
		}
		if err := c.Create(ctx, iss); err != nil {
			return err
		}
		return poll(ctx, "Issuer "+ns+"/"+issuerName, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(iss), iss); err != nil {
				return err
			}
			for _, cond := range iss.Status.Conditions {
				if cond.Type == cmapi.IssuerConditionReady && cond.Status == cmmeta.ConditionTrue {
					return nil
				}
			}
			return errNotReady
		})
	case kindQuill:
		if err := b.createCASecret(ctx, ns); err != nil {
			return err
		}
		return b.createQuillIssuer(ctx, ns, quillv1.CASource{SecretRef: &quillv1.SecretReference{Name: caSecretName}})
	}
	// kindPKCS11: the CA certificate (no key: that stays on the token) and
	// the PIN, laid out as README's "CA keys in an HSM" describes.
	for _, s := range []*corev1.Secret{
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: hsmCertSecret},
			Data:       map[string][]byte{corev1.TLSCertKey: b.hsm.certPEM, "ca.crt": b.hsm.certPEM},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: hsmPINSecret},
			Data:       map[string][]byte{"pin": []byte(b.hsm.pin)},
		},
	} {
		if err := c.Create(ctx, s); err != nil {
			return err
		}
	}
	return b.createQuillIssuer(ctx, ns, quillv1.CASource{PKCS11: &quillv1.PKCS11CA{
		Module: hsmModuleName, TokenLabel: hsmTokenLabel, KeyLabel: hsmKeyLabel,
		PINSecretRef:         quillv1.SecretKeySelector{Name: hsmPINSecret},
		CertificateSecretRef: &quillv1.SecretReference{Name: hsmCertSecret},
	}})
}

// createCASecret stores the software CA's certificate and key in ns.
func (b *bench) createCASecret(ctx context.Context, ns string) error {
	return b.env.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: caSecretName},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: b.caCert, corev1.TLSPrivateKeyKey: b.caKey},
	})
}

// createQuillIssuer creates a QuillIssuer with ca in ns and waits until it
// is Ready for its current generation.
func (b *bench) createQuillIssuer(ctx context.Context, ns string, ca quillv1.CASource) error {
	c := b.env.Client
	iss := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: issuerName},
		Spec:       quillv1.IssuerSpec{CA: ca},
	}
	if err := c.Create(ctx, iss); err != nil {
		return err
	}
	return poll(ctx, "QuillIssuer "+ns+"/"+issuerName, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(iss), iss); err != nil {
			return err
		}
		for _, cond := range iss.Status.Conditions {
			if cond.Type == "Ready" && cond.Status == metav1.ConditionTrue && cond.ObservedGeneration == iss.Generation {
				return nil
			}
		}
		return errNotReady
	})
}

func issuerRef(kind issuerKind) cmmeta.IssuerReference {
	if kind != kindCA {
		return cmmeta.IssuerReference{Group: quillv1.GroupVersion.Group, Kind: quillv1.IssuerKind, Name: issuerName}
	}
	return cmmeta.IssuerReference{Group: "cert-manager.io", Kind: "Issuer", Name: issuerName}
}

// createCertificates creates n Certificates with opts.concurrency concurrent
// calls and returns when each create call returned.
func (b *bench) createCertificates(ctx context.Context, ns string, kind issuerKind, n int) (map[string]time.Time, error) {
	names := make(chan string)
	go func() {
		defer close(names)
		for i := range n {
			select {
			case names <- fmt.Sprintf("c%04d", i):
			case <-ctx.Done():
				return
			}
		}
	}()
	var (
		mu      sync.Mutex
		created = make(map[string]time.Time, n)
		errs    []error
		wg      sync.WaitGroup
	)
	for range b.opts.concurrency {
		wg.Go(func() {
			for name := range names {
				crt := &cmapi.Certificate{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
					Spec: cmapi.CertificateSpec{
						DNSNames:   []string{name + "." + ns + ".bench.test"},
						SecretName: name + "-tls",
						PrivateKey: &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256},
						IssuerRef:  issuerRef(kind),
					},
				}
				_, err := b.cm.CertmanagerV1().Certificates(ns).Create(ctx, crt, metav1.CreateOptions{})
				done := time.Now()
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("creating Certificate %s/%s: %w", ns, name, err))
				} else {
					created[name] = done
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return created, nil
}

func step(msg string) { fmt.Printf("==> %s\n", msg) }

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// poll retries check every 200ms for up to two minutes.
func poll(ctx context.Context, what string, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %w)", what, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
