// Package kms is Quill's key-backend seam: the one place where a CA key
// kept outside Quill's own memory (on a PKCS#11 token today; a cloud KMS or
// a TPM tomorrow) is named, opened and classified when it fails.
//
// # Who calls it
//
// pkg/castore turns an issuer's spec.ca into a Ref (one function) and opens
// it through a Registry when it loads the issuer's CA; quillctl parses the
// keys users type (--key 'pkcs11:…') with Registry.Parse and uses the same
// Registry for ceremonies, including the optional capabilities (KeyCreator
// for `quillctl hsm keygen`, CertificateStore for `quillctl hsm
// store-cert`). Neither knows which backends exist: the binary decides by
// importing backend packages, whose init functions call Register.
//
// # Shape
//
//   - Ref names a key: a typed reference whose Scheme selects the backend.
//     PKCS11URI (RFC 7512 "pkcs11:" URIs) and SecretKey (a software key in a
//     Kubernetes Secret) are defined here, so that they can be built and
//     parsed in any build, with or without the backend compiled in.
//   - Backend opens a Ref into a Key: a crypto.Signer with a health Probe
//     and Close. Backends may also implement RefParser, KeyCreator and
//     CertificateStore; callers ask the Registry, which answers
//     ErrUnsupported for a capability the backend lacks.
//   - Options carries what the caller (never the Ref's author) decides:
//     the public key the key must have, the allow-list of PKCS#11 libraries,
//     a login observer, a logger.
//
// Software keys held in Secrets are opened by pkg/kms/softkey from the PEM
// bytes castore read (SecretKey.PEM): parsing stays in pkg/issuance, which
// also keeps its faster ML-DSA signing engine behind the opened Key.
//
// # Errors
//
// Every error a Backend returns from Check, Open, Sign or a capability wraps
// at most one of the sentinels below; callers choose their reaction with
// errors.Is. Backends mark their own errors with Mark, which keeps the
// message and the original sentinels (pkg/pkcs11's, say) reachable.
//
//   - ErrUnavailable: the key store cannot be reached or does not hold the
//     key right now (token absent, device restarting, key not found). The
//     issuer is not ready; retry with backoff.
//   - ErrPINRefused: the store refused the credential. Never retry it
//     automatically: HSMs lock a PIN after a few failures. Try again only
//     when the credential (the PIN Secret) changes.
//   - ErrKeyMismatch: a key was found but its public key is not the one the
//     CA certificate (Options.Expected) names. An operator must restore the
//     right key or certificate.
//   - ErrNotAllowed: the controller's configuration does not allow the
//     reference: a PKCS#11 module outside the allow-list, a scheme this
//     binary has no backend for, or a backend this build cannot run (no
//     cgo). Fix the controller's configuration or build.
//   - ErrInvalidRef: the reference itself is wrong or ambiguous (malformed
//     URI, several tokens or keys match, a key type the backend cannot sign
//     with). Fix the reference.
//   - ErrUnsupported: the backend cannot do what was asked (a capability it
//     lacks, a key algorithm it cannot create, signature options the key
//     cannot honour). This is the caller's request, not the store's fault.
//
// An error wrapping none of them is a backend failure of unknown cause;
// callers treat it as ErrUnavailable.
//
// # Adding a backend
//
// Write one package under pkg/kms (say pkg/kms/cloudkms) that defines its
// Ref type (unless it reuses one of this package's), implements Backend and
// whichever capabilities it has, maps its errors with Mark, and calls
// Register(scheme, backend) in init. Then add one blank import of it to
// pkg/kms/backends, which both binaries import: quillctl can use the new
// keys at once. For issuers, castore's spec.ca mapping (sourceOf) needs one
// more case once the API has a field that names such keys.
package kms
