package issuance

import (
	"bytes"
	"crypto"
	"crypto/mldsa"
	"fmt"
	"io"

	"github.com/cloudflare/circl/sign"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
)

// ML-DSA signing engine. Go 1.27's crypto/mldsa is what parses, verifies
// and stores keys everywhere in Quill; signing alone goes through
// cloudflare/circl, measured 3 to 6 times faster at signing on the same
// machine (docs/benchmarks.md, "ML-DSA signing engine"). The two are the
// same algorithm: the same 32-byte seed gives both the same key,
// deterministic signatures are byte-identical, and each verifies the
// other's hedged signatures (hack/bench/mldsa checks all three).

// circlMLDSA is a crypto.Signer for a seed-held ML-DSA key that signs with
// circl: pure ML-DSA (RFC 9881), hedged (fresh randomness per signature,
// as crypto/mldsa does), with the context of *mldsa.Options when given.
// Public returns the crypto/mldsa public key, so crypto/x509 and
// crypto/tls treat it as any ML-DSA key.
type circlMLDSA struct {
	key  *mldsa.PrivateKey
	pub  []byte // circl's encoding of the public key it derived
	sign func(msg, ctx []byte) ([]byte, error)
	// verifyKey is that public key, unpacked once for the self-check of
	// every certificate this key signs (mldsa_verify.go).
	verifyKey sign.PublicKey
}

func (s *circlMLDSA) Public() crypto.PublicKey { return s.key.Public() }

// Sign signs msg itself (opts nil, zero hash or *mldsa.Options). Anything
// else, such as a pre-hashed μ (crypto.MLDSAMu), is left to crypto/mldsa,
// which knows what to do with it.
func (s *circlMLDSA) Sign(rand io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	var ctx []byte
	switch o := opts.(type) {
	case *mldsa.Options:
		ctx = []byte(o.Context)
	case nil:
	default:
		if o.HashFunc() != 0 {
			return s.key.Sign(rand, msg, opts)
		}
	}
	if len(ctx) > 255 {
		return nil, fmt.Errorf("ML-DSA context of %d bytes is over 255", len(ctx))
	}
	return s.sign(msg, ctx)
}

// engineOf returns the circl engine signer is, or wraps: a key backend that
// hands out an in-memory key behind its own type (pkg/kms/softkey) returns
// the signer it wraps from Unwrap, so that the self-check keeps the
// engine's unpacked public key.
func engineOf(signer crypto.Signer) (*circlMLDSA, bool) {
	if w, ok := signer.(interface{ Unwrap() crypto.Signer }); ok {
		signer = w.Unwrap()
	}
	s, ok := signer.(*circlMLDSA)
	return s, ok
}

// fastSigner returns signer with ML-DSA signing moved to circl; other keys
// are returned as they are.
func fastSigner(signer crypto.Signer) crypto.Signer {
	k, ok := signer.(*mldsa.PrivateKey)
	if !ok {
		return signer
	}
	seed := (*[32]byte)(k.Bytes())
	s := &circlMLDSA{key: k}
	switch k.PublicKey().Parameters() {
	case mldsa.MLDSA44():
		pk, sk := mldsa44.NewKeyFromSeed(seed)
		s.pub, s.verifyKey = pk.Bytes(), pk
		s.sign = func(msg, ctx []byte) ([]byte, error) {
			sig := make([]byte, mldsa44.SignatureSize)
			return sig, mldsa44.SignTo(sk, msg, ctx, true, sig)
		}
	case mldsa.MLDSA65():
		pk, sk := mldsa65.NewKeyFromSeed(seed)
		s.pub, s.verifyKey = pk.Bytes(), pk
		s.sign = func(msg, ctx []byte) ([]byte, error) {
			sig := make([]byte, mldsa65.SignatureSize)
			return sig, mldsa65.SignTo(sk, msg, ctx, true, sig)
		}
	case mldsa.MLDSA87():
		pk, sk := mldsa87.NewKeyFromSeed(seed)
		s.pub, s.verifyKey = pk.Bytes(), pk
		s.sign = func(msg, ctx []byte) ([]byte, error) {
			sig := make([]byte, mldsa87.SignatureSize)
			return sig, mldsa87.SignTo(sk, msg, ctx, true, sig)
		}
	default:
		return signer
	}
	// The engines agree on key derivation; should a release ever not, the
	// CA signs with crypto/mldsa rather than with a key that is not the
	// certificate's.
	if !bytes.Equal(s.pub, k.PublicKey().Bytes()) {
		return signer
	}
	return s
}
