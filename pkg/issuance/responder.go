package issuance

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"time"
)

// DefaultResponderValidity is the lifetime IssueResponder gives a delegated
// OCSP responder certificate when asked for none. Such a certificate carries
// id-pkix-ocsp-nocheck, so nobody can revoke it: a short life is its only
// limit (RFC 6960, 4.2.2.2.1).
const DefaultResponderValidity = 7 * 24 * time.Hour

// DefaultResponderKeyAlgorithm is the responder key IssueResponder makes
// when asked for none: ECDSA P-256 is cheap to sign with and verifies
// everywhere.
const DefaultResponderKeyAlgorithm = ECDSAP256

// responderBackdate backdates responder certificates so that clients whose
// clock is a little behind still accept responses signed right after a
// rotation.
const responderBackdate = 5 * time.Minute

// oidOCSPNoCheck is id-pkix-ocsp-nocheck (RFC 6960, 4.2.2.2.1).
var oidOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}

// IssueResponder issues a delegated OCSP responder certificate for a fresh
// key of keyAlgorithm ("" selects DefaultResponderKeyAlgorithm) and returns
// it with that key. The certificate is named "OCSP Responder for <CA common
// name>" with the CA's organization, has the OCSPSigning extended key usage,
// digitalSignature key usage, id-pkix-ocsp-nocheck, the CA's subject key
// identifier as authority key identifier, and lives validity (0:
// DefaultResponderValidity) from now, backdated five minutes for clock skew
// but never before, nor after, a CA of the chain. Responses signed with its
// key verify against the CA without the CA key taking part in each one,
// which is the point for CA keys held in an HSM.
//
// The Issued value is what Sign returns, so the caller records the
// certificate in the ledger and the audit log like any other.
//
// Errors wrap the sentinels of Check when the CA cannot sign at now,
// ErrMalformedCA when the CA certificate has no subject key identifier
// (responses could not name their issuer's key), ErrInvalidOptions for a
// negative validity or an unknown keyAlgorithm, and ErrInvalidRequest when
// a CA in the chain restricts extended key usages without allowing
// OCSPSigning (clients would refuse the responder); a failing signer gives
// a plain error.
func (a *Authority) IssueResponder(validity time.Duration, keyAlgorithm KeyAlgorithm, now time.Time) (*Issued, crypto.Signer, error) {
	if err := a.Check(now); err != nil {
		return nil, nil, fmt.Errorf("the issuing CA cannot sign: %w", err)
	}
	ca := a.Certificate
	switch {
	case len(ca.SubjectKeyId) == 0:
		return nil, nil, fmt.Errorf("%w: %q has no subject key identifier; reissue it with one to use a delegated OCSP responder", ErrMalformedCA, ca.Subject)
	case validity < 0:
		return nil, nil, fmt.Errorf("%w: negative responder validity %s", ErrInvalidOptions, validity)
	case validity == 0:
		validity = DefaultResponderValidity
	}
	if keyAlgorithm == "" {
		keyAlgorithm = DefaultResponderKeyAlgorithm
	}
	if _, err := ParseKeyAlgorithm(string(keyAlgorithm)); err != nil {
		return nil, nil, fmt.Errorf("%w: responder key: %w", ErrInvalidOptions, err)
	}

	chainStart, chainEnd, limit := a.chainValidity()
	notBefore := now.Add(-responderBackdate).UTC().Truncate(time.Second)
	if notBefore.Before(chainStart) {
		notBefore = chainStart
	}
	notAfter := now.Add(validity).UTC().Truncate(time.Second)
	if notAfter.After(chainEnd) {
		notAfter = chainEnd
	}
	if !notAfter.After(now) {
		return nil, nil, fmt.Errorf("%w: CA %q expires at %s", ErrCAExpired, limit.Subject, stamp(chainEnd))
	}

	key, err := GenerateKey(keyAlgorithm)
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s responder key: %w", keyAlgorithm, err)
	}
	spki, err := spkiOf(key.Public())
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		Subject: pkix.Name{
			CommonName:   "OCSP Responder for " + ca.Subject.CommonName,
			Organization: ca.Subject.Organization,
		},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
		BasicConstraintsValid: true,
		ExtraExtensions: []pkix.Extension{
			{Id: oidOCSPNoCheck, Value: []byte{0x05, 0x00}}, // NULL
		},
	}
	// RSA CAs sign it with PKCS#1 v1.5 whatever they choose for what Sign
	// issues: the responder certificate has always been signed so, and a
	// rotation should change nothing OCSP clients see.
	// Its only usage, digitalSignature, fits every key type: issue leaves no
	// note to pass on.
	cert, _, err := issue(a, nil, certRequest{tmpl: tmpl, spki: spki, pub: key.Public(), now: now})
	if err != nil {
		return nil, nil, err
	}
	return a.bundle(cert), key, nil
}
