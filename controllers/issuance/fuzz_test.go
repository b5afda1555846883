package issuance

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"github.com/cert-manager/issuer-lib/controllers/signer"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/policy"
)

// fuzzUsages are the cert-manager usages a request may ask for, one per
// bit of the fuzzer's usage mask.
var fuzzUsages = []cmapi.KeyUsage{
	cmapi.UsageSigning, cmapi.UsageDigitalSignature, cmapi.UsageContentCommitment, cmapi.UsageKeyEncipherment,
	cmapi.UsageKeyAgreement, cmapi.UsageDataEncipherment, cmapi.UsageCertSign, cmapi.UsageCRLSign,
	cmapi.UsageEncipherOnly, cmapi.UsageDecipherOnly, cmapi.UsageServerAuth, cmapi.UsageClientAuth,
	cmapi.UsageCodeSigning, cmapi.UsageEmailProtection, cmapi.UsageOCSPSigning, cmapi.UsageAny,
}

// fuzzKeys are the requesters' keys, one per key type of the key-usage
// table Quill supports in CSRs here (made once: RSA keys are slow).
var fuzzKeys = sync.OnceValue(func() []crypto.Signer {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return []crypto.Signer{ec, rk, ed}
})

// fuzzPolicy is a tenant's policy: its own service names, a few names of
// its own domain, subordinate CAs allowed with a path length.
func fuzzPolicy() *quillv1.RequestPolicy {
	maxPathLen := 1
	return &quillv1.RequestPolicy{
		DNSNames:       []string{"**.{namespace}.svc", "*.example.test"},
		IPRanges:       []string{"10.0.0.0/8", "fd00::/8"},
		URIs:           []string{"spiffe://cluster.local/ns/{namespace}/sa/*"},
		EmailAddresses: []string{"*@example.test"},
		CommonNames:    []string{testNamespace + "-app", "Sub CA"},
		MaxDuration:    &metav1.Duration{Duration: 30 * day},
		KeyAlgorithms:  []quillv1.PolicyKeyAlgorithm{"ECDSA", "RSA", "Ed25519"},
		CA:             &quillv1.CAPolicy{MaxPathLen: &maxPathLen},
	}
}

// fuzzRequest is what the fuzzer controls of one request: the CSR (whole,
// or built from names and a raw subject and signed with a real key) and
// the request's fields.
type fuzzRequest struct {
	rawCSR     []byte // used as is when non-empty
	rawSubject []byte // the CSR's subject DER, when non-empty
	cn         string
	dns        string // comma-separated
	email      string
	uri        string
	ip         []byte
	key        uint8
	usages     uint16
	isCA       bool
	hours      uint16
	template   uint8
	templated  bool
}

func (r fuzzRequest) csrPEM() ([]byte, bool) {
	if len(r.rawCSR) > 0 {
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: r.rawCSR}), true
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: r.cn}, RawSubject: r.rawSubject}
	if r.dns != "" {
		tmpl.DNSNames = strings.Split(r.dns, ",")
	}
	if r.email != "" {
		tmpl.EmailAddresses = []string{r.email}
	}
	if r.uri != "" {
		u, err := url.Parse(r.uri)
		if err != nil {
			return nil, false
		}
		tmpl.URIs = []*url.URL{u}
	}
	if len(r.ip) == net.IPv4len || len(r.ip) == net.IPv6len {
		tmpl.IPAddresses = []net.IP{r.ip}
	}
	keys := fuzzKeys()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, keys[int(r.key)%len(keys)])
	if err != nil {
		return nil, false // crypto/x509 would not encode it; neither would an honest client
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), true
}

func (r fuzzRequest) certificateRequest(csrPEM []byte, issuer string, templates []string) *cmapi.CertificateRequest {
	cr := &cmapi.CertificateRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "fuzz", Namespace: testNamespace, UID: "fuzz-uid"},
		Spec: cmapi.CertificateRequestSpec{
			Request:   csrPEM,
			IsCA:      r.isCA,
			IssuerRef: cmmeta.IssuerReference{Name: issuer, Kind: quillv1.IssuerKind, Group: quillv1.GroupVersion.Group},
		},
	}
	for i, u := range fuzzUsages {
		if r.usages&(1<<i) != 0 {
			cr.Spec.Usages = append(cr.Spec.Usages, u)
		}
	}
	if r.hours > 0 {
		cr.Spec.Duration = &metav1.Duration{Duration: time.Duration(r.hours) * time.Hour}
	}
	// One more than the templates: no annotation at all.
	if i := int(r.template) % (len(templates) + 1); i < len(templates) {
		cr.Annotations = map[string]string{quillv1.AnnotationTemplate: templates[i]}
	}
	return cr
}

// FuzzSign drives the whole signing gate as production runs it
// (Signer.Sign: CSR parsing and name syntax, template, policy, key-usage
// table, signature) with requests the fuzzer makes, and re-checks every
// certificate it signs from the certificate alone: its names are valid
// (names.CheckCertificate), its key usages fit its key
// (keyusage.Check), and the issuer's policy and template allow what the
// certificate says, not what the request said. Whatever Sign refuses is
// fine; what it signs must pass.
func FuzzSign(f *testing.F) {
	ca := newCA(f)
	templates := policy.BuiltinNames()
	// A default within the policy's maximum, so that requests asking for
	// no duration reach the rest of the gate.
	plain := newIssuer(withDefaultDuration(day), func(s *quillv1.IssuerSpec) { s.Policy = fuzzPolicy() })
	plain.Name = "plain"
	templated := newIssuer(withDefaultDuration(day), func(s *quillv1.IssuerSpec) { s.Policy = fuzzPolicy(); s.Templates = templates })
	templated.Name = "templated"
	fx := newSigner(f, withObjects(caSecret(testNamespace, "ca", ca), plain, templated))
	// Events are not what is checked, and a full channel would block:
	// a recorder without one drops them.
	fx.signer.Recorder = &events.FakeRecorder{}

	addSeeds(f)
	f.Fuzz(func(t *testing.T, rawCSR, rawSubject []byte, cn, dns, email, uri string, ip []byte,
		key uint8, usages uint16, isCA bool, hours uint16, template uint8, useTemplates bool,
	) {
		r := fuzzRequest{rawCSR: rawCSR, rawSubject: rawSubject, cn: cn, dns: dns, email: email, uri: uri, ip: ip,
			key: key, usages: usages, isCA: isCA, hours: hours, template: template, templated: useTemplates}
		csrPEM, ok := r.csrPEM()
		if !ok {
			return
		}
		iss := plain
		var offered []string
		if useTemplates {
			iss, offered = templated, templates
		}
		cr := r.certificateRequest(csrPEM, iss.Name, offered)
		bundle, err := fx.signer.Sign(context.Background(), signer.CertificateRequestObjectFromCertificateRequest(cr), iss)
		if err != nil {
			var perm signer.PermanentError
			if !errors.As(err, &perm) {
				t.Fatalf("Sign failed other than as a refusal of the request: %v", err)
			}
			return
		}
		recheck(t, bundle.ChainPEM, iss, cr)
	})
}

// recheck judges a signed certificate from itself alone against the names
// rules, the key-usage table and iss's policy and template.
func recheck(t *testing.T, chainPEM []byte, iss *quillv1.QuillIssuer, cr *cmapi.CertificateRequest) {
	t.Helper()
	block, _ := pem.Decode(chainPEM)
	if block == nil {
		t.Fatalf("signed chain has no PEM certificate: %q", chainPEM)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("signed certificate does not parse: %v", err)
	}
	name, err := policy.SelectTemplate(iss.Spec.Templates, cr.Annotations[quillv1.AnnotationTemplate])
	if err != nil {
		t.Fatalf("signed a request whose template choice the issuer refuses: %v", err)
	}
	var tmpl *policy.Template
	if name != "" {
		spec, ok := policy.Builtin(name)
		if !ok {
			t.Fatalf("template %q is not built in", name)
		}
		tmpl = &policy.Template{Name: name, Spec: spec}
	}
	if err := policy.Recheck(cert, iss.Spec.Policy, tmpl, name, cr.Namespace); err != nil {
		t.Fatalf("signed a certificate that fails the re-check from the certificate alone: %v", err)
	}
}

// addSeeds gives the fuzzer requests of every shape the gate must judge:
// ordinary ones it signs, and the attacks it must refuse (hidden common
// names, multi-valued RDNs, emailAddress naming another domain, host
// names with NUL or slash-space, CA requests, odd usages).
func addSeeds(f *testing.F) {
	rdn := func(attrs ...pkix.AttributeTypeAndValue) []byte {
		der, err := asn1.Marshal(pkix.RDNSequence{attrs})
		if err != nil {
			f.Fatal(err)
		}
		return der
	}
	seq := func(sets ...[]pkix.AttributeTypeAndValue) []byte {
		var s pkix.RDNSequence
		for _, set := range sets {
			s = append(s, set)
		}
		der, err := asn1.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		return der
	}
	cnOID, emailOID := asn1.ObjectIdentifier{2, 5, 4, 3}, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
	app := testNamespace + "-app"
	svc := "app." + testNamespace + ".svc"
	server := uint16(1<<1 | 1<<3 | 1<<10)
	type seed struct {
		rawSubject          []byte
		cn, dns, email, uri string
		ip                  []byte
		key                 uint8
		usages              uint16
		isCA                bool
		hours               uint16
		template            uint8
		templated           bool
	}
	seeds := []seed{
		{cn: app, dns: svc, usages: server, hours: 24},
		{cn: svc, dns: svc + ",web.example.test", ip: net.ParseIP("10.1.2.3").To4(), usages: server, key: 1},
		{dns: svc, email: "ops@example.test", uri: "spiffe://cluster.local/ns/" + testNamespace + "/sa/web", usages: 1<<1 | 1<<11, key: 2},
		{cn: app, dns: svc, usages: server, template: 1, templated: true},
		{cn: "Sub CA", usages: 1<<6 | 1<<7 | 1<<1, isCA: true, hours: 48, template: 6, templated: true},
		{cn: "Sub CA", usages: 1<<6 | 1<<7 | 1<<1 | 1<<3, isCA: true, hours: 48, template: 6, templated: true},
		{cn: "Sub CA", usages: 1<<6 | 1<<7, isCA: true, key: 1},
		{rawSubject: seq([]pkix.AttributeTypeAndValue{{Type: cnOID, Value: app}}, []pkix.AttributeTypeAndValue{{Type: cnOID, Value: "admin"}}), dns: svc, usages: server},
		{rawSubject: rdn(pkix.AttributeTypeAndValue{Type: cnOID, Value: app}, pkix.AttributeTypeAndValue{Type: cnOID, Value: "admin"}), dns: svc, usages: server},
		{rawSubject: rdn(pkix.AttributeTypeAndValue{Type: emailOID, Value: "admin@team-b.example"}), dns: svc, usages: server},
		{dns: "kubernetes.default.svc\x00." + testNamespace + ".svc", usages: server},
		{dns: "evil.example.com/ ." + testNamespace + ".svc", usages: server},
		{dns: "*." + testNamespace + ".svc", usages: server},
		{cn: app, dns: svc, usages: 0xffff, hours: 9999},
	}
	for _, s := range seeds {
		f.Add([]byte(nil), s.rawSubject, s.cn, s.dns, s.email, s.uri, s.ip, s.key, s.usages, s.isCA, s.hours, s.template, s.templated)
	}
	// A whole CSR, so that byte-level mutation starts from a valid one.
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: app}, DNSNames: []string{svc},
	}, fuzzKeys()[0])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(der, []byte(nil), "", "", "", "", []byte(nil), uint8(0), server, false, uint16(0), uint8(0), false)
}
