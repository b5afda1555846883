package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/quill-pki/quill/test/harness"
)

// logLevel keeps the in-process controllers quiet: the suite provokes
// errors on purpose, and failures are reported by the tests themselves.
// QUILL_E2E_VERBOSE=1 shows everything.
func logLevel() zapcore.Level {
	if os.Getenv("QUILL_E2E_VERBOSE") != "" {
		return zapcore.DebugLevel
	}
	return zapcore.DPanicLevel
}

// newNamespace creates a namespace with a random name, deleted after the test.
func newNamespace(t *testing.T) string {
	t.Helper()
	return env.Namespace(t, "e2e-")
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	env.Create(t, obj)
}

// eventually polls cond until it returns true or harness.WaitTimeout passes.
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	harness.Eventually(t, what, harness.WaitTimeout, cond)
}

// The fixtures and checks the suites share, under the names this suite
// uses.
var (
	certificate   = harness.Certificate
	parseCerts    = harness.ParseCerts
	verifyChain   = harness.VerifyChain
	opensslVerify = harness.OpenSSLVerify
	splitPEM      = harness.SplitPEM
	freeAddress   = harness.FreeAddress
)

func waitCertificateReady(t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()
	return env.WaitCertificateReady(t, ns, name)
}

// quillctl runs bin/quillctl in dir and returns its standard output.
func quillctl(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	return env.Run(t, dir, nil, "quillctl", args...)
}

func requestConditions(ns string) string { return env.RequestConditions(ns) }

// ignoreNotFound is for cleanups of objects a test may already have removed.
func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// scrape serves controller-runtime's metrics registry (what
// quill-controller serves on --metrics-bind-address) on loopback and
// returns a function reading it.
func scrape(t *testing.T) func() (string, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(crmetrics.Registry, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return func() (string, error) {
		resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
}

// waitMetrics waits until every line in want is in the scraped metrics;
// filter picks the lines a failure message shows.
func waitMetrics(t *testing.T, get func() (string, error), filter string, want ...string) {
	t.Helper()
	eventually(t, "the scraped metrics "+strings.Join(want, ", "), func() (bool, error) {
		body, err := get()
		if err != nil {
			return false, err
		}
		for _, w := range want {
			// A want ending in a space names a series whose value
			// the test cannot know.
			if !strings.Contains(body, w+"\n") && !(strings.HasSuffix(w, " ") && strings.Contains(body, "\n"+w)) {
				var have []string
				for _, l := range strings.Split(body, "\n") {
					if strings.HasPrefix(l, "quill_") && strings.Contains(l, filter) {
						have = append(have, l)
					}
				}
				return false, fmt.Errorf("missing %s; have:\n%s", w, strings.Join(have, "\n"))
			}
		}
		return true, nil
	})
}
