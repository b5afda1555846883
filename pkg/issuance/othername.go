package issuance

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net"
	"net/url"
	"slices"

	"github.com/quill-pki/quill/pkg/names"
)

// GeneralName context tags (RFC 5280, 4.2.1.6) of the kinds Quill signs.
const (
	sanOtherName = 0
	sanEmail     = 1
	sanDNS       = 2
	sanURI       = 6
	sanIP        = 7
)

// subjectAltName builds the subjectAltName extension of a certificate that
// carries otherNames, which crypto/x509 cannot encode: Quill then writes
// the whole extension itself, from the names as parsed (never the CSR's
// bytes), in a fixed order: DNS names, email addresses, IP addresses and
// URIs in crypto/x509's own order, so that they read exactly as in a
// certificate without otherNames, then the otherNames in the CSR's order.
// It is critical when the subject is empty (RFC 5280, 4.2.1.6).
func subjectAltName(dns, emails []string, ips []net.IP, uris []*url.URL, others []names.OtherName, emptySubject bool) (pkix.Extension, error) {
	var gns []asn1.RawValue
	add := func(tag int, b []byte) {
		gns = append(gns, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, Bytes: b})
	}
	for _, d := range dns {
		add(sanDNS, []byte(d))
	}
	for _, e := range emails {
		add(sanEmail, []byte(e))
	}
	for _, ip := range ips {
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		add(sanIP, ip)
	}
	for _, u := range uris {
		add(sanURI, []byte(u.String()))
	}
	for _, o := range others {
		body, err := otherNameBody(o)
		if err != nil {
			return pkix.Extension{}, err
		}
		gns = append(gns, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: sanOtherName, IsCompound: true, Bytes: body})
	}
	der, err := asn1.Marshal(gns)
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("encode subjectAltName: %w", err)
	}
	return pkix.Extension{Id: oidExtSubjectAltName, Critical: emptySubject, Value: der}, nil
}

// otherNameBody is the content of an otherName GeneralName: the type-id and
// the value as a UTF8String in its [0] EXPLICIT wrapper.
func otherNameBody(o names.OtherName) ([]byte, error) {
	oid, err := asn1.Marshal(o.TypeID)
	if err != nil {
		return nil, fmt.Errorf("encode otherName type-id %s: %w", o.TypeID, err)
	}
	value, err := asn1.MarshalWithParams(o.Value, "utf8")
	if err != nil {
		return nil, fmt.Errorf("encode otherName value: %w", err)
	}
	wrapped, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: value})
	if err != nil {
		return nil, fmt.Errorf("encode otherName value: %w", err)
	}
	return append(oid, wrapped...), nil
}

// requestOtherNames reads the CSR's otherNames and holds them to what the
// caller allowed: each must be in allowed (issuance policy's decision, as
// the controller passes it in Request.OtherNames) and syntactically valid.
// A caller that never consulted policy passes none, so an otherName can
// only be signed on purpose.
func requestOtherNames(csr *x509.CertificateRequest, allowed []names.OtherName) ([]names.OtherName, error) {
	others, err := names.OtherNamesOfRequest(csr)
	if err != nil {
		return nil, invalidf("%w", err)
	}
	for _, o := range others {
		if err := names.OtherNameSAN(o); err != nil {
			return nil, invalidf("%w", err)
		}
		if !slices.ContainsFunc(allowed, func(a names.OtherName) bool { return a.TypeID.Equal(o.TypeID) && a.Value == o.Value }) {
			return nil, invalidf("the CSR asks for otherName %s, which issuance policy did not allow (spec.policy.allowedOtherNames)", o)
		}
	}
	return others, nil
}

// sameOtherNames reports whether a signed certificate reads back with
// exactly the otherNames that were meant to be signed.
func sameOtherNames(cert *x509.Certificate, want []names.OtherName) error {
	got, err := names.OtherNamesOfCertificate(cert)
	if err != nil {
		return fmt.Errorf("self-check: the signed certificate's otherNames do not read back: %w", err)
	}
	if !slices.EqualFunc(got, want, func(a, b names.OtherName) bool { return a.TypeID.Equal(b.TypeID) && a.Value == b.Value }) {
		return fmt.Errorf("self-check: the signed certificate reads back otherNames %v, not %v, so it was discarded", got, want)
	}
	return nil
}
