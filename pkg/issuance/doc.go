// Package issuance is Quill's signing core. It loads a CA from the Secret
// layout cert-manager uses, reports whether that CA can sign, and turns a
// certificate signing request into a certificate under one fixed set of
// rules.
//
// The package talks to no API server and reads no clock or global
// configuration: controllers hand it bytes, a time and options, and map its
// errors to condition reasons:
//
//   - ErrInvalidRequest: the request must change; mark it failed, do not
//     retry.
//   - ErrMalformedCA, ErrKeyMismatch, ErrNotCA, ErrNoCertSign, ErrCAExpired,
//     ErrCANotYetValid: the issuer is at fault; mark it not Ready.
//   - ErrInvalidOptions: the issuer's configuration is wrong; mark it not
//     Ready.
//   - any other error: a transient or internal failure (a signer that did
//     not answer, a self-check that failed); retry with backoff.
package issuance
