// Command cert-manager-controller runs the part of cert-manager's controller
// that Quill's tests depend on, against the API server named by --kubeconfig.
//
// Quill is a cert-manager external issuer, so its tests need the real
// cert-manager machinery that turns a Certificate into CertificateRequests and
// a signed CertificateRequest back into a Secret. Upstream's controller binary
// lives in a module the Go module proxy does not serve, and the test machines
// can reach nothing else, so this small main drives the same exported
// controller packages from the cert-manager module instead. It deliberately
// leaves out ACME, Vault, Venafi, the gateway shim, leader election, the
// webhook and the health endpoints: tests run one copy, on one throwaway
// cluster, and only need the built-in SelfSigned and CA issuers next to
// Quill, and the ingress shim for the documented Ingress sample.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/klog/v2"

	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	ingresses "github.com/cert-manager/cert-manager/pkg/controller/certificate-shim/ingresses"
	crapprover "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	// The issuers and clusterissuers controllers look issuer types up in a
	// registry filled by these packages' init functions; without them a
	// SelfSigned or CA issuer would never become Ready.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// defaultControllers is what "*" in --controllers stands for. Using the
// packages' own name constants (and importing them, which runs the init
// functions that register the controllers) means a cert-manager upgrade that
// renames a controller breaks the build rather than silently running less.
var defaultControllers = []string{
	issuers.ControllerName,
	clusterissuers.ControllerName,
	trigger.ControllerName,
	keymanager.ControllerName,
	requestmanager.ControllerName,
	issuing.ControllerName,
	readiness.ControllerName,
	revisionmanager.ControllerName,
	crselfsigned.CRControllerName,
	crca.CRControllerName,
	crapprover.ControllerName,
	ingresses.ControllerName,
}

const (
	// Workers per controller, as upstream runs by default.
	workers = 5

	// Tests create many Certificates at once; client-side throttling at
	// client-go's defaults would make them slow for no benefit. (cert-manager
	// drops client-side limits altogether when the API server has priority
	// and fairness enabled, as kube-apiserver does by default.)
	apiQPS   = 50
	apiBurst = 100
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "path to the kubeconfig of the cluster to run against (required)")
	clusterResourceNamespace := flag.String("cluster-resource-namespace", "cert-manager",
		"namespace holding the Secrets that ClusterIssuers refer to")
	controllers := flag.String("controllers", "*",
		"comma-separated controllers to run: * for the defaults ("+strings.Join(defaultControllers, ",")+
			"), name to add one, -name to remove one; e.g. *,-"+crapprover.ControllerName)
	metricsAddr := flag.String("metrics-listen-address", "0", "address to serve Prometheus metrics on, or 0 for none")
	// Of klog's many flags only the verbosity matters here: logs go to
	// stderr, where the test harness collects them.
	var klogFlags flag.FlagSet
	klog.InitFlags(&klogFlags)
	// 2 is cert-manager's info level: lifecycle messages and a line per
	// issuance step, without the per-sync debug noise (4).
	_ = klogFlags.Set("v", "2")
	flag.Var(klogFlags.Lookup("v").Value, "v", "log verbosity (cert-manager uses 2 for info, 4 for debug)")
	flag.Parse()
	defer klog.Flush()

	if err := run(*kubeconfig, *clusterResourceNamespace, *controllers, *metricsAddr); err != nil {
		klog.ErrorS(err, "cert-manager-controller failed")
		klog.Flush()
		os.Exit(1)
	}
}

func run(kubeconfig, clusterResourceNamespace, controllers, metricsAddr string) error {
	if kubeconfig == "" {
		return errors.New("--kubeconfig is required")
	}
	enabled, err := parseControllers(controllers)
	if err != nil {
		return err
	}

	// A signal cancels ctx; everything below then winds down and run returns
	// nil, so the tests see a clean exit rather than a kill.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, logf.Log)
	log := logf.FromContext(ctx)

	factory, err := controllerpkg.NewContextFactory(ctx, controllerpkg.ContextOptions{
		Kubeconfig:         kubeconfig,
		KubernetesAPIQPS:   apiQPS,
		KubernetesAPIBurst: apiBurst,
		IssuerOptions: controllerpkg.IssuerOptions{
			ClusterResourceNamespace: clusterResourceNamespace,
		},
		// Upstream's defaults, for Ingresses that name no issuer kind or
		// group.
		IngressShimOptions: controllerpkg.IngressShimOptions{
			DefaultIssuerKind:                 "Issuer",
			DefaultIssuerGroup:                "cert-manager.io",
			DefaultAutoCertificateAnnotations: []string{"kubernetes.io/tls-acme"},
		},
		CertificateOptions: controllerpkg.CertificateOptions{
			// Upstream's defaults: a Certificate's annotations, bar
			// those tools put there, reach its CertificateRequests,
			// which an external issuer may read.
			CopiedAnnotationPrefixes: []string{"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/"},
			// Also upstream's defaults. Zero turns backoff off: a failed
			// issuance would be retried at once, with a new
			// CertificateRequest each time, and a test would see a
			// stream of requests instead of one failed Certificate.
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
	})
	if err != nil {
		return err
	}
	// The shared informer factories live on the base context; each controller
	// gets its own Context (and user agent) from the factory but shares them.
	base, err := factory.Build()
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)

	if metricsAddr != "0" && metricsAddr != "" {
		// Collectors must be set up before the informers start.
		base.Metrics.SetupCertificateCollector(base.SharedInformerFactory.Certmanager().V1().Certificates().Lister())
		ln, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		srv := base.Metrics.NewServer(ln)
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Shutdown(shutdownCtx)
		})
	}

	known := controllerpkg.Known()
	for _, name := range enabled {
		c, err := known[name](factory)
		if err != nil {
			return fmt.Errorf("controller %s: %w", name, err)
		}
		g.Go(func() error {
			log.Info("starting controller", "controller", name)
			if err := c.Run(workers, gctx); err != nil {
				return fmt.Errorf("controller %s: %w", name, err)
			}
			return nil
		})
	}
	log.Info("controllers registered", "controllers", enabled)

	// Informers must start after every controller has asked for the ones it
	// needs, or those informers would never run.
	base.SharedInformerFactory.Start(gctx.Done())
	base.KubeSharedInformerFactory.Start(gctx.Done())
	base.HTTP01ResourceMetadataInformersFactory.Start(gctx.Done())

	err = g.Wait()
	base.HTTP01ResourceMetadataInformersFactory.Shutdown()
	base.KubeSharedInformerFactory.Shutdown()
	base.SharedInformerFactory.Shutdown()

	// A signal during start-up makes controllers give up waiting for their
	// caches with an error; that is still a requested shutdown.
	if ctx.Err() != nil {
		log.Info("stopped on signal")
		return nil
	}
	return err
}

// parseControllers applies the --controllers items left to right, so that
// "*,-x" means the defaults without x. Only controllers this binary compiled
// in are accepted; a typo fails loudly instead of disabling something.
func parseControllers(spec string) ([]string, error) {
	known := controllerpkg.Known()
	var set []string
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == "":
		case item == "*":
			for _, n := range defaultControllers {
				if !slices.Contains(set, n) {
					set = append(set, n)
				}
			}
		case strings.HasPrefix(item, "-"):
			name := item[1:]
			if _, ok := known[name]; !ok {
				return nil, fmt.Errorf("--controllers: unknown controller %q", name)
			}
			set = slices.DeleteFunc(set, func(n string) bool { return n == name })
		default:
			if _, ok := known[item]; !ok {
				return nil, fmt.Errorf("--controllers: unknown controller %q", item)
			}
			if !slices.Contains(set, item) {
				set = append(set, item)
			}
		}
	}
	if len(set) == 0 {
		return nil, errors.New("--controllers: no controllers enabled")
	}
	sort.Strings(set)
	return set, nil
}
