package issuance

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/cert-manager/issuer-lib/controllers/signer"
	certificatesv1 "k8s.io/api/certificates/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/issuers"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/ledger"
)

// RBAC for the ledger: records are created once, and only their status
// (revocation) changes afterwards.
// +kubebuilder:rbac:groups=quill.dev,resources=issuedcertificates,verbs=get;list;watch;create
// +kubebuilder:rbac:groups=quill.dev,resources=issuedcertificates/status,verbs=get;patch;update

// Ledger is the Signer's issuance ledger.
type Ledger struct {
	Index *ledger.Index
	// Writer creates records.
	Writer client.Writer
	// Reader reads a record straight from the API server when a retried
	// request needs the certificate already signed for it.
	Reader client.Reader
	// CertManagerUsername is the requester of the CertificateRequests
	// cert-manager's controller creates. Only their Certificate is recorded
	// (origin.certificate), because the automatic revocation rules and
	// revocation by Certificate name act on it.
	CertManagerUsername string

	// unsure holds, by request UID, the record whose creation failed
	// without saying whether it happened (a timeout, a lost reply): the
	// retry must look it up before signing again.
	mu     sync.Mutex
	unsure map[types.UID]types.NamespacedName
}

// recall returns what was signed for cr earlier, if anything. A request is
// signed at most once: when the signed result was recorded but never
// reached the request (the controller died, or the status write failed),
// the retry gets the recorded certificate back.
func (l *Ledger) recall(ctx context.Context, k quillv1.IssuerID, cr signer.CertificateRequestObject, a *issuance.Authority) (*issuance.Issued, bool, error) {
	if !l.Index.Synced() {
		// Before the index has read the whole ledger, "no record for this
		// request" might only mean "not read yet", and signing again would
		// break the one-signature rule.
		return nil, false, issuers.ErrLedgerNotSynced // plain: retried with backoff
	}
	var name types.NamespacedName
	if rec, ok := l.Index.ByRequest(k, cr.GetUID()); ok {
		name = types.NamespacedName{Namespace: rec.Namespace, Name: rec.Segment}
	} else if n, ok := l.unsureOf(cr.GetUID()); ok {
		name = n
	} else {
		return nil, false, nil
	}
	var e quillv1.IssuedCertificate
	if err := l.Reader.Get(ctx, name, &e); err != nil {
		if apierrors.IsNotFound(err) {
			l.resolve(cr.GetUID())
			return nil, false, nil // never created, or an administrator removed the record
		}
		return nil, false, fmt.Errorf("reading ledger record %s: %w", name.Name, err)
	}
	l.resolve(cr.GetUID())
	issued, err := a.Recall([]byte(e.Spec.Certificate))
	if err != nil {
		// The CA changed since: signing again would give this request a
		// second certificate, so it fails and the requester starts anew.
		return nil, false, invalidRequest(fmt.Errorf("this request was already signed (serial %s, ledger record %s/%s) by a CA that is no longer the issuer's; create a new request: %w",
			e.Spec.SerialNumber, name.Namespace, name.Name, err))
	}
	return issued, true, nil
}

// record writes the ledger record of cert before anyone receives it. An
// error means the certificate must be discarded: it was never published, so
// the ledger still knows every certificate in circulation.
func (l *Ledger) record(ctx context.Context, k quillv1.IssuerID, homeNamespace string, cert *x509.Certificate, issuedAt time.Time, cr signer.CertificateRequestObject, template string) error {
	origin := originOf(cr, l.CertManagerUsername)
	origin.Template = template
	e, err := ledger.NewEntry(k, homeNamespace, cert, issuedAt, origin)
	if err != nil {
		return err
	}
	if err := l.Writer.Create(ctx, e); err != nil {
		// A refusal (AlreadyExists too: a serial collision is retried
		// with a new serial) created nothing. Any other failure may have
		// created the record all the same.
		var status apierrors.APIStatus
		if !errors.As(err, &status) || status.Status().Code >= 500 || status.Status().Code < 400 {
			l.mu.Lock()
			if l.unsure == nil {
				l.unsure = map[types.UID]types.NamespacedName{}
			}
			l.unsure[cr.GetUID()] = types.NamespacedName{Namespace: e.Namespace, Name: e.Name}
			l.mu.Unlock()
		}
		return fmt.Errorf("recording serial %s in the issuance ledger: %w", e.Spec.SerialNumber, err)
	}
	// Known at once, also across a relist that has not seen it yet: a retry
	// of this request must find it.
	l.Index.PutCreated(e)
	return nil
}

// unsureOf returns the record whose creation for request uid may or may
// not have happened.
func (l *Ledger) unsureOf(uid types.UID) (types.NamespacedName, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, ok := l.unsure[uid]
	return n, ok
}

// resolve forgets the doubt about request uid's record: it was read, or is
// known not to exist.
func (l *Ledger) resolve(uid types.UID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.unsure, uid)
}

// originOf describes the request for the ledger. The Certificate a
// CertificateRequest names in its cert-manager.io/certificate-name
// annotation is only a claim: anyone who may create a request can write
// it, and revocation acts on the Certificate recorded here (a renewal
// revokes what it supersedes). So it is recorded only when cert-manager
// itself made the request for that Certificate: requested by
// certManagerUsername, and controlled by a Certificate of that name.
func originOf(cr signer.CertificateRequestObject, certManagerUsername string) ledger.Origin {
	o := ledger.Origin{Name: cr.GetName(), Namespace: cr.GetNamespace(), UID: cr.GetUID()}
	copier, ok := cr.(interface{ DeepCopyObject() runtime.Object })
	if !ok {
		return o
	}
	switch r := copier.DeepCopyObject().(type) {
	case *cmapi.CertificateRequest:
		o.Kind = quillv1.OriginKindCertificateRequest
		o.Requester = r.Spec.Username
		o.Certificate = CertificateOf(r, certManagerUsername)
	case *certificatesv1.CertificateSigningRequest:
		o.Kind = quillv1.OriginKindCertificateSigningRequest
		o.Namespace = ""
		o.Requester = r.Spec.Username
	}
	return o
}

// CertificateOf returns the name of the cert-manager Certificate that
// cert-manager's controller, authenticated as certManagerUsername, created
// cr for, or "" when cr is not verifiably such a request: its requester
// (spec.username, which cert-manager's webhook sets from the API server's
// authentication and forbids changing) is someone else, or its controlling
// owner is not the Certificate its cert-manager.io/certificate-name
// annotation names. The revocation controllers call it too, before acting
// on a request's Certificate.
func CertificateOf(cr *cmapi.CertificateRequest, certManagerUsername string) string {
	name := cr.Annotations[cmapi.CertificateNameKey]
	if name == "" || certManagerUsername == "" || cr.Spec.Username != certManagerUsername {
		return ""
	}
	owner := metav1.GetControllerOf(cr)
	if owner == nil || owner.Kind != cmapi.CertificateKind || owner.Name != name || owner.UID == "" {
		return ""
	}
	if gv, err := schema.ParseGroupVersion(owner.APIVersion); err != nil || gv.Group != cmapi.SchemeGroupVersion.Group {
		return ""
	}
	return name
}
