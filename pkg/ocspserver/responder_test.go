package ocspserver

import (
	"bytes"
	"crypto"
	"crypto/sha1" //nolint:gosec // the responder KeyHash is SHA-1 by definition
	"crypto/x509"
	"errors"
	"math/big"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/kms"
)

// TestResponsesVerifyWithXCrypto has golang.org/x/crypto/ocsp parse and
// verify good, revoked and unknown answers signed by the CA and by a
// delegated responder.
func TestResponsesVerifyWithXCrypto(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		caAlg     issuance.KeyAlgorithm
		delegated bool
		hash      crypto.Hash
	}{
		{name: "ecdsa-ca-signed", caAlg: issuance.ECDSAP256, hash: crypto.SHA1},
		{name: "ecdsa-ca-signed-sha256-certid", caAlg: issuance.ECDSAP256, hash: crypto.SHA256},
		{name: "rsa-ca-signed", caAlg: issuance.RSA2048, hash: crypto.SHA1},
		{name: "ecdsa-p384-ca-signed-sha512-certid", caAlg: issuance.ECDSAP384, hash: crypto.SHA512},
		{name: "ecdsa-delegated", caAlg: issuance.ECDSAP256, delegated: true, hash: crypto.SHA1},
		{name: "rsa-delegated", caAlg: issuance.RSA2048, delegated: true, hash: crypto.SHA384},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca := newTestCA(t, tt.caAlg, 1)
			var respCert *x509.Certificate
			r := ca.responder(t, func(c *Config) {
				if tt.delegated {
					cert, key, err := newDelegated(ca, 0, testNow)
					if err != nil {
						t.Fatal(err)
					}
					c.Key, c.ResponderCert, respCert = key, cert, cert
				}
			})
			for name, want := range map[string]int{"good": ocsp.Good, "revoked": ocsp.Revoked, "unknown": ocsp.Unknown} {
				leaf := ca.leaves[name]
				resp := r.Respond(goRequest(t, leaf, ca.cert, tt.hash))
				if resp.Status != Successful {
					t.Fatalf("%s: status %s", name, resp.Status)
				}
				got, err := ocsp.ParseResponseForCert(resp.DER, leaf, ca.cert)
				if err != nil {
					t.Fatalf("%s: x/crypto/ocsp: %v", name, err)
				}
				if got.Status != want || got.SerialNumber.Cmp(leaf.SerialNumber) != 0 || got.IssuerHash != tt.hash {
					t.Errorf("%s: status %d serial %s hash %v, want %d %s %v", name, got.Status, got.SerialNumber, got.IssuerHash, want, leaf.SerialNumber, tt.hash)
				}
				if !got.ThisUpdate.Equal(testNow) || !got.NextUpdate.Equal(testNow.Add(DefaultValidity)) || !got.ProducedAt.Equal(testNow) {
					t.Errorf("%s: produced %s this %s next %s", name, got.ProducedAt, got.ThisUpdate, got.NextUpdate)
				}
				if name == "revoked" && (got.RevocationReason != ocsp.KeyCompromise || !got.RevokedAt.Equal(testNow.Add(-30*time.Minute))) {
					t.Errorf("revoked: reason %d at %s", got.RevocationReason, got.RevokedAt)
				}
				signerCert := ca.cert
				if tt.delegated {
					signerCert = respCert
					if got.Certificate == nil || !bytes.Equal(got.Certificate.Raw, respCert.Raw) {
						t.Errorf("%s: the delegated responder certificate is not in the response", name)
					}
				} else if got.Certificate != nil {
					t.Errorf("%s: CA-signed response carries a certificate", name)
				}
				spk, err := subjectPublicKey(signerCert)
				if err != nil {
					t.Fatal(err)
				}
				wantKeyHash := sha1.Sum(spk) //nolint:gosec
				if !bytes.Equal(got.ResponderKeyHash, wantKeyHash[:]) || got.RawResponderName != nil {
					t.Errorf("%s: responder ID %x / %x, want byKey %x", name, got.ResponderKeyHash, got.RawResponderName, wantKeyHash)
				}
			}
		})
	}
}

// TestSignatureAlgorithms checks responses signed with keys x/crypto/ocsp
// cannot verify (Ed25519, ML-DSA, RSA-PSS) with crypto/x509.
func TestSignatureAlgorithms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		caAlg issuance.KeyAlgorithm
		alg   x509.SignatureAlgorithm
		want  x509.SignatureAlgorithm
	}{
		{name: "ed25519", caAlg: issuance.Ed25519, want: x509.PureEd25519},
		{name: "ml-dsa-65", caAlg: issuance.MLDSA65, want: x509.MLDSA65},
		{name: "rsa-pss", caAlg: issuance.RSA2048, alg: x509.SHA256WithRSAPSS, want: x509.SHA256WithRSAPSS},
		{name: "rsa-pkcs1-sha512", caAlg: issuance.RSA2048, alg: x509.SHA512WithRSA, want: x509.SHA512WithRSA},
		{name: "ecdsa-p384", caAlg: issuance.ECDSAP384, want: x509.ECDSAWithSHA384},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca := newTestCA(t, tt.caAlg, 2)
			r := ca.responder(t, func(c *Config) { c.SignatureAlgorithm = tt.alg })
			resp := r.Respond(goRequest(t, ca.leaves["revoked"], ca.cert, crypto.SHA256))
			if resp.Status != Successful {
				t.Fatalf("status %s", resp.Status)
			}
			p := parseBasic(t, resp.DER)
			if err := ca.cert.CheckSignature(tt.want, p.tbs, p.signature); err != nil {
				t.Fatalf("signature does not verify as %s: %v", tt.want, err)
			}
			// And it must not verify once the signed bytes change.
			bad := bytes.Clone(p.tbs)
			bad[len(bad)-1] ^= 1
			if ca.cert.CheckSignature(tt.want, bad, p.signature) == nil {
				t.Fatal("signature verifies over altered bytes")
			}
			got, err := ocsp.ParseResponse(resp.DER, nil)
			if err != nil || got.Status != ocsp.Revoked {
				t.Fatalf("x/crypto/ocsp parse: %v, %+v", err, got)
			}
		})
	}
}

func TestNonceEchoedAndNeverCached(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, issuance.ECDSAP256, 0)
	r := ca.responder(t)
	spec := specFor(t, ca, ca.leaves["good"], crypto.SHA1)
	spec.nonceValue = octetNonce(32)
	resp1 := r.Respond(buildRequest(t, spec))
	resp2 := r.Respond(buildRequest(t, spec))
	if resp1.Status != Successful || resp1.Cacheable || resp1.ETag != "" {
		t.Fatalf("nonce response: status %s cacheable %v etag %q", resp1.Status, resp1.Cacheable, resp1.ETag)
	}
	if resp1 == resp2 || ca.source.count() != 2 {
		t.Errorf("nonce requests were answered from the cache (%d lookups)", ca.source.count())
	}
	p := parseBasic(t, resp1.DER)
	if len(p.respExts) != 1 || !p.respExts[0].Id.Equal(oidNonce) || !bytes.Equal(p.respExts[0].Value, spec.nonceValue) || p.respExts[0].Critical {
		t.Errorf("responseExtensions %+v, want the nonce %x", p.respExts, spec.nonceValue)
	}
	if _, err := ocsp.ParseResponseForCert(resp1.DER, ca.leaves["good"], ca.cert); err != nil {
		t.Error(err)
	}
	// Without a nonce: no responseExtensions at all.
	plain := r.Respond(goRequest(t, ca.leaves["good"], ca.cert, crypto.SHA1))
	if p := parseBasic(t, plain.DER); len(p.respExts) != 0 {
		t.Errorf("response to a request without nonce has extensions %+v", p.respExts)
	}
}

func TestErrorResponses(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, issuance.ECDSAP256, 0)
	other := newTestCA(t, issuance.ECDSAP256, 3)
	r := ca.responder(t)
	tests := []struct {
		name string
		der  []byte
		want ocsp.ResponseStatus
	}{
		{name: "garbage", der: []byte("hello"), want: ocsp.Malformed},
		{name: "two-requests", der: buildRequest(t, func() reqSpec { s := specFor(t, ca, ca.leaves["good"], crypto.SHA1); s.count = 2; return s }()), want: ocsp.Malformed},
		{name: "other-issuer", der: goRequest(t, other.leaves["good"], other.cert, crypto.SHA1), want: ocsp.Unauthorized},
		{name: "name-hash-of-ours-key-hash-of-other", der: buildRequest(t, func() reqSpec {
			s := specFor(t, ca, ca.leaves["good"], crypto.SHA1)
			s.keyHash = specFor(t, other, other.leaves["good"], crypto.SHA1).keyHash
			return s
		}()), want: ocsp.Unauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := r.Respond(tt.der)
			_, err := ocsp.ParseResponse(resp.DER, nil)
			var re ocsp.ResponseError
			if !errors.As(err, &re) || re.Status != tt.want || int(resp.Status) != int(tt.want) || resp.Cacheable {
				t.Fatalf("got %v (status %s), want %v", err, resp.Status, tt.want)
			}
		})
	}
}

func TestCache(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, issuance.ECDSAP256, 0)
	clock := newClock(testNow)
	r := ca.responder(t, func(c *Config) { c.Now = clock.Now; c.Validity = 10 * time.Minute })
	good := ca.leaves["good"]
	req1 := goRequest(t, good, ca.cert, crypto.SHA1)

	first := r.Respond(req1)
	if !first.Cacheable || first.ETag == "" {
		t.Fatalf("first response not cacheable: %+v", first)
	}
	if again := r.Respond(req1); again != first || ca.source.count() != 1 {
		t.Fatalf("second request was not served from the cache (%d lookups)", ca.source.count())
	}
	// A SHA-256 CertID is a different answer.
	sha256Resp := r.Respond(goRequest(t, good, ca.cert, crypto.SHA256))
	if got, err := ocsp.ParseResponseForCert(sha256Resp.DER, good, ca.cert); err != nil || got.IssuerHash != crypto.SHA256 {
		t.Fatalf("SHA-256 request answered with %v, %v", got, err)
	}

	// Served until a tenth of the validity is left, then re-signed.
	clock.Advance(8*time.Minute + 59*time.Second)
	if r.Respond(req1) != first {
		t.Error("response re-signed before it went stale")
	}
	clock.Advance(time.Second)
	fresh := r.Respond(req1)
	if fresh == first || !fresh.ThisUpdate.Equal(testNow.Add(9*time.Minute)) {
		t.Errorf("stale response served again (thisUpdate %s)", fresh.ThisUpdate)
	}

	// Revocation after Invalidate shows at once, for every CertID hash.
	ca.source.set(good.SerialNumber, Status{Revoked: true, RevokedAt: clock.Now(), Reason: ocsp.Superseded})
	if got, _ := ocsp.ParseResponseForCert(r.Respond(req1).DER, good, ca.cert); got.Status != ocsp.Good {
		t.Fatal("cached good answer expected before Invalidate")
	}
	r.Invalidate(good.SerialNumber)
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		got, err := ocsp.ParseResponseForCert(r.Respond(goRequest(t, good, ca.cert, h)).DER, good, ca.cert)
		if err != nil || got.Status != ocsp.Revoked || got.RevocationReason != ocsp.Superseded {
			t.Errorf("%v after Invalidate: %+v, %v", h, got, err)
		}
	}
	before := ca.source.count()
	r.InvalidateAll()
	r.Respond(req1)
	if ca.source.count() != before+1 {
		t.Error("InvalidateAll left a cached response")
	}
}

// TestCacheDropsResponseRacingInvalidate has the status change, and
// Invalidate run, while a response from the old status is being signed:
// that response must not be cached.
func TestCacheDropsResponseRacingInvalidate(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, issuance.ECDSAP256, 0)
	r := ca.responder(t)
	good := ca.leaves["good"]
	req := goRequest(t, good, ca.cert, crypto.SHA1)
	var once sync.Once
	ca.source.onLook = func() {
		once.Do(func() {
			ca.source.set(good.SerialNumber, Status{Revoked: true, RevokedAt: testNow})
			r.Invalidate(good.SerialNumber)
		})
	}
	first, _ := ocsp.ParseResponseForCert(r.Respond(req).DER, good, ca.cert)
	second, _ := ocsp.ParseResponseForCert(r.Respond(req).DER, good, ca.cert)
	if first.Status != ocsp.Good || second.Status != ocsp.Revoked {
		t.Errorf("statuses %d then %d, want good (raced) then revoked", first.Status, second.Status)
	}
}

func TestCacheIsBounded(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, issuance.ECDSAP256, 0)
	const capEntries = 64
	r := ca.responder(t, func(c *Config) { c.CacheEntries = capEntries })
	spec := specFor(t, ca, ca.leaves["good"], crypto.SHA1)
	for i := range 1000 {
		spec.serial = big.NewInt(int64(10_000 + i))
		if resp := r.Respond(buildRequest(t, spec)); resp.Status != Successful {
			t.Fatal(resp.Status)
		}
		if n := r.cache.len(); n > capEntries {
			t.Fatalf("cache holds %d entries, cap %d", n, capEntries)
		}
	}
	if n := r.cache.len(); n < capEntries/2 {
		t.Errorf("cache holds only %d entries after 1000 inserts", n)
	}

	off := ca.responder(t, func(c *Config) { c.CacheEntries = -1 })
	req := goRequest(t, ca.leaves["good"], ca.cert, crypto.SHA1)
	if off.cache != nil || off.Respond(req) == off.Respond(req) {
		t.Error("CacheEntries < 0 still caches")
	}
}

// TestConcurrentUse runs requests, invalidations and a signer rotation at
// once; run with -race.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, issuance.ECDSAP256, 0)
	r := ca.responder(t, func(c *Config) { c.CacheEntries = 16 })
	spec := specFor(t, ca, ca.leaves["good"], crypto.SHA1)
	var reqs [][]byte
	for i := range 40 {
		spec.serial = big.NewInt(int64(i))
		reqs = append(reqs, buildRequest(t, spec))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				resp := r.Respond(reqs[(g*7+i)%len(reqs)])
				if resp.Status != Successful {
					t.Errorf("status %s", resp.Status)
					return
				}
				if i%50 == 0 {
					r.Invalidate(big.NewInt(int64(i % 40)))
				}
			}
		})
	}
	wg.Go(func() {
		cert, key, err := newDelegated(ca, time.Hour, testNow)
		if err != nil {
			t.Error(err)
			return
		}
		if err := r.SetSigner(key, cert, 0); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
}

func TestSourceData(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, issuance.ECDSAP256, 0)
	var errs []error
	var mu sync.Mutex
	r := ca.responder(t, func(c *Config) {
		c.OnError = func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }
	})
	good := ca.leaves["good"]
	// An impossible reason still answers revoked, without a reason.
	ca.source.set(good.SerialNumber, Status{Revoked: true, RevokedAt: testNow, Reason: 7})
	got, err := ocsp.ParseResponseForCert(r.Respond(goRequest(t, good, ca.cert, crypto.SHA1)).DER, good, ca.cert)
	if err != nil || got.Status != ocsp.Revoked || got.RevocationReason != 0 || len(errs) != 1 {
		t.Errorf("reason 7: %+v %v, %d errors reported", got, err, len(errs))
	}
	// Expired certificates keep their answer.
	ca.source.set(good.SerialNumber, Status{NotAfter: testNow.Add(-time.Hour)})
	r.InvalidateAll()
	got, err = ocsp.ParseResponseForCert(r.Respond(goRequest(t, good, ca.cert, crypto.SHA1)).DER, good, ca.cert)
	if err != nil || got.Status != ocsp.Good {
		t.Errorf("expired certificate: %+v %v", got, err)
	}
}

func TestResponderExpiry(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, issuance.ECDSAP256, 0)
	clock := newClock(testNow)
	cert, key, err := newDelegated(ca, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	var reported error
	r := ca.responder(t, func(c *Config) {
		c.Now, c.Key, c.ResponderCert = clock.Now, key, cert
		c.OnError = func(err error) { reported = err }
	})
	req := goRequest(t, ca.leaves["good"], ca.cert, crypto.SHA1)
	// nextUpdate never goes past the responder certificate's notAfter.
	clock.Advance(50 * time.Minute)
	resp := r.Respond(req)
	if !resp.NextUpdate.Equal(cert.NotAfter) {
		t.Errorf("nextUpdate %s, want the responder's notAfter %s", resp.NextUpdate, cert.NotAfter)
	}
	clock.Advance(11 * time.Minute)
	r.InvalidateAll()
	if resp := r.Respond(req); resp.Status != InternalError || !errors.Is(reported, errResponderExpired) {
		t.Errorf("past the responder's notAfter: status %s, reported %v", resp.Status, reported)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, issuance.ECDSAP256, 0)
	other := newTestCA(t, issuance.ECDSAP256, 3)
	delegated, dkey, err := newDelegated(ca, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	foreign, fkey, err := newDelegated(other, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  func(*Config)
		want error
	}{
		{name: "no-issuer", cfg: func(c *Config) { c.Issuer = nil }, want: ErrInvalidConfig},
		{name: "no-source", cfg: func(c *Config) { c.Source = nil }, want: ErrInvalidConfig},
		{name: "no-key", cfg: func(c *Config) { c.Key = nil }, want: ErrInvalidConfig},
		{name: "negative-validity", cfg: func(c *Config) { c.Validity = -time.Second }, want: ErrInvalidConfig},
		{name: "wrong-ca-key", cfg: func(c *Config) { c.Key = other.key }, want: kms.ErrKeyMismatch},
		{name: "delegated-with-ca-key", cfg: func(c *Config) { c.ResponderCert = delegated }, want: kms.ErrKeyMismatch},
		{name: "foreign-delegated", cfg: func(c *Config) { c.Key, c.ResponderCert = fkey, foreign }, want: ErrInvalidResponder},
		{name: "leaf-as-delegated", cfg: func(c *Config) { c.Key, c.ResponderCert = testKey(t, issuance.ECDSAP256, 50), ca.leaves["good"] }, want: ErrInvalidResponder},
		{name: "delegated-expired", cfg: func(c *Config) {
			c.Key, c.ResponderCert = dkey, delegated
			c.Now = func() time.Time { return testNow.Add(2 * time.Hour) }
		}, want: ErrInvalidResponder},
		{name: "algorithm-mismatch", cfg: func(c *Config) { c.SignatureAlgorithm = x509.SHA256WithRSA }, want: ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{Issuer: ca.cert, Source: ca.source, Key: ca.key, Now: func() time.Time { return testNow }}
			tt.cfg(&cfg)
			if r, err := New(cfg); !errors.Is(err, tt.want) || r != nil {
				t.Fatalf("New error %v, want %v", err, tt.want)
			}
		})
	}
}
