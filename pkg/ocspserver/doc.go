// Package ocspserver is Quill's OCSP responder (RFC 6960, with the RFC 5019
// HTTP profile) and the HTTP side of its CRL distribution point.
//
// It talks to no API server and routes nothing. The controller's HTTP
// server (controllers/revocationhttp) builds one Responder per issuer from
// the CA certificate, a signing key and a Source (the ledger's view of which
// serials exist and which are revoked) and one CRLHandler per issuer, routes
// /ocsp/<issuer>/... and /crl/<issuer>.crl to them itself, and serves its
// router with NewServer on every replica. When the ledger changes it calls
// Invalidate (or InvalidateAll); when the delegated responder Secret
// changes it installs the new signer with SetSigner. The CRL publisher
// has the CA issue a delegated responder certificate
// (issuance.Authority.IssueResponder, recorded in the ledger like every
// certificate Quill signs) when NeedsRotation says so.
//
// Answers:
//
//   - tryLater (unsigned, never cached) while Config.Ready says the Source
//     has not loaded the whole ledger: at start-up the index is partly
//     read, and "unknown" for a revoked serial would be a wrong answer
//     that caches keep.
//   - good / revoked (with its reason, unless unspecified) / unknown for
//     serials the Source does not know; unauthorized for short-lived
//     certificates issued with noRevAvail (RFC 9608), whose revocation
//     status the CA does not publish. Expired certificates keep the
//     answer they had, as RFC 6960 §2.2 allows: a revoked certificate
//     stays revoked after it leaves the CRL.
//   - malformedRequest for anything ParseRequest refuses, including
//     requests for more than one certificate; unauthorized for requests
//     about another CA (CertID issuer hashes that are not this issuer's);
//     internalError when signing fails. These are the fixed unsigned
//     bodies of RFC 6960 §4.2.1.
//   - Responses are signed by the CA or by a delegated responder, name the
//     responder by key hash, and echo a request nonce (RFC 8954, at most 32
//     octets) in their responseExtensions.
//
// Responses to requests without a nonce are cached per serial and CertID
// hash until a tenth of their validity is left; nonce requests are signed
// each time, up to Config.NonceSignaturesPerSecond per issuer, and above
// that answered from the cache without the nonce (RFC 8954 allows it), so a
// flood of nonce requests cannot keep a slow key (an HSM, ML-DSA) busy.
// The cache is bounded (Config.CacheEntries).
//
// The response encoder is this package's own rather than
// golang.org/x/crypto/ocsp.CreateResponse: that function always names the
// responder by subject (Quill names it by key hash), can only put
// extensions into singleExtensions (clients look for the nonce among the
// responseExtensions), signs with RSA PKCS #1 v1.5 and ECDSA only (Quill's
// CAs also use RSA-PSS, Ed25519 and ML-DSA) and reads the wall clock.
// golang.org/x/crypto/ocsp remains the reference the tests verify against.
package ocspserver
