// Package startup restarts quill-controller over a large ledger and checks
// issue 15's promise for the start-up window: OCSP never gives an answer
// other than the true one or tryLater, tryLater is never cacheable, the
// CRL served never loses a revocation, and /readyz says not ready until
// the ledger is read.
//
// QUILL_STARTUP_RECORDS sets the ledger size (default 3000, which keeps
// the test to a few seconds of load); `make bench-startup` runs it at
// 100,000 and prints the figures recorded in docs/benchmarks.md.
package startup

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
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
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/revocationdata"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/ledger"
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
	ca, caPEM, keyPEM := newCA(t)
	issuerName := "startup"
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: clusterNS, Name: "startup-ca"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: caPEM, corev1.TLSPrivateKeyKey: keyPEM, "ca.crt": caPEM},
	})
	iss := &quillv1.QuillClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: issuerName}}
	iss.Spec.CA.SecretRef = &quillv1.SecretReference{Name: "startup-ca"}
	create(t, iss)
	k := iss.ID()

	n := records()
	revokedSerial := big.NewInt(int64(n/2 + 1))
	start := time.Now()
	fill(t, ca, k, n, revokedSerial)
	t.Logf("ledger: %d records written in %s", n, time.Since(start).Round(time.Millisecond))

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
	leaf := &x509.Certificate{SerialNumber: revokedSerial}
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

// fill writes n ledger records for k, serials 1..n, all carrying one real
// certificate PEM (a record's size is what matters here), and revokes
// revoked through the status subresource as the revocation controller
// does.
func fill(t *testing.T, ca *x509.Certificate, k quillv1.IssuerID, n int, revoked *big.Int) {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 5000, 5000
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	leafPEM := samplePEM(t)
	now := time.Now().UTC()
	sum := sha256.Sum256(leafPEM)
	work := make(chan int)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				s := big.NewInt(int64(i))
				e := &quillv1.IssuedCertificate{
					ObjectMeta: metav1.ObjectMeta{Name: ledger.EntryName(k, s), Namespace: clusterNS, Labels: map[string]string{ledger.LabelIssuerKind: k.Kind}},
					Spec: quillv1.IssuedCertificateSpec{
						IssuerRef: k.Ref(), SerialNumber: ledger.SerialHex(s), Subject: "CN=app-" + strconv.Itoa(i),
						IssuedAt: metav1.NewMicroTime(now), NotBefore: metav1.NewTime(now.Add(-time.Minute)), NotAfter: metav1.NewTime(now.Add(90 * 24 * time.Hour)),
						KeyAlgorithm: "ECDSA-P256", SignatureAlgorithm: "ECDSA-SHA256", SHA256Fingerprint: hex.EncodeToString(sum[:]),
						Origin:      quillv1.LedgerOrigin{Kind: "CertificateRequest", Namespace: "apps", Name: "app-" + strconv.Itoa(i), UID: "uid-" + strconv.Itoa(i)},
						Certificate: string(leafPEM),
					},
				}
				if err := c.Create(context.Background(), e); err != nil {
					errs <- err
					return
				}
				if s.Cmp(revoked) == 0 {
					e.Status.Revocation = &quillv1.RevocationRecord{Reason: quillv1.ReasonKeyCompromise, RevokedAt: metav1.NewTime(now), By: "test"}
					if err := c.Status().Update(context.Background(), e); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	for i := 1; i <= n; i++ {
		select {
		case work <- i:
		case err := <-errs:
			close(work)
			wg.Wait()
			t.Fatal(err)
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	var check quillv1.IssuedCertificate
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: clusterNS, Name: ledger.EntryName(k, revoked)}, &check); err != nil || check.Status.Revocation == nil {
		t.Fatalf("the revoked record: %v, %+v", err, check.Status)
	}
}

func newCA(t *testing.T) (*x509.Certificate, []byte, []byte) {
	t.Helper()
	certPEM, keyPEM, err := issuance.NewSelfSignedRoot(pkix.Name{CommonName: "Startup Test CA"}, issuance.ECDSAP256, 365*24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certPEM, keyPEM
}

// samplePEM is a leaf certificate PEM the size of a real one.
func samplePEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "app.apps.svc"}, DNSNames: []string{"app.apps.svc", "app.apps.svc.cluster.local"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(90 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
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
