package issuance

import (
	"context"
	"fmt"
	"time"

	"github.com/cert-manager/issuer-lib/controllers"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/source"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/issuers"
)

// RBAC for the issuer-lib reconcilers and the CA store.
// +kubebuilder:rbac:groups=quill.dev,resources=quillissuers;quillclusterissuers,verbs=get;list;watch
// +kubebuilder:rbac:groups=quill.dev,resources=quillissuers/status;quillclusterissuers/status,verbs=get;patch;update
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificaterequests,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificaterequests/status,verbs=get;patch;update
// +kubebuilder:rbac:groups=certificates.k8s.io,resources=certificatesigningrequests,verbs=get;list;watch
// +kubebuilder:rbac:groups=certificates.k8s.io,resources=certificatesigningrequests/status,verbs=get;patch;update
// +kubebuilder:rbac:groups=certificates.k8s.io,resources=signers,verbs=sign,resourceNames=quillissuers.quill.dev/*;quillclusterissuers.quill.dev/*
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch

// Config is what the issuance controllers need beside the Signer.
type Config struct {
	// MaxRetryDuration is how long a request whose signing keeps failing
	// with a retryable error stays Pending before it is marked Failed; an
	// approved Kubernetes CSR also waits at most this long for its issuer
	// to exist and be Ready.
	MaxRetryDuration time.Duration
	// MaxConcurrentReconciles of the issuer reconcilers.
	MaxConcurrentReconciles int
	// DisableKubernetesCSRs turns off signing of Kubernetes
	// CertificateSigningRequests.
	DisableKubernetesCSRs bool
	// Secrets re-runs an issuer's health check when a Secret it reads
	// changes.
	Secrets  *issuers.SecretWatch
	Clock    clock.PassiveClock
	Recorder events.EventRecorder
}

// Setup registers issuer-lib's issuer reconcilers, with s's Check, and
// Quill's own reconcilers of requests, with s's Sign: requestReconciler for
// cert-manager CertificateRequests and csrReconciler for Kubernetes CSRs.
// Both replace issuer-lib's: a CertificateRequest is signed on its first
// reconcile instead of after an Initializing status write, a denied one is
// finished, and a Kubernetes CSR is served for QuillIssuer signer names
// too and failed, not left silent, when Quill will not sign it.
func (s *Signer) Setup(ctx context.Context, mgr ctrl.Manager, cfg Config) error {
	opts := controller.Options{MaxConcurrentReconciles: max(cfg.MaxConcurrentReconciles, 1)}
	// recheck wakes issuer-lib's issuer reconciler, whose health check
	// then decides whether the issuer is still Ready.
	recheck := issuers.NewTrigger(func(quillv1.IssuerID) time.Duration { return 0 })
	if err := (&requestReconciler{
		client: mgr.GetClient(), sign: s.Sign, recheck: recheck.Fire,
		clock: cfg.Clock, recorder: cfg.Recorder, maxRetry: cfg.MaxRetryDuration,
	}).setup(ctx, mgr, opts); err != nil {
		return err
	}
	if !cfg.DisableKubernetesCSRs {
		if err := (&csrReconciler{
			client: mgr.GetClient(), sign: s.Sign, recheck: recheck.Fire, audit: s.Audit,
			clock: cfg.Clock, recorder: cfg.Recorder, maxWait: cfg.MaxRetryDuration,
		}).setup(mgr, opts); err != nil {
			return err
		}
	}
	for _, kind := range quillv1.IssuerKinds() {
		if err := (&controllers.IssuerReconciler{
			ForObject:         kind,
			FieldOwner:        issuers.FieldOwner,
			EventSource:       issuerRechecks{recheck},
			Client:            mgr.GetClient(),
			Check:             s.Check,
			EventRecorder:     cfg.Recorder,
			Clock:             cfg.Clock,
			ControllerOptions: opts,
			PreSetupWithManager: func(ctx context.Context, gvk schema.GroupVersionKind, mgr ctrl.Manager, b *builder.Builder) error {
				return cfg.Secrets.Add(ctx, gvk, mgr, b)
			},
		}).SetupWithManager(ctx, mgr); err != nil {
			return fmt.Errorf("%s reconciler: %w", kind.ID().Kind, err)
		}
	}
	return nil
}

// issuerRechecks is the channel through which issuer-lib's issuer
// reconciler hears that a request found its issuer at fault: Quill's
// request reconcilers fire the Trigger, which re-runs the issuer's health
// check, and the check's verdict is the issuer's status. So nothing is
// ever reported through ReportError, and HasReportedError has nothing to
// tell.
type issuerRechecks struct{ trigger *issuers.Trigger }

func (e issuerRechecks) AddConsumer(gvk schema.GroupVersionKind) source.Source {
	return e.trigger.Source(quillv1.IssuerID{Kind: gvk.Kind}.NewObject())
}

func (issuerRechecks) ReportError(schema.GroupVersionKind, types.NamespacedName, error) error {
	return nil
}

func (issuerRechecks) HasReportedError(schema.GroupVersionKind, types.NamespacedName) error {
	return nil
}
