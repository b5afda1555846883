package issuance

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"slices"
	"strings"

	"github.com/quill-pki/quill/pkg/keyusage"
)

// DefaultKeyUsage is what cert-manager asks for when a Certificate or
// CertificateRequest lists no usages: digital signature and key
// encipherment, with no extended key usage.
const DefaultKeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment

// allKeyUsages is every bit RFC 5280 defines.
const allKeyUsages = x509.KeyUsageDecipherOnly<<1 - 1

// extKeyUsages maps each extended key usage Go knows to its OID (RFC 5280,
// 4.2.1.12, and the vendor registrations) and to cert-manager's spelling.
var extKeyUsages = []struct {
	eku  x509.ExtKeyUsage
	oid  asn1.ObjectIdentifier
	name string
}{
	{x509.ExtKeyUsageAny, asn1.ObjectIdentifier{2, 5, 29, 37, 0}, "any"},
	{x509.ExtKeyUsageServerAuth, asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}, "server auth"},
	{x509.ExtKeyUsageClientAuth, asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}, "client auth"},
	{x509.ExtKeyUsageCodeSigning, asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 3}, "code signing"},
	{x509.ExtKeyUsageEmailProtection, asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 4}, "email protection"},
	{x509.ExtKeyUsageIPSECEndSystem, asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 5}, "ipsec end system"},
	{x509.ExtKeyUsageIPSECTunnel, asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 6}, "ipsec tunnel"},
	{x509.ExtKeyUsageIPSECUser, asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 7}, "ipsec user"},
	{x509.ExtKeyUsageTimeStamping, asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}, "timestamping"},
	{x509.ExtKeyUsageOCSPSigning, asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 9}, "ocsp signing"},
	{x509.ExtKeyUsageMicrosoftServerGatedCrypto, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 10, 3, 3}, "microsoft sgc"},
	{x509.ExtKeyUsageNetscapeServerGatedCrypto, asn1.ObjectIdentifier{2, 16, 840, 1, 113730, 4, 1}, "netscape sgc"},
	{x509.ExtKeyUsageMicrosoftCommercialCodeSigning, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 22}, "microsoft commercial code signing"},
	{x509.ExtKeyUsageMicrosoftKernelCodeSigning, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 61, 1, 1}, "microsoft kernel code signing"},
}

// keyUsageNames spells ku as users write it in spec.usages, so a refusal
// quotes what they wrote; pkg/keyusage holds the one table of names.
func keyUsageNames(ku x509.KeyUsage) []string { return keyusage.Names(ku) }

func extKeyUsageName(u x509.ExtKeyUsage) (string, bool) {
	for _, e := range extKeyUsages {
		if e.eku == u {
			return e.name, true
		}
	}
	return fmt.Sprintf("extended key usage %d", u), false
}

func extKeyUsageNames(us []x509.ExtKeyUsage) []string {
	names := make([]string, 0, len(us))
	for _, u := range us {
		n, _ := extKeyUsageName(u)
		names = append(names, n)
	}
	return names
}

func extKeyUsageFromOID(oid asn1.ObjectIdentifier) (x509.ExtKeyUsage, bool) {
	for _, e := range extKeyUsages {
		if e.oid.Equal(oid) {
			return e.eku, true
		}
	}
	return 0, false
}

// quote renders a usage list the way it would appear in spec.usages.
func quote(names []string) string {
	if len(names) == 0 {
		return "[]"
	}
	return "['" + strings.Join(names, "', '") + "']"
}

// sameUsageSet compares extended key usages as sets: their order in the
// extension carries no meaning.
func sameUsageSet(a, b []x509.ExtKeyUsage) bool {
	a, b = normalizeEKU(a), normalizeEKU(b)
	return slices.Equal(a, b)
}

func normalizeEKU(us []x509.ExtKeyUsage) []x509.ExtKeyUsage {
	out := slices.Clone(us)
	slices.Sort(out)
	return slices.Compact(out)
}

// resolvedUsages is what goes into the certificate.
type resolvedUsages struct {
	keyUsage    x509.KeyUsage
	extKeyUsage []x509.ExtKeyUsage
	notes       []string
}

// resolveUsages applies the request's usages, which are authoritative, after
// checking that the CSR's own extensions do not contradict them and that
// they make sense for the subject key. The checks follow cert-manager's
// pki.CertificateTemplateValidateAndOverrideKeyUsages and
// ...BasicConstraints, with two deliberate differences: each CSR extension
// is compared only when present (an absent keyUsage extension says
// nothing), and extended key usages compare as sets.
func resolveUsages(req Request, ext csrExtensions, alg KeyAlgorithm) (resolvedUsages, error) {
	ku := req.KeyUsage
	if req.IsCA {
		ku |= x509.KeyUsageCertSign
	}
	if ku&^allKeyUsages != 0 {
		return resolvedUsages{}, invalidf("key usage bits %#x are not defined by RFC 5280", uint(ku&^allKeyUsages))
	}
	for _, u := range req.ExtKeyUsage {
		if _, ok := extKeyUsageName(u); !ok {
			return resolvedUsages{}, invalidf("unknown extended key usage value %d", int(u))
		}
	}
	eku := normalizeEKU(req.ExtKeyUsage)

	if ext.keyUsage != nil && *ext.keyUsage != ku {
		return resolvedUsages{}, invalidf("the CSR encodes key usages %s but the request asks for %s; make spec.usages match the CSR or regenerate the CSR",
			quote(keyUsageNames(*ext.keyUsage)), quote(keyUsageNames(ku)))
	}
	if ext.hasExtKeyUsage {
		if len(ext.unknownExtKeyUsage) > 0 {
			return resolvedUsages{}, invalidf("the CSR asks for extended key usages %v that Quill cannot issue", ext.unknownExtKeyUsage)
		}
		if !sameUsageSet(ext.extKeyUsage, eku) {
			return resolvedUsages{}, invalidf("the CSR encodes extended key usages %s but the request asks for %s; make spec.usages match the CSR or regenerate the CSR",
				quote(extKeyUsageNames(normalizeEKU(ext.extKeyUsage))), quote(extKeyUsageNames(eku)))
		}
	}
	if bc := ext.basicConstraints; bc != nil {
		if bc.isCA != req.IsCA {
			return resolvedUsages{}, invalidf("the CSR encodes basicConstraints cA=%t but the request has isCA=%t", bc.isCA, req.IsCA)
		}
		if bc.maxPathLen != nil && req.MaxPathLen != nil && *bc.maxPathLen != *req.MaxPathLen {
			return resolvedUsages{}, invalidf("the CSR encodes pathLenConstraint %d but the request asks for %d", *bc.maxPathLen, *req.MaxPathLen)
		}
	}
	if !req.IsCA && ku&x509.KeyUsageCertSign != 0 {
		return resolvedUsages{}, invalidf("key usage 'cert sign' is only allowed with isCA: true")
	}
	if req.MaxPathLen != nil {
		switch {
		case !req.IsCA:
			return resolvedUsages{}, invalidf("a path length constraint is only allowed with isCA: true")
		case *req.MaxPathLen < 0:
			return resolvedUsages{}, invalidf("path length constraint %d is negative", *req.MaxPathLen)
		}
	}

	if req.IsCA {
		// A CA Quill certifies can sign its own CRLs: requesters such as
		// cert-manager ask for "cert sign" only, and a CA without cRLSign
		// could issue but never revoke. Added after the comparison with the
		// CSR, which encodes what the requester asked for.
		ku |= x509.KeyUsageCRLSign
	}
	out := resolvedUsages{keyUsage: ku, extKeyUsage: eku}
	if signatureOnly(alg) {
		if err := out.fitSignatureOnlyKey(req, alg); err != nil {
			return resolvedUsages{}, err
		}
	}
	return out, nil
}

// fitSignatureOnlyKey removes or refuses usages an Ed25519 or ML-DSA key
// cannot serve. Key encipherment is dropped, not refused, when the request
// carries exactly cert-manager's defaults: a user who listed no usages did
// not ask for it, and failing their Ed25519 certificate over it would punish
// them for cert-manager's choice. Asked for explicitly, it is refused.
func (u *resolvedUsages) fitSignatureOnlyKey(req Request, alg KeyAlgorithm) error {
	const impossible = x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment |
		x509.KeyUsageKeyAgreement | x509.KeyUsageEncipherOnly | x509.KeyUsageDecipherOnly
	bad := u.keyUsage & impossible
	if bad == 0 {
		return nil
	}
	defaults := u.keyUsage&^(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) == DefaultKeyUsage && len(u.extKeyUsage) == 0
	if bad == x509.KeyUsageKeyEncipherment && defaults {
		u.keyUsage &^= x509.KeyUsageKeyEncipherment
		u.notes = append(u.notes, fmt.Sprintf("key usage 'key encipherment' (part of cert-manager's default usages) was left out: %s keys can only sign", alg))
		return nil
	}
	return invalidf("key usages %s are not possible with %s keys, which can only sign; remove them from spec.usages",
		quote(keyUsageNames(bad)), alg)
}
