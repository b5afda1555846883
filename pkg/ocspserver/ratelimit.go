package ocspserver

import (
	"sync"
	"time"
)

// tokenBucket bounds an event rate: it holds up to burst tokens, refilled
// at rate per second, and each event takes one. It reads the responder's
// clock rather than the wall clock, so tests decide how time passes.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

// NonceBudget bounds the fresh nonce signatures of several responders
// together: the replica-wide ceiling above every issuer's own bound, which
// the issuer's owner sets and could otherwise raise until one tenant's
// nonce flood takes the CPU or HSM that every issuer shares. Its zero value
// is not usable; call NewNonceBudget. It is safe for concurrent use.
type NonceBudget struct{ bucket *tokenBucket }

// NewNonceBudget returns a budget of perSecond fresh nonce signatures per
// second (a bucket holding one second's worth), or nil, which bounds
// nothing, when perSecond is not positive.
func NewNonceBudget(perSecond float64) *NonceBudget {
	if !(perSecond > 0) {
		return nil
	}
	return &NonceBudget{bucket: newTokenBucket(perSecond)}
}

// newTokenBucket returns a full bucket refilled at rate per second and
// holding one second's worth of tokens, at least one.
func newTokenBucket(rate float64) *tokenBucket {
	burst := max(rate, 1)
	return &tokenBucket{rate: rate, burst: burst, tokens: burst}
}

// take reports whether an event at now fits the bound, and counts it if
// so. A clock that steps back refills nothing.
func (b *tokenBucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
