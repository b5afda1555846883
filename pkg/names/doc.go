// Package names checks the syntax of every name a certificate Quill signs
// can carry, once, before policy and signing: DNS names, IP addresses,
// URIs, email addresses and otherNames in the subject alternative names, and the
// common names and email addresses in the subject. Policy matches names
// against patterns; a pattern such as "**.{namespace}.svc" only means what
// it says when the name is a host name, so everything that is not one is
// refused here, before any pattern sees it.
//
// It is pure: no API server, no clock, no network. Check judges a parsed
// CSR, CheckCertificate a signed certificate (to re-check what was signed
// from the certificate alone); DNSName, HostName, IP, IPString, URI, Email,
// OtherNameSAN and CommonName judge one value each. crypto/x509 drops
// otherNames, so OtherNamesOfRequest and OtherNamesOfCertificate read them
// from the subjectAltName extension.
//
// # Error contract
//
// Every refusal is an *Error naming the kind of name, the offending value
// (rendered with %q, so a NUL byte shows as \x00) and the reason; it wraps
// ErrInvalidName, so errors.Is(err, ErrInvalidName) tells a bad name from
// anything else. A refusal is final: the request must change. ParseSubject
// refuses a subject whose encoding is malformed or that crypto/x509 read
// differently, with an error wrapping ErrMalformedSubject.
//
// # Decisions
//
//   - DNS names are ASCII host names (RFC 1123 LDH labels): each label 1 to
//     63 octets of letters, digits and hyphens, not starting or ending with
//     a hyphen; at most 253 octets in all. Case is free. A trailing dot is
//     refused: RFC 5280 dNSNames are in "preferred name syntax", which has
//     none, and "a.b." and "a.b" would be two names to policy but one to
//     many verifiers. A last label of digits only is refused, so that no
//     DNS name reads as an IPv4 address.
//   - Underscores are refused. They appear in SRV-style service names
//     (_ldap._tcp), which are not host names: RFC 5280 and the CA/Browser
//     Forum requirements exclude them, and no TLS client asks for one.
//   - Internationalized names must be sent as A-labels ("xn--…"). An
//     A-label must decode (UTS #46 registration rules, golang.org/x/net/idna)
//     to a U-label that encodes back to the same A-label and holds only
//     letters, marks, digits, hyphens and the few IDNA2008 contextual
//     characters. Non-ASCII bytes (U-labels) are refused: what is signed
//     must be what a verifier compares.
//   - A wildcard is only a whole leftmost "*" label, once, followed by at
//     least two labels: "*.example.com" yes, "*.com", "a.*.com", "f*.com"
//     and "**.com" no.
//   - IP addresses are 4 or 16 octets; textual ones (IPString) carry no zone.
//   - URIs are absolute, printable ASCII without spaces, read back by
//     net/url to the same text, without user information, without
//     percent-encoded control characters, and their host, when present, is
//     a DNS name without wildcard or an IP literal. spiffe URIs follow the
//     SPIFFE ID rules (trust domain, path segments, no port, query or
//     fragment).
//   - Email addresses are RFC 5322 addr-specs with a dot-atom local part
//     (no quoted strings, no display names, no comments) of at most 64
//     octets and a DNS name as domain.
//   - otherNames carry a UTF8String value (cert-manager's utf8Value); any
//     other value type is refused, since Quill could neither judge nor
//     re-encode it. The type-id is a valid object identifier (first arc 0
//     to 2, at most 32 arcs of at most nine digits). The value is valid
//     UTF-8 of 1 to 256 octets without control, format or space
//     characters: spaces separate names in the audit report, and the rest
//     would let a log line or a C string read the value differently. A UPN
//     (1.3.6.1.4.1.311.20.2.3) must read as user@domain: one "@", a user
//     part without the characters Active Directory refuses there, and a
//     domain that is a valid DNS name.
//   - Subject attribute values are strings without control or Unicode
//     format characters (bidirectional overrides, zero-width characters)
//     and without "/": OpenSSL's one-line subject rendering, still read by
//     web servers' client-certificate variables, separates attributes with
//     "/", so a value holding "/CN=admin" would forge one. A common name is
//     at most 64 characters (RFC 5280 ub-common-name); one made only of
//     host-name characters with a dot, or holding "*", is read as a host
//     name by legacy verifiers and must be a valid HostName. A subject
//     emailAddress attribute must be a valid Email.
package names
