package issuance

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
)

var (
	oidExtSubjectKeyID     = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidExtKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtSubjectAltName   = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidExtBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidExtNameConstraints  = asn1.ObjectIdentifier{2, 5, 29, 30}
	oidExtExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
)

// emptySubject is the DER of a Name with no RDNs.
var emptySubject = []byte{0x30, 0x00}

// ParseCSR decodes exactly one PEM CSR and verifies its self-signature,
// under the same rules as Sign; its errors wrap ErrInvalidRequest.
// Controllers call it to look at a request (policy, audit) before signing.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	csr, err := parseCSR(data)
	if err != nil {
		return nil, invalidf("%w", err)
	}
	return csr, nil
}

// parseCSR decodes exactly one PEM CSR and verifies its self-signature.
// Errors are not classified; Sign wraps them all in ErrInvalidRequest.
func parseCSR(data []byte) (*x509.CertificateRequest, error) {
	blocks, err := DecodePEM(data)
	if err != nil {
		return nil, fmt.Errorf("the CSR is not valid PEM: %w", err)
	}
	if len(blocks) != 1 {
		return nil, fmt.Errorf("the CSR must be exactly one PEM block, found %d", len(blocks))
	}
	b := blocks[0]
	switch b.Type {
	case pemCSR, pemLegacyCSR:
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("%w: a private key (%q) was sent where a CSR belongs; never send private keys to the CA, and rotate this one", errPEMType, b.Type)
	default:
		return nil, fmt.Errorf("%w: the PEM block is %q, want %q", errPEMType, b.Type, pemCSR)
	}
	if len(b.Headers) != 0 {
		return nil, fmt.Errorf("%w in the CSR", errPEMHeader)
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the CSR does not parse: %w", err)
	}
	// Go 1.27 verifies RSA (PKCS#1 v1.5 and PSS), ECDSA, Ed25519 and ML-DSA
	// request signatures here, so no algorithm needs a path of its own; the
	// tampered-CSR tests pin that down for each.
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("the CSR's signature does not verify (damaged, or not signed by the key it contains): %w", err)
	}
	return csr, nil
}

// csrExtensions is what a CSR says about the certificate beyond its names.
type csrExtensions struct {
	keyUsage           *x509.KeyUsage
	hasExtKeyUsage     bool
	extKeyUsage        []x509.ExtKeyUsage
	unknownExtKeyUsage []asn1.ObjectIdentifier
	basicConstraints   *csrBasicConstraints
	// ignored lists non-critical extensions that are not carried into the
	// certificate, for a note.
	ignored []string
}

type csrBasicConstraints struct {
	isCA       bool
	maxPathLen *int
}

// readCSRExtensions decodes the requested extensions Quill reasons about
// and refuses those it would have to drop silently: a critical extension it
// does not understand, name constraints (dropping a restriction the
// requester asked for would make the CA more permissive than intended), and
// subject alternative names of kinds it does not issue.
func readCSRExtensions(csr *x509.CertificateRequest) (csrExtensions, error) {
	var out csrExtensions
	for _, e := range csr.Extensions {
		switch {
		case e.Id.Equal(oidExtKeyUsage):
			ku, err := parseKeyUsage(e.Value)
			if err != nil {
				return out, fmt.Errorf("the CSR's keyUsage extension: %w", err)
			}
			if out.keyUsage != nil && *out.keyUsage != ku {
				return out, errors.New("the CSR has two keyUsage extensions that disagree")
			}
			out.keyUsage = &ku
		case e.Id.Equal(oidExtExtKeyUsage):
			var oids []asn1.ObjectIdentifier
			if err := unmarshalExact(e.Value, &oids); err != nil {
				return out, fmt.Errorf("the CSR's extKeyUsage extension: %w", err)
			}
			out.hasExtKeyUsage = true
			for _, oid := range oids {
				if u, ok := extKeyUsageFromOID(oid); ok {
					out.extKeyUsage = append(out.extKeyUsage, u)
				} else {
					out.unknownExtKeyUsage = append(out.unknownExtKeyUsage, oid)
				}
			}
		case e.Id.Equal(oidExtBasicConstraints):
			var bc struct {
				IsCA       bool `asn1:"optional"`
				MaxPathLen int  `asn1:"optional,default:-1"`
			}
			if err := unmarshalExact(e.Value, &bc); err != nil {
				return out, fmt.Errorf("the CSR's basicConstraints extension: %w", err)
			}
			out.basicConstraints = &csrBasicConstraints{isCA: bc.IsCA}
			if bc.MaxPathLen >= 0 {
				out.basicConstraints.maxPathLen = &bc.MaxPathLen
			}
		case e.Id.Equal(oidExtSubjectAltName):
			if err := checkSANKinds(e.Value); err != nil {
				return out, err
			}
		case e.Id.Equal(oidExtSubjectKeyID):
			// The CA computes its own identifier; the requester's has no say.
		case e.Id.Equal(oidExtNameConstraints):
			// Quill writes a CA's name constraints from the issuer's policy
			// alone; a requester's own would need intersecting with them,
			// and dropping them would leave the CA wider than asked.
			return out, errors.New("the CSR asks for name constraints (a Certificate's spec.nameConstraints), which Quill takes only from the issuer's spec.policy.ca.nameConstraints; remove spec.nameConstraints from the Certificate and ask the issuer's owner to set them in its policy")
		case e.Critical:
			return out, fmt.Errorf("the CSR has critical extension %s, which Quill does not understand and will not drop silently", e.Id)
		default:
			out.ignored = append(out.ignored, e.Id.String())
		}
	}
	return out, nil
}

// parseKeyUsage reads a keyUsage BIT STRING; bit 0 (digitalSignature) is the
// most significant bit of the first octet, which is also x509.KeyUsage's
// lowest bit.
func parseKeyUsage(der []byte) (x509.KeyUsage, error) {
	var bits asn1.BitString
	if err := unmarshalExact(der, &bits); err != nil {
		return 0, err
	}
	var ku x509.KeyUsage
	for i := range bits.BitLength {
		if bits.At(i) == 0 {
			continue
		}
		if i >= 9 {
			return 0, fmt.Errorf("bit %d is not defined by RFC 5280", i)
		}
		ku |= 1 << i
	}
	return ku, nil
}

// sanTag names the GeneralName choices (RFC 5280, 4.2.1.6) by context tag.
var sanTag = map[int]string{
	0: "otherName", 1: "rfc822Name", 2: "dNSName", 3: "x400Address", 4: "directoryName",
	5: "ediPartyName", 6: "uniformResourceIdentifier", 7: "iPAddress", 8: "registeredID",
}

// checkSANKinds refuses subject alternative names other than DNS names,
// email addresses, URIs, IP addresses and otherNames. Go parses only the
// first four and would drop the rest without a word; a CA must not issue a
// certificate naming less than was asked without saying so. otherNames
// are read by names.OtherNamesOfRequest and signed by subjectAltName.
func checkSANKinds(der []byte) error {
	var seq asn1.RawValue
	if err := unmarshalExact(der, &seq); err != nil {
		return fmt.Errorf("the CSR's subjectAltName extension: %w", err)
	}
	if seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence {
		return errors.New("the CSR's subjectAltName extension is not a SEQUENCE")
	}
	for rest := seq.Bytes; len(rest) > 0; {
		var name asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &name); err != nil {
			return fmt.Errorf("the CSR's subjectAltName extension: %w", err)
		}
		if name.Class != asn1.ClassContextSpecific {
			return errors.New("the CSR's subjectAltName extension holds a value that is not a GeneralName")
		}
		switch name.Tag {
		case sanOtherName, sanEmail, sanDNS, sanURI, sanIP:
		default:
			kind, ok := sanTag[name.Tag]
			if !ok {
				kind = fmt.Sprintf("[%d]", name.Tag)
			}
			return fmt.Errorf("the CSR asks for a %s subject alternative name; Quill issues only DNS names, IP addresses, URIs, email addresses and otherNames", kind)
		}
	}
	return nil
}

func unmarshalExact(der []byte, v any) error {
	rest, err := asn1.Unmarshal(der, v)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return errors.New("trailing data")
	}
	return nil
}

func hasNames(csr *x509.CertificateRequest) bool {
	return !bytes.Equal(csr.RawSubject, emptySubject) ||
		len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.URIs)+len(csr.EmailAddresses) > 0
}
