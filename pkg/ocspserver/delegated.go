package ocspserver

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/quill-pki/quill/pkg/issuance"
)

// DefaultResponderValidity is the lifetime NewDelegatedResponder gives a
// responder certificate when asked for none.
//
// Deprecated: use issuance.DefaultResponderValidity; removed when
// controllers/ moves over.
const DefaultResponderValidity = issuance.DefaultResponderValidity

// NewDelegatedResponder issues a delegated OCSP responder certificate from
// ca (signed with caKey) through issuance.Authority.IssueResponder, the path
// every certificate Quill signs takes; see there for the profile. Errors
// wrap ErrKeyMismatch when caKey is not ca's key and ErrInvalidConfig when
// ca cannot issue a responder or the arguments are wrong, beside the
// issuance sentinel that says why; a failure of caKey itself is returned
// as it is.
//
// Deprecated: use (*issuance.Authority).IssueResponder, whose Issued result
// the caller records in the ledger and the audit log like any other
// certificate; removed when controllers/ moves over.
func NewDelegatedResponder(ca *x509.Certificate, caKey crypto.Signer, validity time.Duration, now time.Time, keyAlgorithm issuance.KeyAlgorithm) (*x509.Certificate, crypto.Signer, error) {
	if ca == nil || caKey == nil {
		return nil, nil, fmt.Errorf("%w: delegated responder needs the CA certificate and key", ErrInvalidConfig)
	}
	a := &issuance.Authority{Certificate: ca, Root: ca, Signer: caKey}
	issued, key, err := a.IssueResponder(validity, keyAlgorithm, now)
	if err != nil {
		return nil, nil, responderError(err)
	}
	return issued.Certificate, key, nil
}

// responderError keeps NewDelegatedResponder's error contract over
// IssueResponder's sentinels. A certificate that cannot issue at all is
// reported as such even when the key does not match it either, as before.
func responderError(err error) error {
	for _, s := range []error{issuance.ErrMalformedCA, issuance.ErrNotCA, issuance.ErrNoCertSign,
		issuance.ErrCAExpired, issuance.ErrCANotYetValid, issuance.ErrInvalidOptions, issuance.ErrInvalidRequest} {
		if errors.Is(err, s) {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	if errors.Is(err, issuance.ErrKeyMismatch) {
		return fmt.Errorf("%w: %w", ErrKeyMismatch, err)
	}
	return err
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
