// Package crl builds the certificate revocation lists a Quill CA publishes.
//
// It is a pure function of its inputs: no clock, no API server, no storage.
// The caller (the leader's CRL publisher) hands it the CA, the CA's signer,
// the revoked certificates it knows and the CRL number and times to use, and
// gets DER back. Errors wrap exactly one of the sentinels below:
//
//   - ErrInvalidIssuer, ErrNotCA, ErrNoCRLSign, kms.ErrKeyMismatch: the CA cannot
//     sign CRLs as it stands; the issuer is at fault.
//   - ErrInvalidParams, ErrInvalidEntry: the caller passed something no CRL
//     can carry; a programming or data error, not worth retrying unchanged.
//   - any other error: the signer failed (an HSM that did not answer);
//     retry with backoff.
package crl

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/mldsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/quill-pki/quill/pkg/kms"
)

// Error sentinels; see the package documentation for what each asks of the
// caller.
var (
	// ErrInvalidIssuer marks a missing issuer certificate or key, or one
	// without the subject key identifier the CRL's authority key identifier
	// is made from.
	ErrInvalidIssuer = errors.New("invalid CRL issuer")
	// ErrNotCA marks an issuer certificate without basicConstraints cA=TRUE.
	ErrNotCA = errors.New("CRL issuer is not a CA")
	// ErrNoCRLSign marks an issuer certificate whose keyUsage lacks cRLSign.
	ErrNoCRLSign = errors.New("CRL issuer may not sign CRLs")
	// ErrInvalidParams marks Params no CRL can be built from: a missing or
	// negative CRL number, a zero thisUpdate, a non-positive validity, a
	// signature algorithm that does not fit the key.
	ErrInvalidParams = errors.New("invalid CRL parameters")
	// ErrInvalidEntry marks an entry no CRL may carry: no serial, a reason
	// code RFC 5280 does not allow in a full CRL, a serial listed twice.
	ErrInvalidEntry = errors.New("invalid CRL entry")
)

// Entry is one revoked certificate as the ledger knows it.
type Entry struct {
	// Serial is the certificate's serial number; required.
	Serial *big.Int
	// RevokedAt is when the revocation took effect (the CRL entry's
	// revocationDate).
	RevokedAt time.Time
	// Reason is the RFC 5280 CRLReason code: 0 unspecified (no reason
	// extension is written), 1 keyCompromise, 2 cACompromise,
	// 3 affiliationChanged, 4 superseded, 5 cessationOfOperation,
	// 6 certificateHold, 9 privilegeWithdrawn, 10 aACompromise. 7 is unused
	// and 8 (removeFromCRL) belongs to delta CRLs only; both are refused.
	Reason int
	// NotAfter is the certificate's notAfter. An entry whose certificate has
	// expired at the CRL's thisUpdate is left out (RFC 5280 §3.3 lets a CA
	// drop it, and a CRL that only grows gets too big to fetch). The zero
	// time means "not known" and keeps the entry.
	NotAfter time.Time
}

// Params are the per-CRL values the caller owns.
type Params struct {
	// Number is the CRL number extension: non-negative, at most 20 octets,
	// and strictly increasing from one CRL of an issuer to the next (the
	// caller keeps the counter).
	Number *big.Int
	// ThisUpdate is the CRL's thisUpdate; required.
	ThisUpdate time.Time
	// Validity is the distance from thisUpdate to nextUpdate; positive.
	Validity time.Duration
	// SignatureAlgorithm overrides the algorithm Go picks for the key (for
	// instance SHA256WithRSAPSS for a CA that signs with RSA-PSS). Zero keeps
	// Go's default for the key type.
	SignatureAlgorithm x509.SignatureAlgorithm
}

// Build signs a full CRL of the entries for issuer with key and returns its
// DER. Entries are written in the order given, minus those whose certificate
// had expired at p.ThisUpdate. entries is not modified.
func Build(issuer *x509.Certificate, key crypto.Signer, entries []Entry, p Params) ([]byte, error) {
	if err := checkIssuer(issuer, key); err != nil {
		return nil, err
	}
	if err := checkParams(key.Public(), p); err != nil {
		return nil, err
	}
	revoked, err := listEntries(entries, p.ThisUpdate)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.RevocationList{
		Number:                    p.Number,
		ThisUpdate:                p.ThisUpdate,
		NextUpdate:                p.ThisUpdate.Add(p.Validity),
		SignatureAlgorithm:        p.SignatureAlgorithm,
		RevokedCertificateEntries: revoked,
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer, key)
	if err != nil {
		// Everything x509 checks about its inputs was checked above, so what
		// is left is the signer itself failing.
		return nil, fmt.Errorf("sign CRL: %w", err)
	}
	return der, nil
}

func checkIssuer(issuer *x509.Certificate, key crypto.Signer) error {
	switch {
	case issuer == nil:
		return fmt.Errorf("%w: no issuer certificate", ErrInvalidIssuer)
	case key == nil:
		return fmt.Errorf("%w: no signer", ErrInvalidIssuer)
	case !issuer.BasicConstraintsValid || !issuer.IsCA:
		return fmt.Errorf("%w: %q has no basicConstraints cA=TRUE", ErrNotCA, issuer.Subject)
	case issuer.KeyUsage&x509.KeyUsageCRLSign == 0:
		return fmt.Errorf("%w: keyUsage of %q lacks cRLSign", ErrNoCRLSign, issuer.Subject)
	case len(issuer.SubjectKeyId) == 0:
		return fmt.Errorf("%w: %q has no subject key identifier for the CRL's authority key identifier", ErrInvalidIssuer, issuer.Subject)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(issuer.PublicKey) {
		return fmt.Errorf("CRL signer: %w: %q", kms.ErrKeyMismatch, issuer.Subject)
	}
	return nil
}

func checkParams(pub crypto.PublicKey, p Params) error {
	switch {
	case p.Number == nil:
		return fmt.Errorf("%w: no CRL number", ErrInvalidParams)
	case p.Number.Sign() < 0:
		return fmt.Errorf("%w: negative CRL number %s", ErrInvalidParams, p.Number)
	case len(p.Number.Bytes()) > 20:
		// RFC 5280 §5.2.3: conforming CRL users handle at most 20 octets.
		return fmt.Errorf("%w: CRL number %s is longer than 20 octets", ErrInvalidParams, p.Number)
	case p.ThisUpdate.IsZero():
		return fmt.Errorf("%w: no thisUpdate", ErrInvalidParams)
	case p.Validity <= 0:
		return fmt.Errorf("%w: validity %s is not positive", ErrInvalidParams, p.Validity)
	}
	if p.SignatureAlgorithm != x509.UnknownSignatureAlgorithm && !algorithmFits(pub, p.SignatureAlgorithm) {
		return fmt.Errorf("%w: signature algorithm %s does not fit a %T CA key", ErrInvalidParams, p.SignatureAlgorithm, pub)
	}
	return nil
}

// algorithmFits reports whether a key of pub can sign with alg. x509 would
// refuse a mismatch too, but only after building the whole list and with an
// unclassified error.
func algorithmFits(pub crypto.PublicKey, alg x509.SignatureAlgorithm) bool {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch alg {
		case x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA,
			x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS:
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512:
			return true
		}
	case ed25519.PublicKey:
		return alg == x509.PureEd25519
	case *mldsa.PublicKey:
		switch k.Parameters() {
		case mldsa.MLDSA44():
			return alg == x509.MLDSA44
		case mldsa.MLDSA65():
			return alg == x509.MLDSA65
		case mldsa.MLDSA87():
			return alg == x509.MLDSA87
		}
	}
	return false
}

// validReason reports whether a full CRL may carry reason code r (RFC 5280
// §5.3.1).
func validReason(r int) bool {
	return (r >= 0 && r <= 6) || r == 9 || r == 10
}

func listEntries(entries []Entry, thisUpdate time.Time) ([]x509.RevocationListEntry, error) {
	out := make([]x509.RevocationListEntry, 0, len(entries))
	// A serial listed twice makes the CRL ambiguous (two dates, maybe two
	// reasons); the ledger should never produce it, so it is refused rather
	// than silently merged.
	seen := make(map[string]struct{}, len(entries))
	for i, e := range entries {
		switch {
		case e.Serial == nil:
			return nil, fmt.Errorf("%w: entry %d has no serial", ErrInvalidEntry, i)
		case !validReason(e.Reason):
			return nil, fmt.Errorf("%w: serial %s has reason code %d; a full CRL allows 0-6, 9 and 10", ErrInvalidEntry, e.Serial.Text(16), e.Reason)
		case e.RevokedAt.IsZero():
			return nil, fmt.Errorf("%w: serial %s has no revocation time", ErrInvalidEntry, e.Serial.Text(16))
		}
		if !e.NotAfter.IsZero() && thisUpdate.After(e.NotAfter) {
			continue
		}
		key := string(serialKey(e.Serial))
		if _, dup := seen[key]; dup {
			return nil, fmt.Errorf("%w: serial %s is listed twice", ErrInvalidEntry, e.Serial.Text(16))
		}
		seen[key] = struct{}{}
		out = append(out, x509.RevocationListEntry{
			SerialNumber:   e.Serial,
			RevocationTime: e.RevokedAt,
			ReasonCode:     e.Reason, // x509 writes no extension for 0
		})
	}
	return out, nil
}

// serialKey distinguishes negative serials (which broken CAs have issued)
// from their absolute values.
func serialKey(s *big.Int) []byte {
	b := s.Bytes()
	if s.Sign() < 0 {
		return append([]byte{'-'}, b...)
	}
	return b
}
