package issuance

import (
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"
)

// The primitives below are the only place Quill makes serial numbers and key
// identifiers: every certificate, whoever asks for it (a CertificateRequest,
// the bootstrap root, a ceremony, the OCSP responder), gets them from here
// through issue, so that no kind of certificate can drift from the others.

// NewSerialNumber returns a serial of exactly 159 random-looking bits read
// from r (crypto/rand in production): 160 random bits with the top bit
// cleared, so the DER INTEGER stays positive within the 20 octets RFC 5280
// (4.1.2.2) allows, and the next bit set, so every serial has the same
// length. That leaves 158 bits of entropy, above the 64 the CA/B Forum
// requires and the 128 Quill promises. It fails only when r does.
func NewSerialNumber(r io.Reader) (*big.Int, error) {
	b := make([]byte, 20)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	b[0] = b[0]&0x7f | 0x40
	return new(big.Int).SetBytes(b), nil
}

// SubjectKeyID derives a key identifier from a DER SubjectPublicKeyInfo by
// method 1 of RFC 7093: the leftmost 160 bits of the SHA-256 hash of the
// subjectPublicKey BIT STRING value. SHA-256 rather than RFC 5280's SHA-1
// keeps SHA-1 out of the CA entirely, and 160 bits keeps identifiers the
// size every tool expects. An authority key identifier is the issuing CA
// certificate's own subject key identifier, copied, never derived again:
// CA certificates made elsewhere keep whatever identifier they carry.
// It fails only on DER that is not a SubjectPublicKeyInfo.
func SubjectKeyID(spkiDER []byte) ([]byte, error) {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	rest, err := asn1.Unmarshal(spkiDER, &spki)
	if err != nil {
		return nil, fmt.Errorf("parse subjectPublicKeyInfo: %w", err)
	}
	if len(rest) != 0 {
		return nil, errors.New("parse subjectPublicKeyInfo: trailing data")
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
}

// HumanDuration writes whole days as days, the unit people ask for
// certificates and CA lifetimes in, and anything else to the second. Every
// message about a lifetime, here and in pkg/ceremony, uses it.
func HumanDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		if d == day {
			return "1 day"
		}
		return fmt.Sprintf("%d days", d/day)
	}
	return d.Round(time.Second).String()
}

// stamp formats times in messages the way Kubernetes shows them.
func stamp(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}
