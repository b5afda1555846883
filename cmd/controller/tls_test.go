package main

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/pkg/ocspserver"
	"github.com/quill-pki/quill/pkg/tlsconfig"
	"github.com/quill-pki/quill/test/pq"
)

// freeAddr returns a loopback address nothing listens on right now;
// controller-runtime's servers take an address, not a listener.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// certDir writes a Quill-issued ML-DSA-65 chain as tls.crt and tls.key.
func certDir(t *testing.T) (string, pq.Chain) {
	t.Helper()
	c, err := pq.NewChain(issuance.MLDSA65, issuance.MLDSA65, issuance.MLDSA65)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, data := range map[string][]byte{"tls.crt": c.LeafChainPEM, "tls.key": c.LeafKeyPEM, "ca.crt": c.RootPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, c
}

// get fetches url with a client restricted to curves (nil: Go's default,
// hybrid first) and returns the body and the negotiated group.
func get(ctx context.Context, c pq.Chain, url string, curves []tls.CurveID) (string, tls.CurveID, error) {
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.Roots(), ServerName: "localhost", CurvePreferences: curves}}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(body), 0, errors.New(resp.Status)
	}
	return string(body), resp.TLS.CurveID, err
}

// eventually retries f until the server started in the background answers.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err = f(); err == nil {
			return
		}
	}
	t.Fatal(err)
}

// checkEndpoint asserts what every TLS endpoint of the controller does
// under --tls-require-post-quantum: a default Go client and OpenSSL 3.5's
// s_client negotiate X25519MLKEM768 and verify the Quill ML-DSA chain; a
// classical-only client is refused.
func checkEndpoint(t *testing.T, ctx context.Context, c pq.Chain, addr, path, wantBody string) {
	t.Helper()
	url := "https://" + addr + path
	eventually(t, func() error {
		body, group, err := get(ctx, c, url, nil)
		if err != nil {
			return err
		}
		if group != tls.X25519MLKEM768 || !strings.Contains(body, wantBody) {
			t.Fatalf("GET %s: group %s, body %.200q", url, group, body)
		}
		return nil
	})
	if _, group, err := get(ctx, c, url, []tls.CurveID{tls.X25519, tls.CurveP256}); err == nil {
		t.Errorf("GET %s with a classical-only client succeeded with %s", url, group)
	}
	bin := pq.OpenSSL35(t)
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, c.RootPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, "s_client", "-connect", addr, "-servername", "localhost", "-CAfile", ca, "-verify_return_error", "-brief")
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Negotiated TLS1.3 group: X25519MLKEM768") || !strings.Contains(string(out), "Verification: OK") {
		t.Errorf("s_client against %s: %v\n%s", addr, err, out)
	}
}

func TestMetricsOverHybridTLS(t *testing.T) {
	t.Parallel()
	dir, chain := certDir(t)
	s := servingTLS{metricsSecure: true, certDir: dir, requirePQ: true}
	addr := freeAddr(t)
	srv, err := metricsserver.NewServer(s.metricsOptions(addr), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	checkEndpoint(t, ctx, chain, addr, "/metrics", "# HELP")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("metrics server: %v", err)
	}
}

func TestHealthOverHybridTLS(t *testing.T) {
	t.Parallel()
	dir, chain := certDir(t)
	s := servingTLS{healthSecure: true, certDir: dir, requirePQ: true}
	if err := s.validate(); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	index := ledger.NewIndex()
	health, err := s.healthServer(addr, map[string]healthz.Checker{"ping": healthz.Ping},
		map[string]healthz.Checker{"ping": healthz.Ping, "ledger": index.ReadyCheck})
	if err != nil {
		t.Fatal(err)
	}
	if health.NeedLeaderElection() {
		t.Error("the health server must run on every replica")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- health.Start(ctx) }()
	// While the ledger is loading the replica is alive but not ready: a
	// failed liveness probe would restart it in the middle of the load.
	checkEndpoint(t, ctx, chain, addr, "/healthz", "ok")
	if body, _, err := get(ctx, chain, "https://"+addr+"/readyz", nil); err == nil || !strings.Contains(body, "[-]ledger failed") {
		t.Fatalf("/readyz before the ledger is read: %v, %q; want 500 naming the ledger check", err, body)
	}
	if err := index.Replace(nil, "1"); err != nil {
		t.Fatal(err)
	}
	checkEndpoint(t, ctx, chain, addr, "/readyz", "ok")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("health server: %v", err)
	}
}

func TestMetricsOptions(t *testing.T) {
	t.Parallel()
	if o := (servingTLS{}).metricsOptions(":8080"); o.SecureServing || len(o.TLSOpts) != 0 {
		t.Errorf("plain metrics got TLS options: %+v", o)
	}
	o := servingTLS{metricsSecure: true}.metricsOptions(":8443")
	if !o.SecureServing || len(o.TLSOpts) != 1 || o.CertDir != "" {
		t.Fatalf("secure metrics without a folder: %+v", o)
	}
	cfg := &tls.Config{}
	o.TLSOpts[0](cfg)
	if cfg.CurvePreferences[0] != tls.X25519MLKEM768 || !tlsconfig.IsPostQuantum(cfg.CurvePreferences[0]) {
		t.Errorf("metrics curve preferences %v", cfg.CurvePreferences)
	}
	if err := (servingTLS{healthSecure: true}).validate(); !errors.Is(err, errHealthNeedsCert) {
		t.Errorf("health over HTTPS without a certificate: %v", err)
	}
}

// TestRevocationOverHybridTLS serves a CRL through pkg/ocspserver's handler
// and server, as the CRL/OCSP endpoint does under --revocation-secure, and
// checks the endpoint's key exchange like the others.
func TestRevocationOverHybridTLS(t *testing.T) {
	t.Parallel()
	if err := (servingTLS{revocationSecure: true}).validate(); !errors.Is(err, errRevocationNeedsCert) {
		t.Errorf("--revocation-secure without a certificate: %v", err)
	}
	if cfg, w, err := (servingTLS{}).revocationTLS(); cfg != nil || w != nil || err != nil {
		t.Errorf("plain endpoint got TLS: %v %v %v", cfg, w, err)
	}
	dir, chain := certDir(t)
	s := servingTLS{revocationSecure: true, certDir: dir, requirePQ: true}
	cfg, watcher, err := s.revocationTLS()
	if err != nil {
		t.Fatal(err)
	}
	if watcher.NeedLeaderElection() {
		t.Error("the certificate watcher must run on every replica")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() { _ = watcher.Start(ctx) }()
	crl := []byte("crl bytes")
	now := time.Now()
	srv := ocspserver.NewServer("", ocspserver.CRLHandler(func() ([]byte, time.Time, time.Time, bool) {
		return crl, now, now.Add(time.Hour), true
	}, nil))
	srv.TLSConfig = cfg
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()
	checkEndpoint(t, ctx, chain, ln.Addr().String(), "/crl/clusterissuer/ca.crl", "crl bytes")
}
