package issuance

import (
	"crypto/x509"
	"fmt"
	"math/big"
	"time"

	"github.com/quill-pki/quill/pkg/crl"
)

// CRLRequest is one full CRL to sign; the caller (the CRL publisher) owns
// the numbering, the times and the list of revoked certificates.
type CRLRequest struct {
	// Entries are the revoked certificates; see crl.Entry.
	Entries []crl.Entry
	// Number is the CRL number: non-negative, at most 20 octets, strictly
	// increasing from one CRL of this CA to the next.
	Number *big.Int
	// ThisUpdate is the CRL's thisUpdate; Validity the distance to its
	// nextUpdate.
	ThisUpdate time.Time
	Validity   time.Duration
	// RSAPSS makes an RSA CA sign with RSASSA-PSS, as Options.RSAPSS does
	// for certificates; it is ignored for other keys.
	RSAPSS bool
}

// SignCRL signs a full CRL of r.Entries with the CA key, with the signature
// algorithm Sign uses for certificates, and returns its DER after checking
// that the signature verifies with the CA certificate. pkg/crl builds the
// list; SignCRL is the only caller that hands it the CA key.
//
// Errors are pkg/crl's, unchanged: crl.ErrInvalidIssuer, crl.ErrNotCA,
// crl.ErrNoCRLSign or kms.ErrKeyMismatch when the CA cannot sign CRLs as it
// stands; crl.ErrInvalidParams or crl.ErrInvalidEntry for a request no CRL
// can carry. ErrMalformedCA marks a CA key with no signature algorithm;
// any other error (signer, self-check) is plain and worth retrying.
func (a *Authority) SignCRL(r CRLRequest) ([]byte, error) {
	if a == nil || a.Certificate == nil || a.Signer == nil {
		return nil, fmt.Errorf("%w: the authority needs a certificate and a signer", crl.ErrInvalidIssuer)
	}
	sigAlg, err := signatureAlgorithmFor(a.Certificate.PublicKey, r.RSAPSS)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedCA, err)
	}
	der, err := crl.Build(a.Certificate, a.Signer, r.Entries, crl.Params{
		Number:             r.Number,
		ThisUpdate:         r.ThisUpdate,
		Validity:           r.Validity,
		SignatureAlgorithm: sigAlg,
	})
	if err != nil {
		return nil, err
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("self-check: the signed CRL does not parse: %w", err)
	}
	if err := list.CheckSignatureFrom(a.Certificate); err != nil {
		return nil, fmt.Errorf("self-check: the signed CRL's signature does not verify with %q, so it was discarded: %w", a.Certificate.Subject, err)
	}
	return der, nil
}
