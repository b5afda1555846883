package issuance

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/quill-pki/quill/pkg/kms"
)

// Authority is a CA ready to sign, and the only thing in Quill that signs:
// leaves and subordinate CAs (Sign), ceremony subordinates (SignCA), OCSP
// responder certificates (IssueResponder) and CRLs (SignCRL); SelfSign
// makes the roots an Authority starts from. LoadAuthority builds one from a
// Secret; NewAuthority takes a key behind any crypto.Signer (an HSM). Every
// certificate method runs Check first, so a stale Authority fails cleanly
// rather than issuing. The methods only read an Authority, so one value may
// serve concurrent requests if Signer allows it.
type Authority struct {
	// Certificate is the issuing CA; it signs what Sign returns.
	Certificate *x509.Certificate
	// Intermediates are the CAs between Certificate and Root, nearest to
	// Certificate first. They exclude Certificate and Root.
	Intermediates []*x509.Certificate
	// Root is the trust anchor handed to clients as ca.crt. It is the same
	// pointer as Certificate when the issuing CA is itself the root.
	Root *x509.Certificate
	// Signer is the private key of Certificate.
	Signer crypto.Signer

	// selfCheckWithGo makes Sign's self-check use crypto/x509 for every
	// key type, as it did before ML-DSA CAs got their own; benchmarks
	// compare the two.
	selfCheckWithGo bool
}

// LoadAuthority parses a CA stored in cert-manager's Secret layout.
//
// tlsCrt is a PEM bundle: the issuing CA first, then the CAs above it in
// order, each certificate signed by the next. tlsKey is the issuing CA's
// PEM private key (PKCS#1, SEC1 or PKCS#8, including Ed25519 and seed-only
// ML-DSA). caCrt is optional; when given it must contain the root that
// anchors the bundle, either the bundle's last certificate itself or its
// issuer. A ca.crt with several certificates, as during a root rotation, is
// searched for that one. Without caCrt the bundle's last certificate is the
// root, even when it is not self-signed: the Secret's owner chose it as
// the anchor.
//
// Errors wrap ErrMalformedCA (unparsable data, chain out of order, a
// ca.crt that does not anchor the chain, unsupported CA key) or
// kms.ErrKeyMismatch. LoadAuthority does not judge validity dates or CA flags;
// Check does.
func LoadAuthority(tlsCrt, tlsKey, caCrt []byte) (*Authority, error) {
	signer, err := SigningKeyFromPEM(tlsKey)
	if err != nil {
		return nil, fmt.Errorf("%w: tls.key: %w", ErrMalformedCA, err)
	}
	return NewAuthority(tlsCrt, caCrt, signer)
}

// SigningKeyFromPEM parses a CA's PEM private key as LoadAuthority does
// and returns the signer an Authority should hold: for an ML-DSA key, one
// that signs with the faster engine (mldsa_engine.go); any other key as
// ParsePrivateKeyPEM's parser returns it. pkg/kms/softkey opens Secret-held
// CA keys with it. Its errors are the parser's, without a sentinel: callers
// say which key failed and wrap ErrMalformedCA.
func SigningKeyFromPEM(keyPEM []byte) (crypto.Signer, error) {
	signer, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	return fastSigner(signer), nil
}

// NewAuthority is LoadAuthority for a key that is not in the Secret, such as
// an HSM key behind a crypto.Signer: tlsCrt and caCrt are read as
// LoadAuthority reads them, and signer must hold the key of tlsCrt's first
// certificate. Its errors are LoadAuthority's.
func NewAuthority(tlsCrt, caCrt []byte, signer crypto.Signer) (*Authority, error) {
	bundle, err := ParseCertificatesPEM(tlsCrt)
	if err != nil {
		return nil, fmt.Errorf("%w: tls.crt: %w", ErrMalformedCA, err)
	}
	for i := 0; i+1 < len(bundle); i++ {
		if err := bundle[i].CheckSignatureFrom(bundle[i+1]); err != nil {
			return nil, fmt.Errorf("%w: tls.crt is out of order: certificate %d (%s) is not signed by certificate %d (%s); list the issuing CA first, then each issuer: %w",
				ErrMalformedCA, i+1, bundle[i].Subject, i+2, bundle[i+1].Subject, err)
		}
	}
	issuing := bundle[0]
	if !PublicKeysEqual(signer.Public(), issuing.PublicKey) {
		return nil, fmt.Errorf("CA %w: the private key does not belong to %q", kms.ErrKeyMismatch, issuing.Subject)
	}
	if alg, err := describeKey(issuing.PublicKey); err != nil {
		return nil, fmt.Errorf("%w: CA key %s cannot be used: %w", ErrMalformedCA, alg, err)
	}

	a := &Authority{Certificate: issuing, Signer: signer}
	last := bundle[len(bundle)-1]
	root := last
	if len(bytes.TrimSpace(caCrt)) > 0 {
		anchors, err := ParseCertificatesPEM(caCrt)
		if err != nil {
			return nil, fmt.Errorf("%w: ca.crt: %w", ErrMalformedCA, err)
		}
		if root, err = anchorOf(last, anchors); err != nil {
			return nil, err
		}
	}
	switch {
	case root == last:
		// The bundle ends with its own anchor; everything between the
		// first and the last certificate is an intermediate.
		if len(bundle) > 2 {
			a.Intermediates = slices.Clone(bundle[1 : len(bundle)-1])
		}
		a.Root = last
	default:
		a.Intermediates = slices.Clone(bundle[1:])
		a.Root = root
	}
	return a, nil
}

// anchorOf finds in anchors the certificate that is last itself or issued
// it.
func anchorOf(last *x509.Certificate, anchors []*x509.Certificate) (*x509.Certificate, error) {
	for _, c := range anchors {
		if bytes.Equal(c.Raw, last.Raw) {
			return last, nil
		}
	}
	for _, c := range anchors {
		if bytes.Equal(last.RawIssuer, c.RawSubject) && last.CheckSignatureFrom(c) == nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w: ca.crt does not contain %q or its issuer %q", ErrMalformedCA, last.Subject, last.Issuer)
}

// chain lists the CA certificates from the issuing CA up to the root,
// without repeating the root when it is the issuing CA.
func (a *Authority) chain() []*x509.Certificate {
	out := make([]*x509.Certificate, 0, len(a.Intermediates)+2)
	out = append(out, a.Certificate)
	out = append(out, a.Intermediates...)
	if !a.issuerIsRoot() {
		out = append(out, a.Root)
	}
	return out
}

func (a *Authority) issuerIsRoot() bool {
	return sameCertificate(a.Root, a.Certificate)
}

// sameCertificate compares certificates by their DER encoding, so a
// hand-built Authority need not reuse pointers.
func sameCertificate(a, b *x509.Certificate) bool {
	return a == b || (a != nil && b != nil && bytes.Equal(a.Raw, b.Raw))
}

// Check is the issuer health check at time now. It verifies that the
// issuing certificate is a CA (basicConstraints cA=TRUE) whose keyUsage
// asserts keyCertSign, that now lies within the validity of every
// certificate from the issuing CA to the root, and that Signer holds the
// issuing certificate's key.
//
// It returns nil or all the problems found, joined; each wraps one of
// ErrMalformedCA (fields missing), kms.ErrKeyMismatch, ErrNotCA, ErrNoCertSign,
// ErrCANotYetValid or ErrCAExpired, and names the certificate and the
// dates involved.
func (a *Authority) Check(now time.Time) error {
	if a == nil || a.Certificate == nil || a.Root == nil || a.Signer == nil {
		return fmt.Errorf("%w: the authority needs a certificate, a root and a signer", ErrMalformedCA)
	}
	var errs []error
	c := a.Certificate
	if !PublicKeysEqual(a.Signer.Public(), c.PublicKey) {
		errs = append(errs, fmt.Errorf("CA %w: the signer's public key is not the key of %q", kms.ErrKeyMismatch, c.Subject))
	}
	if !c.BasicConstraintsValid || !c.IsCA {
		errs = append(errs, fmt.Errorf("%w: %q does not assert basicConstraints cA=TRUE", ErrNotCA, c.Subject))
	}
	switch {
	case c.KeyUsage == 0:
		errs = append(errs, fmt.Errorf("%w: %q has no keyUsage extension; a CA certificate must assert keyCertSign (RFC 5280, 4.2.1.3)", ErrNoCertSign, c.Subject))
	case c.KeyUsage&x509.KeyUsageCertSign == 0:
		errs = append(errs, fmt.Errorf("%w: the keyUsage of %q (%s) lacks keyCertSign", ErrNoCertSign, c.Subject, strings.Join(keyUsageNames(c.KeyUsage), ", ")))
	}
	for _, cert := range a.chain() {
		role := "issuing CA"
		switch {
		case sameCertificate(cert, a.Root):
			role = "root CA"
			if sameCertificate(cert, a.Certificate) {
				role = "issuing root CA"
			}
		case !sameCertificate(cert, a.Certificate):
			role = "intermediate CA"
		}
		// The messages name no current time: callers record them in status
		// and write again only when a message changes.
		if now.Before(cert.NotBefore) {
			errs = append(errs, fmt.Errorf("%w: %s %q is valid from %s", ErrCANotYetValid, role, cert.Subject, stamp(cert.NotBefore)))
		}
		switch {
		case now.After(cert.NotAfter):
			errs = append(errs, fmt.Errorf("%w: %s %q expired at %s", ErrCAExpired, role, cert.Subject, stamp(cert.NotAfter)))
		case cert.NotAfter.Sub(now) < MinCertificateDuration:
			// Sign could only refuse: nothing it issues may outlive the CA,
			// and nothing shorter than the minimum is issued.
			errs = append(errs, fmt.Errorf("%w: %s %q expires at %s, less than the minimum certificate lifetime of %s away",
				ErrCAExpired, role, cert.Subject, stamp(cert.NotAfter), MinCertificateDuration))
		}
	}
	return errors.Join(errs...)
}

// Summary describes the issuing CA for an issuer's status.
type Summary struct {
	// Subject is the issuing CA's subject in RFC 4514 form, e.g.
	// "CN=Quill Root,O=Example".
	Subject string
	// NotBefore and NotAfter bound the issuing CA's validity.
	NotBefore, NotAfter time.Time
	// KeyAlgorithm names the CA key, e.g. "ECDSA-P256" or "ML-DSA-65".
	KeyAlgorithm KeyAlgorithm
	// SHA256Fingerprint is the SHA-256 of the DER certificate as upper-case
	// hex pairs joined by colons, the form `openssl x509 -fingerprint
	// -sha256` prints, so operators can compare the two by eye.
	SHA256Fingerprint string
}

// Summary describes a.Certificate. It needs only Certificate to be set.
func (a *Authority) Summary() Summary {
	c := a.Certificate
	alg, _ := describeKey(c.PublicKey) // a refused key is still worth naming
	return Summary{
		Subject:           c.Subject.String(),
		NotBefore:         c.NotBefore,
		NotAfter:          c.NotAfter,
		KeyAlgorithm:      alg,
		SHA256Fingerprint: fingerprint(c.Raw),
	}
}

// SignatureAlgorithmName names the algorithm a signs certificates with, as
// Go's x509.SignatureAlgorithm.String does ("ECDSA-SHA384", "SHA256-RSAPSS",
// "Ed25519", "ML-DSA-65"); rsaPSS is the issuer's choice for RSA keys. It is
// "" for a key Quill cannot sign with.
func (a *Authority) SignatureAlgorithmName(rsaPSS bool) string {
	alg, err := signatureAlgorithmFor(a.Certificate.PublicKey, rsaPSS)
	if err != nil {
		return ""
	}
	return alg.String()
}

func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	pairs := make([]string, len(sum))
	for i, b := range sum {
		pairs[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(pairs, ":")
}
