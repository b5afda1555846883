package ocspserver

import (
	"crypto"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/quill-pki/quill/pkg/issuance"
)

// TestTryLaterUntilReady is the start-up window of issue 15: while the
// Source is still loading, a revoked serial must get tryLater (unsigned,
// not cacheable, Cache-Control no-store over HTTP), never a signed
// "unknown" that caches would keep for an hour; once the Source is ready
// the true answer follows at once.
func TestTryLaterUntilReady(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, issuance.ECDSAP256, 0)
	var ready atomic.Bool
	r := ca.responder(t, func(c *Config) { c.Ready = ready.Load })
	revoked := ca.leaves["revoked"]
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)

	tests := []struct {
		name  string
		nonce bool
	}{
		{name: "without-nonce"},
		{name: "with-nonce", nonce: true},
	}
	for _, tt := range tests {
		spec := specFor(t, ca, revoked, crypto.SHA1)
		if tt.nonce {
			spec.nonceValue = octetNonce(16)
		}
		der := buildRequest(t, spec)
		resp := r.Respond(der)
		if resp.Status != TryLater || resp.Cacheable || resp.ETag != "" {
			t.Fatalf("%s: not ready: status %s cacheable %v, want tryLater and not cacheable", tt.name, resp.Status, resp.Cacheable)
		}
		var re ocsp.ResponseError
		if _, err := ocsp.ParseResponse(resp.DER, nil); !errors.As(err, &re) || re.Status != ocsp.TryLater {
			t.Fatalf("%s: x/crypto/ocsp reads %v, want tryLater", tt.name, err)
		}
		hr, err := srv.Client().Get(srv.URL + "/" + url.PathEscape(base64.StdEncoding.EncodeToString(der)))
		if err != nil {
			t.Fatal(err)
		}
		hr.Body.Close()
		if hr.StatusCode != http.StatusOK || hr.Header.Get("Cache-Control") != "no-store" || hr.Header.Get("Expires") != "" || hr.Header.Get("ETag") != "" {
			t.Fatalf("%s: HTTP %d with Cache-Control %q Expires %q ETag %q, want 200 no-store and no validators",
				tt.name, hr.StatusCode, hr.Header.Get("Cache-Control"), hr.Header.Get("Expires"), hr.Header.Get("ETag"))
		}
	}
	if n := ca.source.count(); n != 0 {
		t.Fatalf("the Source was read %d times before it was ready", n)
	}
	// Requests about another CA stay unauthorized, ready or not.
	other := newTestCA(t, issuance.ECDSAP256, 3)
	if resp := r.Respond(goRequest(t, other.leaves["good"], other.cert, crypto.SHA1)); resp.Status != Unauthorized {
		t.Errorf("another CA's serial while not ready: %s, want unauthorized", resp.Status)
	}

	ready.Store(true)
	resp := r.Respond(goRequest(t, revoked, ca.cert, crypto.SHA1))
	got, err := ocsp.ParseResponseForCert(resp.DER, revoked, ca.cert)
	if err != nil || got.Status != ocsp.Revoked || !resp.Cacheable {
		t.Fatalf("ready: %+v, %v; want a cacheable revoked answer", got, err)
	}
}

// TestNonceSignaturesBounded floods the responder with nonce requests: only
// NonceSignaturesPerSecond of them get a fresh signature each second; the
// rest get the cached answer without the nonce, and the bucket refills as
// the clock moves.
func TestNonceSignaturesBounded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		rate      float64
		requests  int
		wantFresh int
	}{
		{name: "bound-of-three", rate: 3, requests: 50, wantFresh: 3},
		{name: "fractional-bound-keeps-one", rate: 0.5, requests: 10, wantFresh: 1},
		{name: "default-bound", rate: 0, requests: 3 * DefaultNonceSignaturesPerSecond, wantFresh: DefaultNonceSignaturesPerSecond},
		{name: "unbounded", rate: -1, requests: 300, wantFresh: 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca := newTestCA(t, issuance.ECDSAP256, 0)
			clock := newClock(testNow)
			r := ca.responder(t, func(c *Config) { c.Now = clock.Now; c.NonceSignaturesPerSecond = tt.rate })
			good := ca.leaves["good"]
			spec := specFor(t, ca, good, crypto.SHA1)
			spec.nonceValue = octetNonce(32)
			req := buildRequest(t, spec)
			count := func(n int) (fresh int, cached *Response) {
				for range n {
					resp := r.Respond(req)
					if resp.Status != Successful {
						t.Fatalf("status %s", resp.Status)
					}
					if _, err := ocsp.ParseResponseForCert(resp.DER, good, ca.cert); err != nil {
						t.Fatal(err)
					}
					if len(parseBasic(t, resp.DER).respExts) == 1 {
						fresh++
						continue
					}
					if !resp.Cacheable {
						t.Fatal("an answer without the nonce is not cacheable")
					}
					if cached != nil && resp != cached {
						t.Fatal("over the bound, every answer should be the one cached response")
					}
					cached = resp
				}
				return fresh, cached
			}
			fresh, cached := count(tt.requests)
			if fresh != tt.wantFresh {
				t.Fatalf("%d of %d nonce requests signed fresh, want %d", fresh, tt.requests, tt.wantFresh)
			}
			if cached != nil && r.Respond(goRequest(t, good, ca.cert, crypto.SHA1)) != cached {
				t.Error("the answer without the nonce was not the cached one a plain request gets")
			}
			if tt.rate <= 0 {
				return
			}
			// One second later the bucket holds a second's worth again.
			clock.Advance(time.Second)
			if fresh, _ := count(tt.requests); fresh != tt.wantFresh && !(tt.rate < 1 && fresh == 0) {
				t.Errorf("after a second: %d fresh signatures, want %d", fresh, tt.wantFresh)
			}
		})
	}
}

// TestNoRevocationAvailable: a short-lived certificate issued with
// noRevAvail (RFC 9608) gets unauthorized, unsigned, whatever the request.
func TestNoRevocationAvailable(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, issuance.ECDSAP256, 0)
	short := ca.leaves["unknown"]
	ca.source.set(short.SerialNumber, Status{NoRevocationAvailable: true, NotAfter: short.NotAfter})
	r := ca.responder(t)
	tests := []struct {
		name  string
		nonce bool
		hash  crypto.Hash
	}{
		{name: "sha1", hash: crypto.SHA1},
		{name: "sha256", hash: crypto.SHA256},
		{name: "nonce", hash: crypto.SHA1, nonce: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := specFor(t, ca, short, tt.hash)
			if tt.nonce {
				spec.nonceValue = octetNonce(8)
			}
			resp := r.Respond(buildRequest(t, spec))
			var re ocsp.ResponseError
			if _, err := ocsp.ParseResponse(resp.DER, nil); resp.Status != Unauthorized || resp.Cacheable || !errors.As(err, &re) || re.Status != ocsp.Unauthorized {
				t.Fatalf("status %s cacheable %v (%v), want unauthorized", resp.Status, resp.Cacheable, err)
			}
		})
	}
}

// TestSharedNonceBudget checks the replica-wide ceiling: two issuers whose
// owners each allow many nonce signatures share one budget, so together
// they get no more fresh signatures than the budget, and an issuer over
// its own bound leaves the shared budget to the others.
func TestSharedNonceBudget(t *testing.T) {
	t.Parallel()
	clock := newClock(testNow)
	budget := NewNonceBudget(10)
	fresh := func(r *Responder, ca *testCA, n int) int {
		spec := specFor(t, ca, ca.leaves["good"], crypto.SHA1)
		spec.nonceValue = octetNonce(32)
		req := buildRequest(t, spec)
		got := 0
		for range n {
			resp := r.Respond(req)
			if resp.Status != Successful {
				t.Fatalf("status %s", resp.Status)
			}
			if len(parseBasic(t, resp.DER).respExts) == 1 {
				got++
			}
		}
		return got
	}
	tight, generous, other := newTestCA(t, issuance.ECDSAP256, 0), newTestCA(t, issuance.ECDSAP256, 0), newTestCA(t, issuance.ECDSAP256, 0)
	withBudget := func(rate float64) func(*Config) {
		return func(c *Config) { c.Now = clock.Now; c.NonceSignaturesPerSecond = rate; c.SharedNonceBudget = budget }
	}
	rTight := tight.responder(t, withBudget(2))
	rGenerous := generous.responder(t, withBudget(100_000))
	rOther := other.responder(t, withBudget(100_000))

	if got := fresh(rTight, tight, 50); got != 2 {
		t.Fatalf("issuer with its own bound of 2 signed %d fresh", got)
	}
	if got := fresh(rGenerous, generous, 50); got != 8 {
		t.Fatalf("generous issuer signed %d fresh; want the 8 left of the shared 10", got)
	}
	if got := fresh(rOther, other, 50); got != 0 {
		t.Fatalf("third issuer signed %d fresh after the shared budget was spent", got)
	}
	clock.Advance(time.Second)
	if got := fresh(rOther, other, 50); got != 10 {
		t.Fatalf("after a second the shared budget gave %d fresh signatures; want 10", got)
	}
	if NewNonceBudget(0) != nil || NewNonceBudget(-1) != nil {
		t.Error("a non-positive budget should bound nothing (nil)")
	}
}
