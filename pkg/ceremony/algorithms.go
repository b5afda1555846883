package ceremony

import (
	"crypto"
	"crypto/x509"
	"fmt"

	"github.com/quill-pki/quill/pkg/issuance"
)

// The key algorithm names, key generation and PEM encodings live in
// pkg/issuance; these helpers only give their refusals this package's
// sentinel, so that a caller tells "unsupported key" from the other
// failures of an operation.

// checkAlgorithm says why issuance.GenerateKey cannot make alg, or nothing,
// before any output is checked or a key generated.
func checkAlgorithm(alg issuance.KeyAlgorithm) error {
	if _, err := issuance.ParseKeyAlgorithm(string(alg)); err != nil {
		return fmt.Errorf("%w: %w", errUnsupportedKey, err)
	}
	return nil
}

// keyAlgorithmOf names pub and refuses the keys Quill's issuers refuse
// (issuance.KeyAlgorithmOf), so that a ceremony never makes a CA an issuer
// would not load.
func keyAlgorithmOf(pub crypto.PublicKey) (issuance.KeyAlgorithm, error) {
	alg, err := issuance.KeyAlgorithmOf(pub)
	if err != nil {
		return "", fmt.Errorf("%w: %w", errUnsupportedKey, err)
	}
	return alg, nil
}

// signatureAlgorithm picks the algorithm a key signs CSRs with: the choice
// pkg/issuance makes for certificates (PKCS#1 v1.5 for RSA), so that a
// ceremony's requests and the certificates Quill issues look alike.
func signatureAlgorithm(pub crypto.PublicKey) (x509.SignatureAlgorithm, error) {
	if _, err := keyAlgorithmOf(pub); err != nil {
		return x509.UnknownSignatureAlgorithm, err
	}
	return issuance.SignatureAlgorithmFor(pub, false)
}
