package pkcs11

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
)

// DefaultMaxSessions is the signing session pool bound of a Config that
// leaves MaxSessions at zero: enough to keep two cores busy with ECDSA
// through SoftHSM, low enough for HSMs that allow only a few dozen sessions
// per partition.
const DefaultMaxSessions = 4

// maxTokenLabel is the size of CK_TOKEN_INFO.label; a longer label can never
// match a token.
const maxTokenLabel = 32

// Config locates one private key on one token. quill-controller builds it
// from an issuer's HSM reference and its own allow-list of libraries;
// quillctl builds it from ceremony flags.
type Config struct {
	// ModulePath is the absolute path of the PKCS#11 library. Callers
	// resolve it from an operator-controlled allow-list, never from user
	// input: loading a library runs its code inside this process.
	ModulePath string

	// TokenLabel or TokenSerial (exactly one) selects the token. Slot IDs
	// are deliberately not accepted: SoftHSM and several HSMs renumber
	// slots whenever tokens are added or re-initialised.
	TokenLabel  string
	TokenSerial string

	// KeyLabel (CKA_LABEL) and/or KeyID (CKA_ID) select the private key; at
	// least one is required, and both must match when both are set.
	KeyLabel string
	KeyID    []byte

	// PIN is the token's user PIN. It is never logged and never appears in
	// an error message; Config's String and GoString methods omit it.
	PIN string

	// Expected, when set, is the public key the private key must have,
	// normally the CA certificate's. Open and every recovery refuse any
	// other key with ErrKeyMismatch. When nil, recoveries compare with the
	// key found at Open.
	Expected crypto.PublicKey

	// MaxSessions bounds the signing sessions a Key opens, in addition to
	// its one long-lived login session; Sign calls beyond it wait for a
	// free session. Zero means DefaultMaxSessions.
	MaxSessions int

	// DisableSessionCopy makes the Key sign with the private key object on
	// the token itself. By default the Key copies that object, inside the
	// HSM, into a session object (C_CopyObject with CKA_TOKEN false) that
	// stays as sensitive and unextractable as the original, and signs with
	// the copy: HSM libraries that keep token objects in files, as SoftHSM2
	// does, re-read and lock those files on every C_SignInit but keep
	// session objects in memory. A token that refuses the copy (for a key
	// with CKA_COPYABLE false, or without C_CopyObject) is used directly
	// either way. See Key.SignsWithSessionCopy.
	DisableSessionCopy bool

	// Log receives the Key's rare events: a session copy the token refused
	// (once per Key). The zero Logger logs through slog.Default.
	Log logr.Logger

	// OnLogin, when set, is called after every C_Login made for this
	// Config, with its outcome: it lets a controller count the PINs it
	// presents to a token (HSMs lock a PIN after a few failures). A PIN
	// turned away before C_Login (see Open) is not reported: the token
	// never saw it. It runs under the library's login lock and must return
	// quickly.
	OnLogin func(LoginResult)

	// hooks is set only by this package's tests.
	hooks *hooks
}

// LoginResult is the outcome of one C_Login, as Config.OnLogin reports it.
type LoginResult string

const (
	// LoginOK: the token accepted the PIN, or the process was already
	// logged in to it.
	LoginOK LoginResult = "ok"
	// LoginPINIncorrect: the token refused the PIN (incorrect, invalid,
	// expired or locked).
	LoginPINIncorrect LoginResult = "pin_incorrect"
	// LoginFailed: C_Login failed for another reason (a lost session, a
	// device error).
	LoginFailed LoginResult = "error"
)

// hooks lets this package's tests observe what is otherwise invisible from
// outside (every C_Login) and shorten waits, without replacing the PKCS#11
// library. Production Configs leave it nil.
type hooks struct {
	// login, when set, is called after every C_Login with its result.
	login func(err error)
	// rescanAfter, when set, replaces tokenRescanAfter.
	rescanAfter *time.Duration
	// tokenCheck, when set, replaces tokenCheckInterval.
	tokenCheck *time.Duration
}

// String describes the Config for logs and errors without the PIN.
func (c Config) String() string {
	token := "label=" + c.TokenLabel
	if c.TokenSerial != "" {
		token = "serial=" + c.TokenSerial
	}
	return fmt.Sprintf("pkcs11{module=%s token %s %s}", c.ModulePath, token, c.keyName())
}

// GoString keeps %#v from printing the PIN.
func (c Config) GoString() string { return c.String() }

// keyName names the key the way error messages show it.
func (c Config) keyName() string {
	switch {
	case c.KeyLabel != "" && len(c.KeyID) > 0:
		return fmt.Sprintf("key label=%q id=%s", c.KeyLabel, hex.EncodeToString(c.KeyID))
	case len(c.KeyID) > 0:
		return "key id=" + hex.EncodeToString(c.KeyID)
	default:
		return fmt.Sprintf("key label=%q", c.KeyLabel)
	}
}

// tokenName names the token the way error messages show it.
func (c Config) tokenName() string {
	if c.TokenSerial != "" {
		return fmt.Sprintf("token serial %q", c.TokenSerial)
	}
	return fmt.Sprintf("token %q", c.TokenLabel)
}

// validate checks what can be checked without the library. needKey is false
// for the certificate functions, which select no key.
func (c Config) validate(needKey bool) error {
	if c.ModulePath == "" || !filepath.IsAbs(c.ModulePath) {
		return fmt.Errorf("%w: module path %q is not absolute", ErrInvalidConfig, c.ModulePath)
	}
	if (c.TokenLabel == "") == (c.TokenSerial == "") {
		return fmt.Errorf("%w: set exactly one of token label and token serial", ErrInvalidConfig)
	}
	if len(c.TokenLabel) > maxTokenLabel {
		return fmt.Errorf("%w: token label %q is longer than %d bytes", ErrInvalidConfig, c.TokenLabel, maxTokenLabel)
	}
	if needKey && c.KeyLabel == "" && len(c.KeyID) == 0 {
		return fmt.Errorf("%w: set a key label, a key ID or both", ErrInvalidConfig)
	}
	if c.MaxSessions < 0 {
		return fmt.Errorf("%w: max sessions %d is negative", ErrInvalidConfig, c.MaxSessions)
	}
	switch c.Expected.(type) {
	case nil, *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return fmt.Errorf("%w: expected public key of type %T", ErrUnsupportedKey, c.Expected)
	}
	return nil
}

func (c Config) maxSessions() int {
	if c.MaxSessions == 0 {
		return DefaultMaxSessions
	}
	return c.MaxSessions
}

// Algorithm names a key type and size GenerateKey can create. These are
// this package's own names (it imports nothing of Quill's); Quill's names
// live in pkg/issuance, and pkg/kms/pkcs11kms maps them to these.
type Algorithm string

// The algorithms GenerateKey accepts.
const (
	ECDSAP256 Algorithm = "ECDSA-P256"
	ECDSAP384 Algorithm = "ECDSA-P384"
	ECDSAP521 Algorithm = "ECDSA-P521"
	RSA2048   Algorithm = "RSA-2048"
	RSA3072   Algorithm = "RSA-3072"
	RSA4096   Algorithm = "RSA-4096"
	Ed25519   Algorithm = "Ed25519"
)
