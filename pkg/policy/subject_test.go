package policy

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"strings"
	"testing"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

var (
	oidO      = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidUID    = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}
	oidDC     = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
	oidStreet = asn1.ObjectIdentifier{2, 5, 4, 9}
	oidPostal = asn1.ObjectIdentifier{2, 5, 4, 17}
	oidSerial = asn1.ObjectIdentifier{2, 5, 4, 5}
)

// rdn is one relative distinguished name; several attributes make it
// multi-valued.
func rdn(kv ...any) pkix.RelativeDistinguishedNameSET {
	var out pkix.RelativeDistinguishedNameSET
	for i := 0; i < len(kv); i += 2 {
		out = append(out, pkix.AttributeTypeAndValue{Type: kv[i].(asn1.ObjectIdentifier), Value: kv[i+1]})
	}
	return out
}

// subject sets the CSR's subject to these RDNs, in encoding order, the way
// cert-manager's literalSubject or openssl req -multivalue-rdn do.
func subject(rdns ...pkix.RelativeDistinguishedNameSET) csrOpt {
	return func(c *x509.CertificateRequest, _ *string) {
		der, err := asn1.Marshal(pkix.RDNSequence(rdns))
		if err != nil {
			panic(err)
		}
		c.RawSubject = der
	}
}

func TestEvaluateSubjectNames(t *testing.T) {
	t.Parallel()
	p := &quillv1.RequestPolicy{
		DNSNames:       []string{"**.{namespace}.svc"},
		EmailAddresses: []string{"*@{namespace}.example.test"},
		CommonNames:    []string{"{namespace}-*"},
	}
	cnOID := asn1.ObjectIdentifier{2, 5, 4, 3}
	emailOID := asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
	tests := []struct {
		name     string
		policy   *quillv1.RequestPolicy
		req      func(t *testing.T) Request
		wantRule string // "" allows
		wantText string // what the denial must show
	}{
		{name: "own-names-allowed", policy: p, req: func(t *testing.T) Request {
			return leaf(t, dns("web.team-a.svc"), cn("team-a-app"))
		}},
		{name: "dns-nul-attack", policy: p, wantRule: RuleNameSyntax, wantText: `"kubernetes.default.svc\x00.team-a.svc"`, req: func(t *testing.T) Request {
			return leaf(t, dns("kubernetes.default.svc\x00.team-a.svc"))
		}},
		{name: "dns-slash-space-attack", policy: p, wantRule: RuleNameSyntax, wantText: "space", req: func(t *testing.T) Request {
			return leaf(t, dns("evil.example.com/ .team-a.svc"))
		}},
		{name: "dns-attack-without-policy", policy: nil, wantRule: RuleNameSyntax, wantText: "NUL", req: func(t *testing.T) Request {
			return leaf(t, dns("kubernetes.default.svc\x00.team-a.svc"))
		}},
		{name: "cn-nul-attack", policy: p, wantRule: RuleNameSyntax, req: func(t *testing.T) Request {
			return leaf(t, dns("web.team-a.svc"), cn("team-a-x\x00admin"))
		}},
		{name: "two-cns-admin-last", policy: p, wantRule: RuleCommonNames, wantText: `"admin"`, req: func(t *testing.T) Request {
			return leaf(t, dns("web.team-a.svc"), subject(rdn(cnOID, "team-a-app"), rdn(cnOID, "admin")))
		}},
		{name: "two-cns-admin-hidden-first", policy: p, wantRule: RuleCommonNames, wantText: `"CN=team-a-app,CN=admin"`, req: func(t *testing.T) Request {
			// pkix.Name.CommonName keeps the last CN, team-a-app: today's
			// check never saw admin.
			return leaf(t, dns("web.team-a.svc"), subject(rdn(cnOID, "admin"), rdn(cnOID, "team-a-app")))
		}},
		{name: "literal-subject", policy: p, wantRule: RuleCommonNames, wantText: `"CN=team-a-app,CN=admin"`, req: func(t *testing.T) Request {
			// cert-manager encodes literalSubject "CN=team-a-app,CN=admin"
			// right to left, as RFC 4514 reads: admin first.
			return leaf(t, subject(rdn(cnOID, "admin"), rdn(cnOID, "team-a-app")))
		}},
		{name: "multi-valued-rdn", policy: p, wantRule: RuleCommonNames, wantText: "CN=admin+O=Example", req: func(t *testing.T) Request {
			return leaf(t, dns("web.team-a.svc"), subject(rdn(oidO, "Example", cnOID, "admin"), rdn(cnOID, "team-a-app")))
		}},
		{name: "two-allowed-cns", policy: p, req: func(t *testing.T) Request {
			return leaf(t, dns("web.team-a.svc"), subject(rdn(cnOID, "web.team-a.svc"), rdn(cnOID, "team-a-app")))
		}},
		{name: "email-attribute-other-namespace", policy: p, wantRule: RuleEmails, wantText: `"admin@team-b.example.test"`, req: func(t *testing.T) Request {
			return leaf(t, dns("web.team-a.svc"), subject(rdn(emailOID, "admin@team-b.example.test"), rdn(cnOID, "team-a-app")))
		}},
		{name: "email-attribute-own-namespace", policy: p, req: func(t *testing.T) Request {
			return leaf(t, subject(rdn(emailOID, "ops@team-a.example.test"), rdn(cnOID, "team-a-app")))
		}},
		{name: "email-attribute-without-email-policy", policy: &quillv1.RequestPolicy{CommonNames: []string{"*"}}, wantRule: RuleEmails, req: func(t *testing.T) Request {
			return leaf(t, subject(rdn(emailOID, "ops@team-a.example.test")))
		}},
		{name: "unknown-attribute-uid", policy: p, wantRule: RuleSubjectAttributes, wantText: "UID", req: func(t *testing.T) Request {
			return leaf(t, subject(rdn(oidUID, "admin"), rdn(cnOID, "team-a-app")))
		}},
		{name: "unknown-attribute-dc", policy: p, wantRule: RuleSubjectAttributes, wantText: "DC", req: func(t *testing.T) Request {
			return leaf(t, subject(rdn(oidDC, "svc"), rdn(cnOID, "team-a-app")))
		}},
		{name: "unknown-attribute-oid", policy: p, wantRule: RuleSubjectAttributes, wantText: "1.3.6.1.4.1.99999.1", req: func(t *testing.T) Request {
			return leaf(t, subject(rdn(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, "x"), rdn(cnOID, "team-a-app")))
		}},
		{name: "cert-manager-subject-fields", policy: p, req: func(t *testing.T) Request {
			return leaf(t, subject(rdn(oidStreet, "1 Main St"), rdn(oidPostal, "12345"), rdn(oidSerial, "42"), rdn(oidO, "Example"), rdn(cnOID, "team-a-app")))
		}},
		{name: "no-policy-signs-any-subject", policy: nil, req: func(t *testing.T) Request {
			return leaf(t, subject(rdn(cnOID, "admin"), rdn(oidUID, "root")))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Evaluate(tt.policy, nil, tt.req(t))
			checkVerdict(t, err, tt.wantRule)
			if err != nil && !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("denial %q does not show %q", err, tt.wantText)
			}
		})
	}
}

func TestSubjectAttributeAllowList(t *testing.T) {
	t.Parallel()
	p := &quillv1.RequestPolicy{CommonNames: []string{"*"}}
	req := leaf(t, subject(rdn(oidUID, "alice"), rdn(oidDC, "example"), rdn(asn1.ObjectIdentifier{2, 5, 4, 3}, "alice")))
	tests := []struct {
		name        string
		allow       []string
		wantRule    string
		wantInvalid bool
	}{
		{name: "none-listed", wantRule: RuleSubjectAttributes},
		{name: "one-of-two-listed", allow: []string{"UID"}, wantRule: RuleSubjectAttributes},
		{name: "both-listed", allow: []string{"uid", "0.9.2342.19200300.100.1.25"}},
		{name: "cn-cannot-be-listed", allow: []string{"UID", "DC", "CN"}, wantInvalid: true},
		{name: "email-cannot-be-listed", allow: []string{"emailAddress"}, wantInvalid: true},
		{name: "unknown-name", allow: []string{"nickname"}, wantInvalid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := checkSubjectNames(p, req, tt.allow)
			if tt.wantInvalid {
				if !IsInvalidPolicy(err) {
					t.Fatalf("err = %v, want an invalid policy", err)
				}
				return
			}
			checkVerdict(t, err, tt.wantRule)
		})
	}
}

// TestAllowedSubjectAttributesField checks that Evaluate reads the
// allow-list from spec.policy.allowedSubjectAttributes, and that a listed
// common name makes the policy unusable rather than allowing every CN.
func TestAllowedSubjectAttributesField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		allow       []string
		wantRule    string
		wantInvalid bool
	}{
		{name: "unset-refuses-uid", wantRule: RuleSubjectAttributes},
		{name: "listed-uid-allowed", allow: []string{"UID"}},
		{name: "listed-cn-invalid", allow: []string{"cn"}, wantInvalid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := &quillv1.RequestPolicy{CommonNames: []string{"*"}, AllowedSubjectAttributes: tt.allow}
			req := leaf(t, subject(rdn(oidUID, "alice"), rdn(asn1.ObjectIdentifier{2, 5, 4, 3}, "alice")))
			_, err := Evaluate(p, nil, req)
			if tt.wantInvalid {
				if !IsInvalidPolicy(err) {
					t.Fatalf("err = %v, want an invalid policy", err)
				}
				return
			}
			checkVerdict(t, err, tt.wantRule)
		})
	}
}
