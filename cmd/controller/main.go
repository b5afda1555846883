// Command quill-controller runs Quill's issuer and request controllers: it
// signs cert-manager CertificateRequests and Kubernetes
// CertificateSigningRequests addressed to QuillIssuers and
// QuillClusterIssuers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers"
	"github.com/quill-pki/quill/pkg/ledger"
)

var (
	errNoNamespace = errors.New("--cluster-resource-namespace must not be empty")
	errBadModule   = errors.New("want name=/absolute/path/to/library.so")

	errRelativeArchive = errors.New("--ledger-archive-dir must be an absolute path")
	errBadSealAfter    = errors.New("--ledger-seal-after must be positive")
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "quill-controller:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		clusterNS      string
		metricsAddr    string
		probeAddr      string
		leaderElect    bool
		leaderNS       string
		maxRetry       time.Duration
		workers        int
		disableK8sCSRs bool
		qps            float64
		burst          int
		revAddr        string
		ocspNonceRate  float64
		revBaseURL     string
		cmUsername     string
		archiveDir     string
		sealAfter      time.Duration
		migrate        bool
	)
	// --kubeconfig is registered by controller-runtime's config package.
	flag.StringVar(&clusterNS, "cluster-resource-namespace", "quill-system",
		"the only namespace QuillClusterIssuers read CA Secrets from")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 disables it")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints; 0 disables them")
	flag.BoolVar(&leaderElect, "leader-elect", false, "elect one active controller among replicas")
	flag.StringVar(&leaderNS, "leader-election-namespace", "", "namespace of the leader election lease (default: the pod's namespace)")
	flag.DurationVar(&maxRetry, "max-retry-duration", 2*time.Minute,
		"how long a request whose signing keeps failing with a retryable error stays Pending before it is marked Failed")
	flag.IntVar(&workers, "workers", 4, "concurrent reconciles per controller")
	flag.Float64Var(&qps, "kube-api-qps", 200, "client-side limit of API requests per second (the API server's priority and fairness still applies)")
	flag.IntVar(&burst, "kube-api-burst", 400, "client-side burst of API requests")
	flag.BoolVar(&disableK8sCSRs, "disable-kubernetes-csrs", false, "do not sign Kubernetes CertificateSigningRequests")
	flag.Float64Var(&ocspNonceRate, "ocsp-max-nonce-signatures-per-second", 1000,
		"fresh OCSP nonce signatures per second on this replica, all issuers together, above each issuer's own bound; 0 for no ceiling")
	flag.StringVar(&revAddr, "revocation-bind-address", ":8082", "address of the CRL and OCSP HTTP endpoint, served by every replica; 0 disables it")
	flag.StringVar(&revBaseURL, "revocation-base-url", "",
		"URL at which clients reach the CRL/OCSP endpoint (e.g. http://quill.quill-system.svc:8082); embedded in certificates of issuers that set no URLs of their own")
	flag.StringVar(&cmUsername, "cert-manager-username", controllers.DefaultCertManagerUsername,
		"the user cert-manager's controller authenticates as: only CertificateRequests it created (spec.username, recorded by cert-manager's webhook) count as a Certificate's, for revocation of superseded and deleted Certificates' certificates")
	flag.StringVar(&archiveDir, "ledger-archive-dir", "",
		"directory (a mounted volume) of the ledger archive: entries whose certificates expired longer ago than their issuer's spec.ledger.retainExpiredFor move there from the cluster; empty turns retention off and nothing leaves the live ledger")
	flag.DurationVar(&sealAfter, "ledger-seal-after", ledger.DefaultSealAfter,
		"how old a ledger journal is before the leader seals it into a compact segment (dropping certificates no request needs any more)")
	flag.BoolVar(&migrate, "ledger-migrate", true,
		"when the leader starts, convert the legacy ledger (one IssuedCertificate per certificate) into sealed segments and delete the IssuedCertificates; false leaves them, still read")
	modules := map[string]string{}
	flag.Func("pkcs11-module", "allow a PKCS#11 library for spec.ca.pkcs11.module, as name=/absolute/path.so (repeatable)", func(v string) error {
		name, path, ok := strings.Cut(v, "=")
		if !ok || name == "" || !filepath.IsAbs(path) {
			return errBadModule
		}
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("PKCS#11 module %s: %w", name, err)
		}
		modules[name] = path
		return nil
	})
	var serving servingTLS
	serving.bindFlags(flag.CommandLine)
	showVersion := flag.Bool("version", false, "print the version and exit")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	if *showVersion {
		return printVersion(os.Stdout)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	if soft, err := setMemoryLimit(cgroupMemoryFiles); err != nil {
		ctrl.Log.Error(err, "not setting the Go memory limit")
	} else if soft > 0 {
		ctrl.Log.Info("Go memory limit set from the container's", "bytes", soft)
	}

	if clusterNS == "" {
		return errNoNamespace
	}
	if archiveDir != "" && !filepath.IsAbs(archiveDir) {
		return errRelativeArchive
	}
	if sealAfter <= 0 {
		return errBadSealAfter
	}
	if err := serving.validate(); err != nil {
		return err
	}
	managerProbeAddr := probeAddr
	if serving.healthSecure {
		managerProbeAddr = "0" // served over HTTPS by healthServer below
	}

	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, cmapi.AddToScheme, quillv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return fmt.Errorf("building scheme: %w", err)
		}
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	// Signing is cheap and every Certificate costs two request status
	// writes, so a low client-side limit caps issuance before the API
	// server does: at 50 QPS Quill topped out at 25 Certificates/s in the
	// issuance benchmark (docs/benchmarks.md).
	cfg.QPS, cfg.Burst = float32(qps), burst

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 serving.metricsOptions(metricsAddr),
		HealthProbeBindAddress:  managerProbeAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "quill-controller.quill.dev",
		LeaderElectionNamespace: leaderNS,
		// The default for every controller: issuer-lib passes its own
		// ControllerOptions only to the issuer reconcilers, so without this
		// the request reconcilers would run one worker each.
		Controller: config.Controller{MaxConcurrentReconciles: workers},
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	revTLS, revWatcher, err := serving.revocationTLS()
	if err != nil {
		return err
	}
	if revWatcher != nil {
		if err := mgr.Add(revWatcher); err != nil {
			return err
		}
	}
	// Not ready until the ledger is read: until then OCSP answers only
	// tryLater, so a Service should send clients to a replica that has it.
	index := ledger.NewIndex()
	readyChecks := map[string]healthz.Checker{"ping": healthz.Ping, "ledger": index.ReadyCheck}
	if err := controllers.Setup(ctx, mgr, controllers.Options{
		ClusterResourceNamespace:     clusterNS,
		MaxRetryDuration:             maxRetry,
		MaxConcurrentReconciles:      workers,
		DisableKubernetesCSRs:        disableK8sCSRs,
		PKCS11Modules:                modules,
		RevocationBindAddress:        revAddr,
		RevocationTLSConfig:          revTLS,
		OCSPNonceSignaturesPerSecond: ocspNonceRate,
		RevocationBaseURL:            strings.TrimSuffix(revBaseURL, "/"),
		CertManagerUsername:          cmUsername,
		LedgerIndex:                  index,
		LedgerArchiveDir:             archiveDir,
		LedgerSealAfter:              sealAfter,
		SkipLedgerMigration:          !migrate,
	}); err != nil {
		return fmt.Errorf("setting up controllers: %w", err)
	}
	if serving.healthSecure && probeAddr != "0" {
		health, err := serving.healthServer(probeAddr, map[string]healthz.Checker{"ping": healthz.Ping}, readyChecks)
		if err != nil {
			return err
		}
		if err := mgr.Add(health); err != nil {
			return err
		}
	} else if probeAddr != "0" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return err
		}
		for name, check := range readyChecks {
			if err := mgr.AddReadyzCheck(name, check); err != nil {
				return err
			}
		}
	}
	return start(ctx, mgr)
}

func start(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("running manager: %w", err)
	}
	return nil
}
