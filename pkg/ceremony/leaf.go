package ceremony

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"net"
	"net/mail"
	"net/url"

	"github.com/quill-pki/quill/pkg/issuance"
)

// LeafCSROptions describe a certificate signing request for an end-entity
// key, such as an ML-DSA key cert-manager cannot generate yet: the request
// is submitted to a Quill issuer as a cert-manager CertificateRequest.
type LeafCSROptions struct {
	// Subject in RFC 4514 form; may be empty when there are names.
	Subject string
	// DNSNames, IPAddresses, URIs and EmailAddresses become the request's
	// subject alternative names.
	DNSNames       []string
	IPAddresses    []string
	URIs           []string
	EmailAddresses []string
	// Key is an existing key. When nil, a software key of KeyAlgorithm is
	// generated and written to OutKey (PKCS#8 PEM, seed-only for ML-DSA,
	// mode 0600).
	Key          KeySource
	KeyAlgorithm issuance.KeyAlgorithm
	OutKey       string
	// OutCSR receives the request (PEM).
	OutCSR string
	// Replace allows overwriting existing output files.
	Replace bool
}

// NewLeafCSR writes a CSR for an end-entity key, signed with that key (for
// ML-DSA, pure ML-DSA with an empty context, RFC 9881). The names are
// checked here, so a request that Quill would refuse for a malformed name
// is never written; usages and lifetime are the CertificateRequest's
// business, not the CSR's.
func NewLeafCSR(o LeafCSROptions) (*Result, error) {
	var rawSubject []byte
	if o.Subject != "" {
		var err error
		if rawSubject, err = ParseSubject(o.Subject); err != nil {
			return nil, err
		}
	}
	tmpl := &x509.CertificateRequest{RawSubject: rawSubject, DNSNames: o.DNSNames, EmailAddresses: o.EmailAddresses}
	for _, s := range o.IPAddresses {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("%w: %q is not an IP address", errOptions, s)
		}
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	}
	for _, s := range o.URIs {
		u, err := url.Parse(s)
		if err != nil || u.Scheme == "" {
			return nil, fmt.Errorf("%w: %q is not an absolute URI", errOptions, s)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	for _, s := range o.EmailAddresses {
		if a, err := mail.ParseAddress(s); err != nil || a.Address != s {
			return nil, fmt.Errorf("%w: %q is not a plain email address", errOptions, s)
		}
	}
	for _, s := range o.DNSNames {
		if s == "" || net.ParseIP(s) != nil {
			return nil, fmt.Errorf("%w: %q is not a DNS name (use --ip for addresses)", errOptions, s)
		}
	}
	if (len(rawSubject) == 0 || bytes.Equal(rawSubject, emptyName)) && len(o.DNSNames)+len(o.IPAddresses)+len(o.URIs)+len(o.EmailAddresses) == 0 {
		return nil, fmt.Errorf("%w: neither a subject nor a name: the certificate would name nobody", errOptions)
	}
	if o.OutCSR == "" {
		return nil, fmt.Errorf("%w: no file for the request", errOptions)
	}
	signer, keyPEM, release, err := keyChoice{Key: o.Key, Algorithm: o.KeyAlgorithm, OutKey: o.OutKey}.signerFor(o.Replace, o.OutCSR)
	if err != nil {
		return nil, err
	}
	defer release()
	if _, err := keyAlgorithmOf(signer.Public()); err != nil {
		return nil, err
	}
	if tmpl.SignatureAlgorithm, err = signatureAlgorithm(signer.Public()); err != nil {
		return nil, err
	}
	return writeCSR(tmpl, signer, keyPEM, o.OutKey, o.OutCSR, o.Replace)
}
