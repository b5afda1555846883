package ceremony

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/quill-pki/quill/pkg/issuance"
)

// SignOptions describe signing a subordinate CA's request with an issuing
// CA, typically an offline root.
type SignOptions struct {
	// CACert is the issuing CA's PEM certificate, optionally followed by
	// the CAs above it, each signed by the next.
	CACert string
	// CAKey is the issuing CA's key.
	CAKey KeySource
	// CSR is the subordinate's PEM request (see NewCSR).
	CSR string
	// Validity is how long the subordinate is valid from Now. It is
	// shortened to the earliest notAfter in the issuing chain, with a
	// warning, since a CA cannot vouch beyond its own life.
	Validity time.Duration
	// Constraints are the subordinate's path length and name constraints.
	Constraints Constraints
	// Chain appends the contents of CACert to the output, so that it is
	// the bundle a Quill CA Secret's tls.crt holds.
	Chain bool
	// Out receives the certificate (PEM).
	Out string
	// Replace allows overwriting an existing output.
	Replace bool
	// Now is the ceremony's time; it must be set.
	Now time.Time
}

// Sign issues a subordinate CA certificate for the request in o.CSR,
// through issuance.Authority.SignCA, the path every certificate Quill makes
// takes.
//
// The certificate takes the request's subject and public key and nothing
// else from it: it gets basicConstraints cA=TRUE with the optional path
// length, keyUsage keyCertSign, cRLSign and digitalSignature, the name
// constraints given, subject and authority key identifiers and a random
// 159-bit serial. Sign refuses when the issuing certificate is not a CA,
// may not sign certificates, is outside its validity (errors wrap the
// sentinels of issuance.Authority.Check), does not match its key, or when
// its path length allows no further CA; and when the request's signature
// does not verify.
func Sign(o SignOptions) (*Result, error) {
	if o.Now.IsZero() {
		return nil, fmt.Errorf("%w: the time is not set", errOptions)
	}
	if err := checkValidity(o.Validity); err != nil {
		return nil, err
	}
	profile, err := o.Constraints.profile(o.Validity)
	if err != nil {
		return nil, err
	}
	chain, err := readIssuerChain(o.CACert)
	if err != nil {
		return nil, err
	}
	csr, err := readCSR(o.CSR)
	if err != nil {
		return nil, err
	}
	issuer := chain[0]
	if bytes.Equal(csr.RawSubject, issuer.RawSubject) {
		return nil, fmt.Errorf("%w %s: its subject %q is the issuer's own; give the subordinate a name of its own", errBadCSR, o.CSR, issuer.Subject)
	}
	if err := checkOutputs(o.Replace, append(keyPaths(o.CAKey), o.CACert, o.CSR), o.Out); err != nil {
		return nil, err
	}

	defer closeKey(o.CAKey)
	signer, err := openSigner(o.CAKey)
	if err != nil {
		return nil, err
	}
	authority := &issuance.Authority{Certificate: issuer, Root: chain[len(chain)-1], Signer: signer}
	if len(chain) > 2 {
		authority.Intermediates = chain[1 : len(chain)-1]
	}
	if err := authority.Check(o.Now); err != nil {
		return nil, fmt.Errorf("%s cannot sign with key %s: %w", o.CACert, o.CAKey, err)
	}
	if err := checkPathLen(chain, o.Constraints.PathLen); err != nil {
		return nil, err
	}

	var warnings []string
	if ignored := requestedExtensions(csr); len(ignored) > 0 {
		warnings = append(warnings, fmt.Sprintf("the request's extensions (%s) were ignored: a subordinate gets the CA profile set by the signer's options", strings.Join(ignored, ", ")))
	}
	issued, err := authority.SignCA(csr, profile, o.Now)
	if err != nil {
		return nil, err
	}
	warnings = append(warnings, issued.Notes...)
	cert := issued.Certificate

	out := issuance.EncodeCertificatesPEM(cert)
	if o.Chain {
		out = append(out, issuance.EncodeCertificatesPEM(chain...)...)
	}
	files := []Output{{Path: o.Out, Data: out, Mode: 0o644}}
	if err := WriteFiles(o.Replace, files...); err != nil {
		return nil, err
	}
	return &Result{Certificate: cert, Files: paths(files), Warnings: warnings}, nil
}

// readIssuerChain reads the issuing CA's bundle and checks its order.
func readIssuerChain(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", issuance.ErrMalformedCA, err)
	}
	chain, err := issuance.ParseCertificatesPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", issuance.ErrMalformedCA, path, err)
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return nil, fmt.Errorf("%w: %s: certificate %d (%q) is not signed by certificate %d (%q); list the issuing CA first, then each issuer: %w",
				issuance.ErrMalformedCA, path, i+1, chain[i].Subject, i+2, chain[i+1].Subject, err)
		}
	}
	return chain, nil
}

// checkPathLen refuses a subordinate that a pathLenConstraint in the
// issuing chain forbids, and a requested path length larger than the chain
// allows: verifiers (Go's, OpenSSL's) enforce the whole chain's
// constraints, so such a certificate would be dead on arrival.
func checkPathLen(chain []*x509.Certificate, requested *int) error {
	for depth, c := range chain {
		if !c.BasicConstraintsValid || c.MaxPathLen < 0 || (c.MaxPathLen == 0 && !c.MaxPathLenZero) {
			continue
		}
		// depth CAs sit below c already; the subordinate adds one more.
		left := c.MaxPathLen - depth - 1
		switch {
		case left < 0 && depth == 0:
			return fmt.Errorf("%w: %q has path length 0: it may sign end-entity certificates only, not another CA", errBadProfile, c.Subject)
		case left < 0:
			return fmt.Errorf("%w: %q has path length %d, which allows no further CA below %q", errBadProfile, c.Subject, c.MaxPathLen, chain[0].Subject)
		case requested != nil && *requested > left:
			return fmt.Errorf("%w: path length %d is too long: because %q has path length %d, a CA signed by %q may have at most %d",
				errBadProfile, *requested, c.Subject, c.MaxPathLen, chain[0].Subject, left)
		}
	}
	return nil
}

// verifyChain checks cert against chain the way a relying party would,
// name constraints and path lengths included.
func verifyChain(cert *x509.Certificate, chain []*x509.Certificate, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(chain[len(chain)-1])
	intermediates := x509.NewCertPool()
	for _, c := range chain[:len(chain)-1] {
		intermediates.AddCert(c)
	}
	_, err := cert.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err
}

// extensionNames names the extensions a CSR commonly asks for.
var extensionNames = map[string]string{
	"2.5.29.14": "subjectKeyIdentifier",
	"2.5.29.15": "keyUsage",
	"2.5.29.17": "subjectAltName",
	"2.5.29.19": "basicConstraints",
	"2.5.29.30": "nameConstraints",
	"2.5.29.37": "extKeyUsage",
}

// requestedExtensions lists the extensions the request asks for, by name
// where known.
func requestedExtensions(csr *x509.CertificateRequest) []string {
	var names []string
	for _, e := range csr.Extensions {
		names = append(names, extensionName(e.Id))
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func extensionName(id asn1.ObjectIdentifier) string {
	if n, ok := extensionNames[id.String()]; ok {
		return n
	}
	return id.String()
}
