// Package mldsa compares the two ML-DSA engines Quill could sign with, Go's
// crypto/mldsa and github.com/cloudflare/circl, and checks that they are
// interchangeable: the same seed gives the same key, each verifies the
// other's signatures, and a certificate signed through circl verifies
// under crypto/x509. It is a module of its own so that circl stays out of
// Quill's go.mod unless it earns its place.
//
//	cd hack/bench/mldsa && go test -run Interop -bench . -count 10 | tee bench.txt
//	go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da -col /engine bench.txt
package mldsa

import (
	"bytes"
	"crypto"
	"crypto/mldsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
)

// engine is one parameter set in both implementations, reduced to what a
// CA does: derive a key from a seed, sign (hedged, empty context), verify.
type engine struct {
	name   string
	params mldsa.Parameters
	sigAlg x509.SignatureAlgorithm
	// circl, for a seed: sign (randomized or deterministic), verify, and
	// the packed public key.
	circl func(seed []byte) (sign func(msg []byte, randomized bool) []byte, verify func(msg, sig []byte) bool, pub []byte)
}

var engines = []engine{
	{name: "ML-DSA-44", params: mldsa.MLDSA44(), sigAlg: x509.MLDSA44, circl: func(seed []byte) (func([]byte, bool) []byte, func([]byte, []byte) bool, []byte) {
		pk, sk := mldsa44.NewKeyFromSeed((*[32]byte)(seed))
		return func(msg []byte, r bool) []byte {
				sig := make([]byte, mldsa44.SignatureSize)
				must(mldsa44.SignTo(sk, msg, nil, r, sig))
				return sig
			}, func(msg, sig []byte) bool { return mldsa44.Verify(pk, msg, nil, sig) },
			pk.Bytes()
	}},
	{name: "ML-DSA-65", params: mldsa.MLDSA65(), sigAlg: x509.MLDSA65, circl: func(seed []byte) (func([]byte, bool) []byte, func([]byte, []byte) bool, []byte) {
		pk, sk := mldsa65.NewKeyFromSeed((*[32]byte)(seed))
		return func(msg []byte, r bool) []byte {
				sig := make([]byte, mldsa65.SignatureSize)
				must(mldsa65.SignTo(sk, msg, nil, r, sig))
				return sig
			}, func(msg, sig []byte) bool { return mldsa65.Verify(pk, msg, nil, sig) },
			pk.Bytes()
	}},
	{name: "ML-DSA-87", params: mldsa.MLDSA87(), sigAlg: x509.MLDSA87, circl: func(seed []byte) (func([]byte, bool) []byte, func([]byte, []byte) bool, []byte) {
		pk, sk := mldsa87.NewKeyFromSeed((*[32]byte)(seed))
		return func(msg []byte, r bool) []byte {
				sig := make([]byte, mldsa87.SignatureSize)
				must(mldsa87.SignTo(sk, msg, nil, r, sig))
				return sig
			}, func(msg, sig []byte) bool { return mldsa87.Verify(pk, msg, nil, sig) },
			pk.Bytes()
	}},
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// tbs stands in for what a CA signs: a leaf certificate's TBSCertificate is
// about this size.
var tbs = bytes.Repeat([]byte("quill"), 120)

// seedOf generates a standard-library key and returns it with its seed, the
// 32 bytes a seed-only PKCS#8 file holds.
func seedOf(t testing.TB, params mldsa.Parameters) (*mldsa.PrivateKey, []byte) {
	sk, err := mldsa.GenerateKey(params)
	if err != nil {
		t.Fatal(err)
	}
	return sk, sk.Bytes()
}

// circlSigner is a crypto.Signer that signs with circl (hedged, empty
// context, RFC 9881 pure ML-DSA) and presents the standard library's public
// key, which is what crypto/x509 recognises.
type circlSigner struct {
	pub  *mldsa.PublicKey
	sign func(msg []byte, randomized bool) []byte
}

func (s circlSigner) Public() crypto.PublicKey { return s.pub }
func (s circlSigner) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts != nil && opts.HashFunc() != 0 {
		return nil, fmt.Errorf("pure ML-DSA signs the message itself, not a %v digest", opts.HashFunc())
	}
	return s.sign(msg, true), nil
}

func TestInterop(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			sk, seed := seedOf(t, e.params)
			// The seed of a seed-only PKCS#8 key, read back by x509, gives
			// circl the same key.
			der, err := x509.MarshalPKCS8PrivateKey(sk)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := x509.ParsePKCS8PrivateKey(der)
			if err != nil {
				t.Fatal(err)
			}
			circlSign, circlVerify, circlPub := e.circl(parsed.(*mldsa.PrivateKey).Bytes())
			if !bytes.Equal(circlPub, sk.PublicKey().Bytes()) {
				t.Fatal("circl derives another public key from the same seed")
			}
			if !bytes.Equal(seed, parsed.(*mldsa.PrivateKey).Bytes()) {
				t.Fatal("PKCS#8 round trip changed the seed")
			}
			// Deterministic signatures are byte for byte equal.
			det, err := sk.SignDeterministic(tbs, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(det, circlSign(tbs, false)) {
				t.Error("deterministic signatures differ")
			}
			// Hedged signatures cross-verify.
			stdSig, err := sk.Sign(nil, tbs, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !circlVerify(tbs, stdSig) {
				t.Error("circl rejects a crypto/mldsa signature")
			}
			if err := mldsa.Verify(sk.PublicKey(), tbs, circlSign(tbs, true), nil); err != nil {
				t.Errorf("crypto/mldsa rejects a circl signature: %v", err)
			}
			// A certificate signed through circl verifies under crypto/x509.
			signer := circlSigner{pub: sk.PublicKey(), sign: circlSign}
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "circl " + e.name},
				NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
				IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
				SignatureAlgorithm: e.sigAlg,
			}
			certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(certDER)
			if err != nil {
				t.Fatal(err)
			}
			if err := cert.CheckSignatureFrom(cert); err != nil {
				t.Errorf("crypto/x509 rejects a certificate signed by circl: %v", err)
			}
		})
	}
}

func BenchmarkSign(b *testing.B) {
	for _, e := range engines {
		sk, seed := seedOf(b, e.params)
		circlSign, _, _ := e.circl(seed)
		b.Run("alg="+e.name+"/engine=std", func(b *testing.B) {
			for b.Loop() {
				if _, err := sk.Sign(nil, tbs, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("alg="+e.name+"/engine=circl", func(b *testing.B) {
			for b.Loop() {
				circlSign(tbs, true)
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, e := range engines {
		sk, seed := seedOf(b, e.params)
		_, circlVerify, _ := e.circl(seed)
		sig, err := sk.Sign(nil, tbs, nil)
		if err != nil {
			b.Fatal(err)
		}
		pub := sk.PublicKey()
		b.Run("alg="+e.name+"/engine=std", func(b *testing.B) {
			for b.Loop() {
				if err := mldsa.Verify(pub, tbs, sig, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("alg="+e.name+"/engine=circl", func(b *testing.B) {
			for b.Loop() {
				if !circlVerify(tbs, sig) {
					b.Fatal("verify failed")
				}
			}
		})
	}
}
