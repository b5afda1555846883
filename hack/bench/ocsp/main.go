// Command ocsp compares Quill's OCSP responder (pkg/ocspserver) with
// `openssl ocsp` serving the same revocation data, in one run.
//
//	go run ./hack/bench/ocsp [-certs 10000] [-clients 1,8,32] [-duration 5s] [-rate 2000] [-multi 2]
//
// It generates an ECDSA P-256 CA, a delegated responder certificate with an
// ECDSA P-256 key (issuance.Authority.IssueResponder) and -certs issued
// serials, every tenth revoked, written as an openssl ca database. Then it
// starts, each in its own process:
//
//   - Quill: this program re-run with -serve-quill, serving the controller's
//     own CRL/OCSP handler (controllers/revocationhttp: the router, the
//     per-issuer responders and their cache) with ocspserver.NewServer,
//     over an in-memory API server holding a QuillClusterIssuer with that
//     CA and delegated responder, and a ledger index holding a record per
//     issued serial; requests go to the issuer's OCSP URL as certificates
//     carry it, responses valid for an hour;
//   - OpenSSL: `openssl ocsp -index index.txt -rsigner responder.pem -rkey
//     responder.key -CA ca.pem -nmin 60 -multi N -port 0`, signing every
//     response, from N worker processes (-multi, default the number of
//     CPUs). Its port is read from the ACCEPT line it prints; nothing
//     connects to it before the first request, because an OpenSSL 3.0
//     worker that accepts a connection closed without a request spins on
//     it forever and never serves again. Before and after the runs each
//     responder must be idle (under a quarter of a core) while nobody
//     sends it requests, so a wedged worker fails the benchmark instead of
//     skewing it.
//
// Both sign with the same delegated key. `openssl ocsp -port` listens on
// every interface, so the whole benchmark runs in a private network
// namespace (`unshare -n`, as root) with only loopback; -shared-netns runs
// without one.
//
// Each responder is checked first: good, revoked and unknown answers, with
// and without nonce, verify against the CA with golang.org/x/crypto/ocsp.
// Then, for each series, a Go load generator in this process POSTs
// requests (serials drawn at random: a tenth revoked, one in a hundred
// never issued) on keep-alive connections:
//
//   - closed loop at each -clients count: every client sends its next
//     request as soon as it has the answer; -warmup, then -duration
//     measured; req/s = answers in the window / window; p50 and p99 of each
//     request's round trip (nearest rank);
//   - fixed rate: -rate requests per second for -duration after -warmup
//     from 128 workers; latency from when each request was due, so queueing
//     behind a slow responder counts.
//
// The series are "no nonce" (the cacheable path: Quill answers from its
// cache after the first request per serial) and "nonce" (16-octet RFC 8954
// nonces, signed per request by both). Within each cell Quill and OpenSSL
// run back to back, the first of them alternating from cell to cell, so a
// change in background load hits both. Per run it also reports each
// responder's CPU time per request (its process group's user+system time
// over the whole run, warm-up included, from /proc, divided by the requests
// sent), which other load on the machine disturbs less than throughput,
// and how many of the machine's cores were busy meanwhile (from
// /proc/stat, everything included): with the responder and the load
// generator far from saturating the machine, a figure near the core count
// means other processes took the rest.
// Errors (anything but HTTP 200 with
// a successful OCSP response) are counted and reported; more than 1% in a
// run fails the benchmark. Markdown goes to stdout, progress to stderr.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	certs    int
	clients  []int
	duration time.Duration
	warmup   time.Duration
	rate     int
	multi    int
}

func main() {
	serve := flag.String("serve-quill", "", "internal: serve Quill's responder for the data in this directory")
	inNetns := flag.Bool("in-netns", false, "internal: already inside the private network namespace")
	shared := flag.Bool("shared-netns", false, "run without a private network namespace (openssl ocsp then listens on every interface)")
	certs := flag.Int("certs", 10000, "issued certificates in the revocation data")
	clients := flag.String("clients", "1,8,32", "concurrent clients of the closed-loop runs (empty: none)")
	duration := flag.Duration("duration", 5*time.Second, "measured time of each run")
	warmup := flag.Duration("warmup", time.Second, "unmeasured time before each run")
	rate := flag.Int("rate", 2000, "requests per second of the fixed-rate runs")
	multi := flag.Int("multi", runtime.NumCPU(), "openssl ocsp -multi worker processes")
	flag.Parse()

	if *serve != "" {
		if err := serveQuill(*serve); err != nil {
			fmt.Fprintln(os.Stderr, "serve-quill:", err)
			os.Exit(1)
		}
		return
	}
	if !*inNetns && !*shared {
		if err := reexecInNetns(); err != nil {
			fmt.Fprintln(os.Stderr, "ocsp bench:", err)
			os.Exit(1)
		}
		return
	}
	opts := options{certs: *certs, duration: *duration, warmup: *warmup, rate: *rate, multi: *multi}
	for f := range strings.SplitSeq(*clients, ",") {
		if strings.TrimSpace(f) == "" {
			continue // -clients "" runs the fixed-rate series only
		}
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "ocsp bench: bad -clients value %q\n", f)
			os.Exit(2)
		}
		opts.clients = append(opts.clients, n)
	}
	if *inNetns {
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "ocsp bench: bring up loopback: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	if err := run(opts, *inNetns); err != nil {
		fmt.Fprintln(os.Stderr, "ocsp bench:", err)
		os.Exit(1)
	}
}

// reexecInNetns runs this program again in a new network namespace.
func reexecInNetns() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return fmt.Errorf("unshare not found (%w); run as root with util-linux, or pass -shared-netns", err)
	}
	args := append([]string{"-n", "--", self, "-in-netns"}, os.Args[1:]...)
	cmd := exec.Command(unshare, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			os.Exit(exit.ExitCode())
		}
		return fmt.Errorf("unshare -n (needs root; or pass -shared-netns): %w", err)
	}
	return nil
}

type server struct {
	name string
	url  string
	cmd  *exec.Cmd
}

func (s *server) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		// The process group: openssl -multi forks its workers.
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		_ = s.cmd.Wait()
	}
}

func run(opts options, netns bool) error {
	dir, err := os.MkdirTemp("", "quill-ocsp-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(os.Stderr, "generating %d certificates' revocation data...\n", opts.certs)
	ds, err := makeDataset(dir, opts.certs)
	if err != nil {
		return err
	}
	quill, err := startQuill(dir)
	if err != nil {
		return err
	}
	defer quill.stop()
	ossl, err := startOpenSSL(dir, opts.multi)
	if err != nil {
		return err
	}
	defer ossl.stop()
	targets := []*server{quill, ossl}

	id := newCertID(ds)
	for _, t := range targets {
		if err := checkTarget(newClient(1), t.url, ds, id); err != nil {
			return fmt.Errorf("%s gives wrong answers: %w", t.name, err)
		}
		if err := checkIdle(t.name, t.cmd.Process.Pid); err != nil {
			return err
		}
	}
	series := []struct {
		name string
		reqs [][]byte
	}{
		{"no nonce", requestPool(ds, id, 20000, false)},
		{"nonce", requestPool(ds, id, 20000, true)},
	}
	load0, _ := os.ReadFile("/proc/loadavg")
	type row struct {
		series, mode string
		res          [2]result
	}
	var rows []row
	cell := 0
	measure := func(series, mode string, f func(url string) result) error {
		var r row
		r.series, r.mode = series, mode
		order := []int{0, 1}
		if cell%2 == 1 {
			order = []int{1, 0}
		}
		cell++
		for _, i := range order {
			fmt.Fprintf(os.Stderr, "%s, %s, %s...\n", series, mode, targets[i].name)
			pg := targets[i].cmd.Process.Pid
			srv0, all0 := groupCPU(pg), machineBusy()
			t0 := time.Now()
			res := f(targets[i].url)
			res.wall = time.Since(t0)
			srv1, all1 := groupCPU(pg), machineBusy()
			res.serverCPU, res.machineCPU = srv1-srv0, all1-all0
			total := res.completed + res.errors
			if total == 0 || res.errors*100 > total {
				return fmt.Errorf("%s, %s, %s: %d of %d requests failed (first: %v)", series, mode, targets[i].name, res.errors, total, res.firstErr)
			}
			r.res[i] = res
		}
		rows = append(rows, r)
		return nil
	}
	for _, s := range series {
		for _, c := range opts.clients {
			if err := measure(s.name, fmt.Sprintf("%d clients", c), func(url string) result {
				return closedLoop(url, s.reqs, c, opts.warmup, opts.duration)
			}); err != nil {
				return err
			}
		}
		if err := measure(s.name, fmt.Sprintf("%d req/s", opts.rate), func(url string) result {
			return fixedRate(url, s.reqs, opts.rate, opts.warmup, opts.duration)
		}); err != nil {
			return err
		}
	}
	load1, _ := os.ReadFile("/proc/loadavg")
	// A worker wedged during the runs would have burnt CPU in all of them.
	for _, t := range targets {
		if err := checkIdle(t.name, t.cmd.Process.Pid); err != nil {
			return fmt.Errorf("after the runs: %w", err)
		}
	}

	version, _ := exec.Command("openssl", "version").Output()
	fmt.Printf("Machine: %d CPUs (%s), %s, %s. Load average before: %s; after: %s. Private network namespace: %v. openssl ocsp -multi %d. %d certificates, %s measured after %s warm-up per run.\n\n",
		runtime.NumCPU(), cpuModel(), runtime.Version(), strings.TrimSpace(string(version)),
		strings.TrimSpace(string(load0)), strings.TrimSpace(string(load1)), netns, opts.multi, opts.certs, opts.duration, opts.warmup)
	fmt.Println("| series | load | Quill req/s | Quill p50 | Quill p99 | OpenSSL req/s | OpenSSL p50 | OpenSSL p99 | req/s Quill / OpenSSL | server CPU/req Quill / OpenSSL | machine busy (cores) Quill / OpenSSL run |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		q, o := r.res[0], r.res[1]
		fmt.Printf("| %s | %s | %.0f | %s | %s | %.0f | %s | %s | %.2f× | %s / %s | %s / %s |\n", r.series, r.mode,
			q.rate(), msf(q.pct(0.5)), msf(q.pct(0.99)), o.rate(), msf(o.pct(0.5)), msf(o.pct(0.99)), q.rate()/o.rate(),
			q.cpuPerReq(), o.cpuPerReq(), q.busyCores(), o.busyCores())
	}
	errs := 0
	for _, r := range rows {
		errs += r.res[0].errors + r.res[1].errors
	}
	fmt.Printf("\nFailed requests in measured windows: %d.\n", errs)
	return nil
}

func msf(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if name, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
		}
	}
	return "unknown CPU"
}

func startQuill(dir string) (*server, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-serve-quill", dir)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{name: "Quill", cmd: cmd}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("quill responder did not start: %w", err)
	}
	s.url = "http://" + strings.TrimSpace(line) + quillPath
	return s, nil
}

// startOpenSSL starts `openssl ocsp` on a port the kernel picks and waits
// for its ACCEPT line, without connecting to it: OpenSSL 3.0's responder
// worker that accepts a connection closed before a request arrives never
// accepts again (it re-reads the dead connection in a busy loop), so a
// readiness probe by connecting wedges one of the -multi workers and makes
// it burn a core for the rest of the run; two such connections leave no
// worker, and every request times out.
func startOpenSSL(dir string, multi int) (*server, error) {
	args := []string{"ocsp", "-index", filepath.Join(dir, fileIndex), "-port", "0",
		"-rsigner", filepath.Join(dir, fileSigner), "-rkey", filepath.Join(dir, fileKey),
		"-CA", filepath.Join(dir, fileCA), "-nmin", "60", "-ignore_err"}
	if multi > 1 {
		args = append(args, "-multi", strconv.Itoa(multi))
	}
	cmd := exec.Command("openssl", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	logPath := filepath.Join(dir, "openssl.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logFile
	out, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start openssl ocsp: %w", err)
	}
	s := &server{name: "OpenSSL", cmd: cmd}
	port := make(chan int, 1)
	go func() {
		// "ACCEPT [::]:PORT PID=N" once it listens; anything after it
		// goes to the log, so a full pipe never blocks openssl.
		defer logFile.Close()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "ACCEPT" {
				i := strings.LastIndexByte(f[1], ':')
				if p, err := strconv.Atoi(f[1][i+1:]); err == nil && p > 0 {
					select {
					case port <- p:
					default:
					}
				}
			}
		}
		close(port)
	}()
	select {
	case p, ok := <-port:
		if ok {
			s.url = fmt.Sprintf("http://127.0.0.1:%d/", p)
			return s, nil
		}
	case <-time.After(10 * time.Second):
	}
	s.stop()
	log, _ := os.ReadFile(logPath)
	return nil, fmt.Errorf("openssl ocsp did not report a listening port:\n%s", log)
}

// errWedged means a responder burns CPU while nobody sends it requests.
var errWedged = errors.New("responder busy while idle")

// checkIdle fails if the process group pgid uses more than a quarter of a
// core over half a second without load: for openssl ocsp that is a wedged
// -multi worker (see startOpenSSL), whose busy loop would be charged to
// the baseline and take CPU from both responders.
func checkIdle(name string, pgid int) error {
	const window = 500 * time.Millisecond
	c0 := groupCPU(pgid)
	time.Sleep(window)
	if used := groupCPU(pgid) - c0; used > window/4 {
		return fmt.Errorf("%s: %w: %v of CPU in %v", name, errWedged, used, window)
	}
	return nil
}
