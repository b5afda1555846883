package ceremony

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/quill-pki/quill/pkg/issuance"
)

// backdate is how far before the ceremony a new CA certificate starts: the
// machines that will trust it keep their own clocks, and a certificate
// from the future is as useless to them as an expired one.
const backdate = time.Hour

var errBadProfile = errors.New("invalid CA certificate settings")

// Constraints are the CA-specific extensions of a new root or subordinate.
type Constraints struct {
	// PathLen is the basicConstraints pathLenConstraint: how many CA
	// levels may follow below. Nil leaves it out.
	PathLen *int
	// PermittedDNS and ExcludedDNS become a critical nameConstraints
	// extension. "example.com" covers that name and every name below it;
	// ".example.com" only the names below it.
	PermittedDNS []string
	ExcludedDNS  []string
}

// profile validates c and returns the CA profile pkg/issuance signs a new
// root or subordinate with: valid for validity, backdated for clock skew.
func (c Constraints) profile(validity time.Duration) (issuance.CAProfile, error) {
	p := issuance.CAProfile{Validity: validity, Backdate: backdate}
	if c.PathLen != nil {
		if *c.PathLen < 0 {
			return p, fmt.Errorf("%w: path length %d is negative", errBadProfile, *c.PathLen)
		}
		p.MaxPathLen = c.PathLen
	}
	permitted, err := dnsConstraints(c.PermittedDNS)
	if err != nil {
		return p, err
	}
	excluded, err := dnsConstraints(c.ExcludedDNS)
	if err != nil {
		return p, err
	}
	// pkg/issuance marks them critical (RFC 5280 4.2.1.10), so a verifier
	// that cannot enforce them refuses the chain.
	if len(permitted)+len(excluded) > 0 {
		p.NameConstraints = &issuance.NameConstraints{PermittedDNSDomains: permitted, ExcludedDNSDomains: excluded}
	}
	return p, nil
}

// dnsConstraints checks DNS name constraint subtrees and writes them in
// lower case.
func dnsConstraints(names []string) ([]string, error) {
	var out []string
	for _, raw := range names {
		n := strings.ToLower(strings.TrimSpace(raw))
		if err := checkDNSSubtree(n); err != nil {
			return nil, fmt.Errorf("%w: DNS name constraint %q: %w", errBadProfile, raw, err)
		}
		out = append(out, n)
	}
	return out, nil
}

func checkDNSSubtree(n string) error {
	name := strings.TrimPrefix(n, ".")
	switch {
	case name == "":
		return errors.New("empty name")
	case strings.Contains(name, "*"):
		return errors.New("wildcards do not apply: \"example.com\" already covers every name below it")
	case len(name) > 253:
		return errors.New("longer than 253 characters")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("each label must have 1 to 63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("a label may not start or end with a hyphen")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("character %q is not allowed in a DNS name", c)
			}
		}
	}
	return nil
}

// maxDays keeps a day count within time.Duration.
const maxDays = 100_000

// ParseValidity reads a validity period: a Go duration ("87600h") or a
// whole number of days ("3650d").
func ParseValidity(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > maxDays {
			return 0, fmt.Errorf("%w: validity %q: write a positive number of days such as 3650d, or a duration such as 87600h", errBadProfile, s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%w: validity %q: write a duration such as 87600h, or a number of days such as 3650d", errBadProfile, s)
	}
	return d, nil
}

// checkValidity refuses a CA shorter-lived than anything pkg/issuance
// would sign under it.
func checkValidity(d time.Duration) error {
	if d < issuance.MinCertificateDuration {
		return fmt.Errorf("%w: validity %s is below the minimum of %s", errBadProfile, d, issuance.MinCertificateDuration)
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
