package pkcs11

import "errors"

// Error sentinels; see the package documentation for how callers are
// expected to react to each.
var (
	// ErrNoCGO is returned by every function of a binary built with
	// CGO_ENABLED=0: loading a PKCS#11 library needs the C runtime.
	ErrNoCGO = errors.New("PKCS#11 support needs a cgo build (CGO_ENABLED=1)")

	// ErrInvalidConfig marks a Config that cannot be used for any token:
	// a relative module path, both or neither of TokenLabel and
	// TokenSerial, neither KeyLabel nor KeyID, an unknown algorithm name.
	ErrInvalidConfig = errors.New("invalid PKCS#11 configuration")

	// ErrModule marks a PKCS#11 library that cannot be loaded or
	// initialised: missing file, not a PKCS#11 library, C_Initialize
	// refused, or already initialised by other code in this process.
	ErrModule = errors.New("PKCS#11 library unusable")

	// ErrTokenNotFound marks a TokenLabel or TokenSerial that no token
	// present in the library's slots carries.
	ErrTokenNotFound = errors.New("PKCS#11 token not found")

	// ErrTokenAmbiguous marks a TokenLabel that several tokens carry; select
	// the token by TokenSerial instead.
	ErrTokenAmbiguous = errors.New("several PKCS#11 tokens match")

	// ErrPINIncorrect marks a PIN the token refused (CKR_PIN_INCORRECT,
	// CKR_PIN_INVALID, CKR_PIN_LEN_RANGE, CKR_PIN_EXPIRED or
	// CKR_PIN_LOCKED), or one that differs from the PIN this process is
	// already logged in with on that token. This package never tries the
	// same PIN twice: HSMs lock the PIN after a few failures.
	ErrPINIncorrect = errors.New("PKCS#11 PIN refused")

	// ErrKeyNotFound marks a KeyLabel/KeyID that no private key on the
	// token carries, or a key pair whose public half cannot be found when
	// Config.Expected does not supply it.
	ErrKeyNotFound = errors.New("PKCS#11 key not found")

	// ErrKeyAmbiguous marks a KeyLabel/KeyID that several private keys
	// carry; or, for GenerateKey, a label or ID already in use, since a new
	// key under it would make later lookups ambiguous.
	ErrKeyAmbiguous = errors.New("several PKCS#11 keys match")

	// ErrKeyMismatch marks a key that is not the expected one: its public
	// key differs from Config.Expected (or, when recovering, from the key
	// found at Open), or its private key does not produce signatures its
	// public key verifies.
	ErrKeyMismatch = errors.New("PKCS#11 key is not the expected key")

	// ErrUnsupportedKey marks a key type this package cannot sign with
	// (only RSA, ECDSA P-256/P-384/P-521 and Ed25519 are supported), or an
	// unknown GenerateKey algorithm.
	ErrUnsupportedKey = errors.New("unsupported PKCS#11 key")

	// ErrUnsupportedOptions marks a Sign call whose hash, padding or
	// digest length the key cannot honour, such as SHA-1, an Ed25519
	// context, or a digest of the wrong size.
	ErrUnsupportedOptions = errors.New("unsupported signature options")

	// ErrUnavailable marks a Sign refused without touching the token
	// because the Key's last recovery failed and its backoff has not
	// elapsed; the error also wraps that recovery's error. Retry later.
	ErrUnavailable = errors.New("PKCS#11 key temporarily unavailable")

	// ErrClosed marks use of a Key after Close.
	ErrClosed = errors.New("PKCS#11 key closed")

	// ErrCertificateNotFound marks a label no certificate on the token
	// carries.
	ErrCertificateNotFound = errors.New("PKCS#11 certificate not found")

	// ErrCertificateAmbiguous marks a label several certificates carry; or,
	// for ImportCertificate, a label already in use.
	ErrCertificateAmbiguous = errors.New("several PKCS#11 certificates match")
)
