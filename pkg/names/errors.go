package names

import (
	"errors"
	"fmt"
)

// ErrInvalidName is wrapped by every *Error.
var ErrInvalidName = errors.New("invalid name")

// ErrMalformedSubject is wrapped by ParseSubject's errors: the subject's
// encoding is broken or crypto/x509 read it differently than its bytes say.
var ErrMalformedSubject = errors.New("malformed subject")

// Kinds of names, as Error.Kind reports them.
const (
	KindDNSName      = "DNS name"
	KindIPAddress    = "IP address"
	KindURI          = "URI"
	KindEmail        = "email address"
	KindCommonName   = "common name"
	KindSubjectValue = "subject attribute"
	KindOtherName    = "otherName"
)

// Error is the refusal of one name.
type Error struct {
	// Kind is one of the Kind constants, with the attribute named for
	// KindSubjectValue ("subject attribute O").
	Kind string
	// Value is the refused name as sent.
	Value string
	// Reason says what is wrong with it.
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %q is not valid: %s", e.Kind, e.Value, e.Reason)
}

// Unwrap makes errors.Is(e, ErrInvalidName) true.
func (e *Error) Unwrap() error { return ErrInvalidName }

func invalid(kind, value, format string, args ...any) *Error {
	return &Error{Kind: kind, Value: value, Reason: fmt.Sprintf(format, args...)}
}
