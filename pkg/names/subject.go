package names

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Attribute types Quill names. Those RFC 4514 (section 3) lists are
// rendered by its short names; the others by their LDAP descriptors.
var (
	OIDCommonName   = asn1.ObjectIdentifier{2, 5, 4, 3}
	OIDEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
)

var attributeTypes = []struct {
	oid  asn1.ObjectIdentifier
	name string
}{
	{OIDCommonName, "CN"},
	{asn1.ObjectIdentifier{2, 5, 4, 4}, "SN"},
	{asn1.ObjectIdentifier{2, 5, 4, 5}, "serialNumber"},
	{asn1.ObjectIdentifier{2, 5, 4, 6}, "C"},
	{asn1.ObjectIdentifier{2, 5, 4, 7}, "L"},
	{asn1.ObjectIdentifier{2, 5, 4, 8}, "ST"},
	{asn1.ObjectIdentifier{2, 5, 4, 9}, "STREET"},
	{asn1.ObjectIdentifier{2, 5, 4, 10}, "O"},
	{asn1.ObjectIdentifier{2, 5, 4, 11}, "OU"},
	{asn1.ObjectIdentifier{2, 5, 4, 12}, "title"},
	{asn1.ObjectIdentifier{2, 5, 4, 17}, "postalCode"},
	{asn1.ObjectIdentifier{2, 5, 4, 42}, "GN"},
	{asn1.ObjectIdentifier{2, 5, 4, 43}, "initials"},
	{asn1.ObjectIdentifier{2, 5, 4, 44}, "generationQualifier"},
	{asn1.ObjectIdentifier{2, 5, 4, 46}, "dnQualifier"},
	{asn1.ObjectIdentifier{2, 5, 4, 65}, "pseudonym"},
	{asn1.ObjectIdentifier{2, 5, 4, 97}, "organizationIdentifier"},
	{asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}, "UID"},
	{asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}, "DC"},
	{OIDEmailAddress, "emailAddress"},
}

// AttributeName is the name Quill renders an attribute type by: its short
// name or LDAP descriptor, else its dotted OID.
func AttributeName(oid asn1.ObjectIdentifier) string {
	for _, a := range attributeTypes {
		if a.oid.Equal(oid) {
			return a.name
		}
	}
	return oid.String()
}

// ParseAttributeType reads an attribute type as a user writes it: a name
// AttributeName renders (any case; also "surname" and "givenName") or a
// dotted OID such as 1.3.6.1.4.1.99999.1.
func ParseAttributeType(s string) (asn1.ObjectIdentifier, error) {
	switch strings.ToLower(s) {
	case "surname":
		s = "SN"
	case "givenname":
		s = "GN"
	}
	for _, a := range attributeTypes {
		if strings.EqualFold(a.name, s) {
			return a.oid, nil
		}
	}
	var oid asn1.ObjectIdentifier
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return nil, fmt.Errorf("%q is neither a known attribute name nor a dotted OID", s)
	}
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || len(p) > 9 || len(p) > 1 && p[0] == '0' || strings.Trim(p, "0123456789") != "" {
			return nil, fmt.Errorf("%q is neither a known attribute name nor a dotted OID", s)
		}
		oid = append(oid, n)
	}
	if oid[0] > 2 || oid[0] < 2 && oid[1] > 39 {
		return nil, fmt.Errorf("%q is not a valid OID", s)
	}
	return oid, nil
}

// Attribute is one attribute of a subject, as encoded.
type Attribute struct {
	Type asn1.ObjectIdentifier
	// Value is what crypto/x509 decoded: a string for the ASN.1 string
	// types, else an int64, []byte, asn1.BitString, OID or time.
	Value any
	// Tag is the value's ASN.1 tag, Raw its DER encoding.
	Tag int
	Raw []byte
}

// String returns the value, "" when it is not a string.
func (a Attribute) String() string {
	s, _ := a.Value.(string)
	return s
}

// RDN is a relative distinguished name: one attribute, or several when
// multi-valued ("CN=a+O=b").
type RDN []Attribute

// Subject is a distinguished name exactly as encoded, RDNs in encoding
// order (most significant first).
type Subject []RDN

// ParseSubject reads the DER raw (a CSR's or certificate's RawSubject)
// into RDNs, taking each value as crypto/x509 decoded it into decoded.Names,
// so that what policy judges is what Go, and the certificate, carry. It
// refuses (ErrMalformedSubject) a subject with an empty RDN, trailing
// bytes, or an attribute the two readings disagree on.
func ParseSubject(raw []byte, decoded pkix.Name) (Subject, error) {
	in := cryptobyte.String(raw)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, fmt.Errorf("%w: not one DER SEQUENCE", ErrMalformedSubject)
	}
	var out Subject
	k := 0
	for !seq.Empty() {
		var set cryptobyte.String
		if !seq.ReadASN1(&set, cbasn1.SET) {
			return nil, fmt.Errorf("%w: RDN %d is not a SET", ErrMalformedSubject, len(out)+1)
		}
		if set.Empty() {
			return nil, fmt.Errorf("%w: RDN %d is empty", ErrMalformedSubject, len(out)+1)
		}
		var rdn RDN
		for !set.Empty() {
			var atv, value cryptobyte.String
			var oid asn1.ObjectIdentifier
			var tag cbasn1.Tag
			if !set.ReadASN1(&atv, cbasn1.SEQUENCE) || !atv.ReadASN1ObjectIdentifier(&oid) ||
				!atv.ReadAnyASN1Element(&value, &tag) || !atv.Empty() {
				return nil, fmt.Errorf("%w: RDN %d holds a malformed attribute", ErrMalformedSubject, len(out)+1)
			}
			if k >= len(decoded.Names) || !decoded.Names[k].Type.Equal(oid) {
				return nil, fmt.Errorf("%w: attribute %d (%s) was not decoded alike", ErrMalformedSubject, k+1, AttributeName(oid))
			}
			rdn = append(rdn, Attribute{Type: oid, Value: decoded.Names[k].Value, Tag: int(tag), Raw: value})
			k++
		}
		out = append(out, rdn)
	}
	if k != len(decoded.Names) {
		return nil, fmt.Errorf("%w: %d attributes encoded, %d decoded", ErrMalformedSubject, k, len(decoded.Names))
	}
	return out, nil
}

// SubjectOfRequest is ParseSubject for a parsed CSR.
func SubjectOfRequest(csr *x509.CertificateRequest) (Subject, error) {
	return ParseSubject(csr.RawSubject, csr.Subject)
}

// SubjectOfCertificate is ParseSubject for a parsed certificate.
func SubjectOfCertificate(cert *x509.Certificate) (Subject, error) {
	return ParseSubject(cert.RawSubject, cert.Subject)
}

// DescribeSubject renders a subject exactly as encoded, for the ledger and
// audit lines: Subject.String when it parses, else "#" and the hex of the
// DER, so that nothing is ever hidden or dropped.
func DescribeSubject(raw []byte, decoded pkix.Name) string {
	s, err := ParseSubject(raw, decoded)
	if err != nil {
		return "#" + hex.EncodeToString(raw)
	}
	return s.String()
}

// Attributes lists every attribute in encoding order.
func (s Subject) Attributes() []Attribute {
	var out []Attribute
	for _, rdn := range s {
		out = append(out, rdn...)
	}
	return out
}

// Values lists the string values of every attribute of type oid, in
// encoding order.
func (s Subject) Values(oid asn1.ObjectIdentifier) []string {
	var out []string
	for _, a := range s.Attributes() {
		if a.Type.Equal(oid) {
			out = append(out, a.String())
		}
	}
	return out
}

// String renders the subject as RFC 4514 does: RDNs from last to first,
// separated by ","; the attributes of a multi-valued RDN joined by "+" in
// encoding order; every attribute shown, repeated ones included. A value
// that is not a string, or whose type has no name (a dotted OID), is "#"
// and the hex of its DER, as RFC 4514 section 2.4 asks. Beyond what RFC 4514
// requires, control, format and non-printable characters are escaped as
// \XX per UTF-8 octet, so a rendering is one safe line of a log.
func (s Subject) String() string {
	var b strings.Builder
	for i := len(s) - 1; i >= 0; i-- {
		if i != len(s)-1 {
			b.WriteByte(',')
		}
		for j, a := range s[i] {
			if j > 0 {
				b.WriteByte('+')
			}
			name := AttributeName(a.Type)
			b.WriteString(name)
			b.WriteByte('=')
			if v, ok := a.Value.(string); ok && isStringTag(a.Tag) && name != a.Type.String() {
				escapeValue(&b, v)
			} else {
				b.WriteByte('#')
				b.WriteString(hex.EncodeToString(a.Raw))
			}
		}
	}
	return b.String()
}

func isStringTag(tag int) bool {
	switch cbasn1.Tag(tag) {
	case cbasn1.T61String, cbasn1.PrintableString, cbasn1.UTF8String, cbasn1.IA5String,
		cbasn1.Tag(asn1.TagBMPString), cbasn1.Tag(asn1.TagNumericString):
		return true
	}
	return false
}

// escapeValue is RFC 4514, 2.4, plus hex escapes for anything a terminal
// or a log reader could misread.
func escapeValue(b *strings.Builder, v string) {
	for i := 0; i < len(v); {
		r, size := utf8.DecodeRuneInString(v[i:])
		switch {
		case r == utf8.RuneError && size <= 1,
			r < 0x20, r == 0x7f, !unicode.IsPrint(r) && r != ' ', unicode.Is(unicode.Cf, r):
			for _, c := range []byte(v[i : i+max(size, 1)]) {
				fmt.Fprintf(b, "\\%02X", c)
			}
		case strings.ContainsRune(`"+,;<>\=`, r),
			r == '#' && i == 0,
			r == ' ' && (i == 0 || i+size == len(v)):
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
		i += max(size, 1)
	}
}
