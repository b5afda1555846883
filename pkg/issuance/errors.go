package issuance

import (
	"errors"
	"fmt"
)

// Error sentinels. Every error this package returns wraps at most one class
// of them, so a controller can pick a condition reason with errors.Is; the
// message around it says what to change.
var (
	// ErrInvalidRequest marks a request that can never be signed as it
	// stands: malformed or tampered CSR, weak or unsupported key, duration
	// out of bounds, usages or constraints that contradict the CSR or the
	// CA. Retrying the same request will fail the same way.
	ErrInvalidRequest = errors.New("invalid certificate request")

	// ErrMalformedCA marks CA material that cannot be used: PEM or DER that
	// does not parse, a certificate chain out of order, a ca.crt that does
	// not anchor the chain, or a CA key of an unsupported type or size.
	ErrMalformedCA = errors.New("malformed CA")

	// A CA whose private key does not belong to its certificate wraps
	// kms.ErrKeyMismatch, the one key-mismatch sentinel that every key
	// source (Secret, PKCS#11 token) shares.

	// ErrNotCA marks an issuing certificate without basicConstraints cA=TRUE.
	ErrNotCA = errors.New("certificate is not a CA")

	// ErrNoCertSign marks an issuing certificate whose keyUsage lacks
	// keyCertSign.
	ErrNoCertSign = errors.New("CA certificate may not sign certificates")

	// ErrCAExpired marks a CA chain with a certificate past its notAfter, or
	// so close to it that no certificate of the minimum duration fits.
	ErrCAExpired = errors.New("CA certificate expired")

	// ErrCANotYetValid marks a CA chain with a certificate before its
	// notBefore.
	ErrCANotYetValid = errors.New("CA certificate not yet valid")

	// ErrInvalidOptions marks Options that cannot be used for any request,
	// such as a default duration above the maximum. It points at the
	// issuer's configuration, not at the request.
	ErrInvalidOptions = errors.New("invalid issuance options")
)

// invalidf builds an ErrInvalidRequest error; every refusal of a request
// goes through it so none can forget the sentinel.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrInvalidRequest, fmt.Errorf(format, args...))
}
