package ocspserver

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/mldsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"

	"github.com/quill-pki/quill/pkg/issuance"
)

// DefaultResponderValidity is the lifetime NewDelegatedResponder gives a
// responder certificate when asked for none. A delegated responder carries
// id-pkix-ocsp-nocheck, so nobody can revoke it: a short life is its only
// limit (RFC 6960 §4.2.2.2.1).
const DefaultResponderValidity = 7 * 24 * time.Hour

// clockSkew backdates responder certificates so that clients whose clock
// is a little behind still accept responses signed right after a rotation.
const clockSkew = 5 * time.Minute

var oidOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}

// NewDelegatedResponder issues a delegated OCSP responder certificate from
// ca (signed with caKey) for a fresh key of keyAlgorithm (empty: ECDSA
// P-256, which is cheap to sign with and verifies everywhere). The
// certificate has the OCSPSigning extended key usage, digitalSignature key
// usage, id-pkix-ocsp-nocheck, the CA's key identifier as authority key
// identifier, and lives validity (zero: DefaultResponderValidity) from now,
// backdated a few minutes for clock skew and never past the CA's notAfter.
//
// Responses signed with it verify against the CA without the CA key taking
// part in each response, which is the point for CA keys held in an HSM.
// Rotate it when NeedsRotation says so, with Responder.SetSigner. Errors wrap
// ErrInvalidConfig or ErrKeyMismatch; a failure of caKey itself is returned
// as it is.
func NewDelegatedResponder(ca *x509.Certificate, caKey crypto.Signer, validity time.Duration, now time.Time, keyAlgorithm issuance.KeyAlgorithm) (*x509.Certificate, crypto.Signer, error) {
	switch {
	case ca == nil || caKey == nil:
		return nil, nil, fmt.Errorf("%w: delegated responder needs the CA certificate and key", ErrInvalidConfig)
	case !ca.BasicConstraintsValid || !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0:
		return nil, nil, fmt.Errorf("%w: %q may not issue certificates", ErrInvalidConfig, ca.Subject)
	case len(ca.SubjectKeyId) == 0:
		return nil, nil, fmt.Errorf("%w: %q has no subject key identifier", ErrInvalidConfig, ca.Subject)
	case validity < 0:
		return nil, nil, fmt.Errorf("%w: negative responder validity %s", ErrInvalidConfig, validity)
	}
	if pub, ok := caKey.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(ca.PublicKey) {
		return nil, nil, fmt.Errorf("%w: %q", ErrKeyMismatch, ca.Subject)
	}
	if validity == 0 {
		validity = DefaultResponderValidity
	}
	notBefore := now.Add(-clockSkew).UTC().Truncate(time.Second)
	if notBefore.Before(ca.NotBefore) {
		notBefore = ca.NotBefore
	}
	notAfter := now.Add(validity).UTC().Truncate(time.Second)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	if !notAfter.After(now) {
		return nil, nil, fmt.Errorf("%w: CA %q expires at %s", ErrInvalidConfig, ca.Subject, ca.NotAfter)
	}
	sigAlg, err := issuance.SignatureAlgorithmFor(caKey.Public(), false)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	key, err := generateKey(keyAlgorithm)
	if err != nil {
		return nil, nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("encode responder key: %w", err)
	}
	var parsed struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &parsed); err != nil {
		return nil, nil, fmt.Errorf("encode responder key: %w", err)
	}
	// RFC 7093 method 1, as Quill derives every key identifier.
	ski := sha256.Sum256(parsed.PublicKey.Bytes)
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("responder serial: %w", err)
	}
	serial.SetBit(serial, 126, 1) // fixed length, never zero
	subject := pkix.Name{
		CommonName:   "OCSP Responder for " + ca.Subject.CommonName,
		Organization: ca.Subject.Organization,
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
		BasicConstraintsValid: true,
		SubjectKeyId:          ski[:20],
		SignatureAlgorithm:    sigAlg,
		ExtraExtensions: []pkix.Extension{
			{Id: oidOCSPNoCheck, Value: []byte{0x05, 0x00}}, // NULL
		},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign delegated responder certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse delegated responder certificate: %w", err)
	}
	return cert, key, nil
}

// NeedsRotation reports whether a delegated responder certificate should be
// replaced at now: when there is none, when it is not valid yet, or once
// two thirds of its lifetime have passed, which leaves a third for the
// rotation to happen and for responses signed with it to run out.
func NeedsRotation(cert *x509.Certificate, now time.Time) bool {
	if cert == nil || now.Before(cert.NotBefore) {
		return true
	}
	life := cert.NotAfter.Sub(cert.NotBefore)
	return !now.Before(cert.NotBefore.Add(life / 3 * 2))
}

func generateKey(alg issuance.KeyAlgorithm) (crypto.Signer, error) {
	var (
		key crypto.Signer
		err error
	)
	switch alg {
	case "", issuance.ECDSAP256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case issuance.ECDSAP384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case issuance.ECDSAP521:
		key, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case issuance.RSA2048:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case issuance.RSA3072:
		key, err = rsa.GenerateKey(rand.Reader, 3072)
	case issuance.RSA4096:
		key, err = rsa.GenerateKey(rand.Reader, 4096)
	case issuance.Ed25519:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case issuance.MLDSA44:
		key, err = mldsa.GenerateKey(mldsa.MLDSA44())
	case issuance.MLDSA65:
		key, err = mldsa.GenerateKey(mldsa.MLDSA65())
	case issuance.MLDSA87:
		key, err = mldsa.GenerateKey(mldsa.MLDSA87())
	default:
		return nil, fmt.Errorf("%w: unsupported responder key algorithm %q", ErrInvalidConfig, alg)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s responder key: %w", alg, err)
	}
	return key, nil
}
