package issuance

import (
	"crypto/x509"
	"testing"
)

// BenchmarkSign measures one Sign, self-check included, per CA key type,
// each signing a leaf of its own family (RSA CAs sign RSA-2048 leaves).
func BenchmarkSign(b *testing.B) {
	benches := []struct {
		name    string
		caKey   KeyAlgorithm
		rsaPSS  bool
		leafKey KeyAlgorithm
	}{
		{name: "ecdsa-p256", caKey: ECDSAP256, leafKey: ECDSAP256},
		{name: "ecdsa-p384", caKey: ECDSAP384, leafKey: ECDSAP384},
		{name: "ecdsa-p521", caKey: ECDSAP521, leafKey: ECDSAP521},
		{name: "rsa-2048", caKey: RSA2048, leafKey: RSA2048},
		{name: "rsa-2048-pss", caKey: RSA2048, rsaPSS: true, leafKey: RSA2048},
		{name: "rsa-4096", caKey: RSA4096, leafKey: RSA2048},
		{name: "ed25519", caKey: Ed25519, leafKey: Ed25519},
		{name: "ml-dsa-44", caKey: MLDSA44, leafKey: MLDSA44},
		{name: "ml-dsa-65", caKey: MLDSA65, leafKey: MLDSA65},
		{name: "ml-dsa-87", caKey: MLDSA87, leafKey: MLDSA87},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			ca := newCA(b, withCAKeyAlg(bb.caKey, 0))
			req := Request{
				CSR:         newCSR(b, withKeyAlg(bb.leafKey)),
				KeyUsage:    x509.KeyUsageDigitalSignature,
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}
			opts := baseOptions()
			opts.RSAPSS = bb.rsaPSS
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ca.Sign(req, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
