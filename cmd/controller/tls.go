package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/quill-pki/quill/pkg/tlsconfig"
)

var (
	errHealthNeedsCert     = errors.New("--health-probe-secure needs --tls-cert-dir: kubelet probes need a certificate that outlives the pod's temporary folder")
	errRevocationNeedsCert = errors.New("--revocation-secure needs --tls-cert-dir: CRL and OCSP clients must be able to verify the endpoint's certificate")
)

// servingTLS is how quill-controller's own endpoints (metrics, health) use
// TLS. Every one of them takes its key exchange policy from pkg/tlsconfig,
// so hybrid post-quantum key exchange is on wherever TLS is.
type servingTLS struct {
	metricsSecure    bool
	healthSecure     bool
	revocationSecure bool
	certDir          string
	requirePQ        bool
}

func (s *servingTLS) bindFlags(fs *flag.FlagSet) {
	fs.BoolVar(&s.metricsSecure, "metrics-secure", false,
		"serve metrics over HTTPS (TLS 1.3 preferred, hybrid X25519MLKEM768 key exchange first)")
	fs.BoolVar(&s.healthSecure, "health-probe-secure", false,
		"serve /healthz and /readyz over HTTPS with the certificate of --tls-cert-dir")
	fs.BoolVar(&s.revocationSecure, "revocation-secure", false,
		"serve CRL and OCSP over HTTPS with the certificate of --tls-cert-dir (most CRL and OCSP clients expect plain HTTP: responses are signed)")
	fs.StringVar(&s.certDir, "tls-cert-dir", "",
		"folder with tls.crt and tls.key for the HTTPS endpoints, reloaded when they change; metrics fall back to a self-signed certificate without it")
	fs.BoolVar(&s.requirePQ, "tls-require-post-quantum", false,
		"refuse TLS clients that offer no post-quantum key exchange group (X25519MLKEM768, SecP256r1MLKEM768, SecP384r1MLKEM1024, MLKEM1024); implies TLS 1.3")
}

func (s servingTLS) validate() error {
	if s.healthSecure && s.certDir == "" {
		return errHealthNeedsCert
	}
	if s.revocationSecure && s.certDir == "" {
		return errRevocationNeedsCert
	}
	return nil
}

func (s servingTLS) certFiles() (cert, key string) {
	return filepath.Join(s.certDir, "tls.crt"), filepath.Join(s.certDir, "tls.key")
}

// metricsOptions are controller-runtime's metrics server options for addr.
func (s servingTLS) metricsOptions(addr string) metricsserver.Options {
	o := metricsserver.Options{BindAddress: addr}
	if !s.metricsSecure {
		return o
	}
	o.SecureServing = true
	o.TLSOpts = []func(*tls.Config){tlsconfig.KeyExchange(s.requirePQ)}
	if s.certDir != "" {
		o.CertDir, o.CertName, o.KeyName = s.certDir, "tls.crt", "tls.key"
	}
	return o
}

// healthServer serves live as /healthz and ready as /readyz over HTTPS on
// addr.
// controller-runtime's own probe server speaks plain HTTP only, so with
// --health-probe-secure the manager's is turned off and this one runs
// instead.
func (s servingTLS) healthServer(addr string, live, ready map[string]healthz.Checker) (unelected, error) {
	certFile, keyFile := s.certFiles()
	watcher, err := certwatcher.New(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("health probe certificate: %w", err)
	}
	mux := http.NewServeMux()
	for path, checks := range map[string]map[string]healthz.Checker{"/healthz": live, "/readyz": ready} {
		// healthz.Handler serves "/" and "/<check>", as in the manager's
		// own probe server.
		h := http.StripPrefix(path, &healthz.Handler{Checks: checks})
		mux.Handle(path, h)
		mux.Handle(path+"/", h)
	}
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         tlsconfig.Server(tlsconfig.Options{GetCertificate: watcher.GetCertificate, RequirePostQuantum: s.requirePQ}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	return unelected(func(ctx context.Context) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("health probe listener: %w", err)
		}
		go func() {
			if err := watcher.Start(ctx); err != nil {
				ctrl.Log.WithName("health").Error(err, "certificate watcher stopped")
			}
		}()
		go func() {
			<-ctx.Done()
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdownCtx)
		}()
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("health probe server: %w", err)
		}
		return nil
	}), nil
}

// revocationTLS is the TLS configuration of the CRL/OCSP endpoint under
// --revocation-secure (nil without it), and the certificate watcher that
// must run beside it on every replica.
func (s servingTLS) revocationTLS() (*tls.Config, unelected, error) {
	if !s.revocationSecure {
		return nil, nil, nil
	}
	certFile, keyFile := s.certFiles()
	watcher, err := certwatcher.New(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("CRL/OCSP endpoint certificate: %w", err)
	}
	cfg := tlsconfig.Server(tlsconfig.Options{GetCertificate: watcher.GetCertificate, RequirePostQuantum: s.requirePQ})
	return cfg, unelected(watcher.Start), nil
}

// unelected is a runnable that runs on every replica, not only the leader:
// probes must answer on all of them.
type unelected func(ctx context.Context) error

func (f unelected) Start(ctx context.Context) error { return f(ctx) }
func (unelected) NeedLeaderElection() bool          { return false }
