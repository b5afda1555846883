// Package integration tests Quill's API and issuer controllers against a
// real kube-apiserver and etcd (no cert-manager controller): schema and CEL
// validation, and issuer readiness for good and broken CAs.
package integration

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/quill-pki/quill/controllers"
	"github.com/quill-pki/quill/test/harness"
)

const clusterResourceNamespace = "quill-system"

var env *harness.Env

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, &env, startQuill))
}

func startQuill(e *harness.Env) (func(), error) {
	ctx, cancel := context.WithCancel(context.Background())
	if err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: clusterResourceNamespace}}); err != nil {
		cancel()
		return nil, err
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
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
		MaxRetryDuration:         time.Minute,
		MaxConcurrentReconciles:  2,
	}); err != nil {
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
	}, nil
}
