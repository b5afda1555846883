// Command signing compares how fast Quill's two kinds of CA key sign: keys
// held in memory by Go's crypto (a CA key read from a Secret) and keys on a
// PKCS#11 token reached through pkg/pkcs11, here SoftHSM2. Both sign the
// same way crypto/x509 asks them to: ECDSA P-256 and RSA-2048 PKCS#1 v1.5,
// each over a SHA-256 digest (hashing the certificate is not measured).
//
//	go run ./hack/bench/signing [-goroutines 1,4,8] [-duration 3s] [-sessions 4] [-token-object]
//
// It creates a private SoftHSM2 token in a temporary directory (removed at
// exit), generates the PKCS#11 keys on it with pkcs11.GenerateKey and the
// software keys in memory. The PKCS#11 keys sign as Quill does by default,
// with a session copy of the token key (pkcs11.Config.DisableSessionCopy
// false); -token-object also measures the same token keys opened with
// DisableSessionCopy, signing with the token object itself as Quill did
// before, so that both are compared in one run. Each cell (algorithm ×
// goroutine count) runs every backend back to back, in one order in one
// cell and in the reverse order in the next, so that a change in
// background load affects all; each run is an unmeasured warm-up (which
// also opens the PKCS#11 signing sessions) followed by -duration of
// signing from that many goroutines at once.
//
// Per run it reports:
//
//   - sig/s: signatures completed by all goroutines / wall time from their
//     release until the last of them returned;
//   - p50, p99, max: latency of one Sign call (time.Now around it), over
//     all signatures of the run (nearest rank);
//   - CPU/sig: user+system CPU time of this whole process during the run
//     (SoftHSM runs inside it) / signatures, and cores busy: that CPU time /
//     wall time. Below GOMAXPROCS with at least as many goroutines as
//     cores, signers waited: on a lock, or for CPU other processes took.
//
// Every signature's error is checked and the last signature of every
// goroutine is verified with the public key after its run; any failure
// ends the benchmark with a non-zero status. The markdown goes to stdout,
// progress to stderr.
package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/quill-pki/quill/pkg/pkcs11"
)

const defaultModule = "/usr/lib/softhsm/libsofthsm2.so"

const (
	backendSoftware = "software (Go)"
	backendPKCS11   = "PKCS#11 (SoftHSM2)"
	backendToken    = "PKCS#11 (SoftHSM2), token object"
)

var (
	errBadFlag = errors.New("bad flag")
	errMode    = errors.New("PKCS#11 key in the wrong signing mode")
)

// algorithm is one key type both backends sign with.
type algorithm struct {
	flag  string // name in -algorithms
	name  string // name in the tables
	hsm   pkcs11.Algorithm
	soft  func() (crypto.Signer, error)
	label string // CKA_LABEL of the token key
}

var algorithms = []algorithm{
	{
		flag: "p256", name: "ECDSA P-256", hsm: pkcs11.ECDSAP256, label: "bench-p256",
		soft: func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
	},
	{
		flag: "rsa2048", name: "RSA-2048 PKCS#1 v1.5", hsm: pkcs11.RSA2048, label: "bench-rsa-2048",
		soft: func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) },
	},
}

type options struct {
	goroutines []int
	algorithms []algorithm
	duration   time.Duration
	warmup     time.Duration
	sessions   int
	module     string
	// tokenObject adds the backendToken runs.
	tokenObject bool
}

func main() {
	os.Exit(mainCode())
}

func mainCode() int {
	opts, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "signing:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "signing: FAIL:", err)
		return 1
	}
	return 0
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("signing", flag.ContinueOnError)
	goroutines := fs.String("goroutines", "1,4,8", "comma-separated numbers of concurrent signing goroutines")
	algs := fs.String("algorithms", "p256,rsa2048", "comma-separated algorithms: p256, rsa2048")
	o := options{}
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "measured signing time of each backend in each cell")
	fs.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unmeasured signing before each measurement")
	fs.IntVar(&o.sessions, "sessions", pkcs11.DefaultMaxSessions, "pkcs11.Config.MaxSessions of each token key")
	fs.StringVar(&o.module, "module", defaultModule, "SoftHSM2 PKCS#11 library")
	fs.BoolVar(&o.tokenObject, "token-object", false, "also measure the PKCS#11 keys signing with the token object (pkcs11.Config.DisableSessionCopy)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("%w: unexpected arguments %q", errBadFlag, fs.Args())
	}
	var err error
	if o.goroutines, err = parseCounts(*goroutines); err != nil {
		return o, err
	}
	if o.algorithms, err = parseAlgorithms(*algs); err != nil {
		return o, err
	}
	switch {
	case o.duration <= 0:
		return o, fmt.Errorf("%w: -duration must be positive", errBadFlag)
	case o.warmup < 0:
		return o, fmt.Errorf("%w: -warmup must not be negative", errBadFlag)
	case o.sessions < 1:
		return o, fmt.Errorf("%w: -sessions must be at least 1", errBadFlag)
	}
	return o, nil
}

func parseCounts(s string) ([]int, error) {
	var counts []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%w: -goroutines %q: %q is not a positive number", errBadFlag, s, f)
		}
		counts = append(counts, n)
	}
	return counts, nil
}

func parseAlgorithms(s string) ([]algorithm, error) {
	var out []algorithm
next:
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		for _, a := range algorithms {
			if a.flag == f {
				out = append(out, a)
				continue next
			}
		}
		return nil, fmt.Errorf("%w: -algorithms %q: unknown algorithm %q (want p256 or rsa2048)", errBadFlag, s, f)
	}
	return out, nil
}

// pair is the signers of one algorithm.
type pair struct {
	alg      algorithm
	software crypto.Signer
	hsm      *pkcs11.Key // signs with a session copy
	token    *pkcs11.Key // the same token key signing with the token object; nil without -token-object
}

// backend is one signer measured in a cell.
type backend struct {
	name   string
	signer crypto.Signer
}

// backends lists p's signers in the order cell number cell runs them: one
// way round in even cells, the other in odd ones.
func (p pair) backends(cell int) []backend {
	bs := []backend{{backendSoftware, p.software}, {backendPKCS11, p.hsm}}
	if p.token != nil {
		bs = append(bs, backend{backendToken, p.token})
	}
	if cell%2 == 1 {
		slices.Reverse(bs)
	}
	return bs
}

func run(ctx context.Context, o options, out io.Writer) (err error) {
	loadStart := loadAverage()
	tok, err := newToken(o.module)
	if err != nil {
		return err
	}
	defer func() {
		if rmErr := tok.remove(); rmErr != nil && err == nil {
			err = rmErr
		}
	}()

	digest := sha256.Sum256([]byte("quill signing benchmark"))
	var pairs []pair
	defer func() {
		for _, p := range pairs {
			for _, k := range []*pkcs11.Key{p.hsm, p.token} {
				if k == nil {
					continue
				}
				if closeErr := k.Close(); closeErr != nil && err == nil {
					err = fmt.Errorf("close %s token key: %w", p.alg.name, closeErr)
				}
			}
		}
	}()
	for _, a := range o.algorithms {
		fmt.Fprintf(os.Stderr, "generating %s keys\n", a.name)
		soft, err := a.soft()
		if err != nil {
			return fmt.Errorf("generate software %s key: %w", a.name, err)
		}
		cfg := tok.config(a.label, o.sessions)
		hsm, err := pkcs11.GenerateKey(cfg, a.hsm)
		if err != nil {
			return err
		}
		pairs = append(pairs, pair{alg: a, software: soft, hsm: hsm})
		if !hsm.SignsWithSessionCopy() {
			return fmt.Errorf("%w: the %s token key signs without a session copy (see the log)", errMode, a.name)
		}
		if o.tokenObject {
			cfg.DisableSessionCopy = true
			if pairs[len(pairs)-1].token, err = pkcs11.Open(cfg); err != nil {
				return err
			}
			if pairs[len(pairs)-1].token.SignsWithSessionCopy() {
				return fmt.Errorf("%w: the %s token key signs with a session copy although it is disabled", errMode, a.name)
			}
		}
	}

	var results []result
	cell := 0
	for _, p := range pairs {
		for _, g := range o.goroutines {
			order := p.backends(cell)
			for _, b := range order {
				r, err := measure(ctx, b.signer, digest[:], g, o.warmup, o.duration)
				if err != nil {
					return fmt.Errorf("%s %s with %d goroutines: %w", b.name, p.alg.name, g, err)
				}
				r.backend, r.algorithm, r.cell = b.name, p.alg.name, cell
				fmt.Fprintf(os.Stderr, "%-20s %-22s %2d goroutines: %8.0f sig/s  p50 %s  p99 %s\n",
					r.backend, r.algorithm, g, r.rate(), formatLatency(r.p50), formatLatency(r.p99))
				results = append(results, r)
			}
			cell++
		}
	}
	report(out, o, loadStart, loadAverage(), results)
	return nil
}
