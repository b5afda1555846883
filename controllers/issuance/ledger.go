package issuance

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/cert-manager/issuer-lib/controllers/signer"
	certificatesv1 "k8s.io/api/certificates/v1"
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

// RBAC for the ledger: journal segments are created while signing and
// deleted by the leader's compactor once sealed; IssuedCertificates, the
// ledger's objects before segments, are only read and, once migrated,
// deleted.
// +kubebuilder:rbac:groups=quill.dev,resources=ledgersegments,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=quill.dev,resources=issuedcertificates,verbs=get;list;watch;delete

// Ledger is the Signer's issuance ledger.
type Ledger struct {
	Index *ledger.Index
	// Journal records each certificate before it is returned.
	Journal *ledger.Journal
	// Reader reads a segment straight from the API server when a retried
	// request needs the certificate already signed for it.
	Reader client.Reader
	// CertManagerUsername is the requester of the CertificateRequests
	// cert-manager's controller creates. Only their Certificate is recorded
	// (origin.certificate), because the automatic revocation rules and
	// revocation by Certificate name act on it.
	CertManagerUsername string

	// unsure holds, by request UID, where the entry is whose journal write
	// failed without saying whether it happened (a timeout, a lost reply):
	// the retry must look it up before signing again.
	mu     sync.Mutex
	unsure map[types.UID]ledger.Record
}

// errCertificateDropped fails a retried request whose certificate the
// ledger no longer keeps: it was signed, so signing again would give the
// request a second certificate.
var errCertificateDropped = errors.New("its certificate is no longer kept; create a new request")

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
	rec, indexed := l.Index.ByRequest(k, cr.GetUID())
	if !indexed {
		var ok bool
		if rec, ok = l.unsureOf(cr.GetUID()); !ok {
			return nil, false, nil // never signed
		}
	}
	where := fmt.Sprintf("serial %s, ledger segment %s/%s", ledger.SerialHex(rec.Serial), rec.Namespace, rec.Segment)
	if indexed && !rec.HasCertificate {
		l.resolve(cr.GetUID())
		return nil, false, invalidRequest(fmt.Errorf("this request was already signed (%s); %w", where, errCertificateDropped))
	}
	e, err := ledger.ReadEntry(ctx, l.Reader, rec)
	switch {
	case errors.Is(err, ledger.ErrEntryGone) && !indexed:
		l.resolve(cr.GetUID())
		return nil, false, nil // the unsure write never happened
	case errors.Is(err, ledger.ErrEntryGone):
		// Sealed or archived since the index saw it: the index will
		// point at its new place in a moment.
		return nil, false, fmt.Errorf("this request was already signed (%s): %w", where, err)
	case err != nil:
		return nil, false, err // retry with backoff
	}
	l.resolve(cr.GetUID())
	if len(e.Certificate) == 0 {
		return nil, false, invalidRequest(fmt.Errorf("this request was already signed (%s); %w", where, errCertificateDropped))
	}
	issued, err := a.Recall(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.Certificate}))
	if err != nil {
		// The CA changed since: signing again would give this request a
		// second certificate, so it fails and the requester starts anew.
		return nil, false, invalidRequest(fmt.Errorf("this request was already signed (%s) by a CA that is no longer the issuer's; create a new request: %w", where, err))
	}
	return issued, true, nil
}

// record writes the ledger entry of cert before anyone receives it. An
// error means the certificate must be discarded: it was never published, so
// the ledger still knows every certificate in circulation. A serial
// collision (ledger.ErrSerialTaken) is such an error too: the retry signs
// with a new serial.
func (l *Ledger) record(ctx context.Context, k quillv1.IssuerID, homeNamespace string, cert *x509.Certificate, issuedAt time.Time, cr signer.CertificateRequestObject, template string) error {
	origin := originOf(cr, l.CertManagerUsername)
	origin.Template = template
	e, err := ledger.EntryOf(cert, issuedAt, origin)
	if err != nil {
		return err
	}
	segment, err := l.Journal.Record(ctx, k, homeNamespace, e)
	if errors.Is(err, ledger.ErrOutcomeUnknown) {
		// The entry may be in segment all the same: the retry reads it
		// there before signing again.
		l.mu.Lock()
		if l.unsure == nil {
			l.unsure = map[types.UID]ledger.Record{}
		}
		l.unsure[cr.GetUID()] = ledger.Record{Issuer: k, Segment: segment, Namespace: homeNamespace, Serial: cert.SerialNumber}
		l.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("recording serial %s in the issuance ledger: %w", e.Serial, err)
	}
	return nil
}

// unsureOf returns where the entry of request uid is, if its write may or
// may not have happened.
func (l *Ledger) unsureOf(uid types.UID) (ledger.Record, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.unsure[uid]
	return r, ok
}

// resolve forgets the doubt about request uid's entry: it was read, or is
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
