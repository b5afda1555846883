package policy

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"strings"
	"testing"
	"time"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/names"
)

// otherNames adds a subjectAltName with the DNS names and the given
// otherNames (UTF8String values), encoded as cert-manager does.
func otherNames(dnsNames []string, others ...names.OtherName) csrOpt {
	return func(c *x509.CertificateRequest, _ *string) {
		var gns []asn1.RawValue
		for _, d := range dnsNames {
			gns = append(gns, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte(d)})
		}
		for _, o := range others {
			oid, _ := asn1.Marshal(o.TypeID)
			value, _ := asn1.MarshalWithParams(o.Value, "utf8")
			wrapped, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: value})
			gns = append(gns, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, wrapped...)})
		}
		der, _ := asn1.Marshal(gns)
		c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: der})
	}
}

func upnOf(v string) names.OtherName { return names.OtherName{TypeID: names.OIDUPN, Value: v} }

func TestEvaluateOtherNames(t *testing.T) {
	t.Parallel()
	device := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}
	allowUPN := &quillv1.RequestPolicy{
		DNSNames: []string{"*.{namespace}.svc"},
		AllowedOtherNames: []quillv1.OtherNamePolicy{
			{TypeID: "1.3.6.1.4.1.311.20.2.3", Values: []string{"*@{namespace}.example.com"}},
			{TypeID: "1.3.6.1.4.1.99999.1", Values: []string{"dev-*"}},
		},
	}
	dnsOnly := &quillv1.RequestPolicy{DNSNames: []string{"*.{namespace}.svc"}}
	svc := []string{"web.team-a.svc"}
	tests := []struct {
		name     string
		policy   *quillv1.RequestPolicy
		csr      []csrOpt
		wantRule string // "" allows
		wantMsg  string
		want     []names.OtherName
	}{
		{name: "upn-allowed", policy: allowUPN, csr: []csrOpt{otherNames(svc, upnOf("alice@team-a.example.com"))}, want: []names.OtherName{upnOf("alice@team-a.example.com")}},
		{name: "upn-case-ignored", policy: allowUPN, csr: []csrOpt{otherNames(svc, upnOf("Alice@TEAM-A.example.com"))}, want: []names.OtherName{upnOf("Alice@TEAM-A.example.com")}},
		{name: "two-types-allowed", policy: allowUPN, csr: []csrOpt{otherNames(svc, upnOf("a@team-a.example.com"), names.OtherName{TypeID: device, Value: "dev-7"})},
			want: []names.OtherName{upnOf("a@team-a.example.com"), {TypeID: device, Value: "dev-7"}}},
		{name: "no-other-names", policy: allowUPN, csr: []csrOpt{dns(svc...)}},
		{name: "upn-other-namespace", policy: allowUPN, csr: []csrOpt{otherNames(svc, upnOf("alice@team-b.example.com"))},
			wantRule: RuleOtherNames, wantMsg: `not allowed (allowed: ['*@team-a.example.com'])`},
		{name: "upn-star-does-not-cross-at", policy: allowUPN, csr: []csrOpt{otherNames(svc, upnOf("alice@evil.example@team-a.example.com"))},
			wantRule: RuleNameSyntax, wantMsg: "more than one"},
		{name: "upn-subdomain", policy: allowUPN, csr: []csrOpt{otherNames(svc, upnOf("alice@x.team-a.example.com"))}, wantRule: RuleOtherNames},
		{name: "type-not-listed", policy: allowUPN, csr: []csrOpt{otherNames(svc, names.OtherName{TypeID: asn1.ObjectIdentifier{1, 2, 3}, Value: "x"})},
			wantRule: RuleOtherNames, wantMsg: "otherName type 1.2.3 is not allowed"},
		{name: "policy-says-nothing", policy: dnsOnly, csr: []csrOpt{otherNames(svc, upnOf("alice@team-a.example.com"))},
			wantRule: RuleOtherNames, wantMsg: "allows no otherName type"},
		{name: "no-policy", csr: []csrOpt{otherNames(svc, upnOf("alice@team-a.example.com"))},
			wantRule: RuleOtherNames, wantMsg: "has no policy"},
		{name: "invalid-upn-refused-before-policy", policy: allowUPN, csr: []csrOpt{otherNames(svc, upnOf("alice@team-a.example.com\x00.evil"))},
			wantRule: RuleNameSyntax, wantMsg: "NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := leaf(t, tt.csr...)
			dec, err := Evaluate(tt.policy, nil, req)
			if tt.wantRule == "" {
				if err != nil {
					t.Fatalf("Evaluate = %v", err)
				}
				if len(dec.OtherNames) != len(tt.want) {
					t.Fatalf("decision otherNames %v, want %v", dec.OtherNames, tt.want)
				}
				for i := range tt.want {
					if !dec.OtherNames[i].TypeID.Equal(tt.want[i].TypeID) || dec.OtherNames[i].Value != tt.want[i].Value {
						t.Errorf("decision otherNames %v, want %v", dec.OtherNames, tt.want)
					}
				}
				return
			}
			var d *Denial
			if !errors.As(err, &d) || d.Rule != tt.wantRule || !strings.Contains(d.Reason, tt.wantMsg) {
				t.Fatalf("Evaluate = %v; want a denial by %s saying %q", err, tt.wantRule, tt.wantMsg)
			}
		})
	}
}

func TestValidateOtherNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		allowed []quillv1.OtherNamePolicy
		wantErr string
	}{
		{name: "valid", allowed: []quillv1.OtherNamePolicy{{TypeID: "1.3.6.1.4.1.311.20.2.3", Values: []string{"*@example.com"}}}},
		{name: "bad-oid", allowed: []quillv1.OtherNamePolicy{{TypeID: "5.1", Values: []string{"x"}}}, wantErr: "first arc"},
		{name: "listed-twice", allowed: []quillv1.OtherNamePolicy{{TypeID: "1.2.3", Values: []string{"a"}}, {TypeID: "1.2.3", Values: []string{"b"}}}, wantErr: "twice"},
		{name: "blank-pattern", allowed: []quillv1.OtherNamePolicy{{TypeID: "1.2.3", Values: []string{" "}}}, wantErr: "empty value pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Validate(&quillv1.RequestPolicy{AllowedOtherNames: tt.allowed})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !IsInvalidPolicy(err) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v; want an invalid policy saying %q", err, tt.wantErr)
			}
		})
	}
}

// TestEvaluateDefaultDuration is the mesh cookbook's rule: a request that
// asked for no duration is issued for the lowest maximum of policy and
// template instead of being refused for the issuer's longer default; one
// that asked explicitly is still refused.
func TestEvaluateDefaultDuration(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	p := &quillv1.RequestPolicy{DNSNames: []string{"*.{namespace}.svc"}, MaxDuration: dur(30 * day)}
	shortTemplate := &Template{Name: "short", Spec: quillv1.TemplateSpec{
		KeyUsages:    []quillv1.KeyUsage{"digital signature", "key encipherment"},
		ExtKeyUsages: []quillv1.KeyUsage{"server auth"},
		MaxDuration:  dur(7 * day),
	}}
	tests := []struct {
		name      string
		policy    *quillv1.RequestPolicy
		tmpl      *Template
		duration  time.Duration
		defaulted bool
		want      time.Duration // 0: the request's own
		wantRule  string
	}{
		{name: "default-lowered-to-policy-max", policy: p, duration: 90 * day, defaulted: true, want: 30 * day},
		{name: "default-within-max", policy: p, duration: 20 * day, defaulted: true},
		{name: "explicit-over-max-refused", policy: p, duration: 90 * day, wantRule: RuleMaxDuration},
		{name: "explicit-at-max", policy: p, duration: 30 * day},
		{name: "default-lowered-to-template-max", policy: p, tmpl: shortTemplate, duration: 90 * day, defaulted: true, want: 7 * day},
		{name: "default-lowered-by-template-without-policy", tmpl: shortTemplate, duration: 90 * day, defaulted: true, want: 7 * day},
		{name: "explicit-over-template-max-refused", tmpl: shortTemplate, duration: 8 * day, wantRule: RuleTemplateMaxDuration + " (short)"},
		{name: "lowered-below-min-refused", policy: &quillv1.RequestPolicy{DNSNames: []string{"*.{namespace}.svc"}, MinDuration: dur(10 * day)},
			tmpl: shortTemplate, duration: 90 * day, defaulted: true, wantRule: RuleMinDuration},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := leaf(t, dns("web.team-a.svc"))
			req.Duration, req.DurationDefaulted = tt.duration, tt.defaulted
			dec, err := Evaluate(tt.policy, tt.tmpl, req)
			if tt.wantRule != "" {
				var d *Denial
				if !errors.As(err, &d) || d.Rule != tt.wantRule {
					t.Fatalf("Evaluate = %v; want a denial by %s", err, tt.wantRule)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if dec.Duration != tt.want {
				t.Errorf("decision duration %s, want %s", dec.Duration, tt.want)
			}
			if tt.want > 0 && !strings.Contains(strings.Join(dec.Notes, ";"), "no duration was requested") {
				t.Errorf("no note says the duration was lowered: %q", dec.Notes)
			}
		})
	}
}
