// Package ledger records every certificate Quill signs as an
// IssuedCertificate object in the Kubernetes API and keeps a compact
// in-memory index of those records for the hot paths: finding the
// certificate already signed for a retried request, answering OCSP, and
// building CRLs. The index is fed by a watch, so no hot path lists the
// ledger; it holds a few hundred bytes per certificate rather than the
// objects themselves, so 100k records per issuer fit comfortably.
package ledger

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/names"
)

// Labels Quill puts on ledger records so that people can select them with
// kubectl; the controller itself never lists by them.
const (
	LabelIssuerKind = "quill.dev/issuer-kind"
	LabelIssuerName = "quill.dev/issuer-name"
	LabelRevoked    = "quill.dev/revoked"
)

// SerialHex is the canonical spelling of a serial number in the ledger:
// lowercase hex without leading zeros or separators.
func SerialHex(serial *big.Int) string { return serial.Text(16) }

// maxNameLen is the longest object name the API server accepts.
const maxNameLen = 253

// EntryName is the name of the ledger record for serial: the issuer kind's
// short name, the issuer's name and the serial in 40 hex digits, so a
// revocation by serial reads exactly one object. Issuer names too long to
// fit are replaced by a digest.
func EntryName(k quillv1.IssuerID, serial *big.Int) string {
	prefix := "qi"
	if k.IsCluster() {
		prefix = "qci"
	}
	s := fmt.Sprintf("%040x", serial)
	name := prefix + "." + k.Name + "." + s
	if len(name) > maxNameLen {
		sum := sha256.Sum256([]byte(k.Name))
		name = prefix + "." + hex.EncodeToString(sum[:8]) + "." + s
	}
	return name
}

// Origin describes the request a certificate was signed for.
type Origin struct {
	// Kind is "CertificateRequest" or "CertificateSigningRequest".
	Kind      string
	Namespace string
	Name      string
	UID       types.UID
	// Certificate is the cert-manager Certificate behind a
	// CertificateRequest, when it has one.
	Certificate string
	// Requester is the username the API server recorded on the request.
	Requester string
	// Template is the certificate template the request selected, if any.
	Template string
}

// NewEntry builds the ledger record for cert, signed by the issuer k for
// origin. homeNamespace is where the record is kept: the issuer's namespace,
// or the cluster resource namespace for a QuillClusterIssuer.
func NewEntry(k quillv1.IssuerID, homeNamespace string, cert *x509.Certificate, issuedAt time.Time, origin Origin) (*quillv1.IssuedCertificate, error) {
	alg, err := issuance.KeyAlgorithmOf(cert.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("ledger record: %w", err)
	}
	sum := sha256.Sum256(cert.Raw)
	e := &quillv1.IssuedCertificate{
		ObjectMeta: metav1.ObjectMeta{
			Name:      EntryName(k, cert.SerialNumber),
			Namespace: homeNamespace,
			Labels:    map[string]string{LabelIssuerKind: k.Kind},
		},
		Spec: quillv1.IssuedCertificateSpec{
			IssuerRef:      k.Ref(),
			SerialNumber:   SerialHex(cert.SerialNumber),
			Subject:        names.DescribeSubject(cert.RawSubject, cert.Subject),
			DNSNames:       cert.DNSNames,
			EmailAddresses: cert.EmailAddresses,
			IsCA:           cert.IsCA,
			// Read from the certificate itself, not from the issuer's
			// setting, which may change after signing.
			NoRevocationAvailable: issuance.HasNoRevAvail(cert),
			IssuedAt:              metav1.NewMicroTime(issuedAt.UTC()),
			NotBefore:             metav1.NewTime(cert.NotBefore),
			NotAfter:              metav1.NewTime(cert.NotAfter),
			KeyAlgorithm:          string(alg),
			SignatureAlgorithm:    cert.SignatureAlgorithm.String(),
			SHA256Fingerprint:     hex.EncodeToString(sum[:]),
			Requester:             origin.Requester,
			Template:              origin.Template,
			Origin: quillv1.LedgerOrigin{
				Kind:        origin.Kind,
				Namespace:   origin.Namespace,
				Name:        origin.Name,
				UID:         string(origin.UID),
				Certificate: origin.Certificate,
			},
			Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
		},
	}
	// Label values are limited to 63 characters; longer issuer names are
	// still found through spec.issuerRef.
	if len(k.Name) <= 63 {
		e.Labels[LabelIssuerName] = k.Name
	}
	for _, ip := range cert.IPAddresses {
		e.Spec.IPAddresses = append(e.Spec.IPAddresses, ip.String())
	}
	for _, u := range cert.URIs {
		e.Spec.URIs = append(e.Spec.URIs, u.String())
	}
	// crypto/x509 drops otherNames; Quill signs them (pkg/issuance), so it
	// reads them back from the certificate itself.
	others, err := names.OtherNamesOfCertificate(cert)
	if err != nil {
		return nil, fmt.Errorf("ledger record: %w", err)
	}
	for _, o := range others {
		e.Spec.OtherNames = append(e.Spec.OtherNames, quillv1.LedgerOtherName{TypeID: o.TypeID.String(), Value: o.Value})
	}
	return e, nil
}

// Record is the index's compact view of one ledger entry.
type Record struct {
	// Segment and Namespace locate the object holding the entry: a
	// LedgerSegment, or when Legacy the IssuedCertificate of a ledger not
	// migrated yet. ReadEntry reads the full entry from it.
	Segment, Namespace string
	Legacy             bool
	// HasCertificate says the holding object still keeps the DER
	// certificate, so a retried request can be given it back.
	HasCertificate bool
	Issuer         quillv1.IssuerID
	Serial         *big.Int
	IssuedAt       time.Time
	NotBefore      time.Time
	NotAfter       time.Time
	KeyAlgorithm   string
	RequestUID     types.UID
	// OriginKind and RequestName name the request the certificate was
	// signed for (see EntryOrigin).
	OriginKind, RequestName string
	// Template is the certificate template the request selected, if any.
	Template string
	// OriginNamespace and Certificate name the cert-manager Certificate the
	// certificate was issued for, when there is one.
	OriginNamespace string
	Certificate     string
	// Revocation, once set, is permanent.
	Revoked   bool
	RevokedAt time.Time
	// Reason is the RFC 5280 CRLReason code.
	Reason int
	// NoRevocationAvailable marks a short-lived certificate signed with
	// noRevAvail (RFC 9608): never revoked, answered unauthorized by OCSP.
	NoRevocationAvailable bool

	// SignatureAlgorithm is the algorithm the CA signed with, as
	// IssuedCertificate spec.signatureAlgorithm names it.
	SignatureAlgorithm string
}

// recordOf compacts an IssuedCertificate. It reports false for an object
// whose serial does not parse, which the index then ignores.
func recordOf(e *quillv1.IssuedCertificate) (Record, bool) {
	serial, ok := new(big.Int).SetString(e.Spec.SerialNumber, 16)
	if !ok {
		return Record{}, false
	}
	r := Record{
		Segment:               e.Name,
		Namespace:             e.Namespace,
		Legacy:                true,
		HasCertificate:        e.Spec.Certificate != "",
		OriginKind:            e.Spec.Origin.Kind,
		RequestName:           e.Spec.Origin.Name,
		Template:              e.Spec.Template,
		Issuer:                e.Spec.IssuerRef.ID(),
		Serial:                serial,
		IssuedAt:              e.Spec.IssuedAt.Time,
		NotBefore:             e.Spec.NotBefore.Time,
		NotAfter:              e.Spec.NotAfter.Time,
		KeyAlgorithm:          e.Spec.KeyAlgorithm,
		RequestUID:            types.UID(e.Spec.Origin.UID),
		OriginNamespace:       e.Spec.Origin.Namespace,
		Certificate:           e.Spec.Origin.Certificate,
		NoRevocationAvailable: e.Spec.NoRevocationAvailable,
	}
	r.SignatureAlgorithm = e.Spec.SignatureAlgorithm
	if rev := e.Status.Revocation; rev != nil {
		r.Revoked = true
		r.RevokedAt = rev.RevokedAt.Time
		r.Reason = quillv1.RevocationReasonCodes[rev.Reason]
	}
	return r, true
}
