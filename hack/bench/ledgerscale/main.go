// Command ledgerscale measures what the issuance ledger costs at scale
// (docs/benchmarks.md, `make bench-ledger-scale`): for each ledger size N it
// starts a fresh control plane, writes N ledger records for one
// QuillClusterIssuer through the API exactly as the controller records them
// (real ECDSA P-256 and RSA-2048 leaves signed by the issuer's CA, a few
// percent revoked), and then reports
//
//   - etcd's database file and kube-apiserver's resident memory over the
//     same control plane before the records were written;
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
package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
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
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/revocationdata"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/test/harness"
)

const (
	clusterNS  = "quill-system"
	issuerName = "bench"
	caSecret   = "bench-ca"
)

type options struct {
	sizes       []int
	revokedPct  float64
	concurrency int
	timeout     time.Duration
}

func main() {
	var o options
	sizes := flag.String("n", "10000", "comma-separated ledger sizes to measure, each on a fresh control plane")
	flag.Float64Var(&o.revokedPct, "revoked-percent", 3, "share of the records that are revoked")
	flag.IntVar(&o.concurrency, "concurrency", 32, "concurrent API writes while filling the ledger")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "how long quill-controller may take to serve the whole ledger")
	flag.Parse()
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "ledgerscale: -n: %q is not a positive number\n", s)
			os.Exit(2)
		}
		o.sizes = append(o.sizes, n)
	}
	var rows []row
	for _, n := range o.sizes {
		r, err := measure(o, n)
		if err != nil {
			fmt.Fprintf(os.Stderr, "ledgerscale: N=%d: %v\n", n, err)
			os.Exit(1)
		}
		rows = append(rows, r)
		printTable(os.Stdout, rows)
	}
}

// row is one ledger size's figures.
type row struct {
	n, revoked          int
	fill                time.Duration
	etcdDB, etcdDBEmpty int64
	apiRSS, apiRSSEmpty int64
	ctlRSS, ctlPeak     int64
	synced, crlServed   time.Duration
	answers             map[string]int
	wrongAnswers        int
	audit               time.Duration
	auditRows           int
	recordBytes         int
}

func printTable(w io.Writer, rows []row) {
	fmt.Fprintln(w, "\n| N records | revoked | fill | bytes/record (JSON) | etcd DB (Δ) | kube-apiserver RSS (Δ) | quill-controller RSS settled / peak | start → ledger synced | start → CRL served | OCSP answers for a revoked serial during start | wrong | audit report |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %d | %d | %s | %d | %s (+%s) | %s (+%s) | %s / %s | %s | %s | %s | %d | %s (%d rows) |\n",
			r.n, r.revoked, r.fill.Round(time.Second), r.recordBytes,
			mib(r.etcdDB), mib(r.etcdDB-r.etcdDBEmpty), mib(r.apiRSS), mib(r.apiRSS-r.apiRSSEmpty),
			mib(r.ctlRSS), mib(r.ctlPeak), r.synced.Round(10*time.Millisecond), r.crlServed.Round(10*time.Millisecond),
			formatAnswers(r.answers), r.wrongAnswers, r.audit.Round(10*time.Millisecond), r.auditRows)
	}
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

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

func measure(o options, n int) (r row, err error) {
	r.n = n
	step("N=%d: starting kube-apiserver and etcd", n)
	env, err := harness.Start()
	if err != nil {
		return r, err
	}
	defer func() {
		if err != nil {
			fmt.Fprintf(os.Stderr, "--- quill-controller log (tail) ---\n%s\n", tail(env.Log("quill-controller"), 30))
		}
		_ = env.Stop()
	}()
	ctx := context.Background()
	// The fill must measure the API server, not client-side throttling.
	cfg := *env.Config
	cfg.QPS, cfg.Burst = -1, 0
	c, err := client.New(&cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		return r, err
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: clusterNS}}); err != nil {
		return r, err
	}

	caPEM, keyPEM, err := issuance.NewSelfSignedRoot(pkix.Name{CommonName: "Quill ledger-scale CA"}, issuance.ECDSAP256, 365*24*time.Hour, time.Now())
	if err != nil {
		return r, err
	}
	auth, err := issuance.LoadAuthority(caPEM, keyPEM, nil)
	if err != nil {
		return r, err
	}
	caCert, err := firstCert(caPEM)
	if err != nil {
		return r, err
	}
	if err := c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: clusterNS, Name: caSecret},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: caPEM, corev1.TLSPrivateKeyKey: keyPEM},
	}); err != nil {
		return r, err
	}
	if err := c.Create(ctx, &quillv1.QuillClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: issuerName},
		Spec:       quillv1.IssuerSpec{CA: quillv1.CASource{SecretRef: &quillv1.SecretReference{Name: caSecret}}},
	}); err != nil {
		return r, err
	}

	procs := findProcs()
	r.etcdDBEmpty, r.apiRSSEmpty = etcdDBSize(procs["etcd"]), rss(procs["kube-apiserver"], "VmRSS")

	step("N=%d: signing and recording %d certificates", n, n)
	start := time.Now()
	revokedCert, revoked, recordBytes, err := fill(ctx, c, auth, n, o)
	if err != nil {
		return r, err
	}
	r.fill, r.revoked, r.recordBytes = time.Since(start), revoked, recordBytes
	// etcd writes its file as it goes; the API server's watch cache holds
	// every record from the moment it was written.
	r.etcdDB, r.apiRSS = etcdDBSize(procs["etcd"]), rss(procs["kube-apiserver"], "VmRSS")

	step("N=%d: starting quill-controller and asking OCSP for a revoked serial throughout", n)
	metricsAddr, err := freeAddr()
	if err != nil {
		return r, err
	}
	revAddr, err := freeAddr()
	if err != nil {
		return r, err
	}
	ocspReq, err := ocsp.CreateRequest(revokedCert, caCert, nil)
	if err != nil {
		return r, err
	}
	issuerPath := revocationdata.IssuerPath(quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: issuerName})
	started := time.Now()
	if _, err := env.StartProcess("quill-controller", "--kubeconfig", env.Kubeconfig, "--cluster-resource-namespace", clusterNS,
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
		answer := askOCSP(httpc, "http://"+revAddr+"/ocsp/"+issuerPath, ocspReq, caCert)
		r.answers[answer]++
		if synced == 0 && ledgerEntries(httpc, "http://"+metricsAddr+"/metrics") == n {
			synced = time.Since(started)
		}
		if crlServed == 0 && crlEntries(httpc, "http://"+revAddr+"/crl/"+issuerPath+".crl", caCert) == revoked {
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

	step("N=%d: quillctl audit report", n)
	out := filepath.Join(os.TempDir(), fmt.Sprintf("ledgerscale-audit-%d.csv", os.Getpid()))
	defer os.Remove(out)
	auditStart := time.Now()
	cmd := exec.Command(filepath.Join(env.Root, "bin", "quillctl"), "audit", "report", "--kubeconfig", env.Kubeconfig,
		"--issuer", issuerName, "--cluster-resource-namespace", clusterNS, "--format", "csv", "--out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return r, fmt.Errorf("quillctl audit report: %v: %s", err, b)
	}
	r.audit = time.Since(auditStart)
	b, err := os.ReadFile(out)
	if err != nil {
		return r, err
	}
	r.auditRows = bytes.Count(b, []byte("\n")) - 1
	if r.auditRows != n {
		return r, fmt.Errorf("audit report has %d rows; the ledger has %d records", r.auditRows, n)
	}
	return r, nil
}

// fill signs n leaves (alternately ECDSA P-256 and RSA-2048 keys) and
// records each, as the controller does, revoking revokedPct of them. It
// returns one revoked certificate, the number revoked and the size of one
// ECDSA record as JSON.
func fill(ctx context.Context, c client.Client, auth *issuance.Authority, n int, o options) (*x509.Certificate, int, int, error) {
	csrs, err := benchCSRs()
	if err != nil {
		return nil, 0, 0, err
	}
	k := quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: issuerName}
	every := 0
	if o.revokedPct > 0 {
		every = int(100 / o.revokedPct)
	}
	var (
		next, done, revoked atomic.Int64
		mu                  sync.Mutex
		firstErr            error
		revokedCert         *x509.Certificate
		recordBytes         int
		wg                  sync.WaitGroup
	)
	now := time.Now()
	for range o.concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := func() error {
					issued, err := auth.Sign(issuance.Request{CSR: csrs[i%len(csrs)], KeyUsage: x509.KeyUsageDigitalSignature,
						ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, issuance.Options{Now: now, DefaultDuration: 90 * 24 * time.Hour,
						CRLDistributionPoints: []string{"http://quill.invalid/crl"}, OCSPServers: []string{"http://quill.invalid/ocsp"}})
					if err != nil {
						return err
					}
					e, err := ledger.NewEntry(k, clusterNS, issued.Certificate, now, ledger.Origin{
						Kind: quillv1.OriginKindCertificateRequest, Namespace: "apps", Name: fmt.Sprintf("app-%d-1", i),
						UID: types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i)), Certificate: fmt.Sprintf("app-%d", i),
						Requester: "system:serviceaccount:cert-manager:cert-manager"})
					if err != nil {
						return err
					}
					if err := c.Create(ctx, e); err != nil {
						return fmt.Errorf("recording %s: %w", e.Name, err)
					}
					if i == 0 {
						b, _ := json.Marshal(e)
						mu.Lock()
						recordBytes = len(b)
						mu.Unlock()
					}
					if every > 0 && i%every == every/2 {
						e.Status.Revocation = &quillv1.RevocationRecord{Reason: quillv1.ReasonKeyCompromise,
							RevokedAt: metav1.NewTime(now), By: "ledgerscale"}
						if err := c.Status().Update(ctx, e); err != nil {
							return fmt.Errorf("revoking %s: %w", e.Name, err)
						}
						revoked.Add(1)
						mu.Lock()
						if revokedCert == nil {
							revokedCert = issued.Certificate
						}
						mu.Unlock()
					}
					return nil
				}(); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				if d := done.Add(1); d%10000 == 0 {
					step("  %d records", d)
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, 0, 0, firstErr
	}
	if revokedCert == nil {
		return nil, 0, 0, errors.New("no record was revoked: raise -revoked-percent or N")
	}
	return revokedCert, int(revoked.Load()), recordBytes, nil
}

// benchCSRs returns CSRs for a few distinct names and both key types; the
// certificates signed from them differ in serial, validity and signature,
// as every real record does.
func benchCSRs() ([][]byte, error) {
	var out [][]byte
	for i := range 8 {
		alg := issuance.ECDSAP256
		if i%2 == 1 {
			alg = issuance.RSA2048
		}
		key, err := issuance.GenerateKey(alg)
		if err != nil {
			return nil, err
		}
		der, err := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{
			DNSNames: []string{fmt.Sprintf("app-%d.apps.svc.cluster.local", i), fmt.Sprintf("app-%d.apps.svc", i)},
		}, key)
		if err != nil {
			return nil, err
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	}
	return out, nil
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

func firstCert(pemBytes []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(pemBytes)
	if b == nil {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
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
