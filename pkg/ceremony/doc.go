// Package ceremony holds the offline CA operations behind quillctl: creating
// a root, requesting and signing a subordinate CA, and turning CA material
// into the Secret Quill's issuers read (see pkg/castore for the layout).
//
// Each operation (Init, NewCSR, Sign, Import) takes an options struct,
// reads its input files itself and checks everything before it writes:
// Init, NewCSR and Sign write their outputs with WriteFiles, so that a
// failure leaves no file behind and an existing file is never replaced
// unless asked; Import only returns the Secret. The key an operation signs
// with comes from a KeySource, the seam where a hardware token plugs in
// (see KeyResolver). Nothing here reads the clock, the environment or the
// terminal: the caller passes the time, passwords and keys.
//
// Errors are plain and meant to be shown as they are; where the cause is a
// CA that cannot sign, they wrap the sentinels of pkg/issuance and pkg/kms
// (issuance.ErrNotCA, issuance.ErrCAExpired, kms.ErrKeyMismatch, ...)
// so that callers can tell the cases apart with errors.Is.
package ceremony
