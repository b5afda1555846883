package issuance

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quill-pki/quill/pkg/names"
)

var upn = names.OtherName{TypeID: names.OIDUPN, Value: "alice@team.example.test"}

// csrSAN encodes a CSR's subjectAltName the way cert-manager does (struct
// marshalling through encoding/asn1), a different route from
// subjectAltName's, so that the tests compare two encoders.
func csrSAN(t testing.TB, dns []string, others []names.OtherName, otherTag int) pkix.Extension {
	t.Helper()
	type otherName struct {
		TypeID asn1.ObjectIdentifier
		Value  asn1.RawValue `asn1:"tag:0,explicit"`
	}
	var gns []asn1.RawValue
	for _, d := range dns {
		gns = append(gns, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte(d)})
	}
	for _, o := range others {
		value := mustMarshal(t, asn1.RawValue{Tag: otherTag, Bytes: []byte(o.Value)})
		der, err := asn1.MarshalWithParams(otherName{TypeID: o.TypeID, Value: asn1.RawValue{
			Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: value,
		}}, "tag:0")
		if err != nil {
			t.Fatal(err)
		}
		gns = append(gns, asn1.RawValue{FullBytes: der})
	}
	return pkix.Extension{Id: oidExtSubjectAltName, Value: mustMarshal(t, gns)}
}

func otherNameCSR(t testing.TB, dns []string, others ...names.OtherName) []byte {
	t.Helper()
	return newCSR(t, withDNS(dns...), withExtension(csrSAN(t, dns, others, asn1.TagUTF8String)))
}

// TestSignOtherNames signs otherNames policy allowed and checks that they
// read back, in order, beside the other names exactly as crypto/x509 would
// have encoded them.
func TestSignOtherNames(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	second := names.OtherName{TypeID: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Value: "Grüße-7"}
	dns := []string{"app.example.test", "b.example.test"}
	// A CSR with every kind of name: otherNames first, so that the
	// certificate's canonical order differs from the CSR's.
	u, _ := url.Parse("spiffe://cluster.local/ns/team/sa/app")
	gns := []asn1.RawValue{}
	for _, o := range []names.OtherName{upn, second} {
		body, err := otherNameBody(o)
		if err != nil {
			t.Fatal(err)
		}
		gns = append(gns, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: body})
	}
	gns = append(gns,
		asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(u.String())},
		asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 7, Bytes: net.ParseIP("10.0.0.1").To4()},
		asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, Bytes: []byte("alice@example.test")},
	)
	for _, d := range dns {
		gns = append(gns, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte(d)})
	}
	csrPEM := newCSR(t, withDNS(dns...), withExtension(pkix.Extension{Id: oidExtSubjectAltName, Value: mustMarshal(t, gns)}))

	issued := mustSign(t, ca, Request{CSR: csrPEM, KeyUsage: x509.KeyUsageDigitalSignature, OtherNames: []names.OtherName{upn, second}}, baseOptions())
	cert := issued.Certificate
	got, err := names.OtherNamesOfCertificate(cert)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, []names.OtherName{upn, second}, func(a, b names.OtherName) bool { return a.TypeID.Equal(b.TypeID) && a.Value == b.Value }) {
		t.Errorf("otherNames read back as %v", got)
	}
	if !slices.Equal(cert.DNSNames, dns) || len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.ParseIP("10.0.0.1")) ||
		len(cert.URIs) != 1 || cert.URIs[0].String() != u.String() || !slices.Equal(cert.EmailAddresses, []string{"alice@example.test"}) {
		t.Errorf("other names changed: %v %v %v %v", cert.DNSNames, cert.IPAddresses, cert.URIs, cert.EmailAddresses)
	}
	if err := names.CheckCertificate(cert); err != nil {
		t.Errorf("the signed certificate does not pass names.CheckCertificate: %v", err)
	}

	// Without otherNames crypto/x509 writes the extension; with them
	// Quill does, and everything but the otherNames must be byte for byte
	// what crypto/x509 writes.
	plain := mustSign(t, ca, Request{CSR: newCSR(t, withDNS(dns...), withIP("10.0.0.1"), withURI(u.String()), withEmail("alice@example.test")),
		KeyUsage: x509.KeyUsageDigitalSignature}, baseOptions()).Certificate
	want, err := subjectAltName(dns, []string{"alice@example.test"}, []net.IP{net.ParseIP("10.0.0.1")}, []*url.URL{u}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if ext := extension(plain, oidExtSubjectAltName); ext == nil || !bytes.Equal(ext.Value, want.Value) || ext.Critical {
		t.Errorf("subjectAltName without otherNames: crypto/x509 wrote %v, subjectAltName %x", ext, want.Value)
	}
	full := extension(cert, oidExtSubjectAltName)
	var fullSeq, wantSeq asn1.RawValue
	if full == nil || full.Critical {
		t.Fatalf("subjectAltName with otherNames: %v", full)
	}
	mustUnmarshal(t, full.Value, &fullSeq)
	mustUnmarshal(t, want.Value, &wantSeq)
	if !bytes.HasPrefix(fullSeq.Bytes, wantSeq.Bytes) {
		t.Errorf("subjectAltName with otherNames %x does not start with the names crypto/x509 writes %x", full.Value, want.Value)
	}
}

func extension(cert *x509.Certificate, oid asn1.ObjectIdentifier) *pkix.Extension {
	for _, e := range cert.Extensions {
		if e.Id.Equal(oid) {
			return &e
		}
	}
	return nil
}

// TestSignRefusesOtherNames checks the otherNames Sign refuses whoever
// calls it: any not passed in Request.OtherNames, values that are no
// UTF8String, invalid values, and an otherName as the only name.
func TestSignRefusesOtherNames(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	dns := []string{"app.example.test"}
	tests := []struct {
		name    string
		csr     func(t testing.TB) []byte
		allowed []names.OtherName
		wantMsg string
	}{
		{name: "not-allowed", csr: func(t testing.TB) []byte { return otherNameCSR(t, dns, upn) }, wantMsg: "issuance policy did not allow"},
		{name: "other-value-allowed", csr: func(t testing.TB) []byte { return otherNameCSR(t, dns, upn) },
			allowed: []names.OtherName{{TypeID: names.OIDUPN, Value: "bob@team.example.test"}}, wantMsg: "issuance policy did not allow"},
		{name: "ia5string-value", csr: func(t testing.TB) []byte {
			return newCSR(t, withDNS(dns...), withExtension(csrSAN(t, dns, []names.OtherName{upn}, asn1.TagIA5String)))
		}, allowed: []names.OtherName{upn}, wantMsg: "only UTF8String"},
		{name: "upn-without-domain", csr: func(t testing.TB) []byte {
			return otherNameCSR(t, dns, names.OtherName{TypeID: names.OIDUPN, Value: "alice"})
		}, allowed: []names.OtherName{{TypeID: names.OIDUPN, Value: "alice"}}, wantMsg: "user@domain"},
		{name: "nul-in-value", csr: func(t testing.TB) []byte {
			return otherNameCSR(t, dns, names.OtherName{TypeID: names.OIDUPN, Value: "alice@a.example\x00.test"})
		}, allowed: []names.OtherName{{TypeID: names.OIDUPN, Value: "alice@a.example\x00.test"}}, wantMsg: "NUL"},
		{name: "only-other-name-empty-subject", csr: func(t testing.TB) []byte {
			return newCSR(t, withEmptySubject(), withDNS(), withExtension(csrSAN(t, nil, []names.OtherName{upn}, asn1.TagUTF8String)))
		}, allowed: []names.OtherName{upn}, wantMsg: "empty subject and only otherName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			issued, err := ca.Sign(Request{CSR: tt.csr(t), KeyUsage: x509.KeyUsageDigitalSignature, OtherNames: tt.allowed}, baseOptions())
			if !errors.Is(err, ErrInvalidRequest) || issued != nil {
				t.Fatalf("Sign() = %v, %v; want ErrInvalidRequest", issued, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
		})
	}
}

// TestOpenSSLReadsOtherNames has OpenSSL 3.0 read a UPN Quill signed and
// verify the chain it sits in.
func TestOpenSSLReadsOtherNames(t *testing.T) {
	t.Parallel()
	bin := requireOpenSSL(t)
	ca := newCA(t)
	issued := mustSign(t, ca, Request{CSR: otherNameCSR(t, []string{"app.example.test"}, upn), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, OtherNames: []names.OtherName{upn}}, baseOptions())
	dir := t.TempDir()
	leaf := writeFile(t, dir, "leaf.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: issued.Certificate.Raw}))
	out := runOpenSSL(t, bin, "x509", "-noout", "-ext", "subjectAltName", "-in", leaf)
	for _, want := range []string{"DNS:app.example.test", "othername: UPN::alice@team.example.test"} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl prints\n%s\nwithout %q", out, want)
		}
	}
	root := writeFile(t, dir, "root.pem", issued.CAPEM)
	runOpenSSL(t, bin, "verify", "-x509_strict", "-attime", strconv.FormatInt(testNow.Add(time.Hour).Unix(), 10), "-CAfile", root, "-purpose", "sslclient", leaf)
}

func mustUnmarshal(t testing.TB, der []byte, v any) {
	t.Helper()
	if rest, err := asn1.Unmarshal(der, v); err != nil || len(rest) > 0 {
		t.Fatalf("unmarshal %x: %v (%d bytes left)", der, err, len(rest))
	}
}
