// Package intermediate obtains and renews the CA certificate of an issuer
// whose key lives in an HSM from its parent issuer
// (spec.ca.pkcs11.issuedBy), through a cert-manager CertificateRequest.
package intermediate

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	cmutil "github.com/cert-manager/cert-manager/pkg/api/util"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/issuers"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/owned"
)

// Labels and annotations on the CertificateRequests an HSM-backed
// intermediate sends to its parent.
const (
	// labelIntermediateFor carries a hash of the requesting issuer
	// (label values are too short for names).
	labelIntermediateFor = "quill.dev/intermediate-for"
	// annotationIntermediateFor names the requesting issuer:
	// "QuillClusterIssuer/name" or "QuillIssuer/namespace/name".
	annotationIntermediateFor = "quill.dev/intermediate-for"
)

// retryFailedAfter is how long a failed or denied request for an
// intermediate's certificate stays visible before a new one is sent.
const retryFailedAfter = time.Minute

// maxRequeue bounds the wait until a renewal, so that a changed clock or a
// missed event cannot postpone it by months.
const maxRequeue = 12 * time.Hour

// nameTakenRetry is how often an issuer whose certificateSecretRef names a
// Secret that is not its own looks again.
const nameTakenRetry = time.Minute

// Event reason and action of a collision on the certificate Secret.
const eventActionInstall = "Install"

var errWrongKey = errors.New("the issued certificate is not for the HSM key")

// intermediateReconciler obtains and renews the CA certificate of an HSM
// key from a parent issuer (spec.ca.pkcs11.issuedBy): it signs a CSR with
// the key, submits it as a cert-manager CertificateRequest, and installs
// the issued chain into spec.ca.pkcs11.certificateSecretRef, where the
// issuer's health check finds it. One reconciler serves one issuer kind.
type intermediateReconciler struct {
	client           client.Client
	store            *castore.Store
	clusterNamespace string
	// kind is an object of the issuer kind this reconciler serves.
	kind     quillv1.GenericIssuer
	clock    clock.PassiveClock
	recorder events.EventRecorder
}

func (r *intermediateReconciler) setup(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("quill-intermediate-"+r.kind.ID().Kind).
		For(r.kind, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			iss, ok := o.(quillv1.GenericIssuer)
			return ok && iss.GetSpec().CA.PKCS11 != nil && iss.GetSpec().CA.PKCS11.IssuedBy != nil
		}))).
		Watches(&cmapi.CertificateRequest{}, handler.EnqueueRequestsFromMapFunc(r.requestsToIssuer)).
		Complete(r)
}

// requestsToIssuer maps a CertificateRequest this reconciler sent back to
// the issuer that sent it.
func (r *intermediateReconciler) requestsToIssuer(_ context.Context, o client.Object) []reconcile.Request {
	id, ok := quillv1.ParseIssuerID(o.GetAnnotations()[annotationIntermediateFor])
	if !ok || id.Kind != r.kind.ID().Kind {
		return nil // not sent by an issuer of this kind
	}
	return []reconcile.Request{{NamespacedName: id.NamespacedName()}}
}

// Reconcile makes sure the issuer's HSM key has a current CA certificate,
// requesting one when there is none or the one there is due for renewal.
func (r *intermediateReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obj, id := issuers.At(r.kind, req.NamespacedName)
	if err := r.client.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err) // deleted: nothing to renew
	}
	ns, owner := id.HomeNamespace(r.clusterNamespace), id.String()
	p := obj.GetSpec().CA.PKCS11
	if p == nil || p.IssuedBy == nil || p.CertificateSecretRef == nil {
		return ctrl.Result{}, nil // not an HSM-backed intermediate
	}
	now := r.clock.Now()
	secretKey := types.NamespacedName{Namespace: ns, Name: p.CertificateSecretRef.Name}
	secret, current, err := r.currentCertificate(ctx, secretKey)
	if err != nil {
		return ctrl.Result{}, err // retry with backoff
	}
	// The Secret is written here, so it must be the issuer's (pkg/owned):
	// one that exists without the issuer's mark is someone else's and is
	// neither read as the CA certificate nor written.
	legacy := r.legacySecret(ctx, obj, ns, current)
	if secret != nil {
		if err := owned.Check("Secret", secret, owner, legacy); err != nil {
			r.recorder.Eventf(obj, nil, corev1.EventTypeWarning, quillv1.ReasonNameCollision, eventActionInstall,
				"%s; set spec.ca.pkcs11.certificateSecretRef to another name", err)
			return ctrl.Result{RequeueAfter: nameTakenRetry}, nil // a new name brings us back at once; a fix of the Secret, within this
		}
	}
	if current != nil {
		if renewAt := renewalTime(current, p.IssuedBy); now.Before(renewAt) {
			return ctrl.Result{RequeueAfter: min(renewAt.Sub(now), maxRequeue)}, nil // current: wake up to renew
		}
	}

	hash := ownerHash(owner)
	var all cmapi.CertificateRequestList
	if err := r.client.List(ctx, &all, client.InNamespace(ns), client.MatchingLabels{labelIntermediateFor: hash}); err != nil {
		return ctrl.Result{}, err // retry with backoff
	}
	// Only requests this issuer sent count (and are ever deleted): anyone
	// who may create CertificateRequests can copy the label.
	list := all
	list.Items = slices.DeleteFunc(slices.Clone(all.Items), func(cr cmapi.CertificateRequest) bool {
		return owned.Check("CertificateRequest", &cr, owner, legacyRequest) != nil
	})
	slices.SortFunc(list.Items, func(a, b cmapi.CertificateRequest) int {
		return b.CreationTimestamp.Compare(a.CreationTimestamp.Time)
	})
	if len(list.Items) == 0 {
		return ctrl.Result{}, r.request(ctx, obj, ns, owner, hash, p) // the request's events wake us
	}
	cr := &list.Items[0]
	ready := cmutil.GetCertificateRequestCondition(cr, cmapi.CertificateRequestConditionReady)
	switch {
	case ready != nil && ready.Status == cmmeta.ConditionTrue:
		if err := r.install(ctx, secretKey, cr, owner, legacy); err != nil {
			if errors.Is(err, owned.ErrCollision) {
				// The Secret appeared, or changed hands, since it was read.
				r.recorder.Eventf(obj, nil, corev1.EventTypeWarning, quillv1.ReasonNameCollision, eventActionInstall, "%s", err)
				return ctrl.Result{RequeueAfter: nameTakenRetry}, nil // the request stays for when the name is free
			}
			r.recorder.Eventf(obj, cr, corev1.EventTypeWarning, "IntermediateRejected", "Install", "%s", err)
			return ctrl.Result{}, r.client.Delete(ctx, cr) // a new request follows
		}
		r.recorder.Eventf(obj, cr, corev1.EventTypeNormal, "IntermediateInstalled", "Install",
			"installed the CA certificate issued by %s %s into secret %s", p.IssuedBy.Kind, p.IssuedBy.Name, secretKey)
		for i := range list.Items {
			_ = client.IgnoreNotFound(r.client.Delete(ctx, &list.Items[i]))
		}
		return ctrl.Result{RequeueAfter: time.Second}, nil // re-read the installed certificate and schedule its renewal
	case ready != nil && (ready.Reason == cmapi.CertificateRequestReasonFailed || ready.Reason == cmapi.CertificateRequestReasonDenied):
		failed := cr.CreationTimestamp.Time
		if cr.Status.FailureTime != nil {
			failed = cr.Status.FailureTime.Time
		}
		if wait := failed.Add(retryFailedAfter).Sub(now); wait > 0 {
			r.recorder.Eventf(obj, cr, corev1.EventTypeWarning, "IntermediateFailed", "Request",
				"the parent refused the CA certificate request %s: %s; retrying in %s", cr.Name, ready.Message, wait.Round(time.Second))
			return ctrl.Result{RequeueAfter: wait}, nil // leave the failure visible for a while
		}
		if err := r.client.Delete(ctx, cr); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, err // retry with backoff
		}
		return ctrl.Result{}, r.request(ctx, obj, ns, owner, hash, p) // try again
	}
	return ctrl.Result{}, nil // pending: the request's events wake us
}

// currentCertificate reads the intermediate's Secret (nil when missing)
// and its first certificate: nil when the Secret or certificate is missing
// or unreadable, so that a new one is requested.
func (r *intermediateReconciler) currentCertificate(ctx context.Context, key types.NamespacedName) (*corev1.Secret, *x509.Certificate, error) {
	var secret corev1.Secret
	if err := r.store.Reader.Get(ctx, key, &secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	block, _ := pem.Decode(secret.Data[castore.KeyTLSCrt])
	if block == nil {
		return &secret, nil, nil
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return &secret, nil, nil
	}
	return &secret, cert, nil
}

// legacySecret recognises the certificate Secret a Quill from before the
// ownership mark wrote, which carries no mark of its own: its certificate is
// the issuer's CA certificate as the CA store loads it, so it certifies the
// issuer's own HSM key (the store checks that). No other Secret holds a
// certificate for that key.
// It loads the CA only when asked, that is for a Secret without a mark.
func (r *intermediateReconciler) legacySecret(ctx context.Context, obj quillv1.GenericIssuer, ns string, current *x509.Certificate) owned.Legacy {
	var asked, adopt bool
	return func(client.Object, string) bool {
		if !asked && current != nil {
			a, err := r.store.Load(ctx, ns, obj.GetSpec().CA)
			adopt = err == nil && a.Certificate.Equal(current)
		}
		asked = true
		return adopt
	}
}

// legacyRequest recognises a CertificateRequest a Quill from before the
// ownership mark sent for owner: it names owner in the annotation Quill
// wrote.
func legacyRequest(obj client.Object, owner string) bool {
	return obj.GetAnnotations()[annotationIntermediateFor] == owner
}

// renewalTime is when a new certificate is due: renewBefore ahead of the
// current one's expiry, by default a third of its lifetime.
func renewalTime(cert *x509.Certificate, p *quillv1.ParentIssuer) time.Time {
	before := cert.NotAfter.Sub(cert.NotBefore) / 3
	if p.RenewBefore != nil {
		before = p.RenewBefore.Duration
	}
	return cert.NotAfter.Add(-before)
}

// request signs a CSR with the HSM key and sends it to the parent.
func (r *intermediateReconciler) request(ctx context.Context, obj client.Object, ns, owner, hash string, p *quillv1.PKCS11CA) error {
	key, err := r.store.OpenHSMKey(ctx, ns, p)
	if err != nil {
		return fmt.Errorf("opening the HSM key for its CSR: %w", err)
	}
	defer key.Close()
	subject := pkix.Name{
		CommonName:         p.IssuedBy.Subject.CommonName,
		Organization:       p.IssuedBy.Subject.Organizations,
		OrganizationalUnit: p.IssuedBy.Subject.OrganizationalUnits,
		Country:            p.IssuedBy.Subject.Countries,
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject}, key)
	if err != nil {
		if hf := castore.HSMFault(err); hf != nil {
			return hf
		}
		return fmt.Errorf("signing the CSR with the HSM key: %w", err)
	}
	kind := p.IssuedBy.ParentKind()
	cr := &cmapi.CertificateRequest{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: obj.GetName() + "-ca-",
			Namespace:    ns,
			Labels:       map[string]string{labelIntermediateFor: hash},
			Annotations:  map[string]string{annotationIntermediateFor: owner},
		},
		Spec: cmapi.CertificateRequestSpec{
			Request:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			IsCA:      true,
			Duration:  p.IssuedBy.Duration,
			IssuerRef: cmmeta.IssuerReference{Group: quillv1.GroupVersion.Group, Kind: kind, Name: p.IssuedBy.Name},
			Usages:    []cmapi.KeyUsage{cmapi.UsageCertSign, cmapi.UsageCRLSign, cmapi.UsageDigitalSignature},
		},
	}
	if err := owned.Create(ctx, r.client, cr, owner); err != nil {
		return fmt.Errorf("requesting the intermediate's certificate: %w", err)
	}
	r.recorder.Eventf(obj, cr, corev1.EventTypeNormal, "IntermediateRequested", "Request",
		"asked %s %s for the HSM key's CA certificate (CertificateRequest %s/%s)", kind, p.IssuedBy.Name, ns, cr.Name)
	return nil
}

// install writes the issued chain into the intermediate's Secret, after
// checking that it certifies the key the CSR was signed with: it creates
// the Secret with owner's mark, or updates it only while it is owner's
// (legacy recognises one an earlier Quill wrote); otherwise the error wraps
// owned.ErrCollision and nothing is written.
func (r *intermediateReconciler) install(ctx context.Context, key types.NamespacedName, cr *cmapi.CertificateRequest, owner string, legacy owned.Legacy) error {
	csrBlock, _ := pem.Decode(cr.Spec.Request)
	certBlock, _ := pem.Decode(cr.Status.Certificate)
	if csrBlock == nil || certBlock == nil {
		return fmt.Errorf("%w: request %s holds no PEM CSR or certificate", errWrongKey, cr.Name)
	}
	csr, err := x509.ParseCertificateRequest(csrBlock.Bytes)
	if err != nil {
		return err
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return err
	}
	want, err := x509.MarshalPKIXPublicKey(csr.PublicKey)
	if err != nil {
		return err
	}
	got, err := x509.MarshalPKIXPublicKey(cert.PublicKey)
	if err != nil {
		return err
	}
	if string(want) != string(got) || !cert.IsCA {
		return fmt.Errorf("%w (or is not a CA): request %s", errWrongKey, cr.Name)
	}
	data := map[string][]byte{castore.KeyTLSCrt: cr.Status.Certificate}
	if len(cr.Status.CA) > 0 {
		data[castore.KeyCACrt] = cr.Status.CA
	}
	// Read around the cache: the controller caches no Secret contents.
	var secret corev1.Secret
	err = r.store.Reader.Get(ctx, key, &secret)
	switch {
	case apierrors.IsNotFound(err):
		secret = corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}, Data: data}
		return owned.Create(ctx, r.client, &secret, owner)
	case err != nil:
		return err
	}
	next := secret.DeepCopy()
	if next.Data == nil {
		next.Data = map[string][]byte{}
	}
	for k, v := range data {
		next.Data[k] = v
	}
	return owned.Update(ctx, r.client, "Secret", &secret, next, owner, legacy)
}

// ownerHash is a label-safe identifier of the requesting issuer.
func ownerHash(owner string) string {
	sum := sha256.Sum256([]byte(owner))
	return hex.EncodeToString(sum[:16])
}

// Setup adds the intermediate reconcilers, one per issuer kind, to mgr.
func Setup(mgr ctrl.Manager, store *castore.Store, clusterResourceNamespace string, clk clock.PassiveClock, recorder events.EventRecorder) error {
	for _, kind := range quillv1.IssuerKinds() {
		if err := (&intermediateReconciler{
			client: mgr.GetClient(), store: store, clusterNamespace: clusterResourceNamespace,
			kind: kind, clock: clk, recorder: recorder,
		}).setup(mgr); err != nil {
			return err
		}
	}
	return nil
}
