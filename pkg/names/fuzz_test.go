package names

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
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
// a log line to cut at), nor any subject value or otherName value a
// control character (nor an otherName value a space). otherNames, which
// crypto/x509 cannot write, are encoded in the CSR as cert-manager does and
// copied into the certificate's subjectAltName; they must read back the
// same.
// Seeds, the attack strings of issue 12 among them, are in
// testdata/fuzz/FuzzCheck and run with every go test.
func FuzzCheck(f *testing.F) {
	f.Add("web.team.svc", "web@team.example.com", "spiffe://cluster.local/ns/team/sa/web", "web.team.svc", "Team", []byte{10, 0, 0, 1}, []byte(nil),
		"1.3.6.1.4.1.311.20.2.3", "web@team.example.com")
	f.Fuzz(func(t *testing.T, dns, email, uri, cn, org string, ip, raw []byte, otherType, otherValue string) {
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
		var others []OtherName
		if otherValue != "" {
			oid, err := ParseOID(otherType)
			if err != nil {
				oid = OIDUPN
			}
			others = []OtherName{{TypeID: oid, Value: otherValue}}
			// With a subjectAltName of its own in ExtraExtensions,
			// crypto/x509 writes none: every name goes in this one.
			tmpl.ExtraExtensions = []pkix.Extension{sanExtension(t, tmpl.DNSNames, tmpl.EmailAddresses, tmpl.IPAddresses, tmpl.URIs, others, asn1.TagUTF8String)}
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

		gotOthers, err := OtherNamesOfRequest(csr)
		if err != nil {
			t.Fatalf("Check accepted otherNames that do not read: %v", err)
		}
		for _, o := range gotOthers {
			for _, r := range o.Value {
				if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.IsSpace(r) {
					t.Fatalf("accepted otherName %q holds %U", o.Value, r)
				}
			}
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
		if len(others) > 0 {
			// pkg/issuance re-encodes the same names; copying the CSR's
			// extension carries the same content for this check.
			for _, e := range csr.Extensions {
				if e.Id.Equal(oidExtSubjectAltName) {
					certTmpl.ExtraExtensions = append(certTmpl.ExtraExtensions, e)
				}
			}
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
		certOthers, err := OtherNamesOfCertificate(cert)
		if err != nil || !slices.EqualFunc(certOthers, gotOthers, func(a, b OtherName) bool { return a.TypeID.Equal(b.TypeID) && a.Value == b.Value }) {
			t.Fatalf("otherNames read %v after signing, %v before (%v)", certOthers, gotOthers, err)
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
