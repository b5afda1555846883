package names

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/url"
)

// Check judges every name a CSR asks for: its DNS, IP, URI, email and
// otherName SANs, and every attribute of its subject (every common name,
// every emailAddress, every other value; see the package doc). It returns the
// first refusal, an *Error, or a ParseSubject error for a subject that
// does not read back. The controller calls it once, before policy and
// signing, on the CSR those will use.
func Check(csr *x509.CertificateRequest) error {
	if err := checkOtherNames(OtherNamesOfRequest(csr)); err != nil {
		return err
	}
	return check(csr.RawSubject, csr.Subject, csr.DNSNames, csr.IPAddresses, csr.URIs, csr.EmailAddresses)
}

// CheckCertificate is Check for a signed certificate, so that what was
// signed can be re-checked from the certificate alone.
func CheckCertificate(cert *x509.Certificate) error {
	if err := checkOtherNames(OtherNamesOfCertificate(cert)); err != nil {
		return err
	}
	return check(cert.RawSubject, cert.Subject, cert.DNSNames, cert.IPAddresses, cert.URIs, cert.EmailAddresses)
}

func checkOtherNames(others []OtherName, err error) error {
	if err != nil {
		return err
	}
	for _, o := range others {
		if err := OtherNameSAN(o); err != nil {
			return err
		}
	}
	return nil
}

func check(rawSubject []byte, subject pkix.Name, dns []string, ips []net.IP, uris []*url.URL, emails []string) error {
	for _, d := range dns {
		if err := DNSName(d); err != nil {
			return err
		}
	}
	for _, ip := range ips {
		if err := IP(ip); err != nil {
			return err
		}
	}
	for _, u := range uris {
		// crypto/x509 signs u.String(), so that is what is judged; URI
		// refuses any text net/url would read back differently.
		if err := URI(u.String()); err != nil {
			return err
		}
	}
	for _, e := range emails {
		if err := Email(e); err != nil {
			return err
		}
	}
	return checkSubject(rawSubject, subject)
}

func checkSubject(raw []byte, decoded pkix.Name) error {
	if len(raw) == 0 {
		return nil
	}
	s, err := ParseSubject(raw, decoded)
	if err != nil {
		return err
	}
	for _, a := range s.Attributes() {
		kind := KindSubjectValue + " " + AttributeName(a.Type)
		v, ok := a.Value.(string)
		if !ok || !isStringTag(a.Tag) {
			return invalid(kind, fmt.Sprintf("#%x", a.Raw), "its value is not a string")
		}
		switch {
		case a.Type.Equal(OIDCommonName):
			if err := CommonName(v); err != nil {
				return err
			}
		case a.Type.Equal(OIDEmailAddress):
			if r := valueReason(v); r != "" {
				return invalid(kind, v, "%s", r)
			}
			if err := Email(v); err != nil {
				return err
			}
		default:
			if r := valueReason(v); r != "" {
				return invalid(kind, v, "%s", r)
			}
		}
	}
	return nil
}
