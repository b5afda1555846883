package harness

import (
	"context"
	"fmt"
	"os"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/quill-pki/quill/controllers"
)

// StartQuill runs Quill's controllers in the test process against the
// environment, configured as quill-controller configures them (workers as
// the manager-wide default, no metrics or probe listeners), logging at
// level to stderr. extra, when set, adds test fixtures (an approver, say)
// to the same manager before it starts. The returned function stops it.
func (e *Env) StartQuill(opts controllers.Options, level zapcore.Level, extra func(ctrl.Manager) error) (stop func(), err error) {
	workers := opts.MaxConcurrentReconciles
	if workers < 1 {
		workers = 1
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(level)))
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{
		Scheme:                 e.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{MaxConcurrentReconciles: workers},
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := controllers.Setup(ctx, mgr, opts); err != nil {
		cancel()
		return nil, err
	}
	if extra != nil {
		if err := extra(mgr); err != nil {
			cancel()
			return nil, err
		}
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
