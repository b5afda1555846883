// Command ledgerscale measures what the issuance ledger costs at scale
// (docs/benchmarks.md, `make bench-ledger-scale`): for each ledger size N it
// starts a fresh control plane, writes N ledger records for one
// QuillClusterIssuer through the API exactly as the controller stores them
// (hack/bench/ledgerfill: real ECDSA P-256 and RSA-2048 leaves signed by the
// issuer's CA, a few percent revoked; sealed LedgerSegments of 2000 entries,
// or with -format=legacy one IssuedCertificate per certificate as before
// issue 15), and then reports
//
//   - etcd's database file (as written, and compacted and defragmented)
//     and kube-apiserver's resident memory over the same control plane
//     before the records were written;
//   - quill-controller's resident memory once settled and its peak (VmHWM),
//     start-up included;
//   - the time from starting quill-controller until quill_ledger_entries
//     counts N, until the CRL it serves lists every revoked serial, and the
//     OCSP answers for a revoked serial asked throughout that start: every
//     answer that is neither "revoked" nor tryLater is a wrong answer that
//     caches keep;
//   - the wall time of `quillctl audit report` over the whole ledger.
//
// It runs the real binaries (bin/quill-controller, bin/quillctl) against
// the real kube-apiserver and etcd from bin/, so it measures the code path
// production runs. The machine is shared: read each row's figures together,
// not against a row from another run.
//
// With -estate it instead runs the steady state of issue 15's estate
// (estate.go): 5,000 pods renewing 1-hour certificates, written day by day
// with past timestamps over 30 simulated days, retention run after each.
package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/crypto/ocsp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/revocationdata"
	"github.com/quill-pki/quill/hack/bench/ledgerfill"
	"github.com/quill-pki/quill/test/harness"
)

const (
	clusterNS  = "quill-system"
	issuerName = "bench"
	caSecret   = "bench-ca"
)

var issuerID = quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: issuerName}

type options struct {
	sizes       []int
	formats     []ledgerfill.Format
	liveMax     int
	revokedPct  float64
	concurrency int
	timeout     time.Duration
	memoryLimit int64
	archiveFlag string
	estate      estateOptions
}

func main() {
	var o options
	sizes := flag.String("n", "10000", "comma-separated ledger sizes to measure, each on a fresh control plane")
	formats := flag.String("format", string(ledgerfill.FormatSegments), "comma-separated ledger storages to measure at each size: segments (sealed LedgerSegments), legacy (one IssuedCertificate per certificate)")
	flag.IntVar(&o.liveMax, "live-max", 0, "segments only: keep at most this many entries live and write the rest (the oldest) to an archive directory, as retention does; 0 keeps all live")
	flag.StringVar(&o.archiveFlag, "audit-archive-flag", "--archive-dir", "quillctl audit report's flag naming the archive directory (used with -live-max)")
	flag.Float64Var(&o.revokedPct, "revoked-percent", 3, "share of the records that are revoked")
	flag.IntVar(&o.concurrency, "concurrency", 0, "concurrent signers and API writers while filling the ledger (0: 32 for legacy, 4 for segments)")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "how long quill-controller may take to serve the whole ledger")
	memLimit := flag.String("memory-limit", "", "run quill-controller as under a container memory limit of this size (e.g. 256Mi): GOMEMLIMIT set to 90 % of it, as the chart should, and the peak RSS checked against it")
	flag.BoolVar(&o.estate.run, "estate", false, "run the 30-day estate instead of the ledger sizes (see estate.go)")
	o.estate.register()
	flag.Parse()
	// controller-runtime's clients log through it; the benchmark reports
	// their errors itself.
	ctrllog.SetLogger(logr.Discard())
	if *memLimit != "" {
		q, err := resource.ParseQuantity(*memLimit)
		if err != nil {
			fmt.Fprintf(os.Stderr, "ledgerscale: -memory-limit: %v\n", err)
			os.Exit(2)
		}
		o.memoryLimit = q.Value()
	}
	if o.estate.run {
		if err := runEstate(o); err != nil {
			fmt.Fprintf(os.Stderr, "ledgerscale: estate: %v\n", err)
			os.Exit(1)
		}
		return
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "ledgerscale: -n: %q is not a positive number\n", s)
			os.Exit(2)
		}
		o.sizes = append(o.sizes, n)
	}
	for _, s := range strings.Split(*formats, ",") {
		f, err := ledgerfill.ParseFormat(strings.TrimSpace(s))
		if err != nil {
			fmt.Fprintf(os.Stderr, "ledgerscale: -format: %v\n", err)
			os.Exit(2)
		}
		o.formats = append(o.formats, f)
	}
	var rows []row
	failed := false
	for _, n := range o.sizes {
		for _, f := range o.formats {
			r, err := measure(o, n, f)
			if err != nil {
				fmt.Fprintf(os.Stderr, "ledgerscale: N=%d %s: %v\n", n, f, err)
				failed = true
				continue
			}
			rows = append(rows, r)
			printTable(os.Stdout, rows, o.memoryLimit)
		}
	}
	if failed {
		os.Exit(1)
	}
}

// row is one ledger size's figures.
type row struct {
	n, live, archived, revoked int
	format                     ledgerfill.Format
	objects                    int
	fill                       time.Duration
	etcd                       etcdSizes
	etcdDBEmpty                int64
	apiRSS, apiRSSEmpty        int64
	apiHeap, apiHeapEmpty      int64
	ctlRSS, ctlPeak            int64
	synced, crlServed          time.Duration
	answers                    map[string]int
	wrongAnswers               int
	audit                      time.Duration
	auditRows                  int
	bytesPerEntry              float64
	archiveBytes               int64
}

func printTable(w io.Writer, rows []row, memoryLimit int64) {
	limit := ""
	if memoryLimit > 0 {
		limit = fmt.Sprintf(" (limit %s, GOMEMLIMIT %s)", mib(memoryLimit), mib(goMemLimit(memoryLimit)))
	}
	fmt.Fprintln(w, "\n| N entries | storage | live / archived | objects | revoked | fill | bytes/entry in the API (JSON) | etcd DB as written (Δ) | etcd DB compacted+defragmented (status dbSize) | kube-apiserver RSS (Δ) | kube-apiserver Go heap in use (Δ) | quill-controller RSS settled / peak"+limit+" | start → ledger synced | start → CRL served | OCSP answers for a revoked serial during start | wrong | audit report | archive |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %d | %s | %d / %d | %d | %d | %s | %.0f | %s (+%s) | %s | %s (+%s) | %s (+%s) | %s / %s | %s | %s | %s | %d | %s (%d rows) | %s |\n",
			r.n, r.format, r.live, r.archived, r.objects, r.revoked, r.fill.Round(time.Second), r.bytesPerEntry,
			mib(r.etcd.file), mib(r.etcd.file-r.etcdDBEmpty), mib(r.etcd.fileDefragged), mib(r.apiRSS), mib(r.apiRSS-r.apiRSSEmpty), mib(r.apiHeap), mib(r.apiHeap-r.apiHeapEmpty),
			mib(r.ctlRSS), mib(r.ctlPeak), r.synced.Round(10*time.Millisecond), r.crlServed.Round(10*time.Millisecond),
			formatAnswers(r.answers), r.wrongAnswers, r.audit.Round(10*time.Millisecond), r.auditRows, mib(r.archiveBytes))
	}
}

// goMemLimit is the GOMEMLIMIT for a container memory limit: 90 %, leaving
// the rest for what the Go runtime does not count (stacks, fragmentation,
// cgo).
func goMemLimit(limit int64) int64 { return limit / 10 * 9 }

// mib spells a size in MiB, with a decimal below 100 MiB.
func mib(b int64) string {
	if v := float64(b) / (1 << 20); v < 100 && v > -100 {
		return fmt.Sprintf("%.1f MiB", v)
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

func formatAnswers(m map[string]int) string {
	var parts []string
	for _, k := range []string{"revoked", "tryLater", "http-error", "unreachable", "unknown", "good", "other"} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	return strings.Join(parts, ", ")
}

func step(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// bench is a fresh control plane with the benchmark's issuer.
type bench struct {
	env   *harness.Env
	c     client.Client
	ca    *ledgerfill.CA
	procs map[string]int
}

// startBench starts kube-apiserver and etcd and creates the issuer, its CA
// valid from caFrom.
func startBench(ctx context.Context, caFrom time.Time) (*bench, error) {
	env, err := harness.Start()
	if err != nil {
		return nil, err
	}
	b := &bench{env: env}
	// The fill must measure the API server, not client-side throttling.
	cfg := *env.Config
	cfg.QPS, cfg.Burst = -1, 0
	if b.c, err = client.New(&cfg, client.Options{Scheme: env.Scheme}); err != nil {
		_ = env.Stop()
		return nil, err
	}
	if b.ca, err = ledgerfill.NewCA("Quill ledger-scale CA", caFrom); err != nil {
		_ = env.Stop()
		return nil, err
	}
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: clusterNS}},
		&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: clusterNS, Name: caSecret},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: b.ca.CertPEM, corev1.TLSPrivateKeyKey: b.ca.KeyPEM},
		},
		&quillv1.QuillClusterIssuer{
			ObjectMeta: metav1.ObjectMeta{Name: issuerName},
			Spec:       quillv1.IssuerSpec{CA: quillv1.CASource{SecretRef: &quillv1.SecretReference{Name: caSecret}}},
		},
	} {
		if err := b.c.Create(ctx, obj); err != nil {
			_ = env.Stop()
			return nil, err
		}
	}
	b.procs = findProcs()
	return b, nil
}

func measure(o options, n int, format ledgerfill.Format) (r row, err error) {
	r.n, r.format = n, format
	step("N=%d %s: starting kube-apiserver and etcd", n, format)
	ctx := context.Background()
	// With -live-max the oldest entries go to the archive, signed long
	// ago by a CA that was valid then.
	archived := o.liveMax > 0 && n > o.liveMax && format == ledgerfill.FormatSegments
	caFrom := time.Now().Add(-24 * time.Hour)
	if archived {
		caFrom = time.Now().Add(-210 * 24 * time.Hour)
	}
	b, err := startBench(ctx, caFrom)
	if err != nil {
		return r, err
	}
	env := b.env
	defer func() {
		if err != nil {
			fmt.Fprintf(os.Stderr, "--- quill-controller log (tail) ---\n%s\n", tail(env.Log("quill-controller"), 30))
		}
		_ = env.Stop()
	}()
	gw, err := newEtcdGateway(b.procs["etcd"])
	if err != nil {
		return r, err
	}
	r.etcdDBEmpty, r.apiRSSEmpty, r.apiHeapEmpty = etcdDBSize(b.procs["etcd"]), rss(b.procs["kube-apiserver"], "VmRSS"), apiHeap(env.Config)

	spec := ledgerfill.Spec{Issuer: issuerID, Home: clusterNS, Authority: b.ca.Authority, Format: format, N: n,
		RevokedPercent: o.revokedPct, Concurrency: o.concurrency,
		Progress: func(d int) { step("  %d entries", d) }}
	if spec.Concurrency == 0 {
		// Legacy writes are small and many: concurrency hides API latency.
		// Segments are few and large: signing is the work.
		spec.Concurrency = 32
		if format == ledgerfill.FormatSegments {
			spec.Concurrency = 4
		}
	}
	step("N=%d %s: signing and recording %d certificates", n, format, n)
	start := time.Now()
	var archiveDir string
	if archived {
		if archiveDir, err = os.MkdirTemp("", "ledgerscale-archive-"); err != nil {
			return r, err
		}
		defer os.RemoveAll(archiveDir)
		// The archived part is what retention left: signed 200 to 100 days
		// ago for 90 days, so expired 10 to 110 days ago.
		old := spec
		old.N, old.ArchiveN, old.Archive = n-o.liveMax, n-o.liveMax, newArchive(archiveDir)
		old.IssuedFrom, old.IssuedSpan = time.Now().Add(-200*24*time.Hour), 100*24*time.Hour
		resOld, err := ledgerfill.Fill(ctx, b.c, old)
		if err != nil {
			return r, err
		}
		r.archived, r.revoked = resOld.Archived, resOld.Revoked
		// The live part: signed over the last 10 days.
		spec.N, spec.FirstIndex = o.liveMax, n-o.liveMax
		spec.IssuedFrom, spec.IssuedSpan = time.Now().Add(-10*24*time.Hour), 10*24*time.Hour
	}
	res, err := ledgerfill.Fill(ctx, b.c, spec)
	if err != nil {
		return r, err
	}
	if res.RevokedCert == nil {
		return r, errors.New("no live entry was revoked: raise -revoked-percent or N")
	}
	r.fill, r.live, r.objects, r.bytesPerEntry = time.Since(start), res.Live, res.Objects, res.BytesPerEntry()
	r.revoked += res.Revoked
	if archiveDir != "" {
		r.archiveBytes = dirSize(archiveDir)
	}
	// The API server's watch cache holds every object from the moment it
	// was written; etcd's file holds every revision until compacted.
	r.apiRSS, r.apiHeap = rss(b.procs["kube-apiserver"], "VmRSS"), apiHeap(env.Config)
	if r.etcd, err = gw.measure(b.procs["etcd"]); err != nil {
		return r, err
	}

	step("N=%d %s: starting quill-controller and asking OCSP for a revoked serial throughout", n, format)
	metricsAddr, err := freeAddr()
	if err != nil {
		return r, err
	}
	revAddr, err := freeAddr()
	if err != nil {
		return r, err
	}
	ocspReq, err := ocsp.CreateRequest(res.RevokedCert, b.ca.Cert, nil)
	if err != nil {
		return r, err
	}
	issuerPath := revocationdata.IssuerPath(issuerID)
	var environ []string
	if o.memoryLimit > 0 {
		environ = append(environ, fmt.Sprintf("GOMEMLIMIT=%d", goMemLimit(o.memoryLimit)))
	}
	started := time.Now()
	if _, err := env.StartProcessEnv("quill-controller", environ, "--kubeconfig", env.Kubeconfig, "--cluster-resource-namespace", clusterNS,
		"--metrics-bind-address", metricsAddr, "--health-probe-bind-address", "0",
		"--revocation-bind-address", revAddr, "--revocation-base-url", "http://"+revAddr); err != nil {
		return r, err
	}
	ctlPID := waitChild("quill-controller", 10*time.Second)

	r.answers = map[string]int{}
	var synced, crlServed time.Duration
	deadline := started.Add(o.timeout)
	httpc := &http.Client{Timeout: 2 * time.Second}
	for synced == 0 || crlServed == 0 {
		if time.Now().After(deadline) {
			return r, fmt.Errorf("quill-controller did not serve the ledger within %s (synced after %s, CRL after %s)", o.timeout, synced, crlServed)
		}
		answer := askOCSP(httpc, "http://"+revAddr+"/ocsp/"+issuerPath, ocspReq, b.ca.Cert)
		r.answers[answer]++
		if synced == 0 && ledgerEntries(httpc, "http://"+metricsAddr+"/metrics") == res.Live {
			synced = time.Since(started)
		}
		if crlServed == 0 && crlEntries(httpc, "http://"+revAddr+"/crl/"+issuerPath+".crl", b.ca.Cert) == res.RevokedLive {
			crlServed = time.Since(started)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.synced, r.crlServed = synced, crlServed
	for k, v := range r.answers {
		if k != "revoked" && k != "tryLater" && k != "unreachable" && k != "http-error" {
			r.wrongAnswers += v
		}
	}
	// Settled: a few seconds after everything is served, once the start-up
	// garbage is collected.
	time.Sleep(5 * time.Second)
	r.ctlRSS, r.ctlPeak = rss(ctlPID, "VmRSS"), rss(ctlPID, "VmHWM")
	if o.memoryLimit > 0 && r.ctlPeak > o.memoryLimit {
		step("N=%d %s: quill-controller peaked at %s, over the %s limit: a container would have been OOM-killed", n, format, mib(r.ctlPeak), mib(o.memoryLimit))
	}

	step("N=%d %s: quillctl audit report", n, format)
	out := filepath.Join(os.TempDir(), fmt.Sprintf("ledgerscale-audit-%d.csv", os.Getpid()))
	defer os.Remove(out)
	args := []string{"audit", "report", "--kubeconfig", env.Kubeconfig,
		"--issuer", issuerName, "--cluster-resource-namespace", clusterNS, "--format", "csv", "--out", out}
	if archiveDir != "" {
		args = append(args, o.archiveFlag, archiveDir)
	}
	auditStart := time.Now()
	cmd := exec.Command(filepath.Join(env.Root, "bin", "quillctl"), args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return r, fmt.Errorf("quillctl audit report: %v: %s", err, b)
	}
	r.audit = time.Since(auditStart)
	data, err := os.ReadFile(out)
	if err != nil {
		return r, err
	}
	r.auditRows = bytes.Count(data, []byte("\n")) - 1
	if r.auditRows != n {
		return r, fmt.Errorf("audit report has %d rows; the ledger has %d entries", r.auditRows, n)
	}
	return r, nil
}

// dirSize is the bytes of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// askOCSP classifies the responder's answer for one request.
func askOCSP(c *http.Client, url string, req []byte, issuer *x509.Certificate) string {
	resp, err := c.Post(url, "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		return "unreachable"
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "http-error"
	}
	r, err := ocsp.ParseResponse(body, issuer)
	var re ocsp.ResponseError
	switch {
	case errors.As(err, &re) && re.Status == ocsp.TryLater:
		return "tryLater"
	case err != nil:
		return "other"
	case r.Status == ocsp.Revoked:
		return "revoked"
	case r.Status == ocsp.Good:
		return "good"
	case r.Status == ocsp.Unknown:
		return "unknown"
	}
	return "other"
}

// ledgerEntries reads quill_ledger_entries for the benchmark's issuer, or -1.
func ledgerEntries(c *http.Client, url string) int {
	resp, err := c.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "quill_ledger_entries{") && strings.Contains(line, `issuer="`+issuerName+`"`) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err == nil {
				return int(v)
			}
		}
	}
	return -1
}

// crlEntries counts the entries of the CRL served for the issuer, or -1.
func crlEntries(c *http.Client, url string, issuer *x509.Certificate) int {
	resp, err := c.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return -1
	}
	crl, err := x509.ParseRevocationList(b)
	if err != nil || crl.CheckSignatureFrom(issuer) != nil {
		return -1
	}
	return len(crl.RevokedCertificateEntries)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
