package kms

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// SchemePKCS11 is the scheme of keys on PKCS#11 tokens (RFC 7512).
const SchemePKCS11 = "pkcs11"

// maxTokenLabel is the size of CK_TOKEN_INFO.label: a longer label can
// never match a token.
const maxTokenLabel = 32

// PKCS11URI names a private key on a PKCS#11 token: the subset of an RFC
// 7512 URI that Quill uses.
//
//	pkcs11:token=Root%20CA;object=root-key;id=%01%02?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin
//
// quillctl parses it from what users type (ParsePKCS11URI); castore builds
// it from an issuer's spec.ca.pkcs11. The token is selected by label or
// serial, never by slot: HSMs renumber slots.
type PKCS11URI struct {
	// Token (the token label, "token=") or Serial ("serial"): exactly
	// one.
	Token  string
	Serial string
	// Object (the key's CKA_LABEL, "object=") and/or ID (its CKA_ID,
	// "id="): at least one.
	Object string
	ID     []byte

	// ModuleName ("module-name=") names the PKCS#11 library by its name
	// in the controller's allow-list (Options.Modules); ModulePath
	// ("module-path=") gives its absolute path, for programs without an
	// allow-list (quillctl). Exactly one.
	ModuleName string
	ModulePath string

	// PINSource ("pin-source=") is a file: URI whose content, without a
	// trailing newline, is the user PIN; PIN ("pin-value=") is the PIN
	// itself. Callers may also set PIN from elsewhere (castore, from the
	// issuer's PIN Secret). Neither ever appears in String.
	PINSource string
	PIN       string
}

// Scheme returns "pkcs11".
func (u PKCS11URI) Scheme() string { return SchemePKCS11 }

// String formats u as a pkcs11: URI with a PIN value replaced by REDACTED.
func (u PKCS11URI) String() string {
	var path []string
	add := func(name, value string) {
		if value != "" {
			path = append(path, name+"="+escape(value, false))
		}
	}
	add("token", u.Token)
	add("serial", u.Serial)
	add("object", u.Object)
	if len(u.ID) > 0 {
		var b strings.Builder
		for _, c := range u.ID {
			fmt.Fprintf(&b, "%%%02X", c)
		}
		path = append(path, "id="+b.String())
	}
	var query []string
	addQ := func(name, value string) {
		if value != "" {
			query = append(query, name+"="+escape(value, true))
		}
	}
	addQ("module-name", u.ModuleName)
	addQ("module-path", u.ModulePath)
	addQ("pin-source", u.PINSource)
	if u.PIN != "" && u.PINSource == "" {
		query = append(query, "pin-value=REDACTED")
	}
	s := SchemePKCS11 + ":" + strings.Join(path, ";")
	if len(query) > 0 {
		s += "?" + strings.Join(query, "&")
	}
	return s
}

// GoString keeps %#v from printing the PIN.
func (u PKCS11URI) GoString() string { return u.String() }

// ReadPIN returns the PIN: PIN if set, else the content of the PINSource
// file without its trailing line break, else "" (log in with no PIN).
func (u PKCS11URI) ReadPIN() (string, error) {
	if u.PIN != "" || u.PINSource == "" {
		return u.PIN, nil
	}
	file, err := pinFile(u.PINSource)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("reading the PIN from pin-source: %w", err)
	}
	// A PIN written with echo or an editor ends in a newline that is not
	// part of it.
	return strings.TrimRight(string(b), "\r\n"), nil
}

// pinFile is the path a pin-source names: a file: URI, with or without an
// empty authority (file:/run/pin, file:///run/pin).
func pinFile(source string) (string, error) {
	rest, ok := strings.CutPrefix(source, "file:")
	if !ok {
		return "", fmt.Errorf("%w: pin-source must be a file: URI", ErrInvalidRef)
	}
	if strings.HasPrefix(rest, "//") {
		rest = rest[2:]
	}
	if !filepath.IsAbs(rest) {
		return "", fmt.Errorf("%w: pin-source must name a file by absolute path", ErrInvalidRef)
	}
	return rest, nil
}

// Validate checks u as a reference to one private key: exactly one token
// selector, at least one key selector, exactly one module, a usable PIN
// source. Errors wrap ErrInvalidRef.
func (u PKCS11URI) Validate() error {
	switch {
	case (u.Token == "") == (u.Serial == ""):
		return fmt.Errorf("%w: %s: name the token by exactly one of token= or serial=", ErrInvalidRef, u)
	case len(u.Token) > maxTokenLabel:
		return fmt.Errorf("%w: %s: a token label has at most %d bytes", ErrInvalidRef, u, maxTokenLabel)
	case u.Object == "" && len(u.ID) == 0:
		return fmt.Errorf("%w: %s: name the key by object=, id= or both", ErrInvalidRef, u)
	case (u.ModuleName == "") == (u.ModulePath == ""):
		return fmt.Errorf("%w: %s: name the PKCS#11 library by exactly one of module-path= (an absolute path) or module-name=", ErrInvalidRef, u)
	case u.ModulePath != "" && !filepath.IsAbs(u.ModulePath):
		return fmt.Errorf("%w: %s: module-path must name the PKCS#11 library by absolute path", ErrInvalidRef, u)
	case u.PIN != "" && u.PINSource != "":
		return fmt.Errorf("%w: %s: give the PIN by pin-value= or pin-source=, not both", ErrInvalidRef, u)
	}
	if u.PINSource != "" {
		if _, err := pinFile(u.PINSource); err != nil {
			return fmt.Errorf("%s: %w", u, err)
		}
	}
	return nil
}

// ParsePKCS11URI parses an RFC 7512 URI naming one private key:
//
//   - path attributes token or serial, object and/or id, and optionally
//     type=private;
//   - query attributes module-path or module-name, and pin-source (a file:
//     URI) or pin-value.
//
// Values are percent-decoded (RFC 3986; "+" is a plus sign, not a space).
// Other standard attributes (slot-id, manufacturer, …), vendor attributes
// and repeated attributes are refused rather than ignored, so that a URI
// never selects something other than what its author meant. Errors wrap
// ErrInvalidRef and never contain the PIN. The PIN file is not read here
// (see ReadPIN).
func ParsePKCS11URI(s string) (*PKCS11URI, error) {
	rest, ok := strings.CutPrefix(s, SchemePKCS11+":")
	if !ok {
		return nil, fmt.Errorf("%w: %q does not start with pkcs11:", ErrInvalidRef, redactPINValue(s))
	}
	path, query, _ := strings.Cut(rest, "?")
	u := &PKCS11URI{}
	seen := map[string]bool{}
	attrs := func(list, sep, where string, set func(name, value string) error) error {
		for _, attr := range strings.Split(list, sep) {
			if attr == "" {
				continue
			}
			name, raw, ok := strings.Cut(attr, "=")
			if !ok {
				return fmt.Errorf("%w: %s attribute %q has no value", ErrInvalidRef, where, redactPINValue(attr))
			}
			if seen[name] {
				return fmt.Errorf("%w: attribute %s appears twice", ErrInvalidRef, name)
			}
			seen[name] = true
			value, err := url.PathUnescape(raw)
			if err != nil {
				// The escape error quotes the bad sequence: not for a PIN.
				if name == "pin-value" {
					return fmt.Errorf("%w: attribute %s is badly percent-encoded", ErrInvalidRef, name)
				}
				return fmt.Errorf("%w: attribute %s: %w", ErrInvalidRef, name, err)
			}
			if err := set(name, value); err != nil {
				return err
			}
		}
		return nil
	}
	err := attrs(path, ";", "path", func(name, value string) error {
		switch name {
		case "token":
			u.Token = value
		case "serial":
			u.Serial = value
		case "object":
			u.Object = value
		case "id":
			u.ID = []byte(value)
		case "type":
			if value != "private" {
				return fmt.Errorf("%w: type=%s: the reference must name a private key", ErrInvalidRef, value)
			}
		default:
			return fmt.Errorf("%w: unsupported path attribute %q (use token or serial, object and/or id)", ErrInvalidRef, name)
		}
		return nil
	})
	if err == nil {
		err = attrs(query, "&", "query", func(name, value string) error {
			switch name {
			case "module-name":
				u.ModuleName = value
			case "module-path":
				u.ModulePath = value
			case "pin-source":
				u.PINSource = value
			case "pin-value":
				u.PIN = value
			default:
				return fmt.Errorf("%w: unsupported query attribute %q (use module-path or module-name, pin-source or pin-value)", ErrInvalidRef, name)
			}
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("bad pkcs11: URI %q: %w", redactPINValue(s), err)
	}
	if err := u.Validate(); err != nil {
		return nil, err
	}
	return u, nil
}

// escape percent-encodes v for a pkcs11: URI: everything but RFC 3986's
// unreserved characters, and in query values also "/" and ":" so that
// paths stay readable.
func escape(v string, query bool) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~':
			b.WriteByte(c)
		case query && (c == '/' || c == ':'):
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// pinValue matches a pin-value attribute wherever a malformed reference
// puts it.
var pinValue = regexp.MustCompile(`(pin-value=)[^;&?]*`)

// redactPINValue hides a pin-value in a reference shown in a message that
// could not be parsed.
func redactPINValue(ref string) string {
	return pinValue.ReplaceAllString(ref, "${1}REDACTED")
}
