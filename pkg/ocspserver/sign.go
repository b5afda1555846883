package ocspserver

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/mldsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/quill-pki/quill/pkg/issuance"
)

// sigSpec is how one key signs a tbsResponseData: the AlgorithmIdentifier
// written into the response, and what to hand crypto.Signer.
type sigSpec struct {
	algorithm x509.SignatureAlgorithm
	algID     []byte // DER AlgorithmIdentifier
	hash      crypto.Hash
	opts      crypto.SignerOpts
}

var (
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidRSAPSS          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidEd25519         = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidMLDSA44         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 17}
	oidMLDSA65         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 18}
	oidMLDSA87         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 19}
)

// newSigSpec works out how key signs with alg (zero: the algorithm Quill
// uses for that key type everywhere, see issuance.SignatureAlgorithmFor).
func newSigSpec(key crypto.Signer, alg x509.SignatureAlgorithm) (sigSpec, error) {
	pub := key.Public()
	if alg == x509.UnknownSignatureAlgorithm {
		var err error
		if alg, err = issuance.SignatureAlgorithmFor(pub, false); err != nil {
			return sigSpec{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	mismatch := fmt.Errorf("%w: signature algorithm %s does not fit a %T key", ErrInvalidConfig, alg, pub)
	s := sigSpec{algorithm: alg}
	var oid asn1.ObjectIdentifier
	nullParams := false
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch alg {
		case x509.SHA256WithRSA:
			oid, s.hash = oidSHA256WithRSA, crypto.SHA256
		case x509.SHA384WithRSA:
			oid, s.hash = oidSHA384WithRSA, crypto.SHA384
		case x509.SHA512WithRSA:
			oid, s.hash = oidSHA512WithRSA, crypto.SHA512
		case x509.SHA256WithRSAPSS:
			s.hash = crypto.SHA256
		case x509.SHA384WithRSAPSS:
			s.hash = crypto.SHA384
		case x509.SHA512WithRSAPSS:
			s.hash = crypto.SHA512
		default:
			return sigSpec{}, mismatch
		}
		if oid == nil {
			s.algID = pssAlgorithmID(s.hash)
			s.opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: s.hash}
			return s, nil
		}
		nullParams = true // RFC 4055 §5: NULL parameters for PKCS #1 v1.5
	case *ecdsa.PublicKey:
		switch alg {
		case x509.ECDSAWithSHA256:
			oid, s.hash = oidECDSAWithSHA256, crypto.SHA256
		case x509.ECDSAWithSHA384:
			oid, s.hash = oidECDSAWithSHA384, crypto.SHA384
		case x509.ECDSAWithSHA512:
			oid, s.hash = oidECDSAWithSHA512, crypto.SHA512
		default:
			return sigSpec{}, mismatch
		}
	case ed25519.PublicKey:
		if alg != x509.PureEd25519 {
			return sigSpec{}, mismatch
		}
		oid = oidEd25519
	case *mldsa.PublicKey:
		switch {
		case alg == x509.MLDSA44 && k.Parameters() == mldsa.MLDSA44():
			oid = oidMLDSA44
		case alg == x509.MLDSA65 && k.Parameters() == mldsa.MLDSA65():
			oid = oidMLDSA65
		case alg == x509.MLDSA87 && k.Parameters() == mldsa.MLDSA87():
			oid = oidMLDSA87
		default:
			return sigSpec{}, mismatch
		}
	default:
		return sigSpec{}, fmt.Errorf("%w: unsupported signing key %T", ErrInvalidConfig, pub)
	}
	s.opts = s.hash // crypto.Hash(0) asks Ed25519 and ML-DSA for the pure scheme
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if nullParams {
			b.AddASN1NULL()
		}
	})
	s.algID = b.BytesOrPanic()
	return s, nil
}

// pssAlgorithmID is the RSASSA-PSS AlgorithmIdentifier with explicit
// parameters (RFC 4055 §3.1): hash h, MGF1 with h, salt as long as the hash,
// trailer field left at its default.
func pssAlgorithmID(h crypto.Hash) []byte {
	var hashOID asn1.ObjectIdentifier
	for _, x := range hashes {
		if x.hash == h {
			hashOID = x.oid
		}
	}
	hashAlg := func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(hashOID)
			b.AddASN1NULL()
		})
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidRSAPSS)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(tag0, hashAlg)
			b.AddASN1(tag1, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidMGF1)
					hashAlg(b)
				})
			})
			b.AddASN1(tag2, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(int64(h.Size()))
			})
		})
	})
	return b.BytesOrPanic()
}

// sign signs tbs with key as s describes.
func (s sigSpec) sign(key crypto.Signer, tbs []byte) ([]byte, error) {
	digest := tbs
	if s.hash != 0 {
		h := s.hash.New()
		h.Write(tbs)
		digest = h.Sum(nil)
	}
	return key.Sign(rand.Reader, digest, s.opts)
}
