// Package pkcs11 signs with private keys that never leave a hardware
// security module, reached through a PKCS#11 library (SoftHSM2 in tests, a
// network or PCIe HSM in production). pkg/kms/pkcs11kms drives it as the
// PKCS#11 backend of Quill's key seam (pkg/kms), for the CA signer and the
// quillctl ceremony commands alike.
//
// Open finds one private key on one token and returns a *Key, a
// crypto.Signer that crypto/x509 can use directly. GenerateKey creates a key
// pair on a token during a CA ceremony; ImportCertificate and
// FindCertificate keep the CA certificate beside its key.
//
// # What callers can rely on
//
//   - One PKCS#11 context per library per process. PKCS#11 allows a single
//     C_Initialize per library in a process, so every Key opened on the same
//     ModulePath shares one context; the last Close finalizes it.
//   - A Key never logs out. PKCS#11 login state belongs to the process and
//     the token, not to a session, and C_Logout on any session logs out all
//     of them, so a Key holds one long-lived session that keeps the login
//     and signs on a bounded pool of further sessions.
//   - A Key recovers by itself from a lost token, a restarted device or a
//     re-initialised token: it re-initialises the shared context, logs in,
//     finds its key again and refuses it (ErrKeyMismatch) unless it is the
//     same key as before. Between failed attempts it backs off and answers
//     ErrUnavailable at once instead of blocking.
//   - A Key signs with a session copy of its token key, made inside the HSM
//     with C_CopyObject and exactly as sensitive and unextractable, unless
//     Config.DisableSessionCopy is set or the token refuses the copy (then
//     it signs with the token object and logs that once). With SoftHSM2
//     this removes the token-file checks from every signature (ECDSA P-256
//     costs about a third less CPU). The copy lives until the Key's login
//     session closes, is made again by every recovery, and the token key
//     behind it is checked at least every tokenCheckInterval (100 ms) while
//     signing, so that a deleted or re-initialised token still leads to a
//     recovery.
//   - A PIN the token rejects is never tried again by this package. HSMs
//     lock the user PIN after a few wrong attempts; only a new Open (with a
//     new PIN) logs in again.
//   - While a Key is logged in to a token, another Open on that token with a
//     different PIN is refused with ErrPINIncorrect without asking the
//     token. PKCS#11 answers CKR_USER_ALREADY_LOGGED_IN to any PIN once the
//     process is logged in, so without this check a wrong PIN would be
//     accepted whenever another issuer happened to use the same token.
//
// # Errors
//
// Every error wraps at most one of the sentinels below (ErrUnavailable also
// wraps the error of the last recovery attempt), so callers can choose a
// reaction with errors.Is:
//
//   - ErrInvalidConfig: the Config itself is wrong; fix the configuration.
//   - ErrModule: the library cannot be loaded or initialised; an operator
//     must fix the installation or the allow-list.
//   - ErrTokenNotFound, ErrTokenAmbiguous, ErrKeyNotFound, ErrKeyAmbiguous,
//     ErrCertificateNotFound, ErrCertificateAmbiguous: the token does not
//     hold what the Config names, exactly once.
//   - ErrPINIncorrect: the PIN was refused; do not retry with the same PIN.
//   - ErrKeyMismatch: a key was found but it is not the expected one (the
//     CA certificate's); an operator must restore the right key.
//   - ErrUnsupportedKey, ErrUnsupportedOptions: the key type, or the hash
//     or padding asked of Sign, is not one this package signs with.
//   - ErrUnavailable: the Key is between recovery attempts; retry later.
//   - ErrClosed: the Key was closed.
//   - ErrNoCGO: the binary was built without cgo and cannot load PKCS#11
//     libraries at all.
//
// Any other error is a PKCS#11 failure (it unwraps to pkcs11.Error from
// github.com/miekg/pkcs11 carrying the CKR_ code) and may be retried.
// No error message ever contains the PIN.
package pkcs11
