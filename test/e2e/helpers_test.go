package e2e

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// waitTimeout bounds every wait for a resource to become Ready; on a loaded
// 2-core machine cert-manager's first Certificate takes a few seconds.
const waitTimeout = 90 * time.Second

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
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "e2e-" + hex.EncodeToString(b)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), ns) })
	return name
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// eventually polls cond until it returns true or the timeout passes.
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s (last: %v)", waitTimeout, what, last)
}

// certificate is a cert-manager Certificate fixture.
func certificate(ns, name string, ref cmmeta.IssuerReference, opts ...func(*cmapi.Certificate)) *cmapi.Certificate {
	c := &cmapi.Certificate{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: cmapi.CertificateSpec{
			SecretName: name + "-tls",
			CommonName: name + ".example.test",
			DNSNames:   []string{name + ".example.test"},
			IssuerRef:  ref,
		},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// waitCertificateReady waits for a Certificate's Ready condition and returns
// its Secret; on failure it reports the conditions of the Certificate and
// of its CertificateRequests.
func waitCertificateReady(t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()
	ctx := context.Background()
	var crt cmapi.Certificate
	eventually(t, "Certificate "+ns+"/"+name+" Ready", func() (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &crt); err != nil {
			return false, err
		}
		for _, c := range crt.Status.Conditions {
			if c.Type == cmapi.CertificateConditionReady && c.Status == cmmeta.ConditionTrue {
				return true, nil
			}
		}
		return false, fmt.Errorf("conditions %s; requests: %s", conditionsOf(crt.Status.Conditions), requestConditions(ns))
	})
	var secret corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: crt.Spec.SecretName}, &secret); err != nil {
		t.Fatalf("reading Secret %s: %v", crt.Spec.SecretName, err)
	}
	for _, k := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if len(secret.Data[k]) == 0 {
			t.Fatalf("Secret %s/%s has no %s", ns, secret.Name, k)
		}
	}
	return &secret
}

func conditionsOf(cs []cmapi.CertificateCondition) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%s=%s(%s: %s)", c.Type, c.Status, c.Reason, c.Message))
	}
	return strings.Join(parts, ", ")
}

func requestConditions(ns string) string {
	var list cmapi.CertificateRequestList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		return err.Error()
	}
	var parts []string
	for _, cr := range list.Items {
		var cs []string
		for _, c := range cr.Status.Conditions {
			cs = append(cs, fmt.Sprintf("%s=%s(%s: %s)", c.Type, c.Status, c.Reason, c.Message))
		}
		parts = append(parts, cr.Name+": "+strings.Join(cs, ", "))
	}
	return strings.Join(parts, "; ")
}

func parseCerts(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("parsing certificate: %v", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		t.Fatal("no certificate in PEM data")
	}
	return out
}

// verifyChain checks a cert-manager TLS Secret the way a TLS peer would,
// twice: with Go's x509 and with OpenSSL (`openssl verify`), trusting only
// ca.crt and using the rest of tls.crt as untrusted intermediates. It
// returns the leaf.
func verifyChain(t *testing.T, secret *corev1.Secret, usage x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	chain := parseCerts(t, secret.Data["tls.crt"])
	roots := x509.NewCertPool()
	for _, r := range parseCerts(t, secret.Data["ca.crt"]) {
		roots.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		t.Fatalf("Go x509 verification of %s: %v", secret.Name, err)
	}
	opensslVerify(t, secret.Data["ca.crt"], secret.Data["tls.crt"], usage)
	return chain[0]
}

// opensslVerify runs the system OpenSSL as an outside verifier.
func opensslVerify(t *testing.T, caPEM, chainPEM []byte, usage x509.ExtKeyUsage) {
	t.Helper()
	dir := t.TempDir()
	blocks := splitPEM(chainPEM)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	args := []string{"verify", "-CAfile", write("ca.pem", caPEM)}
	if len(blocks) > 1 {
		args = append(args, "-untrusted", write("untrusted.pem", []byte(strings.Join(blocks[1:], ""))))
	}
	switch usage {
	case x509.ExtKeyUsageServerAuth:
		args = append(args, "-purpose", "sslserver")
	case x509.ExtKeyUsageClientAuth:
		args = append(args, "-purpose", "sslclient")
	}
	args = append(args, write("leaf.pem", []byte(blocks[0])))
	out, err := exec.Command("openssl", args...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": OK") {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func splitPEM(data []byte) []string {
	var out []string
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		out = append(out, string(pem.EncodeToMemory(b)))
	}
}

// ignoreNotFound is for cleanups of objects a test may already have removed.
func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
