package names

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
)

var (
	testKeyOnce sync.Once
	testKey     *ecdsa.PrivateKey
)

func key(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	testKeyOnce.Do(func() {
		var err error
		if testKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
	return testKey
}

// atv builds one attribute; a string value is encoded as UTF8String.
func atv(oid asn1.ObjectIdentifier, v any) pkix.AttributeTypeAndValue {
	return pkix.AttributeTypeAndValue{Type: oid, Value: v}
}

var (
	oidO   = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOU  = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidUID = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}
)

// rawSubject encodes RDNs in the order given.
func rawSubject(t testing.TB, rdns ...[]pkix.AttributeTypeAndValue) []byte {
	t.Helper()
	seq := pkix.RDNSequence{}
	for _, r := range rdns {
		seq = append(seq, pkix.RelativeDistinguishedNameSET(r))
	}
	der, err := asn1.Marshal(seq)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func csrOf(t testing.TB, tmpl *x509.CertificateRequest) *x509.CertificateRequest {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key(t))
	if err != nil {
		t.Fatalf("create CSR: %v", err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatalf("parse CSR: %v", err)
	}
	return csr
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestCheck(t *testing.T) {
	t.Parallel()
	cn := func(s string) []pkix.AttributeTypeAndValue {
		return []pkix.AttributeTypeAndValue{atv(OIDCommonName, s)}
	}
	for _, tc := range []struct {
		name   string
		csr    func(t *testing.T) *x509.CertificateRequest
		reason string // "" when accepted
	}{
		{name: "valid-names", csr: func(t *testing.T) *x509.CertificateRequest {
			return csrOf(t, &x509.CertificateRequest{
				Subject:        pkix.Name{CommonName: "web.team.svc", Organization: []string{"Team"}},
				DNSNames:       []string{"web.team.svc", "*.web.team.svc", "xn--bcher-kva.example"},
				IPAddresses:    []net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("2001:db8::1")},
				URIs:           []*url.URL{mustURL(t, "spiffe://cluster.local/ns/team/sa/web")},
				EmailAddresses: []string{"web@team.example.com"},
			})
		}},
		{name: "empty-subject", csr: func(t *testing.T) *x509.CertificateRequest {
			return csrOf(t, &x509.CertificateRequest{DNSNames: []string{"web.team.svc"}})
		}},
		{name: "dns-nul", reason: "NUL", csr: func(t *testing.T) *x509.CertificateRequest {
			return csrOf(t, &x509.CertificateRequest{DNSNames: []string{"kubernetes.default.svc\x00.team.svc"}})
		}},
		{name: "dns-slash-space", reason: "space", csr: func(t *testing.T) *x509.CertificateRequest {
			return csrOf(t, &x509.CertificateRequest{DNSNames: []string{"evil.example.com/ .team.svc"}})
		}},
		{name: "email-san-nul", reason: "NUL", csr: func(t *testing.T) *x509.CertificateRequest {
			return csrOf(t, &x509.CertificateRequest{EmailAddresses: []string{"a@team.svc\x00.other.svc"}})
		}},
		{name: "uri-userinfo", reason: "user information", csr: func(t *testing.T) *x509.CertificateRequest {
			return csrOf(t, &x509.CertificateRequest{URIs: []*url.URL{mustURL(t, "https://team.svc@evil.example.com/")}})
		}},
		{name: "cn-nul", reason: "NUL", csr: func(t *testing.T) *x509.CertificateRequest {
			return csrOf(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "kubernetes.default.svc\x00.team.svc"}})
		}},
		{name: "second-cn-invalid", reason: "\"/\"", csr: func(t *testing.T) *x509.CertificateRequest {
			// The first CN hides from pkix.Name.CommonName, which keeps the last.
			return csrOf(t, &x509.CertificateRequest{RawSubject: rawSubject(t, cn("evil.example.com/ .team.svc"), cn("team-app"))})
		}},
		{name: "two-valid-cns", csr: func(t *testing.T) *x509.CertificateRequest {
			// Syntax is fine; policy judges both (pkg/policy).
			return csrOf(t, &x509.CertificateRequest{RawSubject: rawSubject(t, cn("team-app"), cn("admin"))})
		}},
		{name: "multi-valued-rdn-invalid-cn", reason: "control character", csr: func(t *testing.T) *x509.CertificateRequest {
			return csrOf(t, &x509.CertificateRequest{RawSubject: rawSubject(t,
				[]pkix.AttributeTypeAndValue{atv(oidO, "Team"), atv(OIDCommonName, "admin\r\n")})})
		}},
		{name: "email-attribute-invalid", reason: "NUL", csr: func(t *testing.T) *x509.CertificateRequest {
			return csrOf(t, &x509.CertificateRequest{RawSubject: rawSubject(t,
				[]pkix.AttributeTypeAndValue{atv(OIDEmailAddress, "admin@other.svc\x00.team.svc")})})
		}},
		{name: "email-attribute-display-name", reason: "email address", csr: func(t *testing.T) *x509.CertificateRequest {
			return csrOf(t, &x509.CertificateRequest{RawSubject: rawSubject(t,
				[]pkix.AttributeTypeAndValue{atv(OIDEmailAddress, "Admin <admin@other.svc>")})})
		}},
		{name: "one-line-injection-in-o", reason: "subject attribute O", csr: func(t *testing.T) *x509.CertificateRequest {
			return csrOf(t, &x509.CertificateRequest{Subject: pkix.Name{Organization: []string{"Team/CN=admin"}}})
		}},
		{name: "non-string-value", reason: "not a string", csr: func(t *testing.T) *x509.CertificateRequest {
			return csrOf(t, &x509.CertificateRequest{RawSubject: rawSubject(t, []pkix.AttributeTypeAndValue{atv(oidUID, 42)})})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			csr := tc.csr(t)
			err := Check(csr)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			assertName(t, err, false, tc.reason)
		})
	}
}

func TestParseSubject(t *testing.T) {
	t.Parallel()
	cn := func(s string) []pkix.AttributeTypeAndValue {
		return []pkix.AttributeTypeAndValue{atv(OIDCommonName, s)}
	}
	for _, tc := range []struct {
		name string
		raw  func(t *testing.T) []byte
		want string // RFC 4514 rendering; "" for a refusal
	}{
		{name: "two-cns", want: "CN=admin,CN=team-app", raw: func(t *testing.T) []byte {
			return rawSubject(t, cn("team-app"), cn("admin"))
		}},
		// asn1.Marshal sorts a SET OF as DER requires: the shorter O first.
		{name: "multi-valued-rdn", want: "O=x+CN=admin,O=Team", raw: func(t *testing.T) []byte {
			return rawSubject(t, []pkix.AttributeTypeAndValue{atv(oidO, "Team")},
				[]pkix.AttributeTypeAndValue{atv(OIDCommonName, "admin"), atv(oidO, "x")})
		}},
		{name: "email-attribute", want: "CN=team-app,emailAddress=admin@other.svc", raw: func(t *testing.T) []byte {
			return rawSubject(t, []pkix.AttributeTypeAndValue{atv(OIDEmailAddress, "admin@other.svc")}, cn("team-app"))
		}},
		{name: "escapes", want: `CN=\#a\,b\+c\"d\\e\<f\>g\;h\=i\00j\E2\80\AEk\ ,OU=\ x`, raw: func(t *testing.T) []byte {
			return rawSubject(t, []pkix.AttributeTypeAndValue{atv(oidOU, " x")},
				cn("#a,b+c\"d\\e<f>g;h=i\x00j\u202ek "))
		}},
		{name: "non-ascii-kept", want: "O=Zürich", raw: func(t *testing.T) []byte {
			return rawSubject(t, []pkix.AttributeTypeAndValue{atv(oidO, "Zürich")})
		}},
		{name: "dotted-oid-as-hex", want: "1.3.6.1.4.1.99999.1=#130178,UID=#02012a", raw: func(t *testing.T) []byte {
			return rawSubject(t, []pkix.AttributeTypeAndValue{atv(oidUID, 42)},
				[]pkix.AttributeTypeAndValue{atv(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, "x")})
		}},
		{name: "empty", want: "", raw: func(t *testing.T) []byte { return rawSubject(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			csr := csrOf(t, &x509.CertificateRequest{RawSubject: tc.raw(t)})
			s, err := SubjectOfRequest(csr)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			if got := DescribeSubject(csr.RawSubject, csr.Subject); got != tc.want {
				t.Errorf("DescribeSubject = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseSubjectRefuses(t *testing.T) {
	t.Parallel()
	cnATV := []byte{0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x03, 'a', 'b', 'c'}
	wrap := func(tag byte, b ...byte) []byte { return append([]byte{tag, byte(len(b))}, b...) }
	for _, tc := range []struct {
		name   string
		raw    []byte
		reason string
	}{
		{name: "empty-rdn", raw: wrap(0x30, append(wrap(0x31), wrap(0x31, cnATV...)...)...), reason: "RDN 1 is empty"},
		{name: "trailing-bytes-in-attribute", raw: wrap(0x30, wrap(0x31, wrap(0x30, append(cnATV[2:], 0x05, 0x00)...)...)...), reason: "malformed attribute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			csr := csrOf(t, &x509.CertificateRequest{RawSubject: tc.raw})
			_, err := SubjectOfRequest(csr)
			if !errors.Is(err, ErrMalformedSubject) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err = %v, want ErrMalformedSubject mentioning %q", err, tc.reason)
			}
			if err := Check(csr); !errors.Is(err, ErrMalformedSubject) {
				t.Errorf("Check = %v, want ErrMalformedSubject", err)
			}
			if got := DescribeSubject(csr.RawSubject, csr.Subject); !strings.HasPrefix(got, "#30") {
				t.Errorf("DescribeSubject = %q, want the DER in hex", got)
			}
		})
	}
}

func TestParseAttributeType(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     string // dotted OID; "" for a refusal
	}{
		{name: "short-name", in: "UID", want: "0.9.2342.19200300.100.1.1"},
		{name: "any-case", in: "dc", want: "0.9.2342.19200300.100.1.25"},
		{name: "descriptor", in: "emailAddress", want: "1.2.840.113549.1.9.1"},
		{name: "alias", in: "givenName", want: "2.5.4.42"},
		{name: "dotted", in: "1.3.6.1.4.1.99999.1", want: "1.3.6.1.4.1.99999.1"},
		{name: "unknown-name", in: "nickname"},
		{name: "leading-zero", in: "1.03.4"},
		{name: "bad-first-arc", in: "3.1"},
		{name: "bad-second-arc", in: "1.40"},
		{name: "empty-arc", in: "1..2"},
		{name: "negative", in: "1.-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			oid, err := ParseAttributeType(tc.in)
			switch {
			case tc.want == "" && err == nil:
				t.Fatalf("accepted as %s", oid)
			case tc.want != "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && oid.String() != tc.want:
				t.Errorf("= %s, want %s", oid, tc.want)
			}
		})
	}
}
