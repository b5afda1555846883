package ceremony

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/quill-pki/quill/pkg/issuance"
)

var errOptions = errors.New("invalid options")

// Result is what an operation made.
type Result struct {
	// Certificate is the certificate written (Init, Sign).
	Certificate *x509.Certificate
	// Request is the CSR written (NewCSR).
	Request *x509.CertificateRequest
	// Files are the paths written, in order.
	Files []string
	// Warnings are decisions the user should know about, such as a
	// validity shortened to fit the issuer's. Each is one line.
	Warnings []string
}

// InitOptions describe a new self-signed root CA.
type InitOptions struct {
	// Subject is the root's name in RFC 4514 form (see ParseSubject).
	Subject string
	// Validity is how long the root is valid from Now; the certificate
	// starts an hour earlier for clock skew.
	Validity time.Duration
	// Constraints are the optional path length and name constraints.
	Constraints Constraints
	// Key is an existing key for the root, for instance one generated on
	// a token. When nil, a software key of KeyAlgorithm is generated and
	// written to OutKey.
	Key          KeySource
	KeyAlgorithm issuance.KeyAlgorithm
	// OutCert receives the certificate (PEM); OutKey the generated key
	// (PKCS#8 PEM, mode 0600).
	OutCert, OutKey string
	// Replace allows overwriting existing output files.
	Replace bool
	// Now is the ceremony's time; it must be set.
	Now time.Time
}

// Init creates a self-signed root CA through issuance.SelfSign, the path
// every certificate Quill makes takes: basicConstraints cA=TRUE (critical)
// with the optional path length, keyUsage keyCertSign, cRLSign and
// digitalSignature, a subject key identifier, the optional name
// constraints (critical) and a random 159-bit serial.
func Init(o InitOptions) (*Result, error) {
	if o.Now.IsZero() {
		return nil, fmt.Errorf("%w: the time is not set", errOptions)
	}
	rawSubject, err := ParseSubject(o.Subject)
	if err != nil {
		return nil, err
	}
	if err := checkValidity(o.Validity); err != nil {
		return nil, err
	}
	profile, err := o.Constraints.profile(o.Validity)
	if err != nil {
		return nil, err
	}
	if o.OutCert == "" {
		return nil, fmt.Errorf("%w: no file for the certificate", errOptions)
	}
	outs := []string{o.OutCert}
	signer, keyPEM, release, err := keyChoice{Key: o.Key, Algorithm: o.KeyAlgorithm, OutKey: o.OutKey}.signerFor(o.Replace, outs...)
	if err != nil {
		return nil, err
	}
	defer release()

	root, err := issuance.SelfSign(signer, rawSubject, profile, o.Now)
	if err != nil {
		return nil, fmt.Errorf("sign the root certificate: %w", err)
	}
	cert := root.Certificate

	files := []Output{{Path: o.OutCert, Data: root.ChainPEM, Mode: 0o644}}
	if keyPEM != nil {
		files = append([]Output{{Path: o.OutKey, Data: keyPEM, Mode: 0o600}}, files...)
	}
	if err := WriteFiles(o.Replace, files...); err != nil {
		return nil, err
	}
	return &Result{Certificate: cert, Files: paths(files)}, nil
}

// checkOutputs fails early, before keys are generated or a token asked,
// when WriteFiles would refuse the outputs anyway.
func checkOutputs(replace bool, inputs []string, names ...string) error {
	outs := make([]Output, len(names))
	for i, n := range names {
		outs[i] = Output{Path: n}
	}
	return preflight(replace, outs, inputs)
}

// keyPaths lists the file behind src, if it has one, as an input that no
// output may replace.
func keyPaths(src KeySource) []string {
	if f, ok := src.(FileKey); ok {
		return []string{f.Path}
	}
	return nil
}

func paths(outs []Output) []string {
	p := make([]string, len(outs))
	for i, o := range outs {
		p[i] = o.Path
	}
	return p
}
