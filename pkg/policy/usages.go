package policy

import (
	"crypto/x509"
	"fmt"
	"strings"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// keyUsages and extKeyUsages map cert-manager's spelling of usages (the one
// templates are written in) to crypto/x509's values.
var keyUsages = []struct {
	name quillv1.KeyUsage
	bit  x509.KeyUsage
}{
	{"digital signature", x509.KeyUsageDigitalSignature},
	{"content commitment", x509.KeyUsageContentCommitment},
	{"key encipherment", x509.KeyUsageKeyEncipherment},
	{"data encipherment", x509.KeyUsageDataEncipherment},
	{"key agreement", x509.KeyUsageKeyAgreement},
	{"cert sign", x509.KeyUsageCertSign},
	{"crl sign", x509.KeyUsageCRLSign},
	{"encipher only", x509.KeyUsageEncipherOnly},
	{"decipher only", x509.KeyUsageDecipherOnly},
}

var extKeyUsages = []struct {
	name quillv1.KeyUsage
	eku  x509.ExtKeyUsage
}{
	{"any", x509.ExtKeyUsageAny},
	{"server auth", x509.ExtKeyUsageServerAuth},
	{"client auth", x509.ExtKeyUsageClientAuth},
	{"code signing", x509.ExtKeyUsageCodeSigning},
	{"email protection", x509.ExtKeyUsageEmailProtection},
	{"ipsec end system", x509.ExtKeyUsageIPSECEndSystem},
	{"ipsec tunnel", x509.ExtKeyUsageIPSECTunnel},
	{"ipsec user", x509.ExtKeyUsageIPSECUser},
	{"timestamping", x509.ExtKeyUsageTimeStamping},
	{"ocsp signing", x509.ExtKeyUsageOCSPSigning},
	{"microsoft sgc", x509.ExtKeyUsageMicrosoftServerGatedCrypto},
	{"netscape sgc", x509.ExtKeyUsageNetscapeServerGatedCrypto},
}

// templateUsages converts a template's usage names. Names of the wrong kind
// (an extended usage among keyUsages or the reverse) or unknown names make
// the template unusable.
func templateUsages(spec *quillv1.TemplateSpec) (x509.KeyUsage, []x509.ExtKeyUsage, error) {
	var ku x509.KeyUsage
	for _, n := range spec.KeyUsages {
		found := false
		for _, k := range keyUsages {
			if k.name == n {
				ku, found = ku|k.bit, true
			}
		}
		if !found {
			return 0, nil, fmt.Errorf("%w: %q is not a key usage (extended key usages go in extKeyUsages)", errInvalidPolicy, n)
		}
	}
	var ekus []x509.ExtKeyUsage
	for _, n := range spec.ExtKeyUsages {
		found := false
		for _, e := range extKeyUsages {
			if e.name == n {
				ekus, found = append(ekus, e.eku), true
			}
		}
		if !found {
			return 0, nil, fmt.Errorf("%w: %q is not an extended key usage", errInvalidPolicy, n)
		}
	}
	if spec.IsCA {
		ku |= x509.KeyUsageCertSign
	}
	return ku, ekus, nil
}

func keyUsageNames(ku x509.KeyUsage) string {
	var names []string
	for _, k := range keyUsages {
		if ku&k.bit != 0 {
			names = append(names, string(k.name))
		}
	}
	return quote(names)
}

func extKeyUsageNames(us []x509.ExtKeyUsage) string {
	var names []string
	for _, u := range us {
		name := fmt.Sprintf("extended key usage %d", u)
		for _, e := range extKeyUsages {
			if e.eku == u {
				name = string(e.name)
			}
		}
		names = append(names, name)
	}
	return quote(names)
}

// quote renders names the way they are written in spec.usages.
func quote(names []string) string {
	if len(names) == 0 {
		return "[]"
	}
	return "['" + strings.Join(names, "', '") + "']"
}
