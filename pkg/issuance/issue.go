package issuance

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"io"
	"time"

	"github.com/quill-pki/quill/pkg/keyusage"
	"github.com/quill-pki/quill/pkg/kms"
)

// Every certificate Quill signs leaves through issue: leaves and
// subordinate CAs for CertificateRequests (Sign), self-signed roots
// (SelfSign, NewSelfSignedRoot), subordinates signed in a ceremony (SignCA)
// and delegated OCSP responder certificates (IssueResponder). The exported
// methods decide what differs between those kinds (subject, names, usages,
// validity, extensions) and say why a request is refused in their callers'
// words; issue then gives every kind the same serial number, key
// identifiers and signature algorithm, refuses a template that does not fit
// its issuer, signs, and verifies what it signed. Nothing else in Quill
// calls x509.CreateCertificate for a certificate it hands out.

// certRequest is one certificate on its way through issue.
type certRequest struct {
	// tmpl holds what the kind decides: subject, names, validity, usages,
	// basic and name constraints, extra extensions. issue sets the serial,
	// the key identifiers and the signature algorithm itself.
	tmpl *x509.Certificate
	// spki is the subject's DER SubjectPublicKeyInfo and pub the same key
	// parsed.
	spki []byte
	pub  crypto.PublicKey
	// now is the signing time; the issuer must pass Check at it.
	now time.Time
	// rsaPSS makes an RSA issuer sign with RSASSA-PSS.
	rsaPSS bool
	// rand feeds the serial number and the signer; nil selects crypto/rand.
	rand io.Reader
}

// issue signs r. With a nil issuer the certificate is self-signed by
// signer, which must hold r.pub; otherwise issuer.Signer signs as
// issuer.Certificate. It returns the parsed certificate only after the
// signature and the chain up to the issuer's root verified.
//
// Errors wrap ErrInvalidRequest when the template cannot be signed as it
// stands (subject key refused, validity outside the issuing chain, usages
// that contradict the CA flag or the chain), the sentinels of Check when the
// issuer cannot sign at r.now, ErrMalformedCA when the issuer's key has no
// signature algorithm; other errors (randomness, signer, self-check) are
// plain.
//
// Before signing, the template's key usages pass through keyusage.Fit, the
// one table of usages per key type: what the subject key or the CA flag
// cannot serve (keyEncipherment on an ECDSA key, on any CA) is left out, and
// notes says what was, for the caller to pass on with its own notes.
func issue(issuer *Authority, signer crypto.Signer, r certRequest) (cert *x509.Certificate, notes []string, err error) {
	t := r.tmpl
	rnd := r.rand
	if rnd == nil {
		rnd = Options{}.rand()
	}
	parent := t
	if issuer != nil {
		if err := issuer.Check(r.now); err != nil {
			return nil, nil, fmt.Errorf("the issuing CA cannot sign: %w", err)
		}
		signer, parent = issuer.Signer, issuer.Certificate
	} else if !PublicKeysEqual(signer.Public(), r.pub) {
		return nil, nil, fmt.Errorf("self-signed certificate: %w: it must carry its signer's key", kms.ErrKeyMismatch)
	}
	alg, err := describeKey(r.pub)
	if err != nil {
		return nil, nil, invalidf("the subject's public key is not accepted: %w", err)
	}
	if err := checkTemplate(t, alg); err != nil {
		return nil, nil, err
	}
	// After checkTemplate, so that a signature-only key asked explicitly
	// for an encipherment usage is still refused rather than trimmed.
	fit, err := keyusage.Fit(r.pub, t.KeyUsage, t.IsCA)
	if err != nil {
		return nil, nil, invalidf("key usages: %w", err)
	}
	t.KeyUsage, notes = fit.Usage, fit.Notes
	if issuer != nil {
		if err := issuer.fitsChain(t); err != nil {
			return nil, nil, err
		}
	}

	if t.SerialNumber, err = NewSerialNumber(rnd); err != nil {
		return nil, nil, fmt.Errorf("generate serial number: %w", err)
	}
	if t.SubjectKeyId, err = SubjectKeyID(r.spki); err != nil {
		return nil, nil, invalidf("the subject's public key: %w", err)
	}
	// Set explicitly: Go derives it from the parent only when issuer and
	// subject names differ, and a subject may well reuse its CA's name.
	// A self-signed root carries none, as RFC 5280 (4.2.1.1) permits.
	t.AuthorityKeyId = nil
	if issuer != nil && len(parent.SubjectKeyId) > 0 {
		t.AuthorityKeyId = parent.SubjectKeyId
	}
	if t.SignatureAlgorithm, err = signatureAlgorithmFor(signer.Public(), r.rsaPSS); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrMalformedCA, err)
	}

	der, err := x509.CreateCertificate(rnd, t, parent, r.pub, signer)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate: %w", err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("self-check: the signed certificate does not parse: %w", err)
	}
	if issuer == nil {
		// A root that cannot vouch for itself would surface only when the
		// first certificate under it fails to verify; catch a faulty
		// signer here.
		if err := cert.CheckSignatureFrom(cert); err != nil {
			return nil, nil, fmt.Errorf("self-check: the self-signed certificate's signature does not verify, so it was discarded: %w", err)
		}
		return cert, notes, nil
	}
	if err := issuer.verify(cert); err != nil {
		return nil, nil, err
	}
	return cert, notes, nil
}

// checkTemplate refuses usages and constraints that contradict each other
// or the subject key, whoever built the template: a CA must be allowed to
// sign certificates, nothing else may be, and a signature-only key
// (Ed25519, ML-DSA) cannot encipher.
func checkTemplate(t *x509.Certificate, alg KeyAlgorithm) error {
	switch {
	case !t.NotAfter.After(t.NotBefore):
		return invalidf("notAfter %s is not after notBefore %s", stamp(t.NotAfter), stamp(t.NotBefore))
	case !t.BasicConstraintsValid:
		// Every certificate Quill signs says whether it is a CA, so that
		// no verifier has to guess (RFC 5280, 4.2.1.9).
		return invalidf("the certificate does not say whether it is a CA (basicConstraints)")
	case t.IsCA && t.KeyUsage&x509.KeyUsageCertSign == 0:
		return invalidf("a CA certificate must assert keyCertSign")
	case !t.IsCA && t.KeyUsage&x509.KeyUsageCertSign != 0:
		return invalidf("key usage 'cert sign' is only allowed with isCA: true")
	case !t.IsCA && (t.MaxPathLen > 0 || t.MaxPathLenZero):
		return invalidf("a path length constraint is only allowed with isCA: true")
	case !t.IsCA && hasNameConstraints(t):
		return invalidf("name constraints are only allowed with isCA: true")
	}
	const encipher = x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment |
		x509.KeyUsageKeyAgreement | x509.KeyUsageEncipherOnly | x509.KeyUsageDecipherOnly
	if signatureOnly(alg) && t.KeyUsage&encipher != 0 {
		return invalidf("key usages %s are not possible with %s keys, which can only sign", quote(keyUsageNames(t.KeyUsage&encipher)), alg)
	}
	return nil
}

func hasNameConstraints(t *x509.Certificate) bool {
	return len(t.PermittedDNSDomains)+len(t.ExcludedDNSDomains)+
		len(t.PermittedIPRanges)+len(t.ExcludedIPRanges)+
		len(t.PermittedEmailAddresses)+len(t.ExcludedEmailAddresses)+
		len(t.PermittedURIDomains)+len(t.ExcludedURIDomains) > 0
}

// fitsChain refuses a template the issuing chain cannot vouch for: a
// validity outside any CA's, an extended key usage a CA does not carry.
// Callers shorten or refuse with their own message first; this is the
// check none of them can skip.
func (a *Authority) fitsChain(t *x509.Certificate) error {
	for _, c := range a.chain() {
		if t.NotBefore.Before(c.NotBefore) || t.NotAfter.After(c.NotAfter) {
			return invalidf("validity %s to %s is outside that of CA %q (%s to %s)",
				stamp(t.NotBefore), stamp(t.NotAfter), c.Subject, stamp(c.NotBefore), stamp(c.NotAfter))
		}
	}
	return a.permitsExtKeyUsages(t.ExtKeyUsage)
}

// chainValidity is the span every CA from the issuing CA to the root is
// valid in: the latest notBefore and the earliest notAfter, with the CA that
// sets the latter.
func (a *Authority) chainValidity() (notBefore, notAfter time.Time, limit *x509.Certificate) {
	limit = a.Certificate
	notBefore = a.Certificate.NotBefore
	for _, c := range a.chain() {
		if c.NotBefore.After(notBefore) {
			notBefore = c.NotBefore
		}
		if c.NotAfter.Before(limit.NotAfter) {
			limit = c
		}
	}
	return notBefore, limit.NotAfter, limit
}

// spkiOf encodes pub as a SubjectPublicKeyInfo, for keys issue gets as
// crypto.PublicKey rather than from a CSR.
func spkiOf(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: encode public key: %w", errUnsupportedKey, err)
	}
	return der, nil
}
