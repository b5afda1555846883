package ceremony

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/quill-pki/quill/pkg/issuance"
)

var errBadCSR = errors.New("invalid certificate signing request")

// emptyName is the DER of a Name without RDNs.
var emptyName = []byte{0x30, 0x00}

// CSROptions describe a certificate signing request for a subordinate CA,
// to be carried to the offline root and signed there with Sign.
type CSROptions struct {
	// Subject is the subordinate's name in RFC 4514 form.
	Subject string
	// Key is the subordinate's existing key. When nil, a software key of
	// KeyAlgorithm is generated and written to OutKey (PKCS#8 PEM, mode
	// 0600).
	Key          KeySource
	KeyAlgorithm issuance.KeyAlgorithm
	OutKey       string
	// OutCSR receives the request (PEM).
	OutCSR string
	// Replace allows overwriting existing output files.
	Replace bool
}

// NewCSR writes a CSR for a subordinate CA key. The request carries only
// the subject and the public key: the CA profile (basic constraints, key
// usage, name constraints) is decided by whoever signs it.
func NewCSR(o CSROptions) (*Result, error) {
	rawSubject, err := ParseSubject(o.Subject)
	if err != nil {
		return nil, err
	}
	if o.OutCSR == "" {
		return nil, fmt.Errorf("%w: no file for the request", errOptions)
	}
	outs := []string{o.OutCSR}
	signer, keyPEM, release, err := keyChoice{Key: o.Key, Algorithm: o.KeyAlgorithm, OutKey: o.OutKey}.signerFor(o.Replace, outs...)
	if err != nil {
		return nil, err
	}
	defer release()
	sigAlg, err := signatureAlgorithm(signer.Public())
	if err != nil {
		return nil, err
	}
	return writeCSR(&x509.CertificateRequest{RawSubject: rawSubject, SignatureAlgorithm: sigAlg}, signer, keyPEM, o.OutKey, o.OutCSR, o.Replace)
}

// writeCSR signs tmpl with signer, checks the request parses and its
// signature verifies, and writes it to outCSR, with keyPEM (a key just
// generated, or nil) to outKey. Nothing is written when any step fails.
func writeCSR(tmpl *x509.CertificateRequest, signer crypto.Signer, keyPEM []byte, outKey, outCSR string, replace bool) (*Result, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, signer)
	if err != nil {
		return nil, fmt.Errorf("sign the request: %w", err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("self-check: the request does not parse: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("self-check: the request's signature does not verify: %w", err)
	}
	files := []Output{{Path: outCSR, Data: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), Mode: 0o644}}
	if keyPEM != nil {
		files = append([]Output{{Path: outKey, Data: keyPEM, Mode: 0o600}}, files...)
	}
	if err := WriteFiles(replace, files...); err != nil {
		return nil, err
	}
	return &Result{Request: csr, Files: paths(files)}, nil
}

// readCSR reads one PEM certificate request from path and verifies its
// self-signature, the proof that whoever asks holds the key.
func readCSR(path string) (*x509.CertificateRequest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadCSR, err)
	}
	blocks, err := issuance.DecodePEM(data)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", errBadCSR, path, err)
	}
	if len(blocks) != 1 {
		return nil, fmt.Errorf("%w %s: want one PEM block, found %d", errBadCSR, path, len(blocks))
	}
	switch b := blocks[0]; b.Type {
	case "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST":
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("%w %s: this is a private key, not a request; give the file written with it by `quillctl ca csr`", errBadCSR, path)
	default:
		return nil, fmt.Errorf("%w %s: the PEM block is %q, want \"CERTIFICATE REQUEST\"", errBadCSR, path, b.Type)
	}
	csr, err := x509.ParseCertificateRequest(blocks[0].Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", errBadCSR, path, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w %s: its signature does not verify (damaged, or not signed by the key it carries): %w", errBadCSR, path, err)
	}
	if _, err := keyAlgorithmOf(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("%w %s: %w", errBadCSR, path, err)
	}
	if bytes.Equal(csr.RawSubject, emptyName) {
		return nil, fmt.Errorf("%w %s: the subject is empty, and a CA needs a name: it becomes the issuer of everything the CA signs", errBadCSR, path)
	}
	return csr, nil
}
