package controllers

import (
	"context"
	"crypto/tls"
	"slices"
	"time"

	issuerapi "github.com/cert-manager/issuer-lib/api/v1alpha1"
	"github.com/cert-manager/issuer-lib/controllers"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/audit"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/metrics"
	"github.com/quill-pki/quill/pkg/pkcs11"
)

// FieldOwner is the server-side apply field manager of everything Quill's
// controllers write.
const FieldOwner = "quill.dev"

// Options configure the controllers; cmd/controller fills them from flags.
type Options struct {
	// ClusterResourceNamespace is the only namespace QuillClusterIssuers
	// read Secrets from.
	ClusterResourceNamespace string
	// MaxRetryDuration is how long a request whose signing keeps failing
	// with a retryable error stays Pending before it is marked Failed.
	MaxRetryDuration time.Duration
	// MaxConcurrentReconciles of the issuer reconcilers. issuer-lib v0.11.0
	// does not pass it on to its request reconcilers: set the manager's
	// Controller.MaxConcurrentReconciles too (cmd/controller does).
	MaxConcurrentReconciles int
	// DisableKubernetesCSRs turns off signing of Kubernetes
	// CertificateSigningRequests.
	DisableKubernetesCSRs bool
	// PKCS11Modules is the allow-list of PKCS#11 libraries issuers may name
	// in spec.ca.pkcs11.module: name -> library path.
	PKCS11Modules map[string]string
	// Clock is the controllers' time; nil means the real clock.
	Clock clock.PassiveClock
	// RevocationBaseURL is where clients reach Quill's CRL and OCSP
	// endpoints (e.g. http://quill.quill-system.svc:8082); certificates of
	// issuers that name no URLs of their own point there.
	RevocationBaseURL string
	// RevocationBindAddress is the listen address of the CRL and OCSP HTTP
	// server; empty or "0" serves nothing.
	RevocationBindAddress string
	// RevocationTLSConfig, when set, serves CRL and OCSP over HTTPS with
	// it instead of plain HTTP.
	RevocationTLSConfig *tls.Config
	// DisableLedger stops recording issued certificates. Only the ledger
	// benchmark sets it: unrecorded certificates cannot be revoked.
	DisableLedger bool
	// AuditLog receives the audit lines (pkg/audit); the zero value means
	// the manager's logger, named "audit". Tests set it to read them.
	AuditLog logr.Logger
	// Metrics records Quill's quill_ metrics; nil means a set registered
	// with controller-runtime's registry, served on the manager's metrics
	// endpoint.
	Metrics *metrics.Metrics
}

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

// Setup registers Quill's issuer and request controllers with mgr.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
		if err := opts.Metrics.Register(crmetrics.Registry); err != nil {
			return err
		}
	}
	store := &castore.Store{
		Reader:        mgr.GetAPIReader(),
		Metadata:      mgr.GetCache(),
		Writer:        mgr.GetClient(),
		Clock:         opts.Clock,
		PKCS11Modules: opts.PKCS11Modules,
		PKCS11Login: func(module, token string, r pkcs11.LoginResult) {
			opts.Metrics.PKCS11Login(module, token, string(r))
		},
	}
	if opts.AuditLog.GetSink() == nil {
		opts.AuditLog = mgr.GetLogger().WithName("audit")
	}
	recorder := mgr.GetEventRecorder(FieldOwner)
	s := &Signer{
		Store:                    store,
		StatusWriter:             mgr.GetClient(),
		ClusterResourceNamespace: opts.ClusterResourceNamespace,
		FieldOwner:               FieldOwner + "/ca-status",
		Clock:                    opts.Clock,
		Recorder:                 recorder,
		Templates:                mgr.GetClient(),
		Metrics:                  opts.Metrics,
		Audit:                    audit.Logger{Log: opts.AuditLog},
		KeySecretReader:          mgr.GetAPIReader(),
		KeySecretWriter:          mgr.GetClient(),
	}
	if !opts.DisableLedger {
		if err := setupRevocation(mgr, opts, store, s, recorder); err != nil {
			return err
		}
	}
	if err := (&deniedReconciler{client: mgr.GetClient(), clock: opts.Clock, recorder: recorder}).setup(mgr); err != nil {
		return err
	}
	for _, kind := range quillv1.IssuerKinds() {
		if err := (&intermediateReconciler{
			client: mgr.GetClient(), store: store, clusterNamespace: opts.ClusterResourceNamespace,
			kind: kind, clock: opts.Clock, recorder: recorder,
		}).setup(mgr); err != nil {
			return err
		}
	}
	for _, kind := range quillv1.IssuerKinds() {
		if err := (&trustBundleReconciler{
			client: mgr.GetClient(), reader: mgr.GetAPIReader(), store: store, clusterNamespace: opts.ClusterResourceNamespace, kind: kind, recorder: recorder,
			secrets: &secretWatch{client: mgr.GetClient(), clusterNamespace: opts.ClusterResourceNamespace},
		}).setup(mgr); err != nil {
			return err
		}
	}
	return (&controllers.CombinedController{
		IssuerTypes:                    []issuerapi.Issuer{&quillv1.QuillIssuer{}},
		ClusterIssuerTypes:             []issuerapi.Issuer{&quillv1.QuillClusterIssuer{}},
		FieldOwner:                     FieldOwner,
		MaxRetryDuration:               opts.MaxRetryDuration,
		Check:                          s.Check,
		Sign:                           s.Sign,
		EventRecorder:                  recorder,
		Clock:                          opts.Clock,
		SetCAOnCertificateRequest:      true,
		DisableKubernetesCSRController: opts.DisableKubernetesCSRs,
		PreSetupWithManager:            (&secretWatch{client: mgr.GetClient(), clusterNamespace: opts.ClusterResourceNamespace}).add,
		ControllerOptions:              controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles},
	}).SetupWithManager(ctx, mgr)
}

// secretWatch re-runs an issuer's health check when the Secret it reads
// changes, so that a replaced, repaired or deleted CA shows in Ready without
// waiting for a signing failure. It watches Secret metadata only, so Secret
// contents are never cached in the controller's memory.
type secretWatch struct {
	client           client.Reader
	clusterNamespace string
}

func (w *secretWatch) add(_ context.Context, gvk schema.GroupVersionKind, _ ctrl.Manager, b *builder.Builder) error {
	kind := quillv1.IssuerID{Kind: gvk.Kind}.NewObject()
	if gvk.Group != quillv1.GroupVersion.Group || kind == nil {
		return nil // request controllers need no Secret events
	}
	b.WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		return w.issuersReading(ctx, kind, o.GetNamespace(), o.GetName())
	}))
	return nil
}

// issuersReading lists the issuers of one kind that read the Secret
// namespace/name (CA, certificate or PIN Secret).
func (w *secretWatch) issuersReading(ctx context.Context, kind quillv1.GenericIssuer, namespace, name string) []reconcile.Request {
	var opts []client.ListOption
	if kind.ID().IsCluster() {
		if namespace != w.clusterNamespace {
			return nil
		}
	} else {
		opts = append(opts, client.InNamespace(namespace))
	}
	list := kind.NewList()
	if err := w.client.List(ctx, list, opts...); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, iss := range list.Issuers() {
		if slices.Contains(castore.SecretNames(iss.GetSpec().CA), name) {
			reqs = append(reqs, reconcile.Request{NamespacedName: iss.ID().NamespacedName()})
		}
	}
	return reqs
}
