// Package e2e runs Quill end to end: a real kube-apiserver and etcd, the real
// cert-manager controller (built by `make tools`), and Quill's controllers in
// this test process, driven through cert-manager Certificates as a user
// would.
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/quill-pki/quill/controllers"
	"github.com/quill-pki/quill/test/harness"
)

// clusterResourceNamespace is where QuillClusterIssuers read Secrets in
// these tests.
const clusterResourceNamespace = "quill-system"

var env *harness.Env

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, &env, startControllers))
}

// startControllers starts cert-manager (with its built-in approver turned
// off in favour of the suite's policyApprover) and Quill's controllers
// against the environment.
func startControllers(e *harness.Env) (func(), error) {
	hsmDir, err := os.MkdirTemp("", "quill-e2e-softhsm-")
	if err != nil {
		return nil, err
	}
	if err := setupSoftHSM(hsmDir); err != nil {
		_ = os.RemoveAll(hsmDir)
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	for _, ns := range []string{"cert-manager", clusterResourceNamespace} {
		if err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			cancel()
			return nil, err
		}
	}
	if _, err := e.StartCertManager("--controllers=*,-certificaterequests-approver"); err != nil {
		cancel()
		return nil, err
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(logLevel())))
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{
		Scheme:                 e.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{MaxConcurrentReconciles: 4},
	})
	if err != nil {
		cancel()
		return nil, err
	}
	if err := controllers.Setup(ctx, mgr, controllers.Options{
		ClusterResourceNamespace: clusterResourceNamespace,
		MaxRetryDuration:         30 * time.Second,
		MaxConcurrentReconciles:  4,
		PKCS11Modules:            map[string]string{"softhsm": softHSMModule},
		HSM:                      countingHSM,
	}); err != nil {
		cancel()
		return nil, err
	}
	if err := ctrl.NewControllerManagedBy(mgr).Named("e2e-approver").For(&cmapi.CertificateRequest{}).
		Complete(&policyApprover{client: mgr.GetClient()}); err != nil {
		cancel()
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "quill manager:", err)
		}
		_ = os.RemoveAll(hsmDir)
	}, nil
}
