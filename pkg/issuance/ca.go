package issuance

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// caKeyUsage is what every CA certificate made by SelfSign and SignCA
// asserts: signing certificates and CRLs, and digitalSignature for OCSP
// responses the CA signs itself.
const caKeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature

// CAProfile is what an operator decides about a CA certificate made outside
// a CertificateRequest: a root (SelfSign) or a subordinate signed in a
// ceremony (SignCA).
type CAProfile struct {
	// Validity is the lifetime from the signing time; at least
	// MinCertificateDuration, since nothing shorter could be issued under
	// the CA.
	Validity time.Duration
	// Backdate moves notBefore this far before the signing time, for the
	// clocks of relying parties Quill does not control; not negative.
	Backdate time.Duration
	// MaxPathLen is the pathLenConstraint; nil leaves it out.
	MaxPathLen *int
	// NameConstraints, when it names any subtree, becomes a critical name
	// constraints extension (RFC 5280, 4.2.1.10).
	NameConstraints *NameConstraints
}

// check refuses a profile no CA certificate can be made from. Its errors
// are unclassified: SelfSign and SignCA wrap them in ErrInvalidRequest,
// NewSelfSignedRoot in its own error.
func (p CAProfile) check(rawSubject []byte, now time.Time) error {
	switch {
	case now.IsZero():
		return errors.New("now is not set")
	case p.Validity < MinCertificateDuration:
		return fmt.Errorf("validity %s is below the minimum of %s", p.Validity, MinCertificateDuration)
	case p.Backdate < 0:
		return fmt.Errorf("backdating %s is negative", p.Backdate)
	case p.MaxPathLen != nil && *p.MaxPathLen < 0:
		return fmt.Errorf("path length constraint %d is negative", *p.MaxPathLen)
	case len(rawSubject) == 0 || bytes.Equal(rawSubject, emptySubject):
		// The issuer name of everything the CA signs would be empty, which
		// RFC 5280 (4.1.2.4) forbids.
		return errors.New("the subject is empty")
	}
	return nil
}

// template is the CA certificate p describes, valid from notBefore to
// notAfter.
func (p CAProfile) template(rawSubject []byte, notBefore, notAfter time.Time) *x509.Certificate {
	t := &x509.Certificate{
		RawSubject:            rawSubject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              caKeyUsage,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            -1,
	}
	if p.MaxPathLen != nil {
		t.MaxPathLen, t.MaxPathLenZero = *p.MaxPathLen, *p.MaxPathLen == 0
	}
	if nc := p.NameConstraints; nc != nil {
		t.PermittedDNSDomains, t.ExcludedDNSDomains = nc.PermittedDNSDomains, nc.ExcludedDNSDomains
		t.PermittedIPRanges, t.ExcludedIPRanges = nc.PermittedIPRanges, nc.ExcludedIPRanges
		t.PermittedEmailAddresses, t.ExcludedEmailAddresses = nc.PermittedEmailAddresses, nc.ExcludedEmailAddresses
		t.PermittedURIDomains, t.ExcludedURIDomains = nc.PermittedURIDomains, nc.ExcludedURIDomains
		t.PermittedDNSDomainsCritical = hasNameConstraints(t)
	}
	return t
}

// SelfSign makes a self-signed root CA certificate named rawSubject (a DER
// Name, which must not be empty) for signer's key: cA=TRUE with p's path
// length, keyUsage keyCertSign, cRLSign and digitalSignature, p's name
// constraints, a subject key identifier and no authority key identifier.
// It is valid from now truncated to the second minus p.Backdate until now
// plus p.Validity. The result's ChainPEM and CAPEM both hold the root.
//
// Errors wrap ErrInvalidRequest for a profile or subject that cannot make a
// root, ErrMalformedCA for a key Quill does not accept for a CA; a signer
// that fails or signs wrongly gives a plain error.
func SelfSign(signer crypto.Signer, rawSubject []byte, p CAProfile, now time.Time) (*Issued, error) {
	if signer == nil {
		return nil, fmt.Errorf("%w: no key to sign with", ErrMalformedCA)
	}
	if err := p.check(rawSubject, now); err != nil {
		return nil, invalidf("%w", err)
	}
	pub := signer.Public()
	if alg, err := describeKey(pub); err != nil {
		return nil, fmt.Errorf("%w: CA key %s cannot be used: %w", ErrMalformedCA, alg, err)
	}
	spki, err := spkiOf(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedCA, err)
	}
	now = now.UTC().Truncate(time.Second)
	tmpl := p.template(rawSubject, now.Add(-p.Backdate), now.Add(p.Validity))
	cert, notes, err := issue(nil, signer, certRequest{tmpl: tmpl, spki: spki, pub: pub, now: now})
	if err != nil {
		return nil, err
	}
	chain := EncodeCertificatesPEM(cert)
	return &Issued{Certificate: cert, ChainPEM: chain, CAPEM: chain, Notes: notes}, nil
}

// SignCA signs a subordinate CA certificate for csr, the way an offline CA
// does in a key ceremony: the certificate takes the request's subject and
// public key and nothing else from it (its extensions are the signer's
// choice, not the requester's); it gets cA=TRUE with p's path length,
// keyUsage keyCertSign, cRLSign and digitalSignature, and p's name
// constraints. It is valid from now minus p.Backdate, but never before a CA
// of the chain, for p.Validity, shortened with a note to the earliest
// notAfter in the chain.
//
// Errors wrap ErrInvalidRequest (a profile that cannot make a CA, a request
// whose signature does not verify, whose key Quill refuses, whose subject is
// empty or the issuing CA's own, or a path length the chain does not
// allow), ErrCAExpired when the chain leaves no room for the minimum
// lifetime, and the sentinels of Check; signer failures are plain.
func (a *Authority) SignCA(csr *x509.CertificateRequest, p CAProfile, now time.Time) (*Issued, error) {
	if csr == nil {
		return nil, invalidf("no certificate request")
	}
	if err := p.check(csr.RawSubject, now); err != nil {
		return nil, invalidf("%w", err)
	}
	if err := a.Check(now); err != nil {
		return nil, fmt.Errorf("the issuing CA cannot sign: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, invalidf("the request's signature does not verify (damaged, or not signed by the key it carries): %w", err)
	}
	if alg, err := describeKey(csr.PublicKey); err != nil {
		return nil, invalidf("the request's key %s is not accepted: %w", alg, err)
	}
	if bytes.Equal(csr.RawSubject, a.Certificate.RawSubject) {
		return nil, invalidf("the request's subject %q is the issuing CA's own; give the subordinate a name of its own", a.Certificate.Subject)
	}
	pathLen, err := a.subordinatePathLen(p.MaxPathLen)
	if err != nil {
		return nil, err
	}
	p.MaxPathLen = nil
	if pathLen >= 0 {
		p.MaxPathLen = &pathLen
	}

	now = now.UTC().Truncate(time.Second)
	chainStart, chainEnd, limit := a.chainValidity()
	// Starting before an issuer does is harmless to verifiers but reads as
	// a mistake; never precede the chain.
	notBefore := now.Add(-p.Backdate)
	if chainStart.After(notBefore) {
		notBefore = chainStart
	}
	notAfter := now.Add(p.Validity)
	var notes []string
	if notAfter.After(chainEnd) {
		notAfter = chainEnd
		if left := notAfter.Sub(now); left < MinCertificateDuration {
			return nil, fmt.Errorf("%w: %q expires at %s, which leaves no room for a subordinate", ErrCAExpired, limit.Subject, stamp(chainEnd))
		}
		notes = append(notes, fmt.Sprintf("validity shortened to end with %q at %s: a subordinate cannot outlive its issuer (requested %s, got %s)",
			limit.Subject, stamp(chainEnd), HumanDuration(p.Validity), HumanDuration(notAfter.Sub(now))))
	}
	if len(a.Certificate.SubjectKeyId) == 0 {
		notes = append(notes, fmt.Sprintf("%q has no subject key identifier, so the subordinate has no authority key identifier", a.Certificate.Subject))
	}
	tmpl := p.template(csr.RawSubject, notBefore, notAfter)
	cert, fitNotes, err := issue(a, nil, certRequest{tmpl: tmpl, spki: csr.RawSubjectPublicKeyInfo, pub: csr.PublicKey, now: now})
	if err != nil {
		return nil, err
	}
	issued := a.bundle(cert)
	issued.Notes = append(notes, fitNotes...)
	return issued, nil
}
