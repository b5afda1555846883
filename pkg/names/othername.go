package names

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// OIDUPN is the Microsoft user principal name otherName type, which
// Windows smart-card logon and Active Directory certificate mapping read.
var OIDUPN = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}

var oidExtSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

const (
	// maxOtherNameValue bounds an otherName value, in octets. UPNs, the
	// one kind in common use, stay far below it; the bound keeps a value
	// printable in one log field and one report cell.
	maxOtherNameValue = 256
	// maxOIDArcs and maxOIDArc bound a type-id: deeper or larger arcs are
	// no registered otherName type, and the API's pattern allows no more.
	maxOIDArcs = 32
	maxOIDArc  = 999_999_999
	// otherNameTag is the GeneralName choice of otherName (RFC 5280, 4.2.1.6).
	otherNameTag = 0
)

// OtherName is one otherName subject alternative name (RFC 5280, 4.2.1.6)
// whose value is a UTF8String: the only kind Quill signs, and the kind
// cert-manager's spec.otherNames (oid, utf8Value) asks for.
type OtherName struct {
	// TypeID is the otherName's type-id, such as OIDUPN.
	TypeID asn1.ObjectIdentifier
	// Value is the UTF8String value, as decoded.
	Value string
}

// String renders o as "<type-id>:<value>" (the value holds no space or
// control character once OtherNameSAN accepted it).
func (o OtherName) String() string { return o.TypeID.String() + ":" + o.Value }

// ParseOID reads a dotted object identifier ("1.3.6.1.4.1.311.20.2.3") as
// an otherName type-id: at least two arcs, the first 0 to 2, the second
// below 40 under 0 and 1 (X.660), no leading zeros, each arc at most
// 999999999, at most 32 arcs.
func ParseOID(s string) (asn1.ObjectIdentifier, error) {
	if r := oidTextReason(s); r != "" {
		return nil, invalid(KindOtherName+" type-id", s, "%s", r)
	}
	parts := strings.Split(s, ".")
	oid := make(asn1.ObjectIdentifier, len(parts))
	for i, p := range parts {
		oid[i], _ = strconv.Atoi(p) // oidTextReason checked every arc
	}
	return oid, nil
}

func oidTextReason(s string) string {
	parts := strings.Split(s, ".")
	switch {
	case s == "":
		return "it is empty"
	case len(parts) < 2:
		return "an object identifier has at least two arcs"
	case len(parts) > maxOIDArcs:
		return fmt.Sprintf("it has %d arcs, more than %d", len(parts), maxOIDArcs)
	}
	for i, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return fmt.Sprintf("arc %d (%q) is not a decimal number", i+1, p)
		}
		if len(p) > 1 && p[0] == '0' {
			return fmt.Sprintf("arc %d (%q) has a leading zero", i+1, p)
		}
		if len(p) > 9 {
			return fmt.Sprintf("arc %d (%q) is larger than %d", i+1, p, maxOIDArc)
		}
	}
	first, _ := strconv.Atoi(parts[0])
	second, _ := strconv.Atoi(parts[1])
	return oidArcsReason(first, second)
}

func oidArcsReason(first, second int) string {
	switch {
	case first > 2:
		return fmt.Sprintf("its first arc is %d; it must be 0, 1 or 2", first)
	case first < 2 && second >= 40:
		return fmt.Sprintf("its second arc is %d; under %d it must be below 40", second, first)
	}
	return ""
}

// OtherNameSAN checks an otherName subject alternative name (see the
// package doc): a valid type-id and a value that is valid UTF-8, 1 to 256
// octets, without control, format or space characters; a UPN must also
// read as user@domain with a valid DNS name as domain.
func OtherNameSAN(o OtherName) error {
	if r := oidReason(o.TypeID); r != "" {
		return invalid(KindOtherName, o.String(), "its type-id: %s", r)
	}
	if r := otherValueReason(o.Value); r != "" {
		return invalid(KindOtherName, o.String(), "%s", r)
	}
	if o.TypeID.Equal(OIDUPN) {
		if r := upnReason(o.Value); r != "" {
			return invalid(KindOtherName, o.String(), "as a user principal name: %s", r)
		}
	}
	return nil
}

func oidReason(oid asn1.ObjectIdentifier) string {
	switch {
	case len(oid) < 2:
		return "an object identifier has at least two arcs"
	case len(oid) > maxOIDArcs:
		return fmt.Sprintf("it has %d arcs, more than %d", len(oid), maxOIDArcs)
	}
	for i, a := range oid {
		if a < 0 || a > maxOIDArc {
			return fmt.Sprintf("arc %d (%d) is outside 0 to %d", i+1, a, maxOIDArc)
		}
	}
	return oidArcsReason(oid[0], oid[1])
}

// otherValueReason refuses what would let one value read as two: control
// and invisible format characters (a NUL ends a C string, a line break
// forges a log line), and spaces, which the audit report uses to separate
// names.
func otherValueReason(s string) string {
	switch {
	case s == "":
		return "its value is empty"
	case len(s) > maxOtherNameValue:
		return fmt.Sprintf("its value is %d octets long, more than %d", len(s), maxOtherNameValue)
	case !utf8.ValidString(s):
		return "its value is not valid UTF-8"
	}
	for _, r := range s {
		switch {
		case r == 0:
			return "its value contains a NUL character"
		case unicode.IsControl(r):
			return fmt.Sprintf("its value contains the control character %U", r)
		case unicode.Is(unicode.Cf, r):
			return fmt.Sprintf("its value contains the invisible format character %U", r)
		case unicode.IsSpace(r):
			return "its value contains a space"
		}
	}
	return ""
}

// upnReason checks a user principal name: one "@", a user part without
// the characters Active Directory refuses in one, and a DNS name as
// domain (A-labels for internationalized domains, as for dNSNames).
func upnReason(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "it has no \"@\"; write user@domain"
	}
	user, domain := s[:at], s[at+1:]
	switch {
	case user == "":
		return "its user part is empty"
	case strings.ContainsRune(user, '@'):
		return "it has more than one \"@\""
	case user[0] == '.' || user[len(user)-1] == '.':
		return "its user part starts or ends with a dot"
	}
	if i := strings.IndexAny(user, `"/\[]:;|=,+*?<>`); i >= 0 {
		return fmt.Sprintf("its user part holds %q, which Active Directory refuses in a user name", user[i:i+1])
	}
	if r := dnsReason(domain, false); r != "" {
		return fmt.Sprintf("its domain %q is not a host name: %s", domain, r)
	}
	return ""
}

// OtherNamesOfRequest reads the otherNames of a CSR's requested
// subjectAltName extension, in order; crypto/x509 drops them. Errors are
// *Error: a malformed extension, two of them, or an otherName whose value
// is not a UTF8String.
func OtherNamesOfRequest(csr *x509.CertificateRequest) ([]OtherName, error) {
	return otherNamesOf(csr.Extensions)
}

// OtherNamesOfCertificate is OtherNamesOfRequest for a signed certificate.
func OtherNamesOfCertificate(cert *x509.Certificate) ([]OtherName, error) {
	return otherNamesOf(cert.Extensions)
}

func otherNamesOf(exts []pkix.Extension) ([]OtherName, error) {
	var out []OtherName
	seen := false
	for _, e := range exts {
		if !e.Id.Equal(oidExtSubjectAltName) {
			continue
		}
		if seen {
			return nil, invalid(KindOtherName, "", "there are two subjectAltName extensions")
		}
		seen = true
		names, err := ParseOtherNames(e.Value)
		if err != nil {
			return nil, err
		}
		out = names
	}
	return out, nil
}

// ParseOtherNames reads the otherName entries of a DER subjectAltName
// extension value, in order, skipping the other GeneralName kinds. It
// accepts only an otherName whose value is exactly one UTF8String in its
// [0] EXPLICIT wrapper; anything else is an *Error.
func ParseOtherNames(der []byte) ([]OtherName, error) {
	var seq cryptobyte.String
	in := cryptobyte.String(der)
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, invalid(KindOtherName, fmt.Sprintf("#%x", der), "the subjectAltName extension is not one DER SEQUENCE")
	}
	var out []OtherName
	for !seq.Empty() {
		var gn cryptobyte.String
		var tag cbasn1.Tag
		if !seq.ReadAnyASN1(&gn, &tag) {
			return nil, invalid(KindOtherName, fmt.Sprintf("#%x", der), "the subjectAltName extension holds a malformed GeneralName")
		}
		if tag != cbasn1.Tag(otherNameTag).Constructed().ContextSpecific() {
			continue
		}
		o, err := parseOtherName(gn)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// parseOtherName reads the body of an otherName: type-id, then
// [0] EXPLICIT UTF8String.
func parseOtherName(body cryptobyte.String) (OtherName, error) {
	raw := fmt.Sprintf("#%x", []byte(body))
	var o OtherName
	var wrapped, value cryptobyte.String
	if !body.ReadASN1ObjectIdentifier(&o.TypeID) {
		return o, invalid(KindOtherName, raw, "its type-id is not a valid object identifier")
	}
	if !body.ReadASN1(&wrapped, cbasn1.Tag(0).Constructed().ContextSpecific()) || !body.Empty() {
		return o, invalid(KindOtherName, raw, "it is not a type-id followed by one [0] EXPLICIT value")
	}
	var tag cbasn1.Tag
	if !wrapped.ReadAnyASN1(&value, &tag) || !wrapped.Empty() {
		return o, invalid(KindOtherName, raw, "its value is not one DER value")
	}
	if tag != cbasn1.UTF8String {
		return o, invalid(KindOtherName, o.TypeID.String()+":"+raw, "its value has ASN.1 tag %d; Quill signs only UTF8String otherName values", int(tag))
	}
	o.Value = string(value)
	return o, nil
}
