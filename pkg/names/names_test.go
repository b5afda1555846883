package names

import (
	"errors"
	"net"
	"strings"
	"testing"
)

func TestDNSName(t *testing.T) {
	t.Parallel()
	long63 := strings.Repeat("a", 63)
	for _, tc := range []struct {
		name, in string
		ok       bool
		reason   string
	}{
		{name: "plain", in: "web.team.svc", ok: true},
		{name: "upper-case", in: "WEB.Team.SVC", ok: true},
		{name: "digits-and-hyphens", in: "a-1.9b.example.com", ok: true},
		{name: "single-label", in: "localhost", ok: true},
		{name: "wildcard", in: "*.team.svc", ok: true},
		{name: "a-label", in: "xn--bcher-kva.example", ok: true},
		{name: "a-label-upper-case", in: "XN--BCHER-KVA.example", ok: true},
		{name: "a-label-cjk", in: "xn--55qx5d.xn--fiqs8s", ok: true},
		{name: "label-63", in: long63 + ".example.com", ok: true},
		{name: "total-253", in: strings.Repeat(long63+".", 3) + strings.Repeat("b", 61), ok: true},
		{name: "attack-nul", in: "kubernetes.default.svc\x00.team.svc", reason: "NUL"},
		{name: "attack-slash-space", in: "evil.example.com/ .team.svc", reason: "space"},
		{name: "attack-slash", in: "evil.example.com/.team.svc", reason: "holds \"/\""},
		{name: "empty", in: "", reason: "empty"},
		{name: "empty-label", in: "a..b", reason: "empty label"},
		{name: "leading-dot", in: ".a.b", reason: "empty label"},
		{name: "trailing-dot", in: "a.example.com.", reason: "trailing dot"},
		{name: "label-64", in: long63 + "a.example.com", reason: "64 octets"},
		{name: "total-254", in: strings.Repeat(long63+".", 3) + strings.Repeat("b", 62), reason: "254 octets"},
		{name: "leading-hyphen", in: "-a.example.com", reason: "hyphen"},
		{name: "trailing-hyphen", in: "a-.example.com", reason: "hyphen"},
		{name: "underscore", in: "_ldap._tcp.example.com", reason: "underscore"},
		{name: "u-label", in: "bücher.example", reason: "A-labels"},
		{name: "bad-punycode", in: "xn--zz.example", reason: "A-label"},
		{name: "empty-a-label", in: "xn--.example", reason: "hyphen"},
		{name: "a-label-of-ascii", in: "xn--abc-.example", reason: "hyphen"},
		{name: "a-label-not-canonical", in: "xn--bcher-kva-kva.example", reason: "A-label"},
		{name: "a-label-emoji", in: "xn--ls8h.example", reason: "letters, marks and digits"},
		{name: "a-label-disallowed", in: "xn--a.example", reason: "A-label"},
		{name: "wildcard-on-tld", in: "*.com", reason: "two labels after"},
		{name: "wildcard-alone", in: "*", reason: "two labels after"},
		{name: "two-wildcards", in: "*.*.example.com", reason: "whole first label"},
		{name: "inner-wildcard", in: "a.*.example.com", reason: "whole first label"},
		{name: "partial-wildcard", in: "f*.example.com", reason: "whole first label"},
		{name: "double-star", in: "**.example.com", reason: "whole first label"},
		{name: "ipv4-like", in: "10.0.0.1", reason: "all digits"},
		{name: "ipv6", in: "::1", reason: "holds \":\""},
		{name: "tab", in: "a\tb.example", reason: "control byte 0x09"},
		{name: "del", in: "a\x7fb.example", reason: "control byte 0x7f"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assertName(t, DNSName(tc.in), tc.ok, tc.reason)
		})
	}
}

func TestHostName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		ok       bool
		reason   string
	}{
		{name: "dns", in: "web.example.com", ok: true},
		{name: "ipv4", in: "10.0.0.1", ok: true},
		{name: "ipv6", in: "fd00::1", ok: true},
		{name: "zone", in: "fe80::1%eth0", reason: "zone"},
		{name: "bad", in: "web..example", reason: "empty label"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assertName(t, HostName(tc.in), tc.ok, tc.reason)
		})
	}
}

func TestIP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		in     net.IP
		ok     bool
		reason string
	}{
		{name: "ipv4", in: net.IP{10, 0, 0, 1}, ok: true},
		{name: "ipv6", in: net.ParseIP("2001:db8::1"), ok: true},
		{name: "ipv4-in-16", in: net.ParseIP("10.0.0.1"), ok: true},
		{name: "five-octets", in: net.IP{1, 2, 3, 4, 5}, reason: "5 octets"},
		{name: "empty", in: net.IP{}, reason: "0 octets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assertName(t, IP(tc.in), tc.ok, tc.reason)
		})
	}
}

func TestURI(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		ok       bool
		reason   string
	}{
		{name: "spiffe", in: "spiffe://cluster.local/ns/team/sa/web", ok: true},
		{name: "spiffe-trust-domain-only", in: "spiffe://cluster.local", ok: true},
		{name: "https", in: "https://web.example.com:8443/path?q=1#top", ok: true},
		{name: "https-ipv6", in: "https://[2001:db8::1]/", ok: true},
		{name: "https-ipv4", in: "https://10.0.0.1/", ok: true},
		{name: "urn", in: "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", ok: true},
		{name: "percent-encoded", in: "https://example.com/a%20b", ok: true},
		{name: "relative", in: "/ns/team", reason: "no scheme"},
		{name: "space", in: "https://example.com/a b", reason: "space"},
		{name: "nul", in: "spiffe://cluster.local/ns/team\x00/sa/web", reason: "NUL"},
		{name: "encoded-nul", in: "https://example.com/a%00b", reason: "%00"},
		{name: "encoded-newline", in: "https://example.com/a%0ab", reason: "%0a"},
		{name: "userinfo", in: "https://good.example.com@evil.example.com/", reason: "user information"},
		{name: "bad-host", in: "https://evil_host.example.com/", reason: "underscore"},
		{name: "wildcard-host", in: "https://*.example.com/", reason: "not a host name"},
		{name: "zone", in: "https://[fe80::1%25eth0]/", reason: "not an IP address"},
		{name: "upper-case-scheme", in: "HTTPS://example.com/", reason: "reads it back"},
		{name: "backslash", in: "https://example.com\\@evil.com/", reason: "backslash"},
		{name: "non-ascii", in: "https://bücher.example/", reason: "non-ASCII"},
		{name: "spiffe-port", in: "spiffe://cluster.local:8443/ns/team", reason: "port"},
		{name: "spiffe-query", in: "spiffe://cluster.local/ns/team?x=1", reason: "query"},
		{name: "spiffe-fragment", in: "spiffe://cluster.local/ns/team#x", reason: "fragment"},
		{name: "spiffe-dot-segment", in: "spiffe://cluster.local/ns/../admin", reason: "segment"},
		{name: "spiffe-trailing-slash", in: "spiffe://cluster.local/ns/team/", reason: "empty segment"},
		{name: "spiffe-upper-trust-domain", in: "spiffe://Cluster.local/ns", reason: "lowercase"},
		{name: "spiffe-no-trust-domain", in: "spiffe:///ns/team", reason: "trust domain"},
		{name: "empty", in: "", reason: "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assertName(t, URI(tc.in), tc.ok, tc.reason)
		})
	}
}

func TestEmail(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		ok       bool
		reason   string
	}{
		{name: "plain", in: "alice@example.com", ok: true},
		{name: "atext", in: "a.b+tag!#$%&'*/=?^_`{|}~-@team.example.com", ok: true},
		{name: "a-label-domain", in: "alice@xn--bcher-kva.example", ok: true},
		{name: "display-name", in: "Alice <alice@example.com>", reason: "space"},
		{name: "angle-brackets", in: "<alice@example.com>", reason: "dot-atoms"},
		{name: "quoted-local", in: "\"a@b\"@example.com", reason: "dot-atoms"},
		{name: "two-at", in: "a@b@example.com", reason: "dot-atoms"},
		{name: "no-at", in: "alice.example.com", reason: "no \"@\""},
		{name: "empty-local", in: "@example.com", reason: "local part is empty"},
		{name: "leading-dot", in: ".alice@example.com", reason: "leading, trailing or doubled dot"},
		{name: "double-dot", in: "a..b@example.com", reason: "leading, trailing or doubled dot"},
		{name: "long-local", in: strings.Repeat("a", 65) + "@example.com", reason: "65 octets"},
		{name: "nul", in: "alice@example.com\x00.other.svc", reason: "NUL"},
		{name: "bad-domain", in: "alice@example..com", reason: "empty label"},
		{name: "wildcard-domain", in: "alice@*.example.com", reason: "wildcard"},
		{name: "domain-literal", in: "alice@[10.0.0.1]", reason: "not a host name"},
		{name: "non-ascii", in: "ålice@example.com", reason: "SmtpUTF8Mailbox"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assertName(t, Email(tc.in), tc.ok, tc.reason)
		})
	}
}

func TestCommonName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		ok       bool
		reason   string
	}{
		{name: "host", in: "web.team.svc", ok: true},
		{name: "wildcard-host", in: "*.team.svc", ok: true},
		{name: "ip", in: "10.0.0.1", ok: true},
		{name: "phrase", in: "Quill Intermediate CA 2026", ok: true},
		{name: "phrase-with-dot", in: "Quill Root CA v1.2", ok: true},
		{name: "user", in: "admin", ok: true},
		{name: "kubernetes-node", in: "system:node:ip-10-0-0-1.ec2.internal", ok: true},
		{name: "email-like", in: "alice@example.com", ok: true},
		{name: "non-ascii-phrase", in: "Zürich Büro", ok: true},
		{name: "attack-nul", in: "kubernetes.default.svc\x00.team.svc", reason: "NUL"},
		{name: "attack-slash", in: "evil.example.com/ .team.svc", reason: "\"/\""},
		{name: "one-line-injection", in: "app/CN=admin", reason: "\"/\""},
		{name: "wildcard-on-tld", in: "*.com", reason: "two labels after"},
		{name: "partial-wildcard", in: "f*.example.com", reason: "whole first label"},
		{name: "star-in-phrase", in: "any * name", reason: "host name"},
		{name: "host-trailing-dot", in: "web.team.svc.", reason: "trailing dot"},
		{name: "host-bad-punycode", in: "xn--zz.team.svc", reason: "A-label"},
		{name: "host-underscore", in: "web_1.team.svc", reason: "underscore"},
		{name: "bidi-override", in: "admin\u202e", reason: "format character U+202E"},
		{name: "zero-width", in: "ad\u200bmin", reason: "format character U+200B"},
		{name: "newline", in: "admin\nCN=root", reason: "control character U+000A"},
		{name: "leading-space", in: " admin", reason: "starts with a space"},
		{name: "trailing-space", in: "admin ", reason: "ends with a space"},
		{name: "too-long", in: strings.Repeat("a", 65), reason: "65 characters"},
		{name: "empty", in: "", reason: "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assertName(t, CommonName(tc.in), tc.ok, tc.reason)
		})
	}
}

func assertName(t *testing.T, err error, ok bool, reason string) {
	t.Helper()
	if ok {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("accepted, want a refusal mentioning %q", reason)
	}
	if !errors.Is(err, ErrInvalidName) {
		t.Errorf("error %v does not wrap ErrInvalidName", err)
	}
	var ne *Error
	if !errors.As(err, &ne) {
		t.Fatalf("error %v is not an *Error", err)
	}
	if !strings.Contains(err.Error(), reason) {
		t.Errorf("error %q does not mention %q", err, reason)
	}
	if strings.ContainsAny(err.Error(), "\x00\n\t") {
		t.Errorf("error %q carries raw control characters; the value must be quoted", err)
	}
}
