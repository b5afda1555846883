package issuance

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/mldsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// KeyAlgorithm names a public key type and size the way Quill reports it in
// issuer status and accepts it in GenerateKey and NewSelfSignedRoot: "ECDSA-P256",
// "RSA-3072", "Ed25519", "ML-DSA-65". RSA keys of sizes other than the
// constants below are reported as "RSA-<bits>".
type KeyAlgorithm string

// The key algorithms GenerateKey makes, as KeyAlgorithms lists them. Sign
// accepts CSR keys of all of these and, for RSA, any size from 2048 to 8192
// bits.
const (
	ECDSAP256 KeyAlgorithm = "ECDSA-P256"
	ECDSAP384 KeyAlgorithm = "ECDSA-P384"
	ECDSAP521 KeyAlgorithm = "ECDSA-P521"
	RSA2048   KeyAlgorithm = "RSA-2048"
	RSA3072   KeyAlgorithm = "RSA-3072"
	RSA4096   KeyAlgorithm = "RSA-4096"
	Ed25519   KeyAlgorithm = "Ed25519"
	MLDSA44   KeyAlgorithm = "ML-DSA-44"
	MLDSA65   KeyAlgorithm = "ML-DSA-65"
	MLDSA87   KeyAlgorithm = "ML-DSA-87"
)

const (
	// Below 2048 bits RSA is within reach of well-funded attackers and is
	// refused by every public trust program.
	minRSABits = 2048
	// Above 8192 bits a key buys no practical security, but every TLS
	// handshake that verifies it pays for it; a CA should not hand out such
	// certificates to whoever asks.
	maxRSABits = 8192
)

var (
	errWeakKey        = errors.New("key is too weak")
	errUnsupportedKey = errors.New("unsupported key type")
)

// KeyAlgorithmOf names pub as Quill names key algorithms everywhere, and
// refuses the keys Quill refuses for CAs and certificates (RSA outside 2048
// to 8192 bits or with a bad exponent, other curves and key types). Offline
// tools (quillctl) call it so that what they make is what issuers accept.
func KeyAlgorithmOf(pub crypto.PublicKey) (KeyAlgorithm, error) { return describeKey(pub) }

// SignatureAlgorithmFor is the algorithm a CA key of pub signs with: the
// hash matching the curve for ECDSA, SHA-256 with PKCS#1 v1.5 (or PSS when
// rsaPSS) for RSA, pure Ed25519 and ML-DSA.
func SignatureAlgorithmFor(pub crypto.PublicKey, rsaPSS bool) (x509.SignatureAlgorithm, error) {
	return signatureAlgorithmFor(pub, rsaPSS)
}

// describeKey names pub and says whether Quill accepts it, for CSR keys and
// CA keys alike. The name is returned even when the key is refused, so the
// error message can say what was sent.
func describeKey(pub crypto.PublicKey) (KeyAlgorithm, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		alg := KeyAlgorithm(fmt.Sprintf("RSA-%d", bits))
		switch {
		case bits < minRSABits:
			return alg, fmt.Errorf("%w: %s; RSA keys need %d to %d bits", errWeakKey, alg, minRSABits, maxRSABits)
		case bits > maxRSABits:
			return alg, fmt.Errorf("%w: %s; RSA keys need %d to %d bits", errUnsupportedKey, alg, minRSABits, maxRSABits)
		case k.E < 3 || k.E%2 == 0:
			return alg, fmt.Errorf("%w: %s with public exponent %d; the exponent must be odd and at least 3", errWeakKey, alg, k.E)
		}
		return alg, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ECDSAP256, nil
		case elliptic.P384():
			return ECDSAP384, nil
		case elliptic.P521():
			return ECDSAP521, nil
		}
		name := "unknown curve"
		if k.Curve != nil {
			name = strings.ReplaceAll(k.Curve.Params().Name, "-", "")
		}
		return KeyAlgorithm("ECDSA-" + name), fmt.Errorf("%w: ECDSA-%s; use P-256, P-384 or P-521", errUnsupportedKey, name)
	case ed25519.PublicKey:
		return Ed25519, nil
	case *mldsa.PublicKey:
		switch k.Parameters() {
		case mldsa.MLDSA44():
			return MLDSA44, nil
		case mldsa.MLDSA65():
			return MLDSA65, nil
		case mldsa.MLDSA87():
			return MLDSA87, nil
		}
		return KeyAlgorithm(k.Parameters().String()), fmt.Errorf("%w: %s", errUnsupportedKey, k.Parameters())
	case nil:
		return "unknown", fmt.Errorf("%w: the public key algorithm is not one Go can parse", errUnsupportedKey)
	default:
		return KeyAlgorithm(fmt.Sprintf("%T", pub)), fmt.Errorf("%w: %T; use RSA, ECDSA, Ed25519 or ML-DSA", errUnsupportedKey, pub)
	}
}

// signatureOnly reports whether alg can only sign: RFC 8410 (Ed25519) and
// RFC 9881 (ML-DSA) allow such keys no encryption or key agreement usages.
func signatureOnly(alg KeyAlgorithm) bool {
	switch alg {
	case Ed25519, MLDSA44, MLDSA65, MLDSA87:
		return true
	}
	return false
}

// signatureAlgorithmFor picks the algorithm the CA signs with. It is set
// explicitly rather than left to x509.CreateCertificate so that the choice
// (hash strength matching the curve, PSS on request) is ours and tested,
// not an accident of a Go release.
func signatureAlgorithmFor(pub crypto.PublicKey, rsaPSS bool) (x509.SignatureAlgorithm, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if rsaPSS {
			return x509.SHA256WithRSAPSS, nil
		}
		return x509.SHA256WithRSA, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return x509.ECDSAWithSHA256, nil
		case elliptic.P384():
			return x509.ECDSAWithSHA384, nil
		case elliptic.P521():
			return x509.ECDSAWithSHA512, nil
		}
	case ed25519.PublicKey:
		return x509.PureEd25519, nil
	case *mldsa.PublicKey:
		switch k.Parameters() {
		case mldsa.MLDSA44():
			return x509.MLDSA44, nil
		case mldsa.MLDSA65():
			return x509.MLDSA65, nil
		case mldsa.MLDSA87():
			return x509.MLDSA87, nil
		}
	}
	return x509.UnknownSignatureAlgorithm, fmt.Errorf("%w: no signature algorithm for CA key %T", errUnsupportedKey, pub)
}

// PublicKeysEqual compares two public keys of any supported type; every key
// type in the standard library implements Equal.
func PublicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// KeyAlgorithms lists the algorithms GenerateKey makes, in the order help
// texts and error messages show them. It is the one list of key algorithm
// names in Quill; key backends (PKCS#11, KMS) map their own names to these.
func KeyAlgorithms() []KeyAlgorithm {
	return []KeyAlgorithm{
		ECDSAP256, ECDSAP384, ECDSAP521,
		RSA2048, RSA3072, RSA4096,
		Ed25519, MLDSA44, MLDSA65, MLDSA87,
	}
}

// ParseKeyAlgorithm accepts the names KeyAlgorithms returns, in any letter
// case, as users type them on a command line or in a configuration. Its
// errors list the names it accepts.
func ParseKeyAlgorithm(s string) (KeyAlgorithm, error) {
	if s == "" {
		return "", fmt.Errorf("%w: no key algorithm given; use one of %s", errUnsupportedKey, keyAlgorithmNames())
	}
	for _, a := range KeyAlgorithms() {
		if strings.EqualFold(s, string(a)) {
			return a, nil
		}
	}
	return "", fmt.Errorf("%w: key algorithm %q; use one of %s", errUnsupportedKey, s, keyAlgorithmNames())
}

// GenerateKey makes a fresh private key of alg from crypto/rand; it is the
// only place Quill generates keys in software (roots, ceremony keys, OCSP
// responder keys). alg is read as ParseKeyAlgorithm reads it; an unknown
// name is refused with an error that lists the names KeyAlgorithms returns.
func GenerateKey(alg KeyAlgorithm) (crypto.Signer, error) {
	alg, err := ParseKeyAlgorithm(string(alg))
	if err != nil {
		return nil, err
	}
	switch alg {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case ECDSAP521:
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case MLDSA44:
		return mldsa.GenerateKey(mldsa.MLDSA44())
	case MLDSA65:
		return mldsa.GenerateKey(mldsa.MLDSA65())
	case MLDSA87:
		return mldsa.GenerateKey(mldsa.MLDSA87())
	}
	// KeyAlgorithms lists a name this switch does not handle.
	return nil, fmt.Errorf("%w: key algorithm %q cannot be generated", errUnsupportedKey, alg)
}

func keyAlgorithmNames() string {
	algs := KeyAlgorithms()
	names := make([]string, len(algs))
	for i, a := range algs {
		names[i] = string(a)
	}
	return strings.Join(names, ", ")
}
