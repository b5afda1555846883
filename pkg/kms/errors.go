package kms

import "errors"

// The error set of every backend; the package documentation says how
// callers react to each.
var (
	// ErrUnavailable marks a key store that cannot be reached, or that
	// does not hold the key right now. Retry with backoff.
	ErrUnavailable = errors.New("key store unavailable")

	// ErrPINRefused marks a PIN (or other credential) the key store
	// refused. Never retry it automatically.
	ErrPINRefused = errors.New("PIN refused")

	// ErrKeyMismatch marks a private key that does not belong to the
	// certificate (or public key) it must match.
	ErrKeyMismatch = errors.New("key does not match its certificate")

	// ErrNotAllowed marks a reference the controller's configuration or
	// build does not allow: a PKCS#11 module outside the allow-list, a
	// scheme with no backend in this binary, a backend that needs cgo.
	ErrNotAllowed = errors.New("key store not allowed")

	// ErrInvalidRef marks a reference that is malformed, ambiguous, or
	// names something the backend cannot sign with.
	ErrInvalidRef = errors.New("invalid key reference")

	// ErrUnsupported marks a request the backend cannot honour: a missing
	// capability, an algorithm it cannot create, signature options.
	ErrUnsupported = errors.New("not supported by the key store")
)

// Mark returns err classified as kind, one of this package's sentinels,
// with err's message unchanged: errors.Is finds both kind and whatever err
// already wraps. Backends call it where they translate their own errors.
// Mark(nil, kind) is nil.
func Mark(err, kind error) error {
	if err == nil {
		return nil
	}
	return &marked{err: err, kind: kind}
}

type marked struct {
	err, kind error
}

func (m *marked) Error() string   { return m.err.Error() }
func (m *marked) Unwrap() []error { return []error{m.err, m.kind} }
