package policy

import (
	"errors"
	"fmt"
)

// ErrDenied is wrapped by every *Denial, for errors.Is.
var ErrDenied = errors.New("denied by policy")

// errInvalidPolicy marks an issuer's policy or template list that cannot
// be used; it is the issuer's fault, not the request's.
var errInvalidPolicy = errors.New("invalid issuance policy")

// Denial is a refusal of one request by one rule.
type Denial struct {
	// Rule is where the refusing rule lives, as a field path such as
	// spec.policy.dnsNames or template client-auth extKeyUsages. It is a
	// small fixed set, fit for a metrics label.
	Rule string
	// Reason says what in the request broke the rule and what to change.
	Reason string
}

func (d *Denial) Error() string { return fmt.Sprintf("refused by %s: %s", d.Rule, d.Reason) }

// Unwrap makes errors.Is(d, ErrDenied) true.
func (d *Denial) Unwrap() error { return ErrDenied }

func deny(rule, format string, args ...any) *Denial {
	return &Denial{Rule: rule, Reason: fmt.Sprintf(format, args...)}
}

// IsInvalidPolicy reports whether err says the issuer's policy or templates
// cannot be used (as opposed to a request being refused).
func IsInvalidPolicy(err error) bool { return errors.Is(err, errInvalidPolicy) }
