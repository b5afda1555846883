package issuance

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
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

// NewSelfSignedRoot generates a key of algorithm alg and a self-signed root
// CA certificate for subject: cA=TRUE without a path length constraint,
// keyUsage keyCertSign, cRLSign and digitalSignature, and a subject key
// identifier (RFC 7093 method 1). It is valid from now minus one hour, for
// clock skew, until now plus validity. The key is returned as PEM PKCS#8
// ("PRIVATE KEY"); ML-DSA keys are written in the seed-only form, which is
// what Go reads back and what OpenSSL 3.5 can convert to.
//
// It is meant for the CLI and for tests; a production root would rather be
// generated where its key lives.
func NewSelfSignedRoot(subject pkix.Name, alg KeyAlgorithm, validity time.Duration, now time.Time) (certPEM, keyPEM []byte, err error) {
	if validity < MinCertificateDuration {
		return nil, nil, fmt.Errorf("%w: validity %s is below the minimum of %s", errBadRoot, validity, MinCertificateDuration)
	}
	if now.IsZero() {
		return nil, nil, fmt.Errorf("%w: now is not set", errBadRoot)
	}
	rawSubject, err := asn1.Marshal(subject.ToRDNSequence())
	if err != nil {
		return nil, nil, fmt.Errorf("%w: encode subject: %w", errBadRoot, err)
	}
	if bytes.Equal(rawSubject, emptySubject) {
		// The issuer name of everything this root signs would be empty,
		// which RFC 5280 (4.1.2.4) forbids.
		return nil, nil, fmt.Errorf("%w: the subject is empty", errBadRoot)
	}
	key, err := generateKey(alg)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBadRoot, err)
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("%w: encode public key: %w", errBadRoot, err)
	}
	ski, err := subjectKeyID(spki)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBadRoot, err)
	}
	serial, err := newSerial(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: serial number: %w", errBadRoot, err)
	}
	sigAlg, err := signatureAlgorithmFor(key.Public(), false)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBadRoot, err)
	}
	now = now.UTC().Truncate(time.Second)
	template := &x509.Certificate{
		SerialNumber:          serial,
		RawSubject:            rawSubject,
		NotBefore:             now.Add(-rootBackdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            -1,
		SubjectKeyId:          ski,
		SignatureAlgorithm:    sigAlg,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: sign: %w", errBadRoot, err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: encode key: %w", errBadRoot, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil
}
