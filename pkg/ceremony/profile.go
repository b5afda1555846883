package ceremony

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/quill-pki/quill/pkg/issuance"
)

// caKeyUsage is what every CA certificate made here asserts: signing
// certificates and CRLs, and digitalSignature for OCSP responses signed by
// the CA itself.
const caKeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature

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

// apply validates c and sets its fields on tmpl.
func (c Constraints) apply(tmpl *x509.Certificate) error {
	tmpl.MaxPathLen = -1
	if c.PathLen != nil {
		if *c.PathLen < 0 {
			return fmt.Errorf("%w: path length %d is negative", errBadProfile, *c.PathLen)
		}
		tmpl.MaxPathLen = *c.PathLen
		tmpl.MaxPathLenZero = *c.PathLen == 0
	}
	var err error
	if tmpl.PermittedDNSDomains, err = dnsConstraints(c.PermittedDNS); err != nil {
		return err
	}
	if tmpl.ExcludedDNSDomains, err = dnsConstraints(c.ExcludedDNS); err != nil {
		return err
	}
	// RFC 5280 4.2.1.10: conforming CAs mark name constraints critical, so
	// a verifier that cannot enforce them refuses the chain.
	tmpl.PermittedDNSDomainsCritical = len(tmpl.PermittedDNSDomains)+len(tmpl.ExcludedDNSDomains) > 0
	return nil
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

// newSerial returns a random positive serial of exactly 159 bits: the top
// bit of 160 random bits is cleared so the DER INTEGER stays within RFC
// 5280's 20 octets without a sign byte, and the next one set so that every
// serial has the same length.
func newSerial() (*big.Int, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	b[0] = b[0]&0x7f | 0x40
	return new(big.Int).SetBytes(b), nil
}

// subjectKeyID is method 1 of RFC 7093: the first 160 bits of the SHA-256
// of the subjectPublicKey bits, as pkg/issuance derives it for the
// certificates it signs.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUnsupportedKey, err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("%w: %w", errUnsupportedKey, err)
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
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

// humanDuration writes whole days as days, the unit CA lifetimes are
// thought in, and anything else to the second.
func humanDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		return fmt.Sprintf("%d days", d/day)
	}
	return d.Round(time.Second).String()
}
