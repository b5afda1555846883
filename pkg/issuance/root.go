package issuance

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"
)

// rootBackdate is how far before "now" a new root becomes valid. A root is
// installed on machines whose clocks Quill does not control; an hour covers
// common skew, and unlike a leaf there is no parent whose notBefore it
// could precede.
const rootBackdate = time.Hour

var errBadRoot = errors.New("cannot create root CA")

// NewSelfSignedRoot generates a key of algorithm alg (GenerateKey) and a
// self-signed root CA certificate for subject through SelfSign: cA=TRUE
// without a path length constraint, keyUsage keyCertSign, cRLSign and
// digitalSignature, and a subject key identifier. It is valid from now
// minus one hour, for clock skew, until now plus validity. The key is
// returned as PEM PKCS#8 (MarshalPrivateKeyPEM). Every error wraps
// errBadRoot and, where SelfSign classified it, the sentinel it chose.
//
// It is meant for the CLI, the controller's bootstrap root and tests; a
// production root would rather be generated where its key lives.
func NewSelfSignedRoot(subject pkix.Name, alg KeyAlgorithm, validity time.Duration, now time.Time) (certPEM, keyPEM []byte, err error) {
	rawSubject, err := asn1.Marshal(subject.ToRDNSequence())
	if err != nil {
		return nil, nil, fmt.Errorf("%w: encode subject: %w", errBadRoot, err)
	}
	p := CAProfile{Validity: validity, Backdate: rootBackdate}
	// Checked before the key is made: an RSA-4096 key takes seconds to
	// generate, and a mistake should not cost them.
	if err := p.check(rawSubject, now); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBadRoot, err)
	}
	key, err := GenerateKey(alg)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBadRoot, err)
	}
	root, err := SelfSign(key, rawSubject, p, now)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBadRoot, err)
	}
	if keyPEM, err = MarshalPrivateKeyPEM(key); err != nil {
		return nil, nil, fmt.Errorf("%w: encode key: %w", errBadRoot, err)
	}
	return root.ChainPEM, keyPEM, nil
}
