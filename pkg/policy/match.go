package policy

import (
	"fmt"
	"net"
	"strings"
)

// namespacePlaceholder is replaced by the request's namespace in patterns.
const namespacePlaceholder = "{namespace}"

// expand substitutes the namespace into a pattern; ok is false when the
// pattern needs a namespace and the request has none (a Kubernetes
// CertificateSigningRequest), so the pattern cannot match.
func expand(pattern, namespace string) (string, bool) {
	if !strings.Contains(pattern, namespacePlaceholder) {
		return pattern, true
	}
	if namespace == "" {
		return "", false
	}
	return strings.ReplaceAll(pattern, namespacePlaceholder, namespace), true
}

// checkDNSPattern reports what is wrong with a DNS name pattern: "*" must
// be a whole label, "**" only the first one.
func checkDNSPattern(p string) error {
	if p == "" {
		return fmt.Errorf("%w: empty DNS name pattern", errInvalidPolicy)
	}
	for i, label := range strings.Split(p, ".") {
		switch {
		case label == "":
			return fmt.Errorf("%w: DNS name pattern %q has an empty label", errInvalidPolicy, p)
		case label == "**" && i != 0:
			return fmt.Errorf("%w: DNS name pattern %q: \"**\" may only be the first label", errInvalidPolicy, p)
		case label != "*" && label != "**" && strings.Contains(label, "*"):
			return fmt.Errorf("%w: DNS name pattern %q: \"*\" must be a whole label", errInvalidPolicy, p)
		}
	}
	return nil
}

// matchDNS matches a requested DNS name against a valid pattern, ignoring
// case and a trailing dot. "*" matches one label (a requested "*" label
// included), a leading "**" one or more.
func matchDNS(pattern, name string) bool {
	pl := strings.Split(strings.ToLower(strings.TrimSuffix(pattern, ".")), ".")
	nl := strings.Split(strings.ToLower(strings.TrimSuffix(name, ".")), ".")
	if pl[0] == "**" {
		rest := pl[1:]
		if len(nl) <= len(rest) {
			return false
		}
		return labelsMatch(rest, nl[len(nl)-len(rest):])
	}
	return len(pl) == len(nl) && labelsMatch(pl, nl)
}

func labelsMatch(pattern, name []string) bool {
	for i := range pattern {
		if pattern[i] != "*" && pattern[i] != name[i] {
			return false
		}
		if pattern[i] == "*" && name[i] == "" {
			return false
		}
	}
	return true
}

// matchGlob matches s against a pattern whose only special character is
// "*", which stands for any run of characters other than sep (any
// characters at all when sep is 0). With a separator, pattern and s are
// compared segment by segment, so a star never crosses one.
func matchGlob(pattern, s string, sep byte) bool {
	if sep == 0 {
		return matchSegment(pattern, s)
	}
	ps, ss := strings.Split(pattern, string(sep)), strings.Split(s, string(sep))
	if len(ps) != len(ss) {
		return false
	}
	for i := range ps {
		if !matchSegment(ps[i], ss[i]) {
			return false
		}
	}
	return true
}

// matchSegment is the classic greedy glob match with one backtrack point,
// linear in practice and never exponential.
func matchSegment(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			mark++
			i, p = mark, star+1
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// parseCIDRs parses CIDR strings, naming the field in errors.
func parseCIDRs(field string, cidrs []string) ([]*net.IPNet, error) {
	out := make([]*net.IPNet, 0, len(cidrs))
	for _, c := range cidrs {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %q is not a CIDR", errInvalidPolicy, field, c)
		}
		out = append(out, n)
	}
	return out, nil
}
