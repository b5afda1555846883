// Package issuance is Quill's signing core: the one CA object (Authority)
// through which everything Quill signs passes. It loads a CA from the
// Secret layout cert-manager uses, reports whether that CA can sign, and
// makes every kind of certificate through one validated path (issue.go):
//
//   - Authority.Sign: leaves and subordinate CAs for CertificateRequests
//     and Kubernetes CertificateSigningRequests;
//   - SelfSign and NewSelfSignedRoot: self-signed roots (the controller's
//     bootstrap root, quillctl ca init);
//   - Authority.SignCA: a subordinate CA signed in an offline ceremony
//     (quillctl ca sign);
//   - Authority.IssueResponder: delegated OCSP responder certificates;
//   - Authority.SignCRL: CRLs, built by pkg/crl.
//
// Each returns what the caller records in the ledger and the audit log
// (Issued for certificates). The primitives every kind shares live here
// and nowhere else: NewSerialNumber, SubjectKeyID, GenerateKey and the key
// algorithm names (KeyAlgorithms, ParseKeyAlgorithm), and the PEM
// encodings (DecodePEM, ParseCertificatesPEM, EncodeCertificatesPEM,
// ParsePrivateKeyPEM, MarshalPrivateKeyPEM).
//
// The package talks to no API server and reads no clock or global
// configuration: callers hand it bytes, a time and options, and map its
// errors to condition reasons:
//
//   - ErrInvalidRequest: the request must change; mark it failed, do not
//     retry.
//   - ErrMalformedCA, kms.ErrKeyMismatch, ErrNotCA, ErrNoCertSign, ErrCAExpired,
//     ErrCANotYetValid: the issuer is at fault; mark it not Ready.
//   - ErrInvalidOptions: the issuer's configuration is wrong; mark it not
//     Ready.
//   - pkg/crl's sentinels, from SignCRL only, unchanged (see there).
//   - any other error: a transient or internal failure (a signer that did
//     not answer, a self-check that failed); retry with backoff.
//
// The key primitives (GenerateKey, ParseKeyAlgorithm, ParsePrivateKeyPEM,
// KeyAlgorithmOf) and the PEM functions return unclassified errors: what a
// bad key or file means depends on whose it is, and their callers
// (LoadAuthority, pkg/ceremony) classify them.
package issuance
