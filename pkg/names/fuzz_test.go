package names

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/url"
	"slices"
	"testing"
	"time"
	"unicode"
)

// FuzzCheck holds Check to its promise: whatever it accepts survives being
// signed by crypto/x509 and read back (the certificate carries the same
// names, and CheckCertificate accepts them again), and no accepted SAN
// holds a byte below 0x21 (no NUL, control byte or space for a C string or
// a log line to cut at), nor any subject value a control character.
// Seeds, the attack strings of issue 12 among them, are in
// testdata/fuzz/FuzzCheck and run with every go test.
func FuzzCheck(f *testing.F) {
	f.Add("web.team.svc", "web@team.example.com", "spiffe://cluster.local/ns/team/sa/web", "web.team.svc", "Team", []byte{10, 0, 0, 1}, []byte(nil))
	f.Fuzz(func(t *testing.T, dns, email, uri, cn, org string, ip, raw []byte) {
		tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}
		if org != "" {
			tmpl.Subject.Organization = []string{org}
		}
		if len(raw) > 0 {
			tmpl.RawSubject = raw
		}
		if dns != "" {
			tmpl.DNSNames = []string{dns}
		}
		if email != "" {
			tmpl.EmailAddresses = []string{email}
		}
		if uri != "" {
			u, err := url.Parse(uri)
			if err != nil {
				return
			}
			tmpl.URIs = []*url.URL{u}
		}
		if len(ip) > 0 {
			tmpl.IPAddresses = []net.IP{ip}
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key(t))
		if err != nil {
			return
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			return
		}
		if err := Check(csr); err != nil {
			if !errors.Is(err, ErrInvalidName) && !errors.Is(err, ErrMalformedSubject) {
				t.Fatalf("Check returned an unclassified error: %v", err)
			}
			return
		}

		for _, s := range sans(csr.DNSNames, csr.EmailAddresses, csr.URIs) {
			for i := 0; i < len(s); i++ {
				if s[i] < 0x21 || s[i] >= 0x7f {
					t.Fatalf("accepted SAN %q holds byte %#02x", s, s[i])
				}
			}
		}
		subject, err := SubjectOfRequest(csr)
		if err != nil {
			t.Fatalf("Check accepted a subject ParseSubject refuses: %v", err)
		}
		for _, a := range subject.Attributes() {
			for _, r := range a.String() {
				if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
					t.Fatalf("accepted subject value %q holds %U", a.String(), r)
				}
			}
		}

		// Sign as pkg/issuance does: the subject's bytes verbatim, the names
		// as crypto/x509 parsed them.
		certTmpl := &x509.Certificate{
			SerialNumber:   big.NewInt(1),
			RawSubject:     csr.RawSubject,
			NotBefore:      time.Unix(1_800_000_000, 0),
			NotAfter:       time.Unix(1_800_086_400, 0),
			DNSNames:       csr.DNSNames,
			EmailAddresses: csr.EmailAddresses,
			URIs:           csr.URIs,
			IPAddresses:    csr.IPAddresses,
		}
		certDER, err := x509.CreateCertificate(rand.Reader, certTmpl, certTmpl, &key(t).PublicKey, key(t))
		if err != nil {
			t.Fatalf("Check accepted names crypto/x509 cannot sign: %v", err)
		}
		cert, err := x509.ParseCertificate(certDER)
		if err != nil {
			t.Fatalf("Check accepted names whose certificate does not parse: %v", err)
		}
		if err := CheckCertificate(cert); err != nil {
			t.Fatalf("accepted in the CSR, refused in the certificate: %v", err)
		}
		switch {
		case !bytes.Equal(cert.RawSubject, csr.RawSubject):
			t.Fatalf("subject changed: %x became %x", csr.RawSubject, cert.RawSubject)
		case !slices.Equal(cert.DNSNames, csr.DNSNames):
			t.Fatalf("DNS names changed: %q became %q", csr.DNSNames, cert.DNSNames)
		case !slices.Equal(cert.EmailAddresses, csr.EmailAddresses):
			t.Fatalf("email addresses changed: %q became %q", csr.EmailAddresses, cert.EmailAddresses)
		case !slices.Equal(sans(nil, nil, cert.URIs), sans(nil, nil, csr.URIs)):
			t.Fatalf("URIs changed: %q became %q", sans(nil, nil, csr.URIs), sans(nil, nil, cert.URIs))
		case !slices.EqualFunc(cert.IPAddresses, csr.IPAddresses, net.IP.Equal):
			t.Fatalf("IP addresses changed: %v became %v", csr.IPAddresses, cert.IPAddresses)
		}
		after, err := SubjectOfCertificate(cert)
		if err != nil || after.String() != subject.String() {
			t.Fatalf("subject reads %q after signing, %q before (%v)", after, subject, err)
		}
	})
}

func sans(dns, emails []string, uris []*url.URL) []string {
	out := slices.Concat(dns, emails)
	for _, u := range uris {
		out = append(out, u.String())
	}
	return out
}
