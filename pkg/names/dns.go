package names

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode"

	"golang.org/x/net/idna"
)

const (
	maxDNSName  = 253
	maxDNSLabel = 63
	// aLabelPrefix marks an IDNA A-label (RFC 5890, 2.3.2.1).
	aLabelPrefix = "xn--"
)

// DNSName checks a DNS name as a certificate's dNSName: a host name with at
// most one leading wildcard label (see the package doc for the rules).
func DNSName(s string) error {
	if r := dnsReason(s, true); r != "" {
		return invalid(KindDNSName, s, "%s", r)
	}
	return nil
}

// HostName checks a name a verifier may compare with the host it connects
// to: an IP address (IPString) or a DNS name (DNSName, wildcard allowed).
func HostName(s string) error {
	if _, err := netip.ParseAddr(s); err == nil {
		return IPString(s)
	}
	return DNSName(s)
}

// dnsReason says what is wrong with s as a DNS name, "" when nothing.
// wildcard allows a leading "*" label.
func dnsReason(s string, wildcard bool) string {
	switch {
	case s == "":
		return "it is empty"
	case len(s) > maxDNSName:
		return fmt.Sprintf("it is %d octets long, more than the %d a DNS name may have", len(s), maxDNSName)
	case strings.HasSuffix(s, "."):
		return "it ends with a dot; send the name without the trailing dot"
	}
	if r := asciiReason(s); r != "" {
		return r
	}
	labels := strings.Split(s, ".")
	if labels[0] == "*" {
		if !wildcard {
			return "a wildcard is not allowed here"
		}
		if len(labels) < 3 {
			return "a wildcard needs at least two labels after it (\"*.example.com\", never \"*.com\")"
		}
		labels = labels[1:]
	}
	for _, l := range labels {
		if r := labelReason(l); r != "" {
			return r
		}
	}
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
		return fmt.Sprintf("its last label %q is all digits, so it could be read as an IP address", last)
	}
	return ""
}

// asciiReason refuses what can never be part of a host name and would let
// a name mean one thing to policy and another to a verifier: control
// bytes (a NUL ends a C string), spaces, and non-ASCII bytes.
func asciiReason(s string) string {
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b == 0:
			return "it contains a NUL byte"
		case b < 0x20 || b == 0x7f:
			return fmt.Sprintf("it contains the control byte %#02x", b)
		case b == ' ':
			return "it contains a space"
		case b >= 0x80:
			return "it contains non-ASCII characters; send internationalized names as IDNA A-labels (xn--…)"
		}
	}
	return ""
}

// labelReason checks one LDH label (RFC 1123, 2.1; RFC 5890 for A-labels).
func labelReason(l string) string {
	switch {
	case l == "":
		return "it has an empty label (two dots in a row, or a leading dot)"
	case len(l) > maxDNSLabel:
		return fmt.Sprintf("label %q is %d octets long, more than %d", l, len(l), maxDNSLabel)
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Sprintf("label %q starts or ends with a hyphen", l)
	}
	for i := 0; i < len(l); i++ {
		switch c := l[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
		case c == '*':
			return fmt.Sprintf("label %q holds \"*\"; a wildcard may only be the whole first label", l)
		case c == '_':
			return fmt.Sprintf("label %q holds an underscore, which host names may not", l)
		default:
			return fmt.Sprintf("label %q holds %q; host name labels hold only letters, digits and hyphens", l, string(c))
		}
	}
	if len(l) >= len(aLabelPrefix) && strings.EqualFold(l[:len(aLabelPrefix)], aLabelPrefix) {
		return aLabelReason(l)
	}
	return ""
}

// aLabelReason checks that an "xn--" label is a real A-label: Punycode that
// decodes to a valid U-label and encodes back to itself. Anything else is a
// name no IDNA-aware client would ever ask for, or one two clients would
// display differently.
func aLabelReason(l string) string {
	lower := strings.ToLower(l)
	u, err := idna.Registration.ToUnicode(lower)
	if err != nil {
		return fmt.Sprintf("label %q is not a valid IDNA A-label: %v", l, err)
	}
	back, err := idna.Registration.ToASCII(u)
	if err != nil || back != lower {
		return fmt.Sprintf("label %q is not the canonical A-label of %q", l, u)
	}
	for _, r := range u {
		if !idnaRune(r) {
			return fmt.Sprintf("label %q decodes to %q, which holds %U; internationalized labels hold only letters, marks and digits", l, u, r)
		}
	}
	return ""
}

// idnaRune approximates IDNA2008's PVALID and CONTEXT sets (RFC 5892):
// letters, marks, digits and hyphen, plus the contextual characters
// idna's CheckJoiners and its tables already place. UTS #46, which
// x/net/idna implements, still accepts symbols such as emoji; IDNA2008
// does not, and neither does Quill.
func idnaRune(r rune) bool {
	switch {
	case unicode.In(r, unicode.L, unicode.M, unicode.Nd), r == '-':
		return true
	}
	switch r {
	case 0x200C, 0x200D, // ZERO WIDTH NON-JOINER, JOINER (CONTEXTJ)
		0x00B7, 0x0375, 0x05F3, 0x05F4, 0x30FB: // CONTEXTO punctuation
		return true
	}
	return false
}
