package harness

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// This file holds the steps the end-to-end suites share: waiting for
// cert-manager and Quill resources, and checking what they produced with
// Go's x509 and with OpenSSL as an outside verifier.

// WaitTimeout bounds every wait for a resource to become Ready; on a loaded
// 2-core machine cert-manager's first Certificate takes a few seconds.
const WaitTimeout = 90 * time.Second

// Eventually polls cond every 200 ms until it returns true, and fails the
// test with the last error cond returned when timeout passes.
func Eventually(t testing.TB, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s (last: %v)", timeout, what, last)
}

// Namespace creates a namespace named prefix plus random hex, deleted after
// the test.
func (e *Env) Namespace(t testing.TB, prefix string) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: prefix + hex.EncodeToString(b)}}
	if err := e.Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() { _ = e.Client.Delete(context.Background(), ns) })
	return ns.Name
}

// Create creates obj or fails the test.
func (e *Env) Create(t testing.TB, obj client.Object) {
	t.Helper()
	if err := e.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// Certificate is a cert-manager Certificate fixture: Secret <name>-tls,
// common name and DNS name <name>.example.test, changed by opts.
func Certificate(ns, name string, ref cmmeta.IssuerReference, opts ...func(*cmapi.Certificate)) *cmapi.Certificate {
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

// WaitIssuerReady waits until a QuillIssuer or QuillClusterIssuer reports
// Ready=True for its current generation, and leaves the fresh object in
// obj.
func (e *Env) WaitIssuerReady(t testing.TB, obj client.Object) {
	t.Helper()
	Eventually(t, "issuer "+obj.GetName()+" Ready", WaitTimeout, func() (bool, error) {
		if err := e.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return false, err
		}
		var conds []metav1.Condition
		switch o := obj.(type) {
		case *quillv1.QuillIssuer:
			conds = o.Status.Conditions
		case *quillv1.QuillClusterIssuer:
			conds = o.Status.Conditions
		}
		for _, c := range conds {
			if c.Type == "Ready" && c.ObservedGeneration == obj.GetGeneration() {
				return c.Status == metav1.ConditionTrue, fmt.Errorf("Ready=%s (%s: %s)", c.Status, c.Reason, c.Message)
			}
		}
		return false, nil
	})
}

// WaitCertificateReady waits for a Certificate's Ready condition and
// returns its Secret, which must hold tls.crt, tls.key and ca.crt; on
// failure it reports the conditions of the Certificate and of its
// CertificateRequests.
func (e *Env) WaitCertificateReady(t testing.TB, ns, name string) *corev1.Secret {
	t.Helper()
	ctx := context.Background()
	var crt cmapi.Certificate
	Eventually(t, "Certificate "+ns+"/"+name+" Ready", WaitTimeout, func() (bool, error) {
		if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &crt); err != nil {
			return false, err
		}
		for _, c := range crt.Status.Conditions {
			if c.Type == cmapi.CertificateConditionReady && c.Status == cmmeta.ConditionTrue {
				return true, nil
			}
		}
		return false, fmt.Errorf("conditions %s; requests: %s", certificateConditions(crt.Status.Conditions), e.RequestConditions(ns))
	})
	var secret corev1.Secret
	if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: crt.Spec.SecretName}, &secret); err != nil {
		t.Fatalf("reading Secret %s: %v", crt.Spec.SecretName, err)
	}
	for _, k := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if len(secret.Data[k]) == 0 {
			t.Fatalf("Secret %s/%s has no %s", ns, secret.Name, k)
		}
	}
	return &secret
}

func certificateConditions(cs []cmapi.CertificateCondition) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%s=%s(%s: %s)", c.Type, c.Status, c.Reason, c.Message))
	}
	return strings.Join(parts, ", ")
}

// RequestConditions describes the conditions of every CertificateRequest
// in ns, for failure messages.
func (e *Env) RequestConditions(ns string) string {
	var list cmapi.CertificateRequestList
	if err := e.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
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

// ParseCerts parses every PEM certificate in data and fails the test when
// there is none or one does not parse.
func ParseCerts(t testing.TB, data []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for _, block := range SplitPEM(data) {
		b, _ := pem.Decode([]byte(block))
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

// SplitPEM returns each PEM block of data, re-encoded.
func SplitPEM(data []byte) []string {
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

// VerifyChain checks a cert-manager TLS Secret the way a TLS peer would,
// twice: with Go's x509 and with OpenSSL (`openssl verify`), trusting only
// ca.crt and using the rest of tls.crt as untrusted intermediates. It
// returns the leaf.
func VerifyChain(t testing.TB, secret *corev1.Secret, usage x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	chain := ParseCerts(t, secret.Data["tls.crt"])
	roots := x509.NewCertPool()
	for _, r := range ParseCerts(t, secret.Data["ca.crt"]) {
		roots.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		t.Fatalf("Go x509 verification of %s: %v", secret.Name, err)
	}
	OpenSSLVerify(t, secret.Data["ca.crt"], secret.Data["tls.crt"], usage)
	return chain[0]
}

// OpenSSLVerify runs the system OpenSSL as an outside verifier: chainPEM's
// first certificate must verify for usage against caPEM, with the rest of
// chainPEM as untrusted intermediates.
func OpenSSLVerify(t testing.TB, caPEM, chainPEM []byte, usage x509.ExtKeyUsage) {
	t.Helper()
	dir := t.TempDir()
	blocks := SplitPEM(chainPEM)
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

// Metric sums the samples of Prometheus metric name, scraped from url in
// the text format, whose labels include every given label="value" pair.
func Metric(t testing.TB, url, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: %s", url, resp.Status)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(line, l)
		}
		if !match {
			continue
		}
		f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += f
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	return sum
}

// Run runs bin/<name> (built by `make build`) in dir with environ added to
// the test's environment, and returns its standard output; it fails the
// test, with the standard error, when the command fails.
func (e *Env) Run(t testing.TB, dir string, environ []string, name string, args ...string) []byte {
	t.Helper()
	bin, err := e.binary(name)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), environ...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// FreeAddress picks a free loopback port for a listener started later.
func FreeAddress() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
