// Package keyusage holds the one table of key usages a certificate may
// carry for its subject key's type, and applies it to every certificate
// Quill signs, CA or not.
//
// The table, by key type:
//
//   - RSA (RFC 3279, 2.3.1; RFC 4055, 1.2): digitalSignature,
//     contentCommitment, keyEncipherment, dataEncipherment. An RSA key does
//     not agree keys: no keyAgreement, encipherOnly or decipherOnly.
//   - ECDSA, id-ecPublicKey (RFC 5480, section 3): digitalSignature,
//     contentCommitment, keyAgreement, and encipherOnly or decipherOnly
//     (one of them, and only with keyAgreement). Never keyEncipherment or
//     dataEncipherment: an EC key transports no keys.
//   - Ed25519 (RFC 8410, section 5) and ML-DSA (RFC 9881, section 5): the
//     signature usages only, digitalSignature and contentCommitment.
//   - A CA certificate, whatever its key: digitalSignature, keyCertSign and
//     cRLSign, and keyCertSign and cRLSign are always added. A CA key signs
//     certificates, CRLs and OCSP answers and nothing else (RFC 5480 asks
//     this of EC CAs; Quill asks it of all). keyCertSign and cRLSign are
//     for CA certificates only (RFC 5280, 4.2.1.3).
//
// It is pure: no API server, no clock.
//
// # Error contract
//
// Fit and Check return errors wrapping ErrUnsupportedKey for a key type
// outside the table, ErrUndefinedUsage for bits RFC 5280 does not define,
// ErrNoUsage when Fit would leave a certificate that asked for usages with
// none, and ErrNotAllowed when Check finds a usage the table refuses. All
// are final for the request: it must change.
package keyusage

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/mldsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrUnsupportedKey: the key's type is not in the table.
	ErrUnsupportedKey = errors.New("unsupported key type")
	// ErrUndefinedUsage: bits beyond decipherOnly, which RFC 5280 does not define.
	ErrUndefinedUsage = errors.New("key usage bits not defined by RFC 5280")
	// ErrNoUsage: every usage requested was refused for this key type.
	ErrNoUsage = errors.New("no requested key usage is possible")
	// ErrNotAllowed: a certificate carries a usage the table refuses.
	ErrNotAllowed = errors.New("key usage not allowed")
)

// KeyType is a row of the table.
type KeyType string

// The rows.
const (
	RSA     KeyType = "RSA"
	ECDSA   KeyType = "ECDSA"
	Ed25519 KeyType = "Ed25519"
	MLDSA   KeyType = "ML-DSA"
)

// all is every bit RFC 5280 defines.
const all = x509.KeyUsageDecipherOnly<<1 - 1

const (
	signing = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
	caOnly  = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	// caRow is what a CA certificate may carry, whatever its key.
	caRow = x509.KeyUsageDigitalSignature | caOnly
	// agreementOnly bits mean nothing without keyAgreement (RFC 5280, 4.2.1.3).
	agreementOnly = x509.KeyUsageEncipherOnly | x509.KeyUsageDecipherOnly
)

// rows are the leaf (non-CA) rows, with the RFC that sets them.
var rows = map[KeyType]struct {
	allowed x509.KeyUsage
	rfc     string
}{
	RSA:     {signing | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment, "RFC 3279"},
	ECDSA:   {signing | x509.KeyUsageKeyAgreement | agreementOnly, "RFC 5480"},
	Ed25519: {signing, "RFC 8410"},
	MLDSA:   {signing, "RFC 9881"},
}

// TypeOf names the row of pub, the way crypto/x509 parses subject keys.
func TypeOf(pub crypto.PublicKey) (KeyType, error) {
	switch pub.(type) {
	case *rsa.PublicKey:
		return RSA, nil
	case *ecdsa.PublicKey:
		return ECDSA, nil
	case ed25519.PublicKey:
		return Ed25519, nil
	case *mldsa.PublicKey:
		return MLDSA, nil
	}
	return "", fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
}

// Allowed is the table's row for t: every usage a certificate for such a
// key may carry, as a CA certificate or not. It is 0 for an unknown t.
func Allowed(t KeyType, isCA bool) x509.KeyUsage {
	row, ok := rows[t]
	switch {
	case !ok:
		return 0
	case isCA:
		return caRow
	}
	return row.allowed
}

// Result is what Fit decided.
type Result struct {
	// Usage is what to encode in the certificate.
	Usage x509.KeyUsage
	// Added are the usages a CA certificate gets without asking
	// (keyCertSign, cRLSign): cert-manager asks for "cert sign" only, and a
	// CA that cannot sign CRLs can issue but never revoke.
	Added x509.KeyUsage
	// Dropped are the requested usages the table refuses. A caller that
	// must refuse an explicit request rather than trim it checks this.
	Dropped x509.KeyUsage
	// Notes say, one per dropped usage, what was left out and why, for
	// the IssuanceAdjusted event.
	Notes []string
}

// Fit applies the table to the usages requested for a certificate of pub:
// it keeps what the row allows, adds keyCertSign and cRLSign to a CA, and
// drops the rest with a note each. It returns ErrNoUsage when usages were
// requested and none is left (a requested 0 stays 0, which encodes no
// keyUsage extension, as before), ErrUndefinedUsage for bits RFC 5280
// does not define, and ErrUnsupportedKey for a key outside the table.
func Fit(pub crypto.PublicKey, requested x509.KeyUsage, isCA bool) (Result, error) {
	t, err := TypeOf(pub)
	if err != nil {
		return Result{}, err
	}
	if extra := requested &^ all; extra != 0 {
		return Result{}, fmt.Errorf("%w: %#x", ErrUndefinedUsage, uint(extra))
	}
	allowed := Allowed(t, isCA)
	var res Result
	keep := requested & allowed
	res.Dropped = requested &^ allowed
	if keep&agreementOnly == agreementOnly {
		// encipherOnly and decipherOnly restrict key agreement in opposite
		// ways; together they say nothing a verifier can honour.
		keep &^= agreementOnly
		res.Dropped |= agreementOnly
	}
	if keep&x509.KeyUsageKeyAgreement == 0 && keep&agreementOnly != 0 {
		res.Dropped |= keep & agreementOnly
		keep &^= agreementOnly
	}
	if isCA {
		res.Added = caOnly &^ keep
		keep |= caOnly
	}
	res.Usage = keep
	for _, b := range bits {
		if res.Dropped&b.bit != 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("key usage '%s' was left out: %s", b.name, why(t, isCA, b.bit, requested)))
		}
	}
	if requested != 0 && res.Usage == 0 {
		return Result{}, fmt.Errorf("%w: %s keys cannot use %s (%s); ask for %s", ErrNoUsage, t, quote(Names(requested)),
			strings.Join(res.Notes, "; "), quote(Names(Allowed(t, isCA))))
	}
	return res, nil
}

// why explains one dropped bit.
func why(t KeyType, isCA bool, bit, requested x509.KeyUsage) string {
	switch {
	case bit&caOnly != 0:
		return "only a CA certificate may carry it (RFC 5280, 4.2.1.3)"
	case isCA && rows[t].allowed&bit != 0:
		return "a CA key only signs certificates, CRLs and OCSP responses"
	case bit&agreementOnly != 0 && requested&agreementOnly == agreementOnly && rows[t].allowed&bit != 0:
		return "encipher only and decipher only contradict each other"
	case bit&agreementOnly != 0 && rows[t].allowed&bit != 0:
		return "it means nothing without key agreement (RFC 5280, 4.2.1.3)"
	}
	return fmt.Sprintf("%s does not allow it for %s keys", rows[t].rfc, t)
}

// Check re-checks a certificate's usages against the table, from the
// certificate alone: every bit allowed for its key and CA flag, a CA with
// keyCertSign, encipherOnly or decipherOnly only with keyAgreement. A
// certificate without a keyUsage extension (0) passes.
func Check(pub crypto.PublicKey, ku x509.KeyUsage, isCA bool) error {
	t, err := TypeOf(pub)
	if err != nil {
		return err
	}
	if extra := ku &^ all; extra != 0 {
		return fmt.Errorf("%w: %#x", ErrUndefinedUsage, uint(extra))
	}
	if ku == 0 {
		return nil
	}
	ca := "not a CA"
	if isCA {
		ca = "a CA"
	}
	switch {
	case ku&^Allowed(t, isCA) != 0:
		return fmt.Errorf("%w: %s for a %s key in a certificate that is %s", ErrNotAllowed, quote(Names(ku&^Allowed(t, isCA))), t, ca)
	case isCA && ku&x509.KeyUsageCertSign == 0:
		return fmt.Errorf("%w: a CA certificate without 'cert sign'", ErrNotAllowed)
	case ku&agreementOnly == agreementOnly:
		return fmt.Errorf("%w: both 'encipher only' and 'decipher only'", ErrNotAllowed)
	case ku&agreementOnly != 0 && ku&x509.KeyUsageKeyAgreement == 0:
		return fmt.Errorf("%w: %s without 'key agreement'", ErrNotAllowed, quote(Names(ku&agreementOnly)))
	}
	return nil
}

// bits names the keyUsage bits in cert-manager's spelling, as users write
// them in spec.usages.
var bits = []struct {
	bit  x509.KeyUsage
	name string
}{
	{x509.KeyUsageDigitalSignature, "digital signature"},
	{x509.KeyUsageContentCommitment, "content commitment"},
	{x509.KeyUsageKeyEncipherment, "key encipherment"},
	{x509.KeyUsageDataEncipherment, "data encipherment"},
	{x509.KeyUsageKeyAgreement, "key agreement"},
	{x509.KeyUsageCertSign, "cert sign"},
	{x509.KeyUsageCRLSign, "crl sign"},
	{x509.KeyUsageEncipherOnly, "encipher only"},
	{x509.KeyUsageDecipherOnly, "decipher only"},
}

// Names lists the usages in ku in cert-manager's spelling, in bit order.
func Names(ku x509.KeyUsage) []string {
	out := []string{}
	for _, b := range bits {
		if ku&b.bit != 0 {
			out = append(out, b.name)
		}
	}
	return out
}

func quote(names []string) string {
	if len(names) == 0 {
		return "[]"
	}
	return "['" + strings.Join(names, "', '") + "']"
}
