package issuance

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/quill-pki/quill/pkg/names"
)

const (
	// DefaultCertificateDuration applies when neither the request nor
	// Options name a duration; it matches cert-manager's own default.
	DefaultCertificateDuration = 90 * 24 * time.Hour

	// MinCertificateDuration is the shortest validity Sign issues. It is
	// the floor the Kubernetes CertificateSigningRequest API puts on
	// spec.expirationSeconds, so every request that API admits can be
	// served; anything shorter leaves cert-manager no time to renew.
	MinCertificateDuration = 10 * time.Minute
)

// Request is what a cert-manager CertificateRequest or a Kubernetes
// CertificateSigningRequest asks for. The controller fills it from the
// resource's spec; Sign trusts none of it without checking.
type Request struct {
	// CSR is one PEM "CERTIFICATE REQUEST" block.
	CSR []byte
	// Duration is the requested validity; 0 selects Options.DefaultDuration.
	Duration time.Duration
	// IsCA asks for a CA certificate; keyCertSign is then added to
	// KeyUsage.
	IsCA bool
	// MaxPathLen is the pathLenConstraint of a CA certificate; nil leaves
	// it out (no limit beyond the issuing chain's). Only valid with IsCA.
	MaxPathLen *int
	// KeyUsage and ExtKeyUsage are the certificate's usages, as cert-manager
	// computes them from spec.usages (see DefaultKeyUsage). They are
	// authoritative: the CSR's own usage extensions may only agree with them.
	KeyUsage    x509.KeyUsage
	ExtKeyUsage []x509.ExtKeyUsage
	// NameConstraints, when set, are written (critical) into a CA
	// certificate; issuance policy decides them, never the requester. Only
	// valid with IsCA.
	NameConstraints *NameConstraints
	// OtherNames are the CSR's otherName SANs that issuance policy allowed.
	// Sign refuses a CSR carrying an otherName not listed here, so that a
	// caller that never consulted policy cannot sign one by accident.
	OtherNames []names.OtherName
}

// NameConstraints are the permitted and excluded subtrees of an X.509 name
// constraints extension.
type NameConstraints struct {
	PermittedDNSDomains     []string
	ExcludedDNSDomains      []string
	PermittedIPRanges       []*net.IPNet
	ExcludedIPRanges        []*net.IPNet
	PermittedEmailAddresses []string
	ExcludedEmailAddresses  []string
	PermittedURIDomains     []string
	ExcludedURIDomains      []string
}

// Options are the issuer-wide settings for Sign, usually from the Issuer's
// spec. Validate reports whether they can be used at all.
type Options struct {
	// DefaultDuration applies when Request.Duration is 0; 0 selects
	// DefaultCertificateDuration.
	DefaultDuration time.Duration
	// MaxDuration caps Request.Duration; 0 means no cap. A longer request is
	// refused, never silently shortened: the requester should learn the
	// issuer's limit, not discover it at renewal time.
	MaxDuration time.Duration
	// RSAPSS makes an RSA CA sign with RSASSA-PSS (SHA-256) instead of
	// PKCS#1 v1.5. It is ignored for other CA keys.
	RSAPSS bool
	// CRLDistributionPoints, OCSPServers and IssuingCertificateURLs are
	// embedded in every certificate as given; each must be an absolute URL.
	CRLDistributionPoints  []string
	OCSPServers            []string
	IssuingCertificateURLs []string
	// MustStaple adds the TLS feature extension asking for OCSP stapling
	// (RFC 7633), so that TLS clients that honour it refuse the
	// certificate without a stapled OCSP response.
	MustStaple bool
	// ShortLivedMaxDuration, when positive, signs end-entity certificates
	// whose lifetime is at most this long as short-lived (RFC 9608): with
	// noRevAvail and without CRL distribution points, OCSP server or
	// Must-Staple.
	ShortLivedMaxDuration time.Duration
	// Now is the signing time; it must be set. Quill never reads the clock
	// itself so that controllers and tests decide what "now" is.
	Now time.Time
	// Rand is the randomness for serial numbers, also passed to the signer
	// (which may ignore it); nil selects crypto/rand.
	Rand io.Reader
}

// Validate reports whether o can be used for any request; its errors wrap
// ErrInvalidOptions. Sign calls it first, and a controller may call it when
// it reconciles the Issuer to surface the mistake before any request.
func (o Options) Validate() error {
	var errs []error
	if o.Now.IsZero() {
		errs = append(errs, errors.New("Now is not set"))
	}
	if o.DefaultDuration < 0 {
		errs = append(errs, fmt.Errorf("default duration %s is negative", o.DefaultDuration))
	}
	if o.MaxDuration < 0 {
		errs = append(errs, fmt.Errorf("maximum duration %s is negative", o.MaxDuration))
	}
	if o.ShortLivedMaxDuration < 0 {
		errs = append(errs, fmt.Errorf("short-lived maximum duration %s is negative", o.ShortLivedMaxDuration))
	}
	if d := o.defaultDuration(); d > 0 {
		if d < MinCertificateDuration {
			errs = append(errs, fmt.Errorf("default duration %s is below the minimum %s", d, MinCertificateDuration))
		}
		if o.MaxDuration > 0 && d > o.MaxDuration {
			errs = append(errs, fmt.Errorf("default duration %s exceeds the maximum duration %s", d, o.MaxDuration))
		}
	}
	if o.MaxDuration > 0 && o.MaxDuration < MinCertificateDuration {
		errs = append(errs, fmt.Errorf("maximum duration %s is below the minimum %s", o.MaxDuration, MinCertificateDuration))
	}
	for _, list := range []struct {
		name string
		urls []string
	}{
		{"CRL distribution point", o.CRLDistributionPoints},
		{"OCSP server", o.OCSPServers},
		{"issuing certificate URL", o.IssuingCertificateURLs},
	} {
		for _, s := range list.urls {
			if !absoluteURL(s) {
				errs = append(errs, fmt.Errorf("%s %q is not an absolute URL", list.name, s))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	return nil
}

// absoluteURL accepts what relying parties can fetch: an http(s) URL with a
// host, or another absolute URL (ldap:///CN=… distribution points, as Active
// Directory writes them, have no host).
func absoluteURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() {
		return false
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		return u.Host != ""
	}
	return true
}

func (o Options) defaultDuration() time.Duration {
	if o.DefaultDuration == 0 {
		return DefaultCertificateDuration
	}
	return o.DefaultDuration
}

func (o Options) rand() io.Reader {
	if o.Rand == nil {
		return rand.Reader
	}
	return o.Rand
}

// Issued is a signed certificate and what the controller stores beside it.
type Issued struct {
	// Certificate is the parsed certificate.
	Certificate *x509.Certificate
	// ChainPEM is the certificate followed by the issuing CA and the
	// Intermediates, never the root: it goes to status.certificate (tls.crt).
	// When the issuing CA is the root, it is the certificate alone.
	ChainPEM []byte
	// CAPEM is the root, for status.ca (ca.crt).
	CAPEM []byte
	// Notes are human-readable remarks on what Sign decided, for the
	// condition message: a validity clamped to the CA's lifetime, a usage
	// left out, an extension not copied.
	Notes []string
}

// Sign validates req against the rules of this CA and signs it.
//
// The certificate takes the CSR's subject exactly as encoded (so
// cert-manager's literal subjects survive) and its DNS, IP, URI, email and
// otherName names (otherNames only as req.OtherNames allows; see
// subjectAltName for the encoding); usages, CA flag and duration come from req; CRL, OCSP and AIA URLs
// from opts. It is valid from opts.Now truncated to the second (no
// backdating: requesters are pods in the same cluster, and a backdated
// certificate could start before its CA) for the requested duration,
// clamped to the earliest notAfter in the CA chain with a note. Its serial
// is 159 random bits; its subject key identifier follows RFC 7093 method 1
// and its authority key identifier is the issuing CA's subject key
// identifier. Before returning, Sign verifies the certificate up to Root.
//
// Errors wrap ErrInvalidRequest when the request must change (malformed,
// tampered or weak CSR, a duration outside MinCertificateDuration and
// opts.MaxDuration, usages or constraints that contradict the CSR or the
// CA chain), ErrInvalidOptions for bad opts, and the sentinels of Check
// when the CA cannot sign now. Any other error (the signer failed, the
// self-check failed) is plain, and no certificate is returned.
func (a *Authority) Sign(req Request, opts Options) (*Issued, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	now := opts.Now
	if err := a.Check(now); err != nil {
		return nil, fmt.Errorf("the issuing CA cannot sign: %w", err)
	}

	csr, err := parseCSR(req.CSR)
	if err != nil {
		return nil, invalidf("%w", err)
	}
	alg, err := describeKey(csr.PublicKey)
	if err != nil {
		return nil, invalidf("the CSR's public key is not accepted: %w", err)
	}
	if !hasNames(csr) {
		// otherNames do not count: most verifiers (crypto/x509 among them)
		// cannot read them, and a critical subjectAltName they cannot read
		// makes them reject the certificate outright.
		if others, _ := names.OtherNamesOfRequest(csr); len(others) > 0 {
			return nil, invalidf("the CSR has an empty subject and only otherName subject alternative names, which most verifiers cannot read and reject in the critical extension an empty subject needs; add a common name or a DNS name, IP address, URI or email address")
		}
		return nil, invalidf("the CSR has an empty subject and no subject alternative names, so the certificate would name nobody; add a common name or a DNS name, IP address, URI or email address")
	}
	ext, err := readCSRExtensions(csr)
	if err != nil {
		return nil, invalidf("%w", err)
	}
	others, err := requestOtherNames(csr, req.OtherNames)
	if err != nil {
		return nil, err
	}
	usages, err := resolveUsages(req, ext, alg)
	if err != nil {
		return nil, err
	}
	notes := usages.notes
	if len(ext.ignored) > 0 {
		notes = append(notes, fmt.Sprintf("CSR extensions %v were not copied into the certificate", ext.ignored))
	}
	if err := a.permitsExtKeyUsages(usages.extKeyUsage); err != nil {
		return nil, err
	}
	if req.NameConstraints != nil && !req.IsCA {
		return nil, invalidf("name constraints are only allowed with isCA: true")
	}
	maxPathLen := -1
	if req.IsCA {
		if maxPathLen, err = a.subordinatePathLen(req.MaxPathLen); err != nil {
			return nil, err
		}
	}

	notBefore, notAfter, note, err := a.validity(req.Duration, opts)
	if err != nil {
		return nil, err
	}
	if note != "" {
		notes = append(notes, note)
	}

	spki := csr.RawSubjectPublicKeyInfo
	template := &x509.Certificate{
		RawSubject:            csr.RawSubject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              usages.keyUsage,
		ExtKeyUsage:           usages.extKeyUsage,
		BasicConstraintsValid: true,
		IsCA:                  req.IsCA,
		MaxPathLen:            maxPathLen,
		MaxPathLenZero:        maxPathLen == 0,
		DNSNames:              csr.DNSNames,
		IPAddresses:           csr.IPAddresses,
		URIs:                  csr.URIs,
		EmailAddresses:        csr.EmailAddresses,
		CRLDistributionPoints: opts.CRLDistributionPoints,
		OCSPServer:            opts.OCSPServers,
		IssuingCertificateURL: opts.IssuingCertificateURLs,
	}
	if opts.MustStaple {
		template.ExtraExtensions = append(template.ExtraExtensions, mustStapleExtension)
	}
	if len(others) > 0 {
		// crypto/x509 cannot encode otherNames; with this extension in
		// ExtraExtensions it writes no subjectAltName of its own.
		san, err := subjectAltName(csr.DNSNames, csr.EmailAddresses, csr.IPAddresses, csr.URIs, others, bytes.Equal(csr.RawSubject, emptySubject))
		if err != nil {
			return nil, err
		}
		template.ExtraExtensions = append(template.ExtraExtensions, san)
	}
	if opts.shortLived(req.IsCA, notBefore, notAfter) {
		markShortLived(template)
	}
	if nc := req.NameConstraints; nc != nil {
		template.PermittedDNSDomainsCritical = true
		template.PermittedDNSDomains, template.ExcludedDNSDomains = nc.PermittedDNSDomains, nc.ExcludedDNSDomains
		template.PermittedIPRanges, template.ExcludedIPRanges = nc.PermittedIPRanges, nc.ExcludedIPRanges
		template.PermittedEmailAddresses, template.ExcludedEmailAddresses = nc.PermittedEmailAddresses, nc.ExcludedEmailAddresses
		template.PermittedURIDomains, template.ExcludedURIDomains = nc.PermittedURIDomains, nc.ExcludedURIDomains
	}
	if len(a.Certificate.SubjectKeyId) == 0 {
		notes = append(notes, "the issuing CA has no subject key identifier, so the certificate has no authority key identifier; reissue the CA to fix this")
	}
	cert, fitNotes, err := issue(a, nil, certRequest{tmpl: template, spki: spki, pub: csr.PublicKey, now: now, rsaPSS: opts.RSAPSS, rand: opts.rand()})
	if err != nil {
		return nil, err
	}
	if err := sameOtherNames(cert, others); err != nil {
		return nil, err
	}

	issued := a.bundle(cert)
	issued.Notes = notes
	if !defaultUsagesTrimmed(req.KeyUsage, fitNotes) {
		issued.Notes = append(issued.Notes, fitNotes...)
	}
	return issued, nil
}

// bundle is what a requester receives for cert: the chain without the root,
// and the root.
func (a *Authority) bundle(cert *x509.Certificate) *Issued {
	issued := &Issued{Certificate: cert, CAPEM: EncodeCertificatesPEM(a.Root)}
	if a.issuerIsRoot() {
		issued.ChainPEM = EncodeCertificatesPEM(cert)
	} else {
		issued.ChainPEM = EncodeCertificatesPEM(append([]*x509.Certificate{cert, a.Certificate}, a.Intermediates...)...)
	}
	return issued
}

// validity computes the certificate's notBefore and notAfter, and a note
// when the CA chain shortened it.
func (a *Authority) validity(requested time.Duration, opts Options) (notBefore, notAfter time.Time, note string, err error) {
	d := requested
	switch {
	case d < 0:
		return notBefore, notAfter, "", invalidf("duration %s is negative", d)
	case d == 0:
		d = opts.defaultDuration()
	case d < MinCertificateDuration:
		return notBefore, notAfter, "", invalidf("duration %s is below the minimum of %s", d, MinCertificateDuration)
	}
	if opts.MaxDuration > 0 && d > opts.MaxDuration {
		return notBefore, notAfter, "", invalidf("duration %s exceeds this issuer's maximum of %s; ask for %s or less", HumanDuration(d), HumanDuration(opts.MaxDuration), HumanDuration(opts.MaxDuration))
	}
	// X.509 times have one-second resolution; truncating here makes the
	// template equal the encoded certificate.
	notBefore = opts.Now.UTC().Truncate(time.Second)
	notAfter = notBefore.Add(d)

	limit := a.Certificate
	for _, c := range a.chain() {
		if c.NotAfter.Before(limit.NotAfter) {
			limit = c
		}
	}
	if notAfter.After(limit.NotAfter) {
		notAfter = limit.NotAfter.UTC()
		if left := notAfter.Sub(notBefore); left < MinCertificateDuration {
			return notBefore, notAfter, "", fmt.Errorf("%w: CA %q expires at %s, %s from now, which leaves no room for the minimum certificate duration of %s",
				ErrCAExpired, limit.Subject, stamp(limit.NotAfter), left, MinCertificateDuration)
		}
		note = fmt.Sprintf("validity clamped to the CA's notAfter %s: the requested %s would outlive CA %q; the certificate is valid for %s",
			stamp(notAfter), HumanDuration(d), limit.Subject, HumanDuration(notAfter.Sub(notBefore)))
	}
	return notBefore, notAfter, note, nil
}

// subordinatePathLen checks that the CA chain allows one more CA level below
// the issuing CA and returns the pathLenConstraint to encode (-1 for none).
// Every constrained certificate in the chain counts, root included, because
// Go's verifier (and OpenSSL's) enforce the root's constraint too.
func (a *Authority) subordinatePathLen(requested *int) (int, error) {
	budget, limitedBy := -1, (*x509.Certificate)(nil)
	for depth, c := range a.chain() {
		// Parsed certificates mark "no constraint" as -1; a zero without
		// MaxPathLenZero means the same in hand-built ones.
		if !c.BasicConstraintsValid || c.MaxPathLen < 0 || (c.MaxPathLen == 0 && !c.MaxPathLenZero) {
			continue
		}
		// depth CAs already sit below c, and the new CA adds one more.
		left := c.MaxPathLen - depth - 1
		if limitedBy == nil || left < budget {
			budget, limitedBy = left, c
		}
	}
	if limitedBy == nil {
		if requested == nil {
			return -1, nil
		}
		return *requested, nil
	}
	if budget < 0 {
		return 0, invalidf("CA %q has pathLenConstraint %d, which forbids issuing another CA below %q; request a certificate with isCA: false, or use a CA higher in the chain",
			limitedBy.Subject, limitedBy.MaxPathLen, a.Certificate.Subject)
	}
	if requested == nil {
		return -1, nil
	}
	if *requested > budget {
		return 0, invalidf("path length constraint %d is more than the CA chain allows below %q (at most %d, because of %q)",
			*requested, a.Certificate.Subject, budget, limitedBy.Subject)
	}
	return *requested, nil
}

// permitsExtKeyUsages refuses extended key usages a CA in the chain does not
// itself carry: verifiers reject such certificates, so issuing one would
// only hand the requester a certificate that fails in use.
func (a *Authority) permitsExtKeyUsages(requested []x509.ExtKeyUsage) error {
	for _, c := range a.chain() {
		if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
			continue
		}
		allowed := map[x509.ExtKeyUsage]bool{}
		for _, u := range c.ExtKeyUsage {
			allowed[u] = true
		}
		if allowed[x509.ExtKeyUsageAny] {
			continue
		}
		for _, u := range requested {
			if !allowed[u] {
				name, _ := extKeyUsageName(u)
				return invalidf("extended key usage '%s' is not allowed by CA %q, which permits only %s",
					name, c.Subject, quote(extKeyUsageNames(c.ExtKeyUsage)))
			}
		}
	}
	return nil
}

// verify is the last gate before a certificate leaves Sign: it must chain to
// Root through the Authority's own certificates. A failure means a bug or a
// broken CA, except for name constraints in the chain, which Go enforces only
// here and which the requester can act on.
//
// For an ML-DSA issuing CA, verifyMLDSA checks the signature with circl and
// the chain's other rules itself, unless the chain carries rules only Go's
// verifier should judge (mldsa_verify.go says why).
func (a *Authority) verify(cert *x509.Certificate) error {
	if !a.selfCheckWithGo {
		if handled, err := a.verifyMLDSA(cert); handled {
			return err
		}
	}
	return a.verifyX509(cert)
}

// verifyX509 is verify through crypto/x509's Certificate.Verify.
func (a *Authority) verifyX509(cert *x509.Certificate) error {
	roots := x509.NewCertPool()
	roots.AddCert(a.Root)
	intermediates := x509.NewCertPool()
	if !a.issuerIsRoot() {
		intermediates.AddCert(a.Certificate)
	}
	for _, c := range a.Intermediates {
		intermediates.AddCert(c)
	}
	_, err := cert.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		CurrentTime:   cert.NotBefore,
		// Extended key usages were checked against the chain before signing.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err == nil {
		return nil
	}
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) && invalid.Reason == x509.CANotAuthorizedForThisName {
		return invalidf("the CA chain's name constraints do not permit the requested names (the signed certificate was discarded): %w", err)
	}
	return fmt.Errorf("self-check: the signed certificate does not verify up to %q, so it was discarded: %w", a.Root.Subject, err)
}

// defaultUsagesTrimmed reports whether the key usage table left out only
// the keyEncipherment of cert-manager's default usages (digital signature,
// key encipherment, and cert sign for a CA). cert-manager asks for it for
// every key when a Certificate lists no usages; the user asked for nothing,
// and an IssuanceAdjusted warning on every ECDSA certificate would be
// noise. Anything else the table leaves out was asked for, and is noted.
func defaultUsagesTrimmed(requested x509.KeyUsage, fitNotes []string) bool {
	return requested&^(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) == DefaultKeyUsage &&
		len(fitNotes) == 1 && strings.Contains(fitNotes[0], "'key encipherment'")
}
