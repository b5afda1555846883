package issuance

import (
	"bytes"
	"crypto/mldsa"
	"crypto/x509"
	"fmt"

	"github.com/cloudflare/circl/sign"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
)

// The self-check of a certificate signed by an ML-DSA CA.
//
// crypto/x509 verifies twice what Sign creates: CreateCertificate checks
// the signer's signature with crypto/mldsa, and the self-check's
// Certificate.Verify checks it again while building the chain. crypto/mldsa
// verification costs about ten times circl's (docs/benchmarks.md), which
// made the second check most of the cost of issuing from an ML-DSA CA. So
// for ML-DSA CAs the self-check verifies the signature with circl, against
// the issuing CA certificate's own key, and checks the rest of what
// Certificate.Verify would judge for this chain itself: issuer name,
// validity of every CA at the certificate's notBefore, and path lengths.
// Chains whose verdict depends on more than that — name constraints, policy
// constraints, critical extensions Go does not handle — still go through
// Certificate.Verify, whatever it costs, because only Go's verifier decides
// those the way Go clients will.

// circlScheme is circl's implementation of pub's parameter set.
func circlScheme(pub *mldsa.PublicKey) (sign.Scheme, bool) {
	switch pub.Parameters() {
	case mldsa.MLDSA44():
		return mldsa44.Scheme(), true
	case mldsa.MLDSA65():
		return mldsa65.Scheme(), true
	case mldsa.MLDSA87():
		return mldsa87.Scheme(), true
	}
	return nil, false
}

// circlPublicKey converts pub for circl. Unpacking expands the key's
// matrix, a good part of one verification, so callers keep the result.
func circlPublicKey(pub *mldsa.PublicKey) (sign.PublicKey, bool) {
	scheme, ok := circlScheme(pub)
	if !ok {
		return nil, false
	}
	pk, err := scheme.UnmarshalBinaryPublicKey(pub.Bytes())
	if err != nil {
		return nil, false
	}
	return pk, true
}

// needsGoVerifier reports whether Go's chain verification could refuse
// leaf under a's chain for a reason other than a signature, issuer name,
// validity or path length: those verifyMLDSA checks itself.
func (a *Authority) needsGoVerifier(leaf *x509.Certificate) bool {
	for _, c := range append(a.chain(), leaf) {
		if len(c.UnhandledCriticalExtensions) > 0 ||
			c.RequireExplicitPolicy > 0 || c.RequireExplicitPolicyZero ||
			len(c.PermittedDNSDomains)+len(c.ExcludedDNSDomains)+len(c.PermittedIPRanges)+len(c.ExcludedIPRanges)+
				len(c.PermittedEmailAddresses)+len(c.ExcludedEmailAddresses)+len(c.PermittedURIDomains)+len(c.ExcludedURIDomains) > 0 {
			return true
		}
	}
	return false
}

// verifyMLDSA is the self-check for an ML-DSA issuing CA whose chain needs
// nothing beyond what it checks (see needsGoVerifier); handled is false
// otherwise, and verify falls back to crypto/x509.
func (a *Authority) verifyMLDSA(cert *x509.Certificate) (handled bool, err error) {
	pub, ok := a.Certificate.PublicKey.(*mldsa.PublicKey)
	if !ok || a.needsGoVerifier(cert) {
		return false, nil
	}
	var pk sign.PublicKey
	// The circl engine keeps the key it derived from the seed, already
	// unpacked. Check compared the signer's key with the CA certificate's
	// at the start of this Sign; compare again here, so that the signature
	// is checked against the certificate's key whoever built the Authority.
	if s, ok := engineOf(a.Signer); ok && s.verifyKey != nil && pub.Equal(s.key.Public()) {
		pk = s.verifyKey
	} else if pk, ok = circlPublicKey(pub); !ok {
		return false, nil
	}
	scheme := pk.Scheme()
	wantAlg, err := signatureAlgorithmFor(pub, false)
	if err != nil {
		return false, nil
	}
	fail := func(format string, args ...any) (bool, error) {
		return true, fmt.Errorf("self-check: the signed certificate does not verify up to %q, so it was discarded: "+format, append([]any{a.Root.Subject}, args...)...)
	}
	if cert.SignatureAlgorithm != wantAlg {
		return fail("signature algorithm %s, but the CA key is %s", cert.SignatureAlgorithm, wantAlg)
	}
	if !bytes.Equal(cert.RawIssuer, a.Certificate.RawSubject) {
		return fail("its issuer %q is not the CA's subject %q", cert.Issuer, a.Certificate.Subject)
	}
	// Pure ML-DSA with the empty context, as RFC 9881 signs certificates.
	if !scheme.Verify(pk, cert.RawTBSCertificate, cert.Signature, nil) {
		return fail("the %s signature does not verify with the CA's key", scheme.Name())
	}
	// The links above the issuing CA were verified when the Authority was
	// loaded (NewAuthority); what Certificate.Verify judges beyond
	// signatures is checked here for this certificate: each CA valid at the
	// time it is given (the certificate's notBefore), a CA where a CA must
	// be, and path lengths counted in CA certificates below each one.
	chain := a.chain()
	for i, c := range chain {
		if cert.NotBefore.Before(c.NotBefore) || cert.NotBefore.After(c.NotAfter) {
			return fail("%q is not valid at the certificate's notBefore %s", c.Subject, stamp(cert.NotBefore))
		}
		isRoot := i == len(chain)-1
		if (c.Version == 3 && !c.BasicConstraintsValid) || (c.BasicConstraintsValid && !c.IsCA) || (!isRoot && !c.IsCA) {
			return fail("%q is not a CA", c.Subject)
		}
		if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
			return fail("%q may not sign certificates", c.Subject)
		}
		if c.BasicConstraintsValid && c.MaxPathLen >= 0 && i > c.MaxPathLen {
			return fail("%q allows %d CA certificates below it, and the chain has %d", c.Subject, c.MaxPathLen, i)
		}
	}
	return true, nil
}
