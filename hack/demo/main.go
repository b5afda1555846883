// Command demo is `make demo`: Quill's main job on the embedded default. It
// starts a local control plane (kube-apiserver and etcd built by `make
// tools`), the cert-manager controller and quill-controller; lays out a
// two-level PKI (a bootstrap root QuillClusterIssuer and an issuing CA
// signed by it); issues a server and a client certificate through
// cert-manager Certificates; runs an HTTPS server that requires client
// certificates and connects to it with the client certificate; revokes the
// client certificate and shows Quill's OCSP answer and published CRL
// refusing it; prints a report; writes the PEM files and the CRL to -out;
// and stops everything. It exits
// non-zero on any failure.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/tlsconfig"
	"github.com/quill-pki/quill/test/harness"
)

const (
	clusterNS = "quill-system"
	demoNS    = "demo"
)

var errNotReady = errors.New("not ready")

func main() {
	out := flag.String("out", "_out/demo", "folder the issued PEM files are written to")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "demo: FAILED:", err)
		os.Exit(1)
	}
}

func run(out string) (err error) {
	start := time.Now()
	step("starting kube-apiserver and etcd")
	env, err := harness.Start()
	if err != nil {
		return err
	}
	defer func() {
		step("stopping quill-controller, cert-manager and the control plane")
		if stopErr := env.Stop(); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	c := env.Client

	for _, ns := range []string{"cert-manager", clusterNS, demoNS} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	step("starting cert-manager controller and quill-controller")
	if _, err := env.StartCertManager(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	revAddr := ln.Addr().String()
	_ = ln.Close()
	if _, err := env.StartProcess("quill-controller", "--kubeconfig", env.Kubeconfig,
		"--cluster-resource-namespace", clusterNS, "--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--revocation-bind-address", revAddr, "--revocation-base-url", "http://"+revAddr); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			fmt.Fprintf(os.Stderr, "--- quill-controller log ---\n%s\n--- cert-manager log (tail) ---\n%s\n",
				tail(env.Log("quill-controller"), 40), tail(env.Log("cert-manager-controller"), 40))
		}
	}()

	step("creating QuillClusterIssuer demo-root (bootstrap root CA, ECDSA P-384)")
	if err := c.Create(ctx, &quillv1.QuillClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-root"},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{
			SecretName:   "demo-root-ca",
			Subject:      quillv1.Subject{CommonName: "Quill Demo Root CA", Organizations: []string{"Quill Demo"}},
			KeyAlgorithm: "ECDSA-P384",
		}}},
	}); err != nil {
		return err
	}
	if err := waitIssuer(ctx, c, "demo-root"); err != nil {
		return err
	}

	step("issuing the intermediate CA through a cert-manager Certificate (isCA) from demo-root")
	if err := c.Create(ctx, &cmapi.Certificate{
		ObjectMeta: metav1.ObjectMeta{Namespace: clusterNS, Name: "demo-issuing-ca"},
		Spec: cmapi.CertificateSpec{
			IsCA:       true,
			CommonName: "Quill Demo Issuing CA",
			Subject:    &cmapi.X509Subject{Organizations: []string{"Quill Demo"}},
			SecretName: "demo-issuing-ca",
			Duration:   &metav1.Duration{Duration: 5 * 365 * 24 * time.Hour},
			PrivateKey: &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256},
			IssuerRef:  cmmeta.IssuerReference{Group: "quill.dev", Kind: quillv1.ClusterIssuerKind, Name: "demo-root"},
		},
	}); err != nil {
		return err
	}
	if err := waitCertificate(ctx, c, clusterNS, "demo-issuing-ca"); err != nil {
		return err
	}
	step("creating QuillClusterIssuer demo-issuing from that Secret")
	if err := c.Create(ctx, &quillv1.QuillClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-issuing"},
		Spec: quillv1.IssuerSpec{
			CA:       quillv1.CASource{SecretRef: &quillv1.SecretReference{Name: "demo-issuing-ca"}},
			Issuance: quillv1.IssuancePolicy{MaxDuration: &metav1.Duration{Duration: 90 * 24 * time.Hour}},
			// A new CRL a second after a revocation, for the demo's sake.
			Revocation: quillv1.RevocationPolicy{CRL: quillv1.CRLPolicy{BatchDelay: &metav1.Duration{Duration: time.Second}}},
		},
	}); err != nil {
		return err
	}
	if err := waitIssuer(ctx, c, "demo-issuing"); err != nil {
		return err
	}

	step("issuing a server and a client certificate from demo-issuing")
	issuing := cmmeta.IssuerReference{Group: "quill.dev", Kind: quillv1.ClusterIssuerKind, Name: "demo-issuing"}
	for _, crt := range []*cmapi.Certificate{
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: demoNS, Name: "server"},
			Spec: cmapi.CertificateSpec{
				CommonName:  "server.demo.svc",
				DNSNames:    []string{"server.demo.svc", "localhost"},
				IPAddresses: []string{"127.0.0.1"},
				Usages:      []cmapi.KeyUsage{cmapi.UsageServerAuth, cmapi.UsageDigitalSignature},
				PrivateKey:  &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256},
				SecretName:  "server-tls",
				IssuerRef:   issuing,
			},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: demoNS, Name: "client"},
			Spec: cmapi.CertificateSpec{
				CommonName: "client.demo.svc",
				URIs:       []string{"spiffe://demo.quill.dev/ns/demo/sa/client"},
				Usages:     []cmapi.KeyUsage{cmapi.UsageClientAuth, cmapi.UsageDigitalSignature},
				PrivateKey: &cmapi.CertificatePrivateKey{Algorithm: cmapi.Ed25519KeyAlgorithm},
				SecretName: "client-tls",
				IssuerRef:  issuing,
			},
		},
	} {
		if err := c.Create(ctx, crt); err != nil {
			return err
		}
	}
	for _, name := range []string{"server", "client"} {
		if err := waitCertificate(ctx, c, demoNS, name); err != nil {
			return err
		}
	}
	server, err := getSecret(ctx, c, demoNS, "server-tls")
	if err != nil {
		return err
	}
	clientSecret, err := getSecret(ctx, c, demoNS, "client-tls")
	if err != nil {
		return err
	}
	if err := writeOut(out, server, clientSecret); err != nil {
		return err
	}

	step("mutual TLS: HTTPS server from server-tls, requiring a client certificate; client from client-tls")
	report, err := mutualTLS(server, clientSecret)
	if err != nil {
		return err
	}
	step("revoking the client certificate; asking Quill's OCSP responder; checking clients against the published CRL")
	revReport, err := revokeClient(ctx, c, out, server, clientSecret)
	if err != nil {
		return err
	}
	fmt.Println()
	fmt.Print(report)
	fmt.Print(revReport)
	fmt.Printf("PEM files written to %s\n", out)
	fmt.Printf("demo: OK in %s\n\n", time.Since(start).Round(time.Second))
	return nil
}

func step(msg string) { fmt.Printf("==> %s\n", msg) }

func waitIssuer(ctx context.Context, c client.Client, name string) error {
	var iss quillv1.QuillClusterIssuer
	return poll(ctx, "QuillClusterIssuer "+name, func() error {
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &iss); err != nil {
			return err
		}
		for _, cond := range iss.Status.Conditions {
			if cond.Type == "Ready" && cond.Status == metav1.ConditionTrue && cond.ObservedGeneration == iss.Generation {
				return nil
			}
			if cond.Type == "Ready" {
				return fmt.Errorf("%w: %s: %s", errNotReady, cond.Reason, cond.Message)
			}
		}
		return errNotReady
	})
}

func waitCertificate(ctx context.Context, c client.Client, ns, name string) error {
	var crt cmapi.Certificate
	return poll(ctx, "Certificate "+ns+"/"+name, func() error {
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &crt); err != nil {
			return err
		}
		for _, cond := range crt.Status.Conditions {
			if cond.Type == cmapi.CertificateConditionReady && cond.Status == cmmeta.ConditionTrue {
				return nil
			}
			if cond.Type == cmapi.CertificateConditionReady {
				return fmt.Errorf("%w: %s: %s", errNotReady, cond.Reason, cond.Message)
			}
		}
		return errNotReady
	})
}

// poll retries check every 200ms for up to two minutes.
func poll(ctx context.Context, what string, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func getSecret(ctx context.Context, c client.Client, ns, name string) (*corev1.Secret, error) {
	var s corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		return nil, fmt.Errorf("reading Secret %s/%s: %w", ns, name, err)
	}
	return &s, nil
}

func writeOut(dir string, server, clientSecret *corev1.Secret) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := map[string][]byte{
		"ca.crt":     server.Data["ca.crt"],
		"server.crt": server.Data["tls.crt"],
		"server.key": server.Data["tls.key"],
		"client.crt": clientSecret.Data["tls.crt"],
		"client.key": clientSecret.Data["tls.key"],
	}
	for name, data := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".key") {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, mode); err != nil {
			return err
		}
	}
	return nil
}

// mutualTLS serves HTTPS on loopback with the server Secret, requiring a
// client certificate that chains to ca.crt, and makes one request with the
// client Secret. It returns the report.
func mutualTLS(server, clientSecret *corev1.Secret) (string, error) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(server.Data["ca.crt"]) {
		return "", errors.New("server-tls ca.crt holds no certificate")
	}
	serverPair, err := tls.X509KeyPair(server.Data["tls.crt"], server.Data["tls.key"])
	if err != nil {
		return "", fmt.Errorf("server key pair: %w", err)
	}
	clientPair, err := tls.X509KeyPair(clientSecret.Data["tls.crt"], clientSecret.Data["tls.key"])
	if err != nil {
		return "", fmt.Errorf("client key pair: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			peer := r.TLS.PeerCertificates[0]
			fmt.Fprintf(w, "hello %s (%s)", peer.Subject.CommonName, peer.URIs[0])
		}),
		// Quill's server policy: hybrid X25519MLKEM768 key exchange, and
		// clients that offer no post-quantum group are refused.
		TLSConfig: tlsconfig.Server(tlsconfig.Options{
			Certificates:       []tls.Certificate{serverPair},
			ClientAuth:         tls.RequireAndVerifyClientCert,
			ClientCAs:          roots,
			RequirePostQuantum: true,
		}),
		ReadHeaderTimeout: 5 * time.Second,
		// The refused anonymous client below is expected; its handshake
		// error would only clutter the report.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{clientPair},
		RootCAs:      roots,
		MinVersion:   tls.VersionTLS12,
	}}}
	// The URL uses the IP SAN; the DNS SAN "localhost" is checked too.
	resp, err := hc.Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		return "", fmt.Errorf("mutual TLS request: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("mutual TLS request: HTTP %d", resp.StatusCode)
	}
	// A client without a certificate must be refused.
	anon := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	if r, err := anon.Get("https://" + ln.Addr().String() + "/"); err == nil {
		r.Body.Close()
		return "", errors.New("server accepted a client without a certificate")
	}
	// Nor may a client whose key exchange a quantum computer could break.
	classical := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{clientPair}, RootCAs: roots, CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
	}}}
	if r, err := classical.Get("https://" + ln.Addr().String() + "/"); err == nil {
		r.Body.Close()
		return "", errors.New("server accepted a client offering only classical key exchange")
	}

	st := resp.TLS
	if st.CurveID != tls.X25519MLKEM768 {
		return "", fmt.Errorf("key exchange %s, want X25519MLKEM768", st.CurveID)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Mutual TLS exchange verified\n")
	fmt.Fprintf(&b, "  TLS version:   %s\n", tls.VersionName(st.Version))
	fmt.Fprintf(&b, "  cipher suite:  %s\n", tls.CipherSuiteName(st.CipherSuite))
	fmt.Fprintf(&b, "  key exchange:  %s\n", st.CurveID)
	fmt.Fprintf(&b, "  response:      %q\n", body)
	fmt.Fprintf(&b, "  a client without a certificate was refused\n")
	fmt.Fprintf(&b, "  a client offering only classical key exchange (X25519, P-256) was refused\n")
	fmt.Fprintf(&b, "Server chain (as presented):\n")
	for _, c := range st.PeerCertificates {
		fmt.Fprintf(&b, "  %s\n", describe(c))
	}
	fmt.Fprintf(&b, "Client certificate:\n  %s\n", describe(clientPair.Leaf))
	root, _ := pem.Decode(server.Data["ca.crt"])
	if root != nil {
		if rc, err := x509.ParseCertificate(root.Bytes); err == nil {
			fmt.Fprintf(&b, "Trust anchor (ca.crt):\n  %s\n", describe(rc))
		}
	}
	return b.String(), nil
}

func describe(c *x509.Certificate) string {
	s := fmt.Sprintf("subject=%q issuer=%q valid %s..%s key=%s sig=%s",
		c.Subject.String(), c.Issuer.String(), c.NotBefore.UTC().Format(time.DateOnly), c.NotAfter.UTC().Format(time.DateOnly),
		c.PublicKeyAlgorithm, c.SignatureAlgorithm)
	if len(c.DNSNames)+len(c.IPAddresses)+len(c.URIs) > 0 {
		var sans []string
		sans = append(sans, c.DNSNames...)
		for _, ip := range c.IPAddresses {
			sans = append(sans, ip.String())
		}
		for _, u := range c.URIs {
			sans = append(sans, u.String())
		}
		s += " SANs=" + strings.Join(sans, ",")
	}
	return s
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
