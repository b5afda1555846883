package ocspserver

import (
	"crypto"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quill-pki/quill/pkg/issuance"
)

// BenchmarkNonceFlood is a client flooding one issuer's responder with
// nonce requests for one serial, from every core (b.RunParallel), on the
// real clock: "unbounded" signs every request, "default-bound" lets
// DefaultNonceSignaturesPerSecond of them per second be signed and answers
// the rest from the cache without the nonce. ns/op is the responder's cost
// per request; fresh-sig/s is the signatures it made per second (the load
// on the key: an HSM's, or ML-DSA's CPU). docs/benchmarks.md records a run.
func BenchmarkNonceFlood(b *testing.B) {
	for _, alg := range []issuance.KeyAlgorithm{issuance.ECDSAP256, issuance.RSA2048, issuance.MLDSA65} {
		ca := newTestCAAt(b, alg, 0, time.Now())
		spec := specFor(b, ca, ca.leaves["good"], crypto.SHA1)
		spec.nonceValue = octetNonce(16)
		req := buildRequest(b, spec)
		for _, bound := range []struct {
			name string
			rate float64
		}{{"unbounded", -1}, {"default-bound", 0}} {
			b.Run(fmt.Sprintf("%s/%s", alg, bound.name), func(b *testing.B) {
				r := ca.responder(b, func(c *Config) { c.Now = time.Now; c.NonceSignaturesPerSecond = bound.rate })
				var fresh atomic.Int64
				start := time.Now()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if resp := r.Respond(req); !resp.Cacheable {
							fresh.Add(1)
						}
					}
				})
				b.ReportMetric(float64(fresh.Load())/time.Since(start).Seconds(), "fresh-sig/s")
			})
		}
	}
}
