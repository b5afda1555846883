package issuance

import (
	"context"
	"time"

	issuerapi "github.com/cert-manager/issuer-lib/api/v1alpha1"
	"github.com/cert-manager/issuer-lib/controllers"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/controller"

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

// Setup registers issuer-lib's issuer and CertificateRequest reconcilers,
// with s's Check and Sign, the reconciler that finishes denied requests,
// and Quill's own reconciler of Kubernetes CSRs (csrReconciler), which
// replaces issuer-lib's: it serves QuillIssuer signer names too, and fails
// what it will not sign instead of leaving it silent.
func (s *Signer) Setup(ctx context.Context, mgr ctrl.Manager, cfg Config) error {
	if err := (&deniedReconciler{client: mgr.GetClient(), clock: cfg.Clock, recorder: cfg.Recorder}).setup(mgr); err != nil {
		return err
	}
	opts := controller.Options{MaxConcurrentReconciles: cfg.MaxConcurrentReconciles}
	// recheck wakes issuer-lib's issuer reconciler, whose health check
	// then decides whether the issuer is still Ready; issuer-lib's own
	// channel for this serves only its own request reconcilers.
	recheck := issuers.NewTrigger(func(quillv1.IssuerID) time.Duration { return 0 })
	if !cfg.DisableKubernetesCSRs {
		if err := (&csrReconciler{
			client: mgr.GetClient(), sign: s.Sign, recheck: recheck.Fire, audit: s.Audit,
			clock: cfg.Clock, recorder: cfg.Recorder, maxWait: cfg.MaxRetryDuration,
		}).setup(mgr, opts); err != nil {
			return err
		}
	}
	return (&controllers.CombinedController{
		IssuerTypes:                    []issuerapi.Issuer{&quillv1.QuillIssuer{}},
		ClusterIssuerTypes:             []issuerapi.Issuer{&quillv1.QuillClusterIssuer{}},
		FieldOwner:                     issuers.FieldOwner,
		MaxRetryDuration:               cfg.MaxRetryDuration,
		Check:                          s.Check,
		Sign:                           s.Sign,
		EventRecorder:                  withoutIssuedEvents(cfg.Recorder),
		Clock:                          cfg.Clock,
		SetCAOnCertificateRequest:      true,
		DisableKubernetesCSRController: true, // csrReconciler signs Kubernetes CSRs
		PreSetupWithManager: func(ctx context.Context, gvk schema.GroupVersionKind, mgr ctrl.Manager, b *builder.Builder) error {
			if kind := (quillv1.IssuerID{Kind: gvk.Kind}).NewObject(); gvk.Group == quillv1.GroupVersion.Group && kind != nil {
				b.WatchesRawSource(recheck.Source(kind))
			}
			return cfg.Secrets.Add(ctx, gvk, mgr, b)
		},
		ControllerOptions: opts,
	}).SetupWithManager(ctx, mgr)
}
