package issuance

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"slices"
	"time"
)

// oidNoRevAvail is id-ce-noRevAvail (RFC 9608, and X.509 before it).
var oidNoRevAvail = asn1.ObjectIdentifier{2, 5, 29, 56}

// noRevAvailExtension tells relying parties that the CA publishes no
// revocation information for the certificate (RFC 9608 §2: non-critical,
// its value is NULL).
var noRevAvailExtension = pkix.Extension{Id: oidNoRevAvail, Value: []byte{0x05, 0x00}}

// shortLived reports whether a certificate valid from notBefore to
// notAfter is signed as short-lived under o. CA certificates never are:
// RFC 9608 keeps noRevAvail to end-entity certificates, and a CA that
// cannot be revoked would take its whole subtree with it.
func (o Options) shortLived(isCA bool, notBefore, notAfter time.Time) bool {
	return !isCA && o.ShortLivedMaxDuration > 0 && notAfter.Sub(notBefore) <= o.ShortLivedMaxDuration
}

// markShortLived makes tmpl a short-lived certificate: noRevAvail, and no
// pointer to revocation information (CRL distribution points, the OCSP
// entry of the authority information access, Must-Staple, which would
// demand an OCSP response that does not exist). The CA Issuers URL stays:
// it is for building the chain, not for revocation.
func markShortLived(tmpl *x509.Certificate) {
	tmpl.CRLDistributionPoints = nil
	tmpl.OCSPServer = nil
	tmpl.ExtraExtensions = slices.DeleteFunc(tmpl.ExtraExtensions, func(e pkix.Extension) bool {
		return e.Id.Equal(mustStapleExtension.Id)
	})
	tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, noRevAvailExtension)
}

// HasNoRevAvail reports whether cert carries the noRevAvail extension
// (RFC 9608): its CA publishes no revocation information for it. The
// ledger records it so that the CRL, the OCSP responder and revocation
// leave such certificates alone.
func HasNoRevAvail(cert *x509.Certificate) bool {
	for _, e := range cert.Extensions {
		if e.Id.Equal(oidNoRevAvail) {
			return true
		}
	}
	return false
}
