// Package startup restarts quill-controller over a large ledger and checks
// issue 15's promise for the start-up window: OCSP never gives an answer
// other than the true one or tryLater, tryLater is never cacheable, the
// CRL served never loses a revocation, and /readyz says not ready until
// the ledger is read.
//
// QUILL_STARTUP_RECORDS sets the ledger size (default 3000, which keeps
// the test to a few seconds of load); `make bench-startup` runs it at
// 100,000 and prints the figures recorded in docs/benchmarks.md.
// QUILL_STARTUP_FORMAT=legacy writes the ledger as one IssuedCertificate per
// certificate, as before LedgerSegments, instead of sealed segments
// (hack/bench/ledgerfill writes both).
package startup

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/revocationdata"
	"github.com/quill-pki/quill/hack/bench/ledgerfill"
	"github.com/quill-pki/quill/test/harness"
)

const clusterNS = "quill-system"

var env *harness.Env

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, &env, func(e *harness.Env) (func(), error) {
		err := e.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: clusterNS}})
		return func() {}, err
	}))
}

func format(t *testing.T) ledgerfill.Format {
	v := os.Getenv("QUILL_STARTUP_FORMAT")
	if v == "" {
		return ledgerfill.FormatSegments
	}
	f, err := ledgerfill.ParseFormat(v)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func records() int {
	if n, err := strconv.Atoi(os.Getenv("QUILL_STARTUP_RECORDS")); err == nil && n > 0 {
		return n
	}
	return 3000
}

// tally counts what the clients saw during one controller start.
type tally struct {
	mu                                            sync.Mutex
	revoked, tryLater, refused, crlOK, crlRefused int
	wrong                                         []string
	firstAnswer, firstRevoked, firstReady         time.Duration
	tryLaterAfterReady                            int
}

func (t *tally) fail(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.wrong) < 20 {
		t.wrong = append(t.wrong, fmt.Sprintf(format, args...))
	}
}

// TestRestartNeverAnswersWrongly fills the ledger, starts quill-controller
// once so that it publishes a CRL, then restarts it while clients ask
// about a revoked serial over OCSP (GET, as caches see it, and with a
// nonce), fetch the CRL and poll /readyz.
func TestRestartNeverAnswersWrongly(t *testing.T) {
	authority, err := ledgerfill.NewCA("Startup Test CA", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ca := authority.Cert
	issuerName := "startup"
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: clusterNS, Name: "startup-ca"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: authority.CertPEM, corev1.TLSPrivateKeyKey: authority.KeyPEM, "ca.crt": authority.CertPEM},
	})
	iss := &quillv1.QuillClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: issuerName}}
	iss.Spec.CA.SecretRef = &quillv1.SecretReference{Name: "startup-ca"}
	create(t, iss)
	k := iss.ID()

	n, f := records(), format(t)
	start := time.Now()
	leaf := fill(t, authority, k, n, f)
	revokedSerial := leaf.SerialNumber
	t.Logf("ledger: %d records written as %s in %s", n, f, time.Since(start).Round(time.Millisecond))

	ocspAddr, err := harness.FreeAddress()
	if err != nil {
		t.Fatal(err)
	}
	probeAddr, err := harness.FreeAddress()
	if err != nil {
		t.Fatal(err)
	}
	run := func() (stop func() error) {
		stop, err := env.StartProcess("quill-controller", "--kubeconfig", env.Kubeconfig, "--cluster-resource-namespace", clusterNS,
			"--metrics-bind-address", "0", "--health-probe-bind-address", probeAddr, "--revocation-bind-address", ocspAddr,
			"--revocation-base-url", "http://"+ocspAddr)
		if err != nil {
			t.Fatal(err)
		}
		return stop
	}
	getReq, err := ocsp.CreateRequest(leaf, ca, nil)
	if err != nil {
		t.Fatal(err)
	}
	postURL := "http://" + ocspAddr + "/ocsp/" + revocationdata.IssuerPath(k)
	getURL := postURL + "/" + url.PathEscape(base64.StdEncoding.EncodeToString(getReq))
	crlURL := "http://" + ocspAddr + "/crl/" + revocationdata.IssuerPath(k) + ".crl"

	// First start: wait until the CRL is published and OCSP answers.
	stop := run()
	harness.Eventually(t, "the first start to publish a CRL listing the revoked serial", 3*time.Minute, func() (bool, error) {
		return crlLists(crlURL, revokedSerial), nil
	})
	if err := stop(); err != nil {
		t.Logf("stopping quill-controller: %v", err)
	}

	// Restart, with clients asking from before the process listens.
	var tl tally
	done := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	var ready atomic.Bool
	began := time.Now()
	stop = run()
	t.Cleanup(func() { _ = stop() })
	for w := range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				ask(t, client, getURL, postURL, ca, leaf, w%2 == 1, &tl, &ready, began)
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			resp, err := client.Get(crlURL)
			if err != nil {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			tl.mu.Lock()
			if resp.StatusCode == http.StatusOK {
				tl.crlOK++
			} else {
				tl.crlRefused++
			}
			tl.mu.Unlock()
			if resp.StatusCode == http.StatusOK && !listsSerial(body, revokedSerial) {
				tl.fail("a CRL without the revoked serial was served %s after the start", time.Since(began))
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			resp, err := client.Get("http://" + probeAddr + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK && !ready.Load() {
					// Answers already in flight may still be tryLater;
					// only ones asked after this moment must not be.
					time.Sleep(10 * time.Millisecond)
					tl.mu.Lock()
					tl.firstReady = time.Since(began)
					tl.mu.Unlock()
					ready.Store(true)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	// Ask until a good while after the first true answer.
	harness.Eventually(t, "OCSP to answer revoked after the restart", 5*time.Minute, func() (bool, error) {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		return tl.revoked >= 200 && ready.Load(), nil
	})
	close(done)
	wg.Wait()

	t.Logf("restart with %d records: first OCSP answer %s, first revoked %s, ready %s; answers: %d revoked, %d tryLater (%d after ready), %d HTTP refusals; CRL fetches: %d served, %d refused",
		n, tl.firstAnswer.Round(time.Millisecond), tl.firstRevoked.Round(time.Millisecond), tl.firstReady.Round(time.Millisecond),
		tl.revoked, tl.tryLater, tl.tryLaterAfterReady, tl.refused, tl.crlOK, tl.crlRefused)
	for _, w := range tl.wrong {
		t.Error(w)
	}
	if tl.tryLaterAfterReady > 0 {
		t.Errorf("%d tryLater answers to requests sent after /readyz said ready", tl.tryLaterAfterReady)
	}
	if t.Failed() {
		t.Logf("--- quill-controller log ---\n%s", env.Log("quill-controller"))
	}
}

// ask sends one OCSP request (GET without nonce, or POST with one) and
// checks the answer.
func ask(t *testing.T, client *http.Client, getURL, postURL string, ca, leaf *x509.Certificate, withNonce bool, tl *tally, ready *atomic.Bool, began time.Time) {
	wasReady := ready.Load()
	var resp *http.Response
	var err error
	if withNonce {
		resp, err = client.Post(postURL, "application/ocsp-request", bytes.NewReader(nonceRequest(t, leaf, ca)))
	} else {
		resp, err = client.Get(getURL)
	}
	if err != nil {
		time.Sleep(5 * time.Millisecond) // not listening yet
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	since := time.Since(began)
	if resp.StatusCode != http.StatusOK {
		tl.mu.Lock()
		tl.refused++
		tl.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		return
	}
	tl.mu.Lock()
	if tl.firstAnswer == 0 {
		tl.firstAnswer = since
	}
	tl.mu.Unlock()
	parsed, perr := ocsp.ParseResponseForCert(body, leaf, ca)
	if re, ok := perr.(ocsp.ResponseError); ok && re.Status == ocsp.TryLater {
		if cc := resp.Header.Get("Cache-Control"); cc != "" && cc != "no-store" {
			tl.fail("tryLater with Cache-Control %q", cc)
		}
		tl.mu.Lock()
		tl.tryLater++
		if wasReady {
			tl.tryLaterAfterReady++
		}
		tl.mu.Unlock()
		return
	}
	switch {
	case perr != nil:
		tl.fail("%s after the start: unparsable answer: %v", since, perr)
	case parsed.Status != ocsp.Revoked:
		tl.fail("%s after the start: status %d (0 good, 2 unknown) for a revoked serial, Cache-Control %q", since, parsed.Status, resp.Header.Get("Cache-Control"))
	default:
		tl.mu.Lock()
		tl.revoked++
		if tl.firstRevoked == 0 {
			tl.firstRevoked = since
		}
		tl.mu.Unlock()
	}
}

// fill writes a ledger of n entries for k in format f (hack/bench/ledgerfill:
// real certificates, 1 % revoked) and returns one revoked certificate.
func fill(t *testing.T, ca *ledgerfill.CA, k quillv1.IssuerID, n int, f ledgerfill.Format) *x509.Certificate {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 5000, 5000
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	concurrency := 16
	if f == ledgerfill.FormatSegments {
		concurrency = 2 // signing is the work; the writes are few
	}
	res, err := ledgerfill.Fill(context.Background(), c, ledgerfill.Spec{Issuer: k, Home: clusterNS, Authority: ca.Authority,
		Format: f, N: n, RevokedPercent: 1, Concurrency: concurrency})
	if err != nil {
		t.Fatal(err)
	}
	if res.RevokedCert == nil || res.Live != n {
		t.Fatalf("ledger: %d live entries of %d, revoked certificate %v", res.Live, n, res.RevokedCert != nil)
	}
	return res.RevokedCert
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
}

func crlLists(url string, serial *big.Int) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == http.StatusOK && listsSerial(body, serial)
}

func listsSerial(der []byte, serial *big.Int) bool {
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return false
	}
	for _, e := range list.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return true
		}
	}
	return false
}

// nonceRequest is an OCSP request for leaf carrying an RFC 8954 nonce,
// which x/crypto/ocsp cannot write: its request re-encoded with the
// extension added.
func nonceRequest(t *testing.T, leaf, ca *x509.Certificate) []byte {
	type certID struct {
		HashAlgorithm pkix.AlgorithmIdentifier
		NameHash      []byte
		IssuerKeyHash []byte
		SerialNumber  *big.Int
	}
	type request struct{ Cert certID }
	type tbsRequest struct {
		RequestList []request
		Extensions  []pkix.Extension `asn1:"explicit,tag:2,optional"`
	}
	type ocspRequest struct{ TBS tbsRequest }
	plain, err := ocsp.CreateRequest(leaf, ca, nil)
	if err != nil {
		t.Error(err)
		return nil
	}
	var req ocspRequest
	if _, err := asn1.Unmarshal(plain, &req); err != nil {
		t.Error(err)
		return nil
	}
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	value, _ := asn1.Marshal(nonce)
	req.TBS.Extensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}, Value: value}}
	der, err := asn1.Marshal(req)
	if err != nil {
		t.Error(err)
	}
	return der
}
