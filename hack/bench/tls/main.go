// Command tls is `make bench-tls`: it measures what TLS 1.3 costs on
// loopback with chains issued by Quill's signing code (pkg/issuance) and
// the server settings of pkg/tlsconfig, in three set-ups:
//
//	classical      X25519 key exchange,          ECDSA P-256 chain
//	hybrid         X25519MLKEM768 key exchange,  ECDSA P-256 chain
//	post-quantum   X25519MLKEM768 key exchange,  ML-DSA-65 chain
//
//	go run ./hack/bench/tls [-handshakes 2000] [-requests 2000]
//
// For each set-up: client and server CPU per full handshake, per resumed
// handshake (TLS 1.3 session tickets) and per request on a reused
// connection, bytes in each direction, and handshakes per second. The
// server is this program re-run with -serve in a child process, so that
// the CPU of each side is measured apart. The negotiated group and
// resumption are checked on every connection; a mismatch ends the run with
// a non-zero status.
//
// The hybrid row's cost over the classical one is printed beside the
// figures of the issue this benchmark answers (its source material
// measured hybrid against classical TLS over 2,000 connections), so that a
// run says at once whether Quill's stack stays within them.
// docs/benchmarks.md has a run and how to read it.
//
// It lives under hack/ rather than in quillctl because a loopback
// handshake benchmark measures Go's TLS stack on the machine at hand, not
// anything an operator's CA or deployment decides.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/tlsconfig"
)

var (
	errBench   = errors.New("benchmark failed")
	errBadFlag = errors.New("bad flag")
)

// The source material's measurement of hybrid (ECDHE + ML-KEM) against
// classical TLS over 2,000 connections, printed beside this machine's.
const (
	seedClientCPU = 250 * time.Microsecond
	seedServerCPU = 230 * time.Microsecond
	seedBytes     = 2356
	// ML-KEM-768's encapsulation key and ciphertext: what a hybrid key
	// share adds to the ClientHello and the ServerHello.
	mlkem768Bytes = 1184 + 1088
)

// benchScenario is one set-up: a chain the server presents and the key
// exchange groups the client offers.
type benchScenario struct {
	name    string
	chain   [3]issuance.KeyAlgorithm // root, intermediate, leaf
	curves  []tls.CurveID            // what the client offers
	want    tls.CurveID              // what must be negotiated
	chainID string
}

var benchScenarios = []benchScenario{
	{name: "classical", chain: [3]issuance.KeyAlgorithm{issuance.ECDSAP256, issuance.ECDSAP256, issuance.ECDSAP256},
		curves: []tls.CurveID{tls.X25519}, want: tls.X25519, chainID: "ECDSA P-256"},
	{name: "hybrid", chain: [3]issuance.KeyAlgorithm{issuance.ECDSAP256, issuance.ECDSAP256, issuance.ECDSAP256},
		curves: []tls.CurveID{tls.X25519MLKEM768}, want: tls.X25519MLKEM768, chainID: "ECDSA P-256"},
	{name: "post-quantum", chain: [3]issuance.KeyAlgorithm{issuance.MLDSA65, issuance.MLDSA65, issuance.MLDSA65},
		curves: []tls.CurveID{tls.X25519MLKEM768}, want: tls.X25519MLKEM768, chainID: "ML-DSA-65"},
}

// benchResult is what one scenario measured; CPU and bytes are per
// handshake or per request.
type benchResult struct {
	scenario benchScenario
	full     phase
	resumed  phase
	reuse    phase
}

type phase struct {
	n                    int
	clientCPU, serverCPU time.Duration
	sent, received       float64 // bytes client→server and server→client
	wall                 time.Duration
}

func (p phase) perSecond() float64 { return float64(p.n) / p.wall.Seconds() }

func main() {
	var (
		handshakes, requests int
		serve                bool
		certFile, keyFile    string
	)
	flag.IntVar(&handshakes, "handshakes", 2000, "handshakes per scenario and kind (full, resumed)")
	flag.IntVar(&requests, "requests", 2000, "requests on one reused connection per scenario")
	flag.BoolVar(&serve, "serve", false, "run as the benchmark's server (the benchmark starts it itself)")
	flag.StringVar(&certFile, "cert", "", "with -serve: the server's chain (PEM)")
	flag.StringVar(&keyFile, "key", "", "with -serve: the server's key (PEM)")
	flag.Parse()
	if serve {
		if err := benchServe(certFile, keyFile, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench-tls: server:", err)
			os.Exit(1)
		}
		return
	}
	if handshakes < 1 || requests < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "bench-tls:", fmt.Errorf("%w: -handshakes and -requests must be at least 1, and there are no arguments", errBadFlag))
		os.Exit(2)
	}
	// Ctrl-C or SIGTERM ends the run between connections, so that the
	// scenario's temporary key files are removed.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, handshakes, requests)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-tls: FAILED:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, handshakes, requests int) error {
	var results []benchResult
	for _, s := range benchScenarios {
		fmt.Fprintf(os.Stderr, "bench-tls: %s (%d handshakes, %d requests)\n", s.name, handshakes, requests)
		r, err := runScenario(ctx, s, handshakes, requests)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	printBench(os.Stdout, results)
	return nil
}

// issueChain makes root → intermediate → leaf for "localhost" with Quill's
// signing code, and returns the leaf's chain, its key and the root. The
// CA names have the length of those the benchmark used in quillctl, so that
// byte counts stay comparable with the figures in docs/benchmarks.md.
func issueChain(algs [3]issuance.KeyAlgorithm) (chainPEM, keyPEM, rootPEM []byte, err error) {
	now := time.Now()
	opts := issuance.Options{Now: now}
	rootPEM, rootKey, err := issuance.NewSelfSignedRoot(pkix.Name{CommonName: "hack/bench/tls root"}, algs[0], 24*time.Hour, now)
	if err != nil {
		return nil, nil, nil, err
	}
	ca, err := issuance.LoadAuthority(rootPEM, rootKey, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	sign := func(alg issuance.KeyAlgorithm, cn string, isCA bool) (*issuance.Issued, []byte, error) {
		key, err := issuance.GenerateKey(alg)
		if err != nil {
			return nil, nil, err
		}
		sigAlg, err := issuance.SignatureAlgorithmFor(key.Public(), false)
		if err != nil {
			return nil, nil, err
		}
		tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, SignatureAlgorithm: sigAlg}
		req := issuance.Request{Duration: 12 * time.Hour, KeyUsage: x509.KeyUsageDigitalSignature}
		if isCA {
			req.IsCA, req.KeyUsage = true, x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature
		} else {
			tmpl.DNSNames = []string{"localhost"}
			req.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		}
		der, err := x509.CreateCertificateRequest(nil, tmpl, key)
		if err != nil {
			return nil, nil, err
		}
		req.CSR = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
		issued, err := ca.Sign(req, opts)
		if err != nil {
			return nil, nil, err
		}
		keyPEM, err := issuance.MarshalPrivateKeyPEM(key)
		return issued, keyPEM, err
	}
	inter, interKey, err := sign(algs[1], "hack/bench/tls intermediate", true)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("intermediate: %w", err)
	}
	if ca, err = issuance.LoadAuthority(inter.ChainPEM, interKey, inter.CAPEM); err != nil {
		return nil, nil, nil, err
	}
	leaf, leafKey, err := sign(algs[2], "localhost", false)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("leaf: %w", err)
	}
	return leaf.ChainPEM, leafKey, rootPEM, nil
}

// benchServer is the child process serving one scenario.
type benchServer struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	addr   string
}

func startBenchServer(certFile, keyFile string) (*benchServer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-serve", "-cert", certFile, "-key", keyFile)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &benchServer{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(out)}
	line, err := s.stdout.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening ") {
		s.stop()
		return nil, fmt.Errorf("%w: the server did not start: %q %v", errBench, line, err)
	}
	s.addr = strings.TrimSpace(strings.TrimPrefix(line, "listening "))
	return s, nil
}

// cpu asks the server for the CPU time it has used so far.
func (s *benchServer) cpu() (time.Duration, error) {
	if _, err := io.WriteString(s.stdin, "cpu\n"); err != nil {
		return 0, err
	}
	line, err := s.stdout.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("%w: server: %w", errBench, err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "cpu ")), 10, 64)
	return time.Duration(ns), err
}

func (s *benchServer) stop() {
	_ = s.stdin.Close()
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// benchServe is the child: it serves TLS on loopback with Quill's server
// policy (pkg/tlsconfig), echoing what each client sends, and answers
// "cpu" lines on stdin with its CPU time in nanoseconds. It ends when
// stdin closes.
func benchServe(certFile, keyFile string, stdin io.Reader, stdout io.Writer) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsconfig.Server(tlsconfig.Options{Certificates: []tls.Certificate{cert}}))
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	fmt.Fprintf(stdout, "listening %s\n", ln.Addr())
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		if sc.Text() == "cpu" {
			fmt.Fprintf(stdout, "cpu %d\n", selfCPU().Nanoseconds())
		}
	}
	return nil
}

// selfCPU is the user and system CPU time of this process, all threads.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countingConn counts the bytes of a client connection, TCP payload
// (TLS records) only.
type countingConn struct {
	net.Conn
	sent, received int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.received += int64(n)
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.sent += int64(n)
	return n, err
}

func runScenario(ctx context.Context, s benchScenario, handshakes, requests int) (benchResult, error) {
	res := benchResult{scenario: s}
	chainPEM, keyPEM, rootPEM, err := issueChain(s.chain)
	if err != nil {
		return res, fmt.Errorf("%w: issue the %s chain: %w", errBench, s.chainID, err)
	}
	dir, err := os.MkdirTemp("", "bench-tls-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, chainPEM, 0o600); err != nil {
		return res, err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return res, err
	}
	srv, err := startBenchServer(certFile, keyFile)
	if err != nil {
		return res, err
	}
	defer srv.stop()

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	newConfig := func(cache tls.ClientSessionCache) *tls.Config {
		return &tls.Config{RootCAs: roots, ServerName: "localhost", CurvePreferences: s.curves, MinVersion: tls.VersionTLS13, ClientSessionCache: cache}
	}
	// One round trip per handshake makes the server finish its side (and
	// send its session ticket) before the client closes.
	ping := []byte("ping")
	dial := func(cfg *tls.Config, wantResume bool) (*countingConn, error) {
		raw, err := net.Dial("tcp", srv.addr)
		if err != nil {
			return nil, err
		}
		cc := &countingConn{Conn: raw}
		tc := tls.Client(cc, cfg)
		defer tc.Close()
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("%w: handshake: %w", errBench, err)
		}
		st := tc.ConnectionState()
		if st.CurveID != s.want {
			return nil, fmt.Errorf("%w: negotiated %s, want %s", errBench, st.CurveID, s.want)
		}
		if st.DidResume != wantResume {
			return nil, fmt.Errorf("%w: resumed=%v, want %v", errBench, st.DidResume, wantResume)
		}
		if err := echo(tc, ping); err != nil {
			return nil, err
		}
		return cc, nil
	}
	measure := func(n int, run func() (*countingConn, error)) (phase, error) {
		p := phase{n: n}
		s0, err := srv.cpu()
		if err != nil {
			return p, err
		}
		c0, t0 := selfCPU(), time.Now()
		var sent, received int64
		for range n {
			if err := ctx.Err(); err != nil {
				return p, err
			}
			cc, err := run()
			if err != nil {
				return p, err
			}
			sent, received = sent+cc.sent, received+cc.received
		}
		p.wall = time.Since(t0)
		c1 := selfCPU()
		s1, err := srv.cpu()
		if err != nil {
			return p, err
		}
		p.clientCPU, p.serverCPU = (c1-c0)/time.Duration(n), (s1-s0)/time.Duration(n)
		p.sent, p.received = float64(sent)/float64(n), float64(received)/float64(n)
		return p, nil
	}

	// Warm up both processes (code paths, allocator) before measuring.
	for range 20 {
		if _, err := dial(newConfig(nil), false); err != nil {
			return res, err
		}
	}
	if res.full, err = measure(handshakes, func() (*countingConn, error) { return dial(newConfig(nil), false) }); err != nil {
		return res, err
	}
	cache := tls.NewLRUClientSessionCache(1)
	resumeCfg := newConfig(cache)
	if _, err := dial(resumeCfg, false); err != nil {
		return res, err
	}
	if res.resumed, err = measure(handshakes, func() (*countingConn, error) { return dial(resumeCfg, true) }); err != nil {
		return res, err
	}

	// Reuse: one connection, many requests.
	raw, err := net.Dial("tcp", srv.addr)
	if err != nil {
		return res, err
	}
	cc := &countingConn{Conn: raw}
	tc := tls.Client(cc, newConfig(nil))
	defer tc.Close()
	if err := tc.Handshake(); err != nil {
		return res, fmt.Errorf("%w: handshake: %w", errBench, err)
	}
	request := make([]byte, 256)
	res.reuse, err = measure(requests, func() (*countingConn, error) {
		before := *cc
		if err := echo(tc, request); err != nil {
			return nil, err
		}
		return &countingConn{sent: cc.sent - before.sent, received: cc.received - before.received}, nil
	})
	return res, err
}

// echo sends msg and reads it back.
func echo(c *tls.Conn, msg []byte) error {
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("%w: write: %w", errBench, err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("%w: read: %w", errBench, err)
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

func printBench(w io.Writer, results []benchResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tkey exchange\tchain\t\tclient CPU\tserver CPU\tbytes c→s\tbytes s→c\tper second\t")
	for _, r := range results {
		for _, p := range []struct {
			kind string
			ph   phase
		}{{"full handshake", r.full}, {"resumed handshake", r.resumed}, {"request, reused conn", r.reuse}} {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t\n", r.scenario.name, r.scenario.want, r.scenario.chainID, p.kind,
				ms(p.ph.clientCPU), ms(p.ph.serverCPU), p.ph.sent, p.ph.received, p.ph.perSecond())
		}
	}
	_ = tw.Flush()

	byName := map[string]benchResult{}
	for _, r := range results {
		byName[r.scenario.name] = r
	}
	classical, hybrid, pq := byName["classical"], byName["hybrid"], byName["post-quantum"]
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Cost over classical per full handshake (handshake round trip included):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tclient CPU\tserver CPU\tbytes (both ways)\t")
	delta := func(name string, r benchResult) {
		fmt.Fprintf(tw, "%s\t%+.3f ms\t%+.3f ms\t%+.0f\t\n", name,
			float64(r.full.clientCPU-classical.full.clientCPU)/1e6, float64(r.full.serverCPU-classical.full.serverCPU)/1e6,
			(r.full.sent+r.full.received)-(classical.full.sent+classical.full.received))
	}
	delta("hybrid (this machine)", hybrid)
	fmt.Fprintf(tw, "hybrid (the seed)\t+%.3f ms\t+%.3f ms\t+%d\t\n", float64(seedClientCPU)/1e6, float64(seedServerCPU)/1e6, seedBytes)
	fmt.Fprintf(tw, "ML-KEM-768 key share + ciphertext\t\t\t+%d\t\n", mlkem768Bytes)
	delta("post-quantum (this machine)", pq)
	_ = tw.Flush()
}
