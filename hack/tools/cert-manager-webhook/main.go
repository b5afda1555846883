// Command cert-manager-webhook runs cert-manager's own admission webhook
// (defaulting, validation, and the identity plugin that records a
// CertificateRequest's requester in spec.username, groups and uid) against
// the API server named by --kubeconfig, serving TLS from the given files.
//
// Upstream's webhook binary lives in a module the Go module proxy does not
// serve, and its server constructor is internal to the cert-manager module.
// This module therefore takes an import path under cert-manager's own (Go
// allows a package to import the internal packages of the tree its path is
// in) and calls that same constructor, so the admission chain that runs in
// Quill's tests is exactly upstream's, version for version.
package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/cert-manager/cert-manager/internal/apis/config/shared"
	config "github.com/cert-manager/cert-manager/internal/apis/config/webhook"
	"github.com/cert-manager/cert-manager/internal/webhook"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
)

func main() {
	// A flag set of its own: cert-manager's packages register flags of
	// their own (controller-runtime's --kubeconfig among them) on the
	// global set, and a second --kubeconfig there panics at start.
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "path to the kubeconfig of the cluster to run against (required)")
	port := fs.Int("secure-port", 0, "port to serve admission requests on, on every address (required)")
	certFile := fs.String("tls-cert-file", "", "PEM serving certificate and chain (required)")
	keyFile := fs.String("tls-private-key-file", "", "PEM serving key (required)")
	var klogFlags flag.FlagSet
	klog.InitFlags(&klogFlags)
	_ = klogFlags.Set("v", "2")
	fs.Var(klogFlags.Lookup("v").Value, "v", "log verbosity (cert-manager uses 2 for info, 4 for debug)")
	_ = fs.Parse(os.Args[1:])
	defer klog.Flush()

	if err := run(*kubeconfig, *port, *certFile, *keyFile); err != nil {
		klog.ErrorS(err, "cert-manager-webhook failed")
		klog.Flush()
		os.Exit(1)
	}
}

func run(kubeconfig string, port int, certFile, keyFile string) error {
	if kubeconfig == "" || port == 0 || certFile == "" || keyFile == "" {
		return errors.New("--kubeconfig, --secure-port, --tls-cert-file and --tls-private-key-file are required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := logf.Log
	ctx = logf.NewContext(ctx, log)

	opts := config.WebhookConfiguration{
		SecurePort: int32(port),
		// -1 would be refused; 0 picks a free port, which nothing polls:
		// the harness checks readiness through the secure port.
		HealthzPort: 0,
		KubeConfig:  kubeconfig,
		TLSConfig: shared.TLSConfig{
			Filesystem: shared.FilesystemServingConfig{CertFile: certFile, KeyFile: keyFile},
		},
		MetricsListenAddress: "0",
	}
	srv, err := webhook.NewCertManagerWebhookServer(log, opts)
	if err != nil {
		return err
	}
	if err := srv.Run(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}
