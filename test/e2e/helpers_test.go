package e2e

import (
	"os"
	"testing"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
