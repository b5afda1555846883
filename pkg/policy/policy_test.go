package policy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

var (
	keyOnce sync.Once
	keys    map[string]crypto.Signer
)

// testKeys generates each key type once; RSA dominates otherwise.
func testKeys(t *testing.T) map[string]crypto.Signer {
	t.Helper()
	keyOnce.Do(func() {
		keys = map[string]crypto.Signer{}
		p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		_, ed, _ := ed25519.GenerateKey(rand.Reader)
		r2048, _ := rsa.GenerateKey(rand.Reader, 2048)
		keys["p256"], keys["p384"], keys["ed25519"], keys["rsa2048"] = p256, p384, ed, r2048
	})
	return keys
}

type csrOpt func(*x509.CertificateRequest, *string)

func cn(s string) csrOpt {
	return func(c *x509.CertificateRequest, _ *string) { c.Subject.CommonName = s }
}
func dns(s ...string) csrOpt { return func(c *x509.CertificateRequest, _ *string) { c.DNSNames = s } }
func email(s ...string) csrOpt {
	return func(c *x509.CertificateRequest, _ *string) { c.EmailAddresses = s }
}
func org(s ...string) csrOpt {
	return func(c *x509.CertificateRequest, _ *string) { c.Subject.Organization = s }
}
func key(name string) csrOpt { return func(_ *x509.CertificateRequest, k *string) { *k = name } }
func ips(s ...string) csrOpt {
	return func(c *x509.CertificateRequest, _ *string) {
		for _, ip := range s {
			c.IPAddresses = append(c.IPAddresses, net.ParseIP(ip))
		}
	}
}
func uris(s ...string) csrOpt {
	return func(c *x509.CertificateRequest, _ *string) {
		for _, u := range s {
			parsed, _ := url.Parse(u)
			c.URIs = append(c.URIs, parsed)
		}
	}
}

// newCSR signs a CSR and parses it back, as the controller would see it.
func newCSR(t *testing.T, opts ...csrOpt) *x509.CertificateRequest {
	t.Helper()
	tmpl := &x509.CertificateRequest{}
	k := "p256"
	for _, o := range opts {
		o(tmpl, &k)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, testKeys(t)[k])
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func leaf(t *testing.T, opts ...csrOpt) Request {
	return Request{
		CSR: newCSR(t, opts...), Namespace: "team-a", Duration: 24 * time.Hour,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
}

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func TestEvaluatePolicy(t *testing.T) {
	t.Parallel()
	meshPolicy := &quillv1.RequestPolicy{
		DNSNames:       []string{"*.{namespace}.svc", "*.{namespace}.svc.cluster.local", "**.apps.example.test"},
		IPRanges:       []string{"10.0.0.0/8", "fd00::/8"},
		URIs:           []string{"spiffe://cluster.local/ns/{namespace}/sa/*"},
		EmailAddresses: []string{"*@{namespace}.example.test"},
		CommonNames:    []string{"partner-*"},
		Namespaces:     []string{"team-*"},
		MinDuration:    dur(time.Hour),
		MaxDuration:    dur(30 * 24 * time.Hour),
		KeyAlgorithms:  []quillv1.PolicyKeyAlgorithm{"ECDSA", "RSA"},
		MinRSAKeySize:  3072,
		Subject:        &quillv1.FixedSubject{Organizations: []string{"Example"}},
	}
	withOrg := org("Example")
	tests := []struct {
		name     string
		req      func(t *testing.T) Request
		wantRule string // "" allows
	}{
		{name: "namespace-dns-allowed", req: func(t *testing.T) Request { return leaf(t, withOrg, cn("web.team-a.svc"), dns("web.team-a.svc")) }},
		{name: "other-namespace-dns-refused", req: func(t *testing.T) Request { return leaf(t, withOrg, dns("web.team-b.svc")) }, wantRule: RuleDNSNames},
		{name: "star-is-one-label", req: func(t *testing.T) Request { return leaf(t, withOrg, dns("a.web.team-a.svc")) }, wantRule: RuleDNSNames},
		{name: "wildcard-request-allowed-by-star", req: func(t *testing.T) Request { return leaf(t, withOrg, dns("*.team-a.svc")) }},
		{name: "double-star-many-labels", req: func(t *testing.T) Request { return leaf(t, withOrg, dns("a.b.apps.example.test")) }},
		{name: "double-star-needs-a-label", req: func(t *testing.T) Request { return leaf(t, withOrg, dns("apps.example.test")) }, wantRule: RuleDNSNames},
		{name: "dns-case-insensitive", req: func(t *testing.T) Request { return leaf(t, withOrg, dns("WEB.Team-A.svc")) }},
		{name: "ip-in-range", req: func(t *testing.T) Request { return leaf(t, withOrg, ips("10.1.2.3", "fd00::1")) }},
		{name: "ip-out-of-range", req: func(t *testing.T) Request { return leaf(t, withOrg, ips("192.168.1.1")) }, wantRule: RuleIPRanges},
		{name: "spiffe-own-namespace", req: func(t *testing.T) Request {
			return leaf(t, withOrg, uris("spiffe://cluster.local/ns/team-a/sa/web"))
		}},
		{name: "spiffe-other-namespace", req: func(t *testing.T) Request {
			return leaf(t, withOrg, uris("spiffe://cluster.local/ns/team-b/sa/web"))
		}, wantRule: RuleURIs},
		{name: "spiffe-star-no-slash", req: func(t *testing.T) Request {
			return leaf(t, withOrg, uris("spiffe://cluster.local/ns/team-a/sa/web/extra"))
		}, wantRule: RuleURIs},
		{name: "email-allowed", req: func(t *testing.T) Request { return leaf(t, withOrg, email("ops@team-a.example.test")) }},
		{name: "email-refused", req: func(t *testing.T) Request { return leaf(t, withOrg, email("ops@evil.example.test")) }, wantRule: RuleEmails},
		{name: "common-name-pattern", req: func(t *testing.T) Request { return leaf(t, withOrg, cn("partner-acme")) }},
		{name: "common-name-not-a-san", req: func(t *testing.T) Request { return leaf(t, withOrg, cn("evil.example.com")) }, wantRule: RuleCommonNames},
		{name: "namespace-refused", req: func(t *testing.T) Request {
			r := leaf(t, withOrg, dns("web.prod.svc"))
			r.Namespace = "prod"
			return r
		}, wantRule: RuleNamespaces},
		{name: "no-namespace-refused", req: func(t *testing.T) Request {
			r := leaf(t, withOrg)
			r.Namespace = ""
			return r
		}, wantRule: RuleNamespaces},
		{name: "too-short", req: func(t *testing.T) Request {
			r := leaf(t, withOrg)
			r.Duration = 30 * time.Minute
			return r
		}, wantRule: RuleMinDuration},
		{name: "too-long", req: func(t *testing.T) Request {
			r := leaf(t, withOrg)
			r.Duration = 31 * 24 * time.Hour
			return r
		}, wantRule: RuleMaxDuration},
		{name: "ecdsa-p384-family", req: func(t *testing.T) Request { return leaf(t, withOrg, key("p384")) }},
		{name: "ed25519-not-allowed", req: func(t *testing.T) Request { return leaf(t, withOrg, key("ed25519")) }, wantRule: RuleKeyAlgorithms},
		{name: "rsa-too-small", req: func(t *testing.T) Request { return leaf(t, withOrg, key("rsa2048")) }, wantRule: RuleMinRSAKeySize},
		{name: "subject-missing-org", req: func(t *testing.T) Request { return leaf(t) }, wantRule: RuleSubject},
		{name: "subject-other-org", req: func(t *testing.T) Request { return leaf(t, org("Evil")) }, wantRule: RuleSubject},
		{name: "ca-refused-by-default", req: func(t *testing.T) Request {
			r := leaf(t, withOrg)
			r.IsCA = true
			return r
		}, wantRule: RuleCA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Evaluate(meshPolicy, nil, tt.req(t))
			checkVerdict(t, err, tt.wantRule)
		})
	}
}

func checkVerdict(t *testing.T, err error, wantRule string) {
	t.Helper()
	var d *Denial
	switch {
	case wantRule == "" && err != nil:
		t.Fatalf("refused: %v", err)
	case wantRule == "":
	case !errors.As(err, &d):
		t.Fatalf("error %v; want a denial by %s", err, wantRule)
	case !strings.HasPrefix(d.Rule, wantRule):
		t.Fatalf("denied by %q (%v); want %q", d.Rule, err, wantRule)
	case !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), wantRule):
		t.Fatalf("denial %v does not name its rule or wrap ErrDenied", err)
	}
}

func TestEvaluateAllowListOnceSet(t *testing.T) {
	t.Parallel()
	// A policy with only a DNS rule refuses every other kind of name.
	p := &quillv1.RequestPolicy{DNSNames: []string{"*.example.test"}}
	for name, opt := range map[string]csrOpt{
		"ip": ips("10.0.0.1"), "uri": uris("spiffe://x/y"), "email": email("a@example.test"),
	} {
		_, err := Evaluate(p, nil, leaf(t, opt))
		var d *Denial
		if !errors.As(err, &d) || !strings.Contains(d.Reason, "the policy allows none") {
			t.Errorf("%s: %v; want a denial saying the policy allows none", name, err)
		}
	}
	if _, err := Evaluate(nil, nil, leaf(t, ips("10.0.0.1"))); err != nil {
		t.Errorf("no policy refused: %v", err)
	}
}

func TestEvaluateCA(t *testing.T) {
	t.Parallel()
	ca := func(t *testing.T, pathLen *int) Request {
		r := leaf(t, cn("Team CA"))
		r.IsCA, r.MaxPathLen, r.ExtKeyUsage = true, pathLen, nil
		r.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign
		return r
	}
	p := &quillv1.RequestPolicy{
		CommonNames: []string{"* CA"},
		CA: &quillv1.CAPolicy{MaxPathLen: ptr(1), NameConstraints: &quillv1.NameConstraints{
			Permitted: &quillv1.NameConstraintItems{DNSDomains: []string{"team.example.test"}, IPRanges: []string{"10.1.0.0/16"}},
		}},
	}
	dec, err := Evaluate(p, nil, ca(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if dec.MaxPathLen == nil || *dec.MaxPathLen != 1 || dec.NameConstraints == nil ||
		dec.NameConstraints.PermittedDNSDomains[0] != "team.example.test" || dec.NameConstraints.PermittedIPRanges[0].String() != "10.1.0.0/16" || len(dec.Notes) != 2 {
		t.Fatalf("decision %+v; want path length 1, the name constraints and two notes", dec)
	}
	_, err = Evaluate(p, nil, ca(t, ptr(2)))
	checkVerdict(t, err, RuleCAMaxPathLen)

	// A template's path length above the policy's maximum is refused too.
	sub2, _ := Builtin(quillv1.TemplateSubordinateCAPathLen2)
	_, err = Evaluate(p, &Template{Name: quillv1.TemplateSubordinateCAPathLen2, Spec: sub2}, ca(t, nil))
	checkVerdict(t, err, RuleCAMaxPathLen)
	sub0, _ := Builtin(quillv1.TemplateSubordinateCAPathLen0)
	dec, err = Evaluate(p, &Template{Name: quillv1.TemplateSubordinateCAPathLen0, Spec: sub0}, ca(t, nil))
	if err != nil || *dec.MaxPathLen != 0 {
		t.Fatalf("subordinate-ca-pathlen-0 under max 1: %+v, %v", dec, err)
	}
}

func TestTemplates(t *testing.T) {
	t.Parallel()
	tmpl := func(name string) *Template {
		s, ok := Builtin(name)
		if !ok {
			t.Fatalf("no built-in %s", name)
		}
		return &Template{Name: name, Spec: s}
	}
	ku := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	tests := []struct {
		name     string
		template string
		ku       x509.KeyUsage
		eku      []x509.ExtKeyUsage
		isCA     bool
		pathLen  *int
		duration time.Duration
		wantRule string
	}{
		{name: "server-auth-fits", template: "server-auth", ku: ku, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{name: "server-auth-refuses-client", template: "server-auth", ku: ku, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, wantRule: RuleTemplateExtUsages},
		{name: "client-auth-needs-eku", template: "client-auth", ku: ku, wantRule: RuleTemplateExtUsages},
		{name: "client-auth-fits", template: "client-auth", ku: ku, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		{name: "end-entity-both", template: "end-entity", ku: ku, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
		{name: "code-signing-fits", template: "code-signing", ku: x509.KeyUsageDigitalSignature, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}},
		{name: "code-signing-no-encipherment", template: "code-signing", ku: ku, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}, wantRule: RuleTemplateKeyUsages},
		{name: "ocsp-signing-fits", template: "ocsp-signing", ku: x509.KeyUsageDigitalSignature, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}},
		{name: "ocsp-signing-max-duration", template: "ocsp-signing", ku: x509.KeyUsageDigitalSignature, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}, duration: 91 * 24 * time.Hour, wantRule: RuleTemplateMaxDuration},
		{name: "leaf-template-refuses-ca", template: "server-auth", ku: ku, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, isCA: true, wantRule: RuleTemplateIsCA},
		{name: "ca-template-refuses-leaf", template: "subordinate-ca-pathlen-1", ku: x509.KeyUsageDigitalSignature, wantRule: RuleTemplateIsCA},
		{name: "ca-template-fits", template: "subordinate-ca-pathlen-1", ku: x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign, isCA: true},
		{name: "ca-template-other-pathlen", template: "subordinate-ca-pathlen-1", ku: x509.KeyUsageDigitalSignature, isCA: true, pathLen: ptr(3), wantRule: RuleTemplateMaxPathLen},
		{name: "ca-template-no-eku", template: "subordinate-ca-pathlen-3", ku: x509.KeyUsageDigitalSignature, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, isCA: true, wantRule: RuleTemplateExtUsages},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := leaf(t)
			r.KeyUsage, r.ExtKeyUsage, r.IsCA, r.MaxPathLen = tt.ku, tt.eku, tt.isCA, tt.pathLen
			if tt.duration > 0 {
				r.Duration = tt.duration
			}
			dec, err := Evaluate(nil, tmpl(tt.template), r)
			checkVerdict(t, err, tt.wantRule)
			if err == nil && tt.isCA && (dec.MaxPathLen == nil || *dec.MaxPathLen != 1) {
				t.Errorf("path length %v; want the template's 1", dec.MaxPathLen)
			}
		})
	}
}

func TestSelectTemplate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		allowed   []string
		requested string
		want      string
		refused   bool
	}{
		{name: "none-listed-none-asked"},
		{name: "none-listed-one-asked", requested: "server-auth", refused: true},
		{name: "listed-none-asked", allowed: []string{"client-auth"}, refused: true},
		{name: "listed-other-asked", allowed: []string{"client-auth"}, requested: "server-auth", refused: true},
		{name: "listed-asked", allowed: []string{"client-auth", "partner"}, requested: "partner", want: "partner"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := SelectTemplate(tt.allowed, tt.requested)
			if tt.refused {
				checkVerdict(t, err, RuleTemplates)
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("SelectTemplate = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	bad := []*quillv1.RequestPolicy{
		{DNSNames: []string{"a.**.example.test"}},
		{DNSNames: []string{"web-*.example.test"}},
		{DNSNames: []string{"a..example.test"}},
		{IPRanges: []string{"10.0.0.0"}},
		{CA: &quillv1.CAPolicy{NameConstraints: &quillv1.NameConstraints{Excluded: &quillv1.NameConstraintItems{IPRanges: []string{"x"}}}}},
	}
	for _, p := range bad {
		if err := Validate(p); !IsInvalidPolicy(err) {
			t.Errorf("Validate(%+v) = %v; want an invalid-policy error", p, err)
		}
	}
	if err := Validate(&quillv1.RequestPolicy{DNSNames: []string{"**.{namespace}.svc", "*.example.test"}}); err != nil {
		t.Errorf("valid policy refused: %v", err)
	}
	if err := ValidateTemplate(Template{Name: "x", Spec: quillv1.TemplateSpec{KeyUsages: []quillv1.KeyUsage{"server auth"}}}); !IsInvalidPolicy(err) {
		t.Errorf("template with an extended usage among keyUsages: %v", err)
	}
	for _, n := range BuiltinNames() {
		s, _ := Builtin(n)
		if err := ValidateTemplate(Template{Name: n, Spec: s}); err != nil {
			t.Errorf("built-in %s: %v", n, err)
		}
	}
}

func TestMatchGlob(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, s string
		sep        byte
		want       bool
	}{
		{"spiffe://td/ns/a/sa/*", "spiffe://td/ns/a/sa/web", '/', true},
		{"spiffe://td/ns/a/sa/*", "spiffe://td/ns/a/sa/", '/', true},
		{"spiffe://td/ns/*/sa/web", "spiffe://td/ns/a/b/sa/web", '/', false},
		{"*@example.test", "a@b@example.test", '@', false},
		{"*@example.test", "ops@example.test", '@', true},
		{"partner-*", "partner-", 0, true},
		{"a*b*c", "axxbyyc", 0, true},
		{"a*b*c", "axxbyy", 0, false},
	}
	for _, tt := range tests {
		if got := matchGlob(tt.pattern, tt.s, tt.sep); got != tt.want {
			t.Errorf("matchGlob(%q, %q) = %t; want %t", tt.pattern, tt.s, got, tt.want)
		}
	}
}
