package names

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// sanExtension encodes a subjectAltName as cert-manager does for its
// otherNames: each value a UTF8String (or the given tag) in a [0]
// constructed wrapper.
func sanExtension(t testing.TB, dns, emails []string, ips []net.IP, uris []*url.URL, others []OtherName, valueTag int) pkix.Extension {
	t.Helper()
	var gns []asn1.RawValue
	ctx := func(tag int, b []byte) {
		gns = append(gns, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, Bytes: b})
	}
	for _, d := range dns {
		ctx(2, []byte(d))
	}
	for _, e := range emails {
		ctx(1, []byte(e))
	}
	for _, ip := range ips {
		ctx(7, ip)
	}
	for _, u := range uris {
		ctx(6, []byte(u.String()))
	}
	for _, o := range others {
		oid, err := asn1.Marshal(o.TypeID)
		if err != nil {
			t.Fatal(err)
		}
		value, err := asn1.Marshal(asn1.RawValue{Tag: valueTag, Bytes: []byte(o.Value)})
		if err != nil {
			t.Fatal(err)
		}
		wrapped, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: value})
		if err != nil {
			t.Fatal(err)
		}
		gns = append(gns, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, wrapped...)})
	}
	der, err := asn1.Marshal(gns)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidExtSubjectAltName, Value: der}
}

func TestOtherNameSAN(t *testing.T) {
	t.Parallel()
	custom := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 7}
	tests := []struct {
		name    string
		in      OtherName
		wantErr string
	}{
		{name: "upn", in: OtherName{OIDUPN, "alice@team.example.com"}},
		{name: "upn-idna-domain", in: OtherName{OIDUPN, "alice@xn--bcher-kva.example"}},
		{name: "upn-unicode-user", in: OtherName{OIDUPN, "jürgen@corp.example"}},
		{name: "custom-type-free-text", in: OtherName{custom, "device-42"}},
		{name: "custom-type-at-sign", in: OtherName{custom, "a@b"}},
		{name: "empty", in: OtherName{custom, ""}, wantErr: "empty"},
		{name: "too-long", in: OtherName{custom, strings.Repeat("a", 257)}, wantErr: "257 octets"},
		{name: "invalid-utf8", in: OtherName{custom, "a\xffb"}, wantErr: "not valid UTF-8"},
		{name: "nul", in: OtherName{OIDUPN, "admin\x00@corp.example"}, wantErr: "NUL"},
		{name: "newline", in: OtherName{custom, "a\nb"}, wantErr: "control character"},
		{name: "bidi-override", in: OtherName{custom, "a\u202eb"}, wantErr: "format character"},
		{name: "space", in: OtherName{custom, "a b"}, wantErr: "space"},
		{name: "one-arc-oid", in: OtherName{asn1.ObjectIdentifier{1}, "x"}, wantErr: "two arcs"},
		{name: "first-arc-3", in: OtherName{asn1.ObjectIdentifier{3, 1}, "x"}, wantErr: "first arc"},
		{name: "second-arc-40", in: OtherName{asn1.ObjectIdentifier{1, 40}, "x"}, wantErr: "second arc"},
		{name: "upn-no-at", in: OtherName{OIDUPN, "alice"}, wantErr: "user@domain"},
		{name: "upn-two-at", in: OtherName{OIDUPN, "a@b@corp.example"}, wantErr: "more than one"},
		{name: "upn-empty-user", in: OtherName{OIDUPN, "@corp.example"}, wantErr: "user part is empty"},
		{name: "upn-bad-user-char", in: OtherName{OIDUPN, "a\\b@corp.example"}, wantErr: "Active Directory"},
		{name: "upn-bad-domain", in: OtherName{OIDUPN, "alice@corp_example.com"}, wantErr: "not a host name"},
		{name: "upn-trailing-dot-domain", in: OtherName{OIDUPN, "alice@corp.example."}, wantErr: "not a host name"},
		{name: "upn-wildcard-domain", in: OtherName{OIDUPN, "alice@*.corp.example"}, wantErr: "not a host name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := OtherNameSAN(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("OtherNameSAN(%v) = %v", tt.in, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("OtherNameSAN(%v) = %v; want an ErrInvalidName saying %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

func TestParseOID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     asn1.ObjectIdentifier
		wantErr  string
	}{
		{name: "upn", in: "1.3.6.1.4.1.311.20.2.3", want: OIDUPN},
		{name: "joint-iso", in: "2.999.1", want: asn1.ObjectIdentifier{2, 999, 1}},
		{name: "empty", in: "", wantErr: "empty"},
		{name: "one-arc", in: "1", wantErr: "two arcs"},
		{name: "leading-zero", in: "1.03", wantErr: "leading zero"},
		{name: "not-a-number", in: "1.a", wantErr: "not a decimal"},
		{name: "empty-arc", in: "1..2", wantErr: "not a decimal"},
		{name: "huge-arc", in: "1.2.1234567890", wantErr: "larger than"},
		{name: "first-arc-3", in: "3.1", wantErr: "first arc"},
		{name: "second-arc-40", in: "0.40", wantErr: "second arc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseOID(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseOID(%q) = %v, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) {
				t.Fatalf("ParseOID(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestOtherNamesOfRequest reads otherNames back from a CSR, in order, and
// refuses encodings Quill would not re-encode the same.
func TestOtherNamesOfRequest(t *testing.T) {
	t.Parallel()
	second := OtherName{asn1.ObjectIdentifier{1, 2, 3, 4}, "dev-1"}
	csr := csrOf(t, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{
		sanExtension(t, []string{"a.example.com"}, nil, nil, nil, []OtherName{{OIDUPN, "alice@example.com"}, second}, asn1.TagUTF8String),
	}})
	got, err := OtherNamesOfRequest(csr)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, []OtherName{{OIDUPN, "alice@example.com"}, second}, func(a, b OtherName) bool { return a.TypeID.Equal(b.TypeID) && a.Value == b.Value }) {
		t.Errorf("OtherNamesOfRequest = %v", got)
	}
	if !slices.Equal(csr.DNSNames, []string{"a.example.com"}) {
		t.Errorf("DNS names beside the otherNames read as %v", csr.DNSNames)
	}
	if err := Check(csr); err != nil {
		t.Errorf("Check refuses valid otherNames: %v", err)
	}

	bad := []struct {
		name    string
		ext     pkix.Extension
		wantErr string
	}{
		{name: "ia5string-value", ext: sanExtension(t, nil, nil, nil, nil, []OtherName{{OIDUPN, "alice@example.com"}}, asn1.TagIA5String), wantErr: "only UTF8String"},
		{name: "no-value", ext: pkix.Extension{Id: oidExtSubjectAltName, Value: mustDER(t, []asn1.RawValue{
			{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: mustDER(t, OIDUPN)},
		})}, wantErr: "[0] EXPLICIT"},
		{name: "not-a-sequence", ext: pkix.Extension{Id: oidExtSubjectAltName, Value: []byte{0x04, 0x00}}, wantErr: "not one DER SEQUENCE"},
		{name: "invalid-upn", ext: sanExtension(t, nil, nil, nil, nil, []OtherName{{OIDUPN, "alice"}}, asn1.TagUTF8String), wantErr: "user@domain"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			csr := &x509.CertificateRequest{Extensions: []pkix.Extension{tt.ext}}
			err := checkOtherNames(OtherNamesOfRequest(csr))
			if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v; want an ErrInvalidName saying %q", err, tt.wantErr)
			}
		})
	}
}

func mustDER(t testing.TB, v any) []byte {
	t.Helper()
	der, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
