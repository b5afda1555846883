package ocspserver

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"sync/atomic"
	"time"

	"github.com/quill-pki/quill/pkg/kms"
)

// Configuration errors New and SetSigner return.
var (
	// ErrInvalidConfig marks a Config missing a required field or asking
	// for a signature algorithm the key cannot make.
	ErrInvalidConfig = errors.New("invalid OCSP responder configuration")
	// ErrInvalidResponder marks a delegated responder certificate clients
	// would reject: not issued by the CA, without the OCSPSigning extended
	// key usage, or outside its validity.
	ErrInvalidResponder = errors.New("invalid delegated OCSP responder certificate")
)

// errResponderExpired is reported through Config.OnError when responses
// would outlive the certificate they are signed under: the delegated
// responder was not rotated in time.
var errResponderExpired = errors.New("OCSP signing certificate has expired; rotate the delegated responder")

// Status is what the ledger knows about one certificate Quill issued.
type Status struct {
	// Revoked, RevokedAt and Reason (an RFC 5280 CRLReason code) describe a
	// revocation; RevokedAt and Reason are ignored unless Revoked.
	Revoked   bool
	RevokedAt time.Time
	Reason    int
	// NoRevocationAvailable marks a short-lived certificate issued with
	// the noRevAvail extension (RFC 9608): its CA publishes no revocation
	// information for it, so the responder has no authority to answer
	// about it and says unauthorized (unsigned, as for another CA's
	// certificates) rather than spend a signature on "unknown".
	NoRevocationAvailable bool
	// NotAfter is the certificate's notAfter. The responder keeps answering
	// for expired certificates as it did before they expired (RFC 6960
	// §2.2 permits it, and a revoked certificate should not turn "good" or
	// "unknown" in the window where a client's clock lags), so it does not
	// change the answer; it is part of the record for completeness.
	NotAfter time.Time
}

// Source answers status lookups for one issuer; the ledger implements it.
// Lookup is called on every cache miss and every nonce request, from many
// goroutines at once: it must be safe for concurrent use, should answer
// from memory, and reports known=false for serials the issuer never issued
// (answered "unknown").
type Source interface {
	Lookup(serial *big.Int) (status Status, known bool)
}

// Defaults for zero Config fields.
const (
	// DefaultValidity is the distance from thisUpdate to nextUpdate: the
	// hour the seed material names as the usual OCSP caching time.
	DefaultValidity = time.Hour
	// DefaultNonceSignaturesPerSecond bounds the fresh signatures made for
	// requests with a nonce. Each one costs a signature (ECDSA P-256 in
	// software: tens of microseconds; ML-DSA-87 or an HSM's RSA key: a
	// millisecond or more, see docs/benchmarks.md), so without a bound
	// nonce requests turn the responder into a signing oracle anyone can
	// load. A relying party that asks with a nonce now and then is far
	// below it.
	DefaultNonceSignaturesPerSecond = 100
	// DefaultCacheEntries caps the cache: one entry per (serial, CertID
	// hash) pair answered, each a few hundred bytes for ECDSA signers, so
	// about 50 MB at the cap with P-256, more with RSA or ML-DSA keys.
	DefaultCacheEntries = 100_000
)

// Config describes the responder for one issuer.
type Config struct {
	// Issuer is the CA whose certificates are answered for; required.
	Issuer *x509.Certificate
	// Source gives each certificate's status; required.
	Source Source
	// Key signs responses: the CA's own key when ResponderCert is nil, the
	// delegated responder's key otherwise; required.
	Key crypto.Signer
	// ResponderCert is the delegated responder certificate (see
	// issuance.Authority.IssueResponder), issued by Issuer with the OCSPSigning extended
	// key usage; it is sent in every response so clients can check it. Nil
	// signs as the CA.
	ResponderCert *x509.Certificate
	// SignatureAlgorithm overrides the algorithm for Key (for instance
	// SHA256WithRSAPSS); zero picks Quill's default for the key type.
	SignatureAlgorithm x509.SignatureAlgorithm
	// Validity is nextUpdate - thisUpdate of every response (capped at the
	// signing certificate's notAfter); zero means DefaultValidity. Cached
	// responses are served until a tenth of it is left, then re-signed.
	Validity time.Duration
	// CacheEntries caps the response cache; zero means
	// DefaultCacheEntries, negative turns caching off (every request is
	// signed).
	CacheEntries int
	// NonceSignaturesPerSecond bounds the fresh signatures for requests
	// with a nonce, as a token bucket holding one second's worth (at least
	// one). Over the bound a request is answered as if it had no nonce:
	// from the cache, or signed once and cached (RFC 8954 §2.1 lets a
	// responder leave the nonce out; clients that insist on it reject the
	// answer and retry later). Zero means DefaultNonceSignaturesPerSecond,
	// negative means no bound.
	NonceSignaturesPerSecond float64
	// SharedNonceBudget, when set, also bounds this responder's fresh
	// nonce signatures, together with every other responder given the same
	// budget; a request over either bound is answered without its nonce.
	SharedNonceBudget *NonceBudget
	// Ready, when set, reports whether Source holds every certificate's
	// status. Until it does, the responder answers tryLater (unsigned and
	// never cached) to every request about the issuer: an answer from a
	// partly loaded Source would say "unknown" or "good" for a revoked
	// certificate, and caches would keep it for the response's validity.
	Ready func() bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnError, when set, is told about failures behind internalError
	// answers and about data the responder had to correct (an invalid
	// reason code from the Source). It must be safe for concurrent use.
	OnError func(error)
}

// Response is one answer of the responder. Responses may be shared between
// requests (the cache hands out the same one): treat every field as
// read-only.
type Response struct {
	// DER is the OCSPResponse to send as application/ocsp-response.
	DER []byte
	// Status is the OCSPResponseStatus; only Successful responses are
	// signed and carry the fields below.
	Status ResponseStatus
	// ThisUpdate and NextUpdate bound the response's validity.
	ThisUpdate, NextUpdate time.Time
	// Cacheable reports a response an HTTP cache may keep until NextUpdate:
	// successful and without a nonce.
	Cacheable bool
	// ETag is a strong entity tag (quoted) of DER, set when Cacheable.
	ETag string

	staleAt time.Time
}

var (
	malformedResponse    = &Response{DER: errorBody(MalformedRequest), Status: MalformedRequest}
	unauthorizedResponse = &Response{DER: errorBody(Unauthorized), Status: Unauthorized}
	internalErrResponse  = &Response{DER: errorBody(InternalError), Status: InternalError}
	tryLaterResponse     = &Response{DER: errorBody(TryLater), Status: TryLater}
)

// Responder answers OCSP requests about one issuer's certificates. It is
// safe for concurrent use; it is also the issuer's http.Handler (see
// ServeHTTP).
type Responder struct {
	issuerHashes [4]struct{ name, key []byte }
	source       Source
	validity     time.Duration
	now          func() time.Time
	onError      func(error)
	ready        func() bool
	nonces       *tokenBucket // nil: nonce signatures are not bounded
	shared       *NonceBudget // nil: no bound beyond nonces
	issuer       *x509.Certificate
	signer       atomic.Pointer[signer]
	cache        *cache // nil when caching is off
}

// New checks cfg and returns a responder. Errors wrap ErrInvalidConfig,
// kms.ErrKeyMismatch or ErrInvalidResponder.
func New(cfg Config) (*Responder, error) {
	switch {
	case cfg.Issuer == nil:
		return nil, fmt.Errorf("%w: no issuer certificate", ErrInvalidConfig)
	case cfg.Source == nil:
		return nil, fmt.Errorf("%w: no status source", ErrInvalidConfig)
	case cfg.Validity < 0:
		return nil, fmt.Errorf("%w: negative validity %s", ErrInvalidConfig, cfg.Validity)
	case math.IsNaN(cfg.NonceSignaturesPerSecond) || math.IsInf(cfg.NonceSignaturesPerSecond, 0):
		return nil, fmt.Errorf("%w: nonce signature rate %v", ErrInvalidConfig, cfg.NonceSignaturesPerSecond)
	}
	spk, err := subjectPublicKey(cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("%w: issuer: %w", ErrInvalidConfig, err)
	}
	r := &Responder{
		source:   cfg.Source,
		validity: cfg.Validity,
		now:      cfg.Now,
		onError:  cfg.OnError,
		ready:    cfg.Ready,
		issuer:   cfg.Issuer,
		shared:   cfg.SharedNonceBudget,
	}
	switch rate := cfg.NonceSignaturesPerSecond; {
	case rate == 0:
		r.nonces = newTokenBucket(DefaultNonceSignaturesPerSecond)
	case rate > 0:
		r.nonces = newTokenBucket(rate)
	}
	if r.validity == 0 {
		r.validity = DefaultValidity
	}
	if r.now == nil {
		r.now = time.Now
	}
	for i, h := range hashes {
		hn := h.hash.New()
		hn.Write(cfg.Issuer.RawSubject)
		r.issuerHashes[i].name = hn.Sum(nil)
		hn = h.hash.New()
		hn.Write(spk)
		r.issuerHashes[i].key = hn.Sum(nil)
	}
	switch n := cfg.CacheEntries; {
	case n == 0:
		r.cache = newCache(DefaultCacheEntries)
	case n > 0:
		r.cache = newCache(n)
	}
	if err := r.SetSigner(cfg.Key, cfg.ResponderCert, cfg.SignatureAlgorithm); err != nil {
		return nil, err
	}
	return r, nil
}

// SetSigner replaces the identity responses are signed under, for instance
// with a rotated delegated responder (responderCert non-nil) or back to the
// CA's own key (responderCert nil), and drops every cached response. On
// error the previous signer stays in place.
func (r *Responder) SetSigner(key crypto.Signer, responderCert *x509.Certificate, alg x509.SignatureAlgorithm) error {
	if key == nil {
		return fmt.Errorf("%w: no signing key", ErrInvalidConfig)
	}
	cert := r.issuer
	if responderCert != nil {
		if err := checkDelegated(r.issuer, responderCert, r.now()); err != nil {
			return err
		}
		cert = responderCert
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return fmt.Errorf("OCSP signing %w: %q", kms.ErrKeyMismatch, cert.Subject)
	}
	spec, err := newSigSpec(key, alg)
	if err != nil {
		return err
	}
	spk, err := subjectPublicKey(cert)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	sg := &signer{key: key, spec: spec, keyHash: responderKeyHash(spk), notAfter: cert.NotAfter}
	if responderCert != nil {
		sg.certDER, sg.delegated = responderCert.Raw, true
	}
	r.signer.Store(sg)
	r.InvalidateAll()
	return nil
}

func checkDelegated(issuer, cert *x509.Certificate, now time.Time) error {
	if !bytes.Equal(cert.RawIssuer, issuer.RawSubject) {
		return fmt.Errorf("%w: %q is issued by %q, not by %q", ErrInvalidResponder, cert.Subject, cert.Issuer, issuer.Subject)
	}
	if err := cert.CheckSignatureFrom(issuer); err != nil {
		return fmt.Errorf("%w: %q is not signed by the CA: %w", ErrInvalidResponder, cert.Subject, err)
	}
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
		return fmt.Errorf("%w: %q lacks the OCSPSigning extended key usage", ErrInvalidResponder, cert.Subject)
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return fmt.Errorf("%w: %q is valid from %s to %s", ErrInvalidResponder, cert.Subject, cert.NotBefore, cert.NotAfter)
	}
	return nil
}

// subjectPublicKey returns the subjectPublicKey BIT STRING contents of
// cert: what CertID's issuerKeyHash and the responder's KeyHash hash.
func subjectPublicKey(cert *x509.Certificate) ([]byte, error) {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	rest, err := asn1.Unmarshal(cert.RawSubjectPublicKeyInfo, &spki)
	if err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("unparsable subjectPublicKeyInfo in %q", cert.Subject)
	}
	return spki.PublicKey.RightAlign(), nil
}

// Invalidate drops the cached responses for serial. Call it after the
// Source answers the new status (a revocation is visible), not before:
// a response signed from the old status concurrently is then never cached.
func (r *Responder) Invalidate(serial *big.Int) {
	if r.cache != nil && serial != nil {
		r.cache.invalidate(serial)
	}
}

// InvalidateAll drops every cached response, for changes that touch all of
// them.
func (r *Responder) InvalidateAll() {
	if r.cache != nil {
		r.cache.invalidateAll()
	}
}

// Respond answers the DER OCSPRequest der. It never fails: requests it
// cannot parse get malformedRequest, requests about another issuer
// unauthorized, and signing failures internalError (reported to
// Config.OnError).
func (r *Responder) Respond(der []byte) *Response {
	req, err := ParseRequest(der)
	if err != nil {
		return malformedResponse
	}
	return r.respondTo(req)
}

func (r *Responder) respondTo(req *Request) *Response {
	ih := r.issuerHashes[req.hashIndex]
	if !bytes.Equal(ih.name, req.IssuerNameHash) || !bytes.Equal(ih.key, req.IssuerKeyHash) {
		return unauthorizedResponse
	}
	if r.ready != nil && !r.ready() {
		return tryLaterResponse
	}
	now := r.now()
	if req.Nonce != nil && !r.nonceFits(now) {
		// Over the bound: the answer without the nonce, which the cache
		// usually holds already.
		plain := *req
		plain.Nonce = nil
		req = &plain
	}
	var key []byte
	var gen uint64
	if req.Nonce == nil && r.cache != nil {
		key = cacheKey(req.hashIndex, req.Serial)
		if resp := r.cache.get(key, now); resp != nil {
			return resp
		}
		gen = r.cache.generation()
	}
	resp, err := r.sign(req, now)
	if err != nil {
		r.report(err)
		return internalErrResponse
	}
	if key != nil && resp.Status == Successful {
		r.cache.put(key, resp, gen, now)
	}
	return resp
}

func (r *Responder) sign(req *Request, now time.Time) (*Response, error) {
	sg := r.signer.Load()
	thisUpdate := now.UTC().Truncate(time.Second)
	nextUpdate := thisUpdate.Add(r.validity)
	if sg.notAfter.Before(nextUpdate) {
		nextUpdate = sg.notAfter.UTC().Truncate(time.Second)
	}
	if !nextUpdate.After(thisUpdate) {
		return nil, errResponderExpired
	}
	s := single{
		hashIndex:  req.hashIndex,
		nameHash:   req.IssuerNameHash,
		keyHash:    req.IssuerKeyHash,
		serial:     req.Serial,
		status:     statusUnknown,
		thisUpdate: thisUpdate,
		nextUp:     nextUpdate,
	}
	if st, known := r.source.Lookup(req.Serial); known {
		if st.NoRevocationAvailable {
			return unauthorizedResponse, nil
		}
		s.status = statusGood
		if st.Revoked {
			s.status, s.revokedAt, s.reason = statusRevoked, st.RevokedAt, st.Reason
			if !validReason(st.Reason) {
				// Still answer "revoked": the revocation matters more than
				// its reason, which is left out.
				r.report(fmt.Errorf("serial %s: revocation reason %d is not an RFC 5280 CRLReason; answered without a reason", req.Serial.Text(16), st.Reason))
			}
		}
	}
	der, err := buildResponse(sg, s, thisUpdate, req.Nonce)
	if err != nil {
		return nil, fmt.Errorf("sign OCSP response for serial %s: %w", req.Serial.Text(16), err)
	}
	resp := &Response{
		DER:        der,
		Status:     Successful,
		ThisUpdate: thisUpdate,
		NextUpdate: nextUpdate,
		Cacheable:  req.Nonce == nil,
		// Re-sign once a tenth of the validity is left, so that what is
		// served (and what HTTP caches keep) is never about to expire.
		staleAt: nextUpdate.Add(-r.validity / 10),
	}
	if resp.Cacheable {
		sum := sha256.Sum256(der)
		resp.ETag = `"` + hex.EncodeToString(sum[:]) + `"`
	}
	return resp, nil
}

func (r *Responder) report(err error) {
	if r.onError != nil {
		r.onError(err)
	}
}

// nonceFits reports whether a fresh nonce signature at now fits both the
// issuer's bound and the shared budget, and counts it in both if so. The
// issuer's bound is asked first, so that an issuer over its own bound does
// not spend the budget the others share.
func (r *Responder) nonceFits(now time.Time) bool {
	if r.nonces != nil && !r.nonces.take(now) {
		return false
	}
	return r.shared == nil || r.shared.bucket.take(now)
}
