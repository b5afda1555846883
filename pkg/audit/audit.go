// Package audit writes Quill's audit trail as structured log lines: one
// line per certificate issued (for a request, or for Quill's own use such as
// a delegated OCSP responder), request denied, certificate revoked, CRL signed and CA
// state change, through
// the controller's logr logger (JSON with quill-controller's default
// production logging). Every line carries audit=true and an action, so a
// log pipeline can select them; the fields are the same for every action
// where they apply.
package audit

import (
	"crypto/x509"
	"encoding/hex"
	"time"

	"github.com/go-logr/logr"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/names"
)

// Actions, the value of the "action" field.
const (
	ActionIssue       = "issue"
	ActionDeny        = "deny"
	ActionRevoke      = "revoke"
	ActionStateChange = "ca-state-change"
	ActionCRL         = "crl"
)

// Logger writes audit lines. The zero value discards them.
type Logger struct {
	// Log receives the lines at V(0), so no verbosity setting hides them.
	Log logr.Logger
}

// Request describes the request an audit line is about.
type Request struct {
	// Issuer signed (or refused) the request; lines show it as
	// Kind/name or Kind/namespace/name.
	Issuer quillv1.IssuerID
	// Kind and Name of the request object (CertificateRequest or
	// CertificateSigningRequest, or OCSPResponder for a responder
	// certificate, named after its Secret); Namespace is empty for a
	// CertificateSigningRequest.
	Kind, Namespace, Name string
	// Requester is the user who created the request, from its spec.
	Requester string
	// Template selected, "" for none.
	Template string
	// KeyAlgorithm of the requester's key.
	KeyAlgorithm string
	// CSR, when it could be parsed, supplies the subject and names.
	CSR *x509.CertificateRequest
}

func (r Request) keysAndValues() []any {
	kv := []any{
		"issuer", r.Issuer.String(), "requestKind", r.Kind, "namespace", r.Namespace, "request", r.Name,
		"requester", r.Requester, "template", r.Template, "keyAlgorithm", r.KeyAlgorithm,
	}
	if r.CSR != nil {
		ips := make([]string, len(r.CSR.IPAddresses))
		for i, ip := range r.CSR.IPAddresses {
			ips[i] = ip.String()
		}
		uris := make([]string, len(r.CSR.URIs))
		for i, u := range r.CSR.URIs {
			uris[i] = u.String()
		}
		kv = append(kv, "subject", names.DescribeSubject(r.CSR.RawSubject, r.CSR.Subject), "dnsNames", r.CSR.DNSNames, "ipAddresses", ips,
			"uris", uris, "emailAddresses", r.CSR.EmailAddresses)
		// otherNames as "<type-id>:<value>"; a request whose otherNames do
		// not even parse is logged with what is there, and its refusal
		// says why.
		if others, err := names.OtherNamesOfRequest(r.CSR); len(others) > 0 || err != nil {
			shown := make([]string, len(others))
			for i, o := range others {
				shown[i] = o.String()
			}
			if err != nil {
				shown = append(shown, "(unreadable)")
			}
			kv = append(kv, "otherNames", shown)
		}
	}
	return kv
}

// Issue logs a signed certificate.
func (l Logger) Issue(r Request, cert *x509.Certificate) {
	kv := append([]any{"audit", true, "action", ActionIssue}, r.keysAndValues()...)
	kv = append(kv, "serial", hex.EncodeToString(cert.SerialNumber.Bytes()),
		"notBefore", cert.NotBefore.UTC().Format(time.RFC3339), "notAfter", cert.NotAfter.UTC().Format(time.RFC3339),
		"isCA", cert.IsCA)
	l.Log.Info("certificate issued", kv...)
}

// IssueResponder logs a delegated OCSP responder certificate the
// controller signed with issuer's CA key and stored in the Secret
// namespace/secret; keyAlgorithm names the responder's own key. It is an issue line like any other, with request kind
// OCSPResponder, so that every certificate signed with a CA key is in the
// audit trail.
func (l Logger) IssueResponder(issuer quillv1.IssuerID, namespace, secret, keyAlgorithm string, cert *x509.Certificate) {
	l.Issue(Request{Issuer: issuer, Kind: quillv1.OriginKindOCSPResponder, Namespace: namespace, Name: secret,
		KeyAlgorithm: keyAlgorithm}, cert)
}

// Deny logs a request refused for good: by rule, for reason.
func (l Logger) Deny(r Request, rule, reason string) {
	kv := append([]any{"audit", true, "action", ActionDeny}, r.keysAndValues()...)
	kv = append(kv, "rule", rule, "reason", reason)
	l.Log.Info("certificate request denied", kv...)
}

// Revocation describes a certificate newly revoked in the ledger.
type Revocation struct {
	// Issuer signed the certificate.
	Issuer quillv1.IssuerID
	// Serial is the certificate's serial number in lowercase hex.
	Serial  string
	Subject string
	// Namespace and Certificate name where the certificate was requested
	// from: the request's namespace and its cert-manager Certificate (both
	// empty for a Kubernetes CSR).
	Namespace, Certificate string
	// Reason is the RFC 5280 reason's name.
	Reason    string
	RevokedAt time.Time
	// By names what revoked it: "QuillRevocation <ns>/<name>" or an
	// automatic rule.
	By string
}

// Revoke logs a certificate revoked. It is called once per certificate,
// when the ledger first records its revocation.
func (l Logger) Revoke(r Revocation) {
	l.Log.Info("certificate revoked", "audit", true, "action", ActionRevoke, "issuer", r.Issuer.String(), "serial", r.Serial,
		"subject", r.Subject, "namespace", r.Namespace, "certificate", r.Certificate, "reason", r.Reason,
		"revokedAt", r.RevokedAt.UTC().Format(time.RFC3339), "by", r.By)
}

// SignCRL logs a CRL signed and published for issuer: its number, how many
// entries it lists, its size in bytes and its nextUpdate.
func (l Logger) SignCRL(issuer quillv1.IssuerID, number string, entries, bytes int, nextUpdate time.Time) {
	l.Log.Info("CRL signed", "audit", true, "action", ActionCRL, "issuer", issuer.String(), "crlNumber", number,
		"entries", entries, "bytes", bytes, "nextUpdate", nextUpdate.UTC().Format(time.RFC3339))
}

// StateChange logs an issuer's spec.state moving from one state to another;
// by is the user the quill.dev/disabled-by annotation names ("" when
// enabling or when absent).
func (l Logger) StateChange(issuer quillv1.IssuerID, from, to, by string) {
	l.Log.Info("CA state changed", "audit", true, "action", ActionStateChange, "issuer", issuer.String(), "from", from, "to", to, "disabledBy", by)
}
