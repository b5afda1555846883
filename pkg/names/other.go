package names

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	maxEmailLocal = 64  // RFC 5321, 4.5.3.1.1
	maxEmail      = 254 // RFC 5321 path limit less its angle brackets
	maxCommonName = 64  // RFC 5280 ub-common-name
)

// IP checks an IP address SAN: 4 octets (IPv4) or 16 (IPv6), as RFC 5280
// encodes them. net.IP has no zone, so none can be carried.
func IP(ip net.IP) error {
	if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
		return invalid(KindIPAddress, fmt.Sprintf("%x", []byte(ip)), "it is %d octets long; an IP address is 4 or 16", len(ip))
	}
	return nil
}

// IPString checks an IP address written as text (a common name, a URI
// host): it must parse, and carry no zone ("fe80::1%eth0"), which a
// certificate cannot encode.
func IPString(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return invalid(KindIPAddress, s, "it does not parse: %v", err)
	}
	if a.Zone() != "" {
		return invalid(KindIPAddress, s, "it carries the zone %q, which a certificate cannot", a.Zone())
	}
	return nil
}

// URI checks a URI SAN (see the package doc). spiffe URIs must also be
// SPIFFE IDs.
func URI(s string) error {
	if r := uriReason(s); r != "" {
		return invalid(KindURI, s, "%s", r)
	}
	return nil
}

func uriReason(s string) string {
	if s == "" {
		return "it is empty"
	}
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b == 0:
			return "it contains a NUL byte"
		case b < 0x20 || b == 0x7f:
			return fmt.Sprintf("it contains the control byte %#02x", b)
		case b == ' ':
			return "it contains a space; percent-encode it"
		case b >= 0x80:
			return "it contains non-ASCII characters; percent-encode them"
		case b == '\\':
			return "it contains a backslash, which parsers read differently"
		case b == '%' && i+2 < len(s) && controlEscape(s[i+1:i+3]):
			return fmt.Sprintf("it percent-encodes the control byte %%%s", s[i+1:i+3])
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Sprintf("it does not parse: %v", err)
	}
	switch {
	case u.Scheme == "":
		return "it is not absolute: it has no scheme"
	case u.String() != s:
		// What a verifier reads must be what policy matched and what is
		// signed; net/url normalizing the text means two readings exist.
		return fmt.Sprintf("net/url reads it back as %q", u.String())
	case u.User != nil:
		return "it carries user information (user@host), which makes the host ambiguous to readers"
	}
	if u.Host != "" {
		host := u.Hostname()
		if host == "" {
			return "its authority has no host"
		}
		if strings.HasPrefix(u.Host, "[") {
			if err := IPString(host); err != nil {
				return fmt.Sprintf("its host %q is not an IP address", host)
			}
		} else if _, err := netip.ParseAddr(host); err != nil {
			if r := dnsReason(host, false); r != "" {
				return fmt.Sprintf("its host %q is not a host name: %s", host, r)
			}
		}
	}
	if strings.EqualFold(u.Scheme, "spiffe") {
		return spiffeReason(u)
	}
	return ""
}

// controlEscape reports whether hex names a control byte (%00-%1F, %7F):
// a reader that decodes the path would find a NUL or a line break in it.
func controlEscape(hex string) bool {
	h := strings.ToUpper(hex)
	return (h[0] == '0' || h[0] == '1') && strings.ContainsRune("0123456789ABCDEF", rune(h[1])) || h == "7F"
}

// spiffeReason applies the SPIFFE ID rules (SPIFFE-ID specification,
// section 2): a lowercase trust domain, no port, user, query or fragment,
// and a path of non-empty segments other than "." and "..".
func spiffeReason(u *url.URL) string {
	switch {
	case u.Scheme != "spiffe":
		return "the spiffe scheme must be lowercase"
	case u.Host == "":
		return "a SPIFFE ID needs a trust domain"
	case u.Port() != "" || strings.Contains(u.Host, ":"):
		return "a SPIFFE ID's trust domain has no port"
	case u.RawQuery != "" || u.ForceQuery:
		return "a SPIFFE ID has no query"
	case u.Fragment != "":
		return "a SPIFFE ID has no fragment"
	case u.RawPath != "":
		return "a SPIFFE ID's path has no percent-encoding"
	}
	for _, c := range u.Host {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Sprintf("its trust domain holds %q; SPIFFE trust domains hold only lowercase letters, digits, dots, hyphens and underscores", string(c))
		}
	}
	if u.Path == "" {
		return ""
	}
	for _, seg := range strings.Split(strings.TrimPrefix(u.Path, "/"), "/") {
		switch seg {
		case "":
			return "its path has an empty segment (a doubled or trailing slash)"
		case ".", "..":
			return fmt.Sprintf("its path has the segment %q", seg)
		}
		for _, c := range seg {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
				return fmt.Sprintf("its path segment %q holds %q; SPIFFE path segments hold only letters, digits, dots, hyphens and underscores", seg, string(c))
			}
		}
	}
	return ""
}

// Email checks an email address SAN or subject emailAddress (see the
// package doc).
func Email(s string) error {
	if r := emailReason(s); r != "" {
		return invalid(KindEmail, s, "%s", r)
	}
	return nil
}

func emailReason(s string) string {
	if s == "" {
		return "it is empty"
	}
	if r := asciiReason(s); r != "" {
		if strings.HasSuffix(r, "(xn--…)") {
			return "it contains non-ASCII characters; internationalized addresses (SmtpUTF8Mailbox) are not supported"
		}
		return r
	}
	if len(s) > maxEmail {
		return fmt.Sprintf("it is %d octets long, more than %d", len(s), maxEmail)
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "it has no \"@\"; write local@domain"
	}
	local, domain := s[:at], s[at+1:]
	switch {
	case local == "":
		return "its local part is empty"
	case len(local) > maxEmailLocal:
		return fmt.Sprintf("its local part is %d octets long, more than %d", len(local), maxEmailLocal)
	case local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, ".."):
		return "its local part has a leading, trailing or doubled dot"
	}
	for i := 0; i < len(local); i++ {
		if c := local[i]; !atext(c) && c != '.' {
			return fmt.Sprintf("its local part holds %q; only unquoted RFC 5322 dot-atoms are accepted (no quotes, display names or comments)", string(c))
		}
	}
	if r := dnsReason(domain, false); r != "" {
		return fmt.Sprintf("its domain %q is not a host name: %s", domain, r)
	}
	return ""
}

// atext is RFC 5322, 3.2.3.
func atext(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// CommonName checks a subject common name (see the package doc): it is
// text a person reads, or a host name a legacy verifier compares, and
// must be unambiguous as either.
func CommonName(s string) error {
	if r := valueReason(s); r != "" {
		return invalid(KindCommonName, s, "%s", r)
	}
	if n := utf8.RuneCountInString(s); n > maxCommonName {
		return invalid(KindCommonName, s, "it is %d characters long, more than the %d RFC 5280 allows", n, maxCommonName)
	}
	if strings.Contains(s, "*") || looksLikeHost(s) {
		if err := HostName(s); err != nil {
			return invalid(KindCommonName, s, "it reads as a host name but is not a valid one: %s", err.(*Error).Reason)
		}
	}
	return nil
}

// looksLikeHost reports whether s is made only of host-name characters and
// has a dot, so that a legacy verifier (one that falls back to the common
// name) would compare it with the host it connects to.
func looksLikeHost(s string) bool {
	if !strings.Contains(s, ".") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// valueReason checks a subject attribute value: no control or format
// characters, no "/", no leading or trailing space.
func valueReason(s string) string {
	if s == "" {
		return "it is empty"
	}
	if !utf8.ValidString(s) {
		return "it is not valid UTF-8"
	}
	for _, r := range s {
		switch {
		case r == 0:
			return "it contains a NUL character"
		case unicode.IsControl(r):
			return fmt.Sprintf("it contains the control character %U", r)
		case unicode.Is(unicode.Cf, r):
			return fmt.Sprintf("it contains the invisible format character %U", r)
		case r == '/':
			return "it contains \"/\", which separates attributes in OpenSSL's one-line subject format"
		}
	}
	if r, _ := utf8.DecodeRuneInString(s); unicode.IsSpace(r) {
		return "it starts with a space"
	}
	if r, _ := utf8.DecodeLastRuneInString(s); unicode.IsSpace(r) {
		return "it ends with a space"
	}
	return ""
}
