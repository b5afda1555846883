//go:build cgo

package pkcs11

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"testing"
)

// BenchmarkSign compares signing through SoftHSM with the same algorithm
// in Go's crypto. Parallelism p runs p×GOMAXPROCS goroutines
// (b.SetParallelism), so on a 2-core machine 1, 4 and 8 mean 2, 8 and 16
// goroutines; the SoftHSM Key keeps the default pool of
// DefaultMaxSessions signing sessions, so beyond that goroutines queue.
// sigs/s is the throughput of all goroutines together.
func BenchmarkSign(b *testing.B) {
	tok := takeToken(b)
	hsmP256 := generateKey(b, tok.config("bench-p256"), ECDSAP256)
	hsmRSA := generateKey(b, tok.config("bench-rsa-2048"), RSA2048)
	swP256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	swRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256([]byte("quill benchmark"))
	for _, alg := range []struct {
		name          string
		hsm, software crypto.Signer
	}{
		{"ecdsa-p256", hsmP256, swP256},
		{"rsa-2048", hsmRSA, swRSA},
	} {
		for _, impl := range []struct {
			name   string
			signer crypto.Signer
		}{
			{"softhsm", alg.hsm},
			{"software", alg.software},
		} {
			for _, p := range []int{1, 4, 8} {
				b.Run(fmt.Sprintf("%s/%s/parallelism-%d", alg.name, impl.name, p), func(b *testing.B) {
					b.SetParallelism(p)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if _, err := impl.signer.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
								b.Error(err)
								return
							}
						}
					})
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sigs/s")
				})
			}
		}
	}
}
