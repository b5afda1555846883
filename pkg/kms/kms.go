package kms

import (
	"context"
	"crypto"

	"github.com/go-logr/logr"
)

// Ref names one key in one backend. Implementations are small values that
// say where the key is, never a secret in their String form.
type Ref interface {
	// Scheme selects the backend that opens the key: the URI scheme for
	// references users type ("pkcs11"), a fixed name otherwise.
	Scheme() string
	// String names the key in messages and logs, with any PIN removed.
	String() string
}

// Key is an opened private key. It is safe for concurrent use.
type Key interface {
	// Public and Sign make a Key a crypto.Signer that crypto/x509 signs
	// with. Sign errors are classified as the package documentation says.
	crypto.Signer
	// Probe proves the key can sign now (a throwaway signature, or the
	// backend's cheaper equivalent), for health checks. Its errors are
	// classified as Sign's.
	Probe(ctx context.Context) error
	// Close releases the key's sessions. The Key must not be used after.
	Close() error
}

// Backend opens the keys of one scheme. Register it in the init function of
// its package.
type Backend interface {
	// Check validates ref and opts without contacting the key store:
	// the reference's shape, and whether opts allow it (ErrNotAllowed).
	// Callers check before reading credentials, so that a disallowed
	// reference is reported as such rather than as a missing PIN.
	Check(ref Ref, opts Options) error
	// Open returns the key ref names. When opts.Expected is set, a key
	// whose public key differs fails with ErrKeyMismatch, now and whenever
	// the backend finds the key again later.
	Open(ctx context.Context, ref Ref, opts Options) (Key, error)
}

// RefParser is the optional capability of a backend whose references have
// a text form (a URI) that users type.
type RefParser interface {
	// ParseRef parses s, which starts with the backend's scheme and a
	// colon. Errors wrap ErrInvalidRef and never contain a PIN.
	ParseRef(s string) (Ref, error)
}

// KeyCreator is the optional capability of a backend that can create keys
// (`quillctl hsm keygen`).
type KeyCreator interface {
	// CreateKey makes a new key pair of algorithm alg, a
	// pkg/issuance.KeyAlgorithm name such as "ECDSA-P384", at the place
	// ref names, and returns it opened. A key already there fails with
	// ErrInvalidRef; an algorithm the backend cannot make fails with
	// ErrUnsupported.
	CreateKey(ctx context.Context, ref Ref, alg string, opts Options) (Key, error)
}

// CertificateStore is the optional capability of a backend that keeps
// certificates beside its keys (a CA certificate on the token of its key).
type CertificateStore interface {
	// StoreCertificate stores the DER certificate under label beside the
	// key ref names. A label already in use fails with ErrInvalidRef.
	StoreCertificate(ctx context.Context, ref Ref, label string, der []byte, opts Options) error
	// LoadCertificate returns the DER of the one certificate labelled
	// label in the store ref names (ref's key fields are ignored).
	// A missing certificate fails with ErrUnavailable, several with
	// ErrInvalidRef.
	LoadCertificate(ctx context.Context, ref Ref, label string, opts Options) ([]byte, error)
}

// Options are what the caller of a backend decides, as opposed to what the
// reference's author wrote. The zero value is valid.
type Options struct {
	// Expected, when set, is the public key the key must have, normally
	// the CA certificate's.
	Expected crypto.PublicKey

	// Modules is the controller's allow-list of PKCS#11 libraries: the
	// name a reference gives (a pkcs11: URI's module-name) mapped to the
	// library's absolute path. When it is non-nil, a reference can only
	// name a library in it; loading a library runs its code in this
	// process, so the path is never taken from an issuer. Nil lets a
	// reference give its library by module-path: quillctl, whose user is
	// the one who runs it.
	Modules map[string]string

	// OnLogin, when set, is told of every login the backend makes for the
	// key, with its outcome, so that a controller can count the PINs it
	// presents. It must return quickly.
	OnLogin func(LoginResult)

	// FewSignatures says the key will sign once or twice (a ceremony): the
	// backend should not prepare for many signatures.
	FewSignatures bool

	// Log receives the backend's rare events. The zero Logger leaves the
	// choice to the backend (pkcs11kms logs through slog.Default).
	Log logr.Logger
}

// LoginResult is the outcome of one login to a key store.
type LoginResult string

// The outcomes Options.OnLogin reports.
const (
	// LoginOK: the store accepted the credential.
	LoginOK LoginResult = "ok"
	// LoginPINRefused: the store refused the PIN.
	LoginPINRefused LoginResult = "pin_incorrect"
	// LoginFailed: the login failed for another reason.
	LoginFailed LoginResult = "error"
)
