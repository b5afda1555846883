package revocation

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/classify"
	"github.com/quill-pki/quill/controllers/internal/issuers"
	"github.com/quill-pki/quill/pkg/audit"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/pkg/metrics"
)

// RBAC for revocation.
// +kubebuilder:rbac:groups=quill.dev,resources=quillrevocations,verbs=get;list;watch
// +kubebuilder:rbac:groups=quill.dev,resources=quillrevocations/status,verbs=get;patch;update

// maxListedSerials is how many revoked serials a QuillRevocation's status
// lists (status.revokedSerialNumbers' MaxItems).
const maxListedSerials = 1000

// revoker records revocations in the ledger. It is shared by the
// QuillRevocation reconciler and the automatic rules.
type revoker struct {
	client client.Client
	reader client.Reader
	index  *ledger.Index
	// journal writes the revocation lines; its per-issuer lock makes the
	// first revocation of a serial the one that stands.
	journal *ledger.Journal
	clock   clock.PassiveClock
	// metrics and audit record each newly revoked certificate; nil and
	// the zero value record nothing.
	metrics *metrics.Metrics
	audit   audit.Logger
}

// revoke records the revocation of rec unless it is already revoked, in
// which case the first revocation stands. It returns the reason the ledger
// holds afterwards: reason, or the first revocation's.
func (r *revoker) revoke(ctx context.Context, rec ledger.Record, reason quillv1.RevocationReason, by string) (quillv1.RevocationReason, error) {
	at := r.clock.Now().UTC().Truncate(time.Second)
	held, now, err := r.journal.Revoke(ctx, rec.Issuer, rec.Namespace, rec, ledger.EntryRevocation{Reason: reason, At: at.Unix(), By: by})
	if err != nil {
		return "", fmt.Errorf("revoking serial %s: %w", ledger.SerialHex(rec.Serial), err)
	}
	if now {
		// Counted and logged once: only the revocation that wrote the
		// line gets here.
		r.metrics.Revoke(rec.Issuer, rec.Template, rec.KeyAlgorithm, string(reason))
		line := audit.Revocation{
			Issuer: rec.Issuer, Serial: ledger.SerialHex(rec.Serial),
			Namespace: rec.OriginNamespace, Certificate: rec.Certificate,
			Reason: string(reason), RevokedAt: at, By: by,
		}
		// The subject is only in the segment. The revocation is recorded
		// already, and must not fail for want of an audit detail.
		if e, err := ledger.ReadEntry(ctx, r.reader, rec); err == nil {
			line.Subject = e.Subject
		} else {
			logf.FromContext(ctx).Error(err, "revocation audited without the certificate's subject", "serial", line.Serial)
		}
		r.audit.Revoke(line)
	}
	return held.Reason, nil
}

// revocationReconciler carries out QuillRevocations. It runs on the leader
// only.
type revocationReconciler struct {
	revoker
	clusterNamespace string
	recorder         events.EventRecorder
}

func (r *revocationReconciler) setup(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("quillrevocation").For(&quillv1.QuillRevocation{}).Complete(r)
}

// refused is a revocation that cannot be carried out as asked; its reason
// goes on the Revoked condition. A certificate or issuer not found (yet) is
// pending, since it may be recorded or created a moment later; anything
// else is permanent, as the spec is immutable.
func refused(reason, msg string) error {
	class := classify.Permanent
	if reason == quillv1.ReasonNotFound || reason == quillv1.ReasonIssuerNotFound {
		class = classify.Pending
	}
	return classify.New(class, reason, errors.New(msg))
}

func (r *revocationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var rev quillv1.QuillRevocation
	if err := r.client.Get(ctx, req.NamespacedName, &rev); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if c := meta.FindStatusCondition(rev.Status.Conditions, quillv1.ConditionRevoked); c != nil && c.Status == metav1.ConditionTrue {
		return ctrl.Result{}, nil // done; the spec is immutable
	}
	serials, kept, err := r.carryOut(ctx, &rev)
	class, reason := classify.Of(err)
	if err != nil && class == classify.Retry {
		return ctrl.Result{}, err // the API server failed, or the ledger is loading; retry with backoff
	}
	cond := metav1.Condition{Type: quillv1.ConditionRevoked, Status: metav1.ConditionTrue, Reason: quillv1.ReasonRevoked,
		ObservedGeneration: rev.Generation}
	if err != nil {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, reason, classify.Message(err)
	} else {
		cond.Message = fmt.Sprintf("revoked %d certificate(s) with reason %s", len(serials)-kept, rev.Spec.Reason)
		if kept > 0 {
			cond.Message += fmt.Sprintf("; %d already revoked keep their first reason", kept)
		}
	}
	base := rev.DeepCopy()
	meta.SetStatusCondition(&rev.Status.Conditions, cond)
	if len(serials) > maxListedSerials {
		// The status lists at most this many (schema limit); the ledger
		// holds every revocation, and the message gives the count.
		serials = serials[:maxListedSerials]
	}
	rev.Status.RevokedSerialNumbers = serials
	if err := r.client.Status().Patch(ctx, &rev, client.MergeFrom(base)); err != nil {
		return ctrl.Result{}, fmt.Errorf("recording revocation status: %w", err)
	}
	if err != nil {
		r.recorder.Eventf(&rev, nil, corev1.EventTypeWarning, reason, "Revoke", "%s", cond.Message)
		if class == classify.Pending {
			return ctrl.Result{RequeueAfter: revocationRetry}, nil // the certificate or issuer may appear
		}
		return ctrl.Result{}, nil // refused for good: the spec is immutable
	}
	r.recorder.Eventf(&rev, nil, corev1.EventTypeNormal, quillv1.ReasonRevoked, "Revoke", "%s", cond.Message)
	return ctrl.Result{}, nil
}

// carryOut finds the certificates rev names and revokes them.
//
// Tenancy: a revocation in the issuer's own namespace (the cluster resource
// namespace for a QuillClusterIssuer) may revoke any of the issuer's
// certificates; one in another namespace only certificates requested from
// that namespace, and any other is answered as if the issuer had never
// signed it.
//
// It returns the serials now revoked, and how many of them had been revoked
// earlier with another reason, which stands.
func (r *revocationReconciler) carryOut(ctx context.Context, rev *quillv1.QuillRevocation) (serials []string, kept int, err error) {
	k, home, err := r.issuerOf(ctx, rev)
	if err != nil {
		return nil, 0, err
	}
	if !r.index.Synced() {
		return nil, 0, issuers.ErrLedgerNotSynced // retried with backoff until the index has read the ledger
	}
	privileged := rev.Namespace == home
	now := r.clock.Now()
	var targets []ledger.Record
	switch {
	case rev.Spec.SerialNumber != "":
		serial, ok := new(big.Int).SetString(strings.ReplaceAll(strings.ToLower(rev.Spec.SerialNumber), ":", ""), 16)
		if !ok {
			return nil, 0, refused(quillv1.ReasonNotFound, fmt.Sprintf("serial number %q is not hex", rev.Spec.SerialNumber))
		}
		rec, ok := r.index.Lookup(k, serial)
		if !ok || !privileged && rec.OriginNamespace != rev.Namespace {
			return nil, 0, serialNotFound(k, serial, rev.Namespace, privileged)
		}
		targets = append(targets, rec)
	case rev.Spec.CertificateName != "":
		for _, rec := range r.index.ForCertificate(k, rev.Namespace, rev.Spec.CertificateName) {
			if rec.NotAfter.After(now) {
				targets = append(targets, rec)
			}
		}
		if len(targets) == 0 {
			return nil, 0, refused(quillv1.ReasonNotFound, fmt.Sprintf("%s has issued no unexpired certificate for Certificate %s/%s", k, rev.Namespace, rev.Spec.CertificateName))
		}
	case rev.Spec.SecretName != "":
		rec, err := r.fromSecret(ctx, k, rev.Namespace, rev.Spec.SecretName)
		if err != nil {
			return nil, 0, err
		}
		if !privileged && rec.OriginNamespace != rev.Namespace {
			// The Secret's holder has the certificate anyway; still
			// answered as one the issuer did not sign, like a serial.
			return nil, 0, secretNotIssued(k, rev.Namespace, rev.Spec.SecretName, rec.Serial)
		}
		targets = append(targets, rec)
	}
	revocableTargets := revocable(targets)
	if len(revocableTargets) == 0 {
		return nil, 0, refuseShortLived(targets[0]) // refused for good: noRevAvail (RFC 9608)
	}
	targets = revocableTargets
	by := "QuillRevocation " + rev.Namespace + "/" + rev.Name
	serials = make([]string, 0, len(targets))
	for _, rec := range targets {
		held, err := r.revoke(ctx, rec, rev.Spec.Reason, by)
		if err != nil {
			return nil, 0, err
		}
		if held != rev.Spec.Reason {
			kept++
		}
		serials = append(serials, ledger.SerialHex(rec.Serial))
	}
	return serials, kept, nil
}

// serialNotFound refuses a revocation of serial. Outside the issuer's home
// namespace a certificate requested from another namespace is answered
// exactly as one never issued (same reason, same message, same retry):
// telling them apart would let any namespace that may create
// QuillRevocations probe which serials the issuer signed for others.
func serialNotFound(k quillv1.IssuerID, serial *big.Int, namespace string, privileged bool) error {
	if privileged {
		return refused(quillv1.ReasonNotFound, fmt.Sprintf("%s has not issued serial %s", k, ledger.SerialHex(serial)))
	}
	return refused(quillv1.ReasonNotFound, fmt.Sprintf("%s has issued no certificate with serial %s for namespace %s", k, ledger.SerialHex(serial), namespace))
}

// issuerOf resolves the revocation's issuer and its home namespace.
func (r *revocationReconciler) issuerOf(ctx context.Context, rev *quillv1.QuillRevocation) (quillv1.IssuerID, string, error) {
	k := rev.Spec.IssuerRef.IDIn(rev.Namespace)
	err := r.client.Get(ctx, k.NamespacedName(), k.NewObject())
	if apierrors.IsNotFound(err) {
		return quillv1.IssuerID{}, "", refused(quillv1.ReasonIssuerNotFound, fmt.Sprintf("%s not found", issuerNotFoundName(k)))
	}
	return k, k.HomeNamespace(r.clusterNamespace), err
}

// issuerNotFoundName is how the IssuerNotFound message names k:
// "QuillIssuer namespace/name" or "QuillClusterIssuer name".
func issuerNotFoundName(k quillv1.IssuerID) string {
	if k.Namespace == "" {
		return k.Kind + " " + k.Name
	}
	return k.Kind + " " + k.Namespace + "/" + k.Name
}

// fromSecret finds the ledger record of the certificate a Secret holds.
func (r *revocationReconciler) fromSecret(ctx context.Context, k quillv1.IssuerID, namespace, name string) (ledger.Record, error) {
	var sec corev1.Secret
	if err := r.reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			return ledger.Record{}, refused(quillv1.ReasonNotFound, fmt.Sprintf("Secret %s/%s not found", namespace, name))
		}
		return ledger.Record{}, fmt.Errorf("reading Secret %s/%s: %w", namespace, name, err)
	}
	block, _ := pem.Decode(sec.Data[corev1.TLSCertKey])
	if block == nil || block.Type != "CERTIFICATE" {
		return ledger.Record{}, refused(quillv1.ReasonInvalidSecret, fmt.Sprintf("Secret %s/%s has no PEM certificate in %s", namespace, name, corev1.TLSCertKey))
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return ledger.Record{}, refused(quillv1.ReasonInvalidSecret, fmt.Sprintf("Secret %s/%s: %s does not parse: %v", namespace, name, corev1.TLSCertKey, err))
	}
	rec, ok := r.index.Lookup(k, cert.SerialNumber)
	if !ok {
		return ledger.Record{}, secretNotIssued(k, namespace, name, cert.SerialNumber)
	}
	return rec, nil
}

// secretNotIssued refuses a revocation by Secret whose certificate the
// issuer did not sign, or signed for another namespace (see
// serialNotFound).
func secretNotIssued(k quillv1.IssuerID, namespace, name string, serial *big.Int) error {
	return refused(quillv1.ReasonNotFound, fmt.Sprintf("the certificate in Secret %s/%s (serial %s) was not issued by %s", namespace, name, ledger.SerialHex(serial), k))
}
