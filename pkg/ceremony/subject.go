package ceremony

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

var errBadSubject = errors.New("invalid subject")

// attributeTypes are the RFC 4514 (and common OpenSSL) keywords a subject
// may use; other attributes are written as dotted OIDs.
var attributeTypes = map[string]asn1.ObjectIdentifier{
	"CN":           {2, 5, 4, 3},
	"SERIALNUMBER": {2, 5, 4, 5},
	"C":            {2, 5, 4, 6},
	"L":            {2, 5, 4, 7},
	"ST":           {2, 5, 4, 8},
	"STREET":       {2, 5, 4, 9},
	"O":            {2, 5, 4, 10},
	"OU":           {2, 5, 4, 11},
	"POSTALCODE":   {2, 5, 4, 17},
	"UID":          {0, 9, 2342, 19200300, 100, 1, 1},
	"DC":           {0, 9, 2342, 19200300, 100, 1, 25},
	"EMAILADDRESS": {1, 2, 840, 113549, 1, 9, 1},
}

// ia5Attributes are encoded as IA5String, as their definitions demand.
var ia5Attributes = []string{"DC", "EMAILADDRESS"}

// ParseSubject reads a distinguished name in the string form of RFC 4514,
// the one Go, OpenSSL's -nameopt RFC2253 and Quill's status print:
// "CN=Example Root,O=Example,C=DE". As in RFC 4514 the last RDN comes
// first, so the name is encoded O, then CN for "CN=Sub,O=Example".
// Values may escape ',', '+', '"', '\\', '<', '>', ';' and '=' with a
// backslash, or any byte as \XX; '+' joins attributes into one RDN.
//
// It returns the DER Name, ready for a certificate's or CSR's RawSubject so
// that the order written is the order encoded.
func ParseSubject(s string) ([]byte, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%w: the subject is empty; a CA needs a name, e.g. \"CN=Example Root CA,O=Example\"", errBadSubject)
	}
	var seq pkix.RDNSequence
	for _, rdnString := range splitUnescaped(s, ',') {
		var rdn pkix.RelativeDistinguishedNameSET
		for _, avaString := range splitUnescaped(rdnString, '+') {
			ava, err := parseAttribute(avaString)
			if err != nil {
				return nil, err
			}
			rdn = append(rdn, ava)
		}
		seq = append(seq, rdn)
	}
	slices.Reverse(seq)
	der, err := asn1.Marshal(seq)
	if err != nil {
		return nil, fmt.Errorf("%w: encode %q: %w", errBadSubject, s, err)
	}
	return der, nil
}

// splitUnescaped splits s at each sep not preceded by a backslash escape,
// keeping escapes in the parts.
func splitUnescaped(s string, sep byte) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++ // the escaped character never separates
		case sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func parseAttribute(s string) (pkix.AttributeTypeAndValue, error) {
	typ, value, ok := strings.Cut(s, "=")
	typ = strings.TrimSpace(typ)
	if !ok || typ == "" {
		return pkix.AttributeTypeAndValue{}, fmt.Errorf("%w: %q is not TYPE=value (write the subject as \"CN=Name,O=Organization\")", errBadSubject, strings.TrimSpace(s))
	}
	oid, keyword, err := attributeType(typ)
	if err != nil {
		return pkix.AttributeTypeAndValue{}, err
	}
	v, err := unescapeValue(value)
	if err != nil {
		return pkix.AttributeTypeAndValue{}, fmt.Errorf("%w: %s: %w", errBadSubject, typ, err)
	}
	if v == "" {
		return pkix.AttributeTypeAndValue{}, fmt.Errorf("%w: %s has an empty value", errBadSubject, typ)
	}
	ava := pkix.AttributeTypeAndValue{Type: oid, Value: v}
	switch {
	case keyword == "C":
		if len(v) != 2 || !isUpperLetters(v) {
			return ava, fmt.Errorf("%w: C=%s: a country is two upper-case letters (ISO 3166), e.g. C=DE", errBadSubject, v)
		}
	case slices.Contains(ia5Attributes, keyword):
		for i := 0; i < len(v); i++ {
			if v[i] >= utf8.RuneSelf {
				return ava, fmt.Errorf("%w: %s=%s must be ASCII", errBadSubject, typ, v)
			}
		}
		ava.Value = asn1.RawValue{Tag: asn1.TagIA5String, Bytes: []byte(v)}
	}
	return ava, nil
}

func attributeType(typ string) (asn1.ObjectIdentifier, string, error) {
	keyword := strings.ToUpper(typ)
	if oid, ok := attributeTypes[keyword]; ok {
		return oid, keyword, nil
	}
	var oid asn1.ObjectIdentifier
	for _, arc := range strings.Split(typ, ".") {
		n, err := strconv.Atoi(arc)
		if err != nil || n < 0 {
			return nil, "", fmt.Errorf("%w: unknown attribute type %q; use CN, O, OU, C, ST, L, STREET, POSTALCODE, SERIALNUMBER, DC, UID, emailAddress or a dotted OID", errBadSubject, typ)
		}
		oid = append(oid, n)
	}
	if len(oid) < 2 {
		return nil, "", fmt.Errorf("%w: attribute type %q is not an OID", errBadSubject, typ)
	}
	for kw, known := range attributeTypes {
		if oid.Equal(known) {
			return oid, kw, nil
		}
	}
	return oid, "", nil
}

// unescapeValue undoes RFC 4514 escaping and trims the unescaped spaces
// around the value.
func unescapeValue(s string) (string, error) {
	s = strings.TrimLeft(s, " ")
	if strings.HasPrefix(s, "#") {
		return "", errors.New("hex-encoded BER values (#...) are not supported; write the value as text")
	}
	var b strings.Builder
	lastEscaped := -1 // end of the last escaped byte in b, which trimming must keep
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return "", errors.New("the value ends with a lone backslash")
		}
		if i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			x, _ := hex.DecodeString(s[i+1 : i+3])
			b.Write(x)
			i += 2
		} else {
			switch s[i+1] {
			case ',', '+', '"', '\\', '<', '>', ';', '=', ' ', '#':
				b.WriteByte(s[i+1])
				i++
			default:
				return "", fmt.Errorf("unknown escape \\%c", s[i+1])
			}
		}
		lastEscaped = b.Len()
	}
	v := b.String()
	trimmed := strings.TrimRight(v, " ")
	if len(trimmed) < lastEscaped {
		trimmed = v[:lastEscaped]
	}
	if !utf8.ValidString(trimmed) {
		return "", errors.New("the value is not valid UTF-8")
	}
	return trimmed, nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isUpperLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// subjectString renders a DER Name the way Go and Quill's status do.
func subjectString(raw []byte) string {
	var seq pkix.RDNSequence
	if _, err := asn1.Unmarshal(raw, &seq); err != nil {
		return "(unreadable name)"
	}
	var n pkix.Name
	n.FillFromRDNSequence(&seq)
	return n.String()
}
