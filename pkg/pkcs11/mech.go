//go:build cgo

package pkcs11

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"

	p11 "github.com/miekg/pkcs11"
)

// rsaHash is what RSA signing needs to know about a hash: the OID its
// PKCS#1 v1.5 DigestInfo names, and the PKCS#11 hash and MGF1 values PSS
// parameters name.
type rsaHash struct {
	oid asn1.ObjectIdentifier
	ckm uint
	mgf uint
}

// rsaHashes are the hashes RSA keys sign with. SHA-1 and SHA-224 are left
// out on purpose: no CA should produce new signatures with them.
var rsaHashes = map[crypto.Hash]rsaHash{
	crypto.SHA256: {asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, p11.CKM_SHA256, p11.CKG_MGF1_SHA256},
	crypto.SHA384: {asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}, p11.CKM_SHA384, p11.CKG_MGF1_SHA384},
	crypto.SHA512: {asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}, p11.CKM_SHA512, p11.CKG_MGF1_SHA512},
}

// digestInfo is the PKCS#1 v1.5 structure (RFC 8017, section 9.2) that
// CKM_RSA_PKCS signs when given a bare digest.
type digestInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Digest    []byte
}

// operation is one signature as the token must compute it.
type operation struct {
	mech []*p11.Mechanism
	data []byte
	// ecdsaSize, when non-zero, is the byte size of r and s in the raw
	// r||s the token returns, which crypto.Signer callers expect DER.
	ecdsaSize int
}

// newOperation translates a crypto.Signer call for a key whose public half
// is pub into a PKCS#11 mechanism and input. It refuses, with
// ErrUnsupportedOptions, anything the result could not be verified as.
func newOperation(pub crypto.PublicKey, digest []byte, opts crypto.SignerOpts) (operation, error) {
	var hash crypto.Hash
	if opts != nil {
		hash = opts.HashFunc()
	}
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		if hash == 0 {
			return operation{}, fmt.Errorf("%w: ECDSA signs a digest; the options must name its hash", ErrUnsupportedOptions)
		}
		if len(digest) != hash.Size() {
			return operation{}, fmt.Errorf("%w: digest of %d bytes for %s", ErrUnsupportedOptions, len(digest), hash)
		}
		return operation{
			mech:      []*p11.Mechanism{p11.NewMechanism(p11.CKM_ECDSA, nil)},
			data:      digest,
			ecdsaSize: (pub.Curve.Params().BitSize + 7) / 8,
		}, nil

	case *rsa.PublicKey:
		h, ok := rsaHashes[hash]
		if !ok {
			return operation{}, fmt.Errorf("%w: RSA signatures with hash %s (want SHA-256, SHA-384 or SHA-512)", ErrUnsupportedOptions, hash)
		}
		if len(digest) != hash.Size() {
			return operation{}, fmt.Errorf("%w: digest of %d bytes for %s", ErrUnsupportedOptions, len(digest), hash)
		}
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			salt := pss.SaltLength
			if salt == rsa.PSSSaltLengthAuto || salt == rsa.PSSSaltLengthEqualsHash {
				// Go's own signer would pick the longest salt for Auto;
				// the hash length is what X.509 profiles (RFC 4055) expect
				// and what every verifier accepts.
				salt = hash.Size()
			}
			if maxSalt := (pub.N.BitLen()-1+7)/8 - hash.Size() - 2; salt < 0 || salt > maxSalt {
				return operation{}, fmt.Errorf("%w: PSS salt length %d", ErrUnsupportedOptions, pss.SaltLength)
			}
			params := p11.NewPSSParams(h.ckm, h.mgf, uint(salt))
			return operation{
				mech: []*p11.Mechanism{p11.NewMechanism(p11.CKM_RSA_PKCS_PSS, params)},
				data: digest,
			}, nil
		}
		info, err := asn1.Marshal(digestInfo{
			Algorithm: pkix.AlgorithmIdentifier{Algorithm: h.oid, Parameters: asn1.NullRawValue},
			Digest:    digest,
		})
		if err != nil {
			return operation{}, fmt.Errorf("encode DigestInfo: %w", err)
		}
		return operation{mech: []*p11.Mechanism{p11.NewMechanism(p11.CKM_RSA_PKCS, nil)}, data: info}, nil

	case ed25519.PublicKey:
		if hash != 0 {
			return operation{}, fmt.Errorf("%w: Ed25519ph (pre-hashed with %s)", ErrUnsupportedOptions, hash)
		}
		if o, ok := opts.(*ed25519.Options); ok && o.Context != "" {
			return operation{}, fmt.Errorf("%w: Ed25519 with a context string", ErrUnsupportedOptions)
		}
		return operation{mech: []*p11.Mechanism{p11.NewMechanism(ckmEdDSA, nil)}, data: digest}, nil
	}
	return operation{}, fmt.Errorf("%w: public key of type %T", ErrUnsupportedKey, pub)
}

// encode turns the token's output into what crypto.Signer promises:
// ASN.1 DER for ECDSA, the raw signature otherwise.
func (op operation) encode(raw []byte) ([]byte, error) {
	if op.ecdsaSize == 0 {
		return raw, nil
	}
	if len(raw) != 2*op.ecdsaSize {
		return nil, fmt.Errorf("ECDSA signature of %d bytes, want %d", len(raw), 2*op.ecdsaSize)
	}
	return asn1.Marshal(struct{ R, S *big.Int }{
		R: new(big.Int).SetBytes(raw[:op.ecdsaSize]),
		S: new(big.Int).SetBytes(raw[op.ecdsaSize:]),
	})
}
