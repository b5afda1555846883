package audit

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// jsonLogger is a production-style zap logger writing JSON into buf, as
// quill-controller logs by default.
func jsonLogger(buf *bytes.Buffer) Logger {
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(buf), zapcore.InfoLevel)
	return Logger{Log: zapr.NewLogger(zap.New(core)).WithName("audit")}
}

func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func TestAuditLines(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "web"}, DNSNames: []string{"web.team-a.svc"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.1")},
	}, key)
	csr, _ := x509.ParseCertificateRequest(csrDER)
	notBefore := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0xabcdef), NotBefore: notBefore, NotAfter: notBefore.Add(time.Hour)}
	certDER, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	cert, _ := x509.ParseCertificate(certDER)

	var buf bytes.Buffer
	l := jsonLogger(&buf)
	req := Request{Issuer: quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-a", Name: "ca"}, Kind: "CertificateRequest", Namespace: "team-a", Name: "web-1",
		Requester: "system:serviceaccount:cert-manager:cert-manager", Template: "server-auth", KeyAlgorithm: "ECDSA-P256", CSR: csr}
	l.Issue(req, cert)
	l.Deny(req, "spec.policy.dnsNames", `DNS name "x" is not allowed`)
	l.StateChange(quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "root"}, "Active", "Disabled", "alice")
	l.Revoke(Revocation{Issuer: quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-a", Name: "ca"}, Serial: "abcdef", Subject: "CN=web", Namespace: "team-a", Certificate: "web",
		Reason: "keyCompromise", RevokedAt: time.Date(2026, 3, 1, 12, 30, 0, 0, time.FixedZone("CET", 3600)), By: "QuillRevocation team-a/leak"})
	l.IssueResponder(quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "hsm"}, "quill-system", "hsm-ocsp-responder", "ECDSA-P256", cert)
	l.SignCRL(quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "hsm"}, "7", 3, 512, time.Date(2026, 3, 2, 13, 0, 0, 0, time.FixedZone("CET", 3600)))

	got := lines(t, &buf)
	if len(got) != 6 {
		t.Fatalf("%d lines; want 6", len(got))
	}
	checks := []struct {
		line  int
		field string
		want  any
	}{
		{0, "audit", true}, {0, "action", "issue"}, {0, "serial", "abcdef"}, {0, "notAfter", "2026-03-01T13:00:00Z"},
		{0, "requester", "system:serviceaccount:cert-manager:cert-manager"}, {0, "template", "server-auth"}, {0, "subject", "CN=web"},
		{0, "logger", "audit"},
		{1, "action", "deny"}, {1, "rule", "spec.policy.dnsNames"}, {1, "namespace", "team-a"},
		{2, "action", "ca-state-change"}, {2, "from", "Active"}, {2, "to", "Disabled"}, {2, "disabledBy", "alice"},
		{3, "audit", true}, {3, "action", "revoke"}, {3, "logger", "audit"}, {3, "issuer", "QuillIssuer/team-a/ca"},
		{3, "serial", "abcdef"}, {3, "subject", "CN=web"}, {3, "namespace", "team-a"}, {3, "certificate", "web"},
		{3, "reason", "keyCompromise"}, {3, "revokedAt", "2026-03-01T11:30:00Z"}, {3, "by", "QuillRevocation team-a/leak"},
		{4, "audit", true}, {4, "action", "issue"}, {4, "issuer", "QuillClusterIssuer/hsm"}, {4, "requestKind", "OCSPResponder"},
		{4, "namespace", "quill-system"}, {4, "request", "hsm-ocsp-responder"}, {4, "keyAlgorithm", "ECDSA-P256"}, {4, "serial", "abcdef"},
		{5, "audit", true}, {5, "action", "crl"}, {5, "issuer", "QuillClusterIssuer/hsm"}, {5, "crlNumber", "7"},
		{5, "entries", float64(3)}, {5, "bytes", float64(512)}, {5, "nextUpdate", "2026-03-02T12:00:00Z"},
	}
	for _, c := range checks {
		if got[c.line][c.field] != c.want {
			t.Errorf("line %d field %s = %v; want %v", c.line, c.field, got[c.line][c.field], c.want)
		}
	}
	if names, _ := got[0]["dnsNames"].([]any); len(names) != 1 || names[0] != "web.team-a.svc" {
		t.Errorf("dnsNames = %v", got[0]["dnsNames"])
	}
	if ips, _ := got[1]["ipAddresses"].([]any); len(ips) != 1 || ips[0] != "10.0.0.1" {
		t.Errorf("ipAddresses = %v", got[1]["ipAddresses"])
	}
}

func TestZeroLoggerDiscards(t *testing.T) {
	t.Parallel()
	Logger{}.Deny(Request{}, "r", "x")
	Logger{}.StateChange(quillv1.IssuerID{}, "a", "b", "")
	Logger{}.Revoke(Revocation{})
}

// TestAuditSubjectAsEncoded checks that an issue line shows every common
// name of a two-CN subject, not only the one pkix.Name keeps.
func TestAuditSubjectAsEncoded(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cn := asn1.ObjectIdentifier{2, 5, 4, 3}
	raw, err := asn1.Marshal(pkix.RDNSequence{
		{{Type: cn, Value: "admin"}},
		{{Type: cn, Value: "team-a-app"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{RawSubject: raw, DNSNames: []string{"app.team-a.svc"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(csrDER)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	certDER, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	cert, _ := x509.ParseCertificate(certDER)

	var buf bytes.Buffer
	jsonLogger(&buf).Issue(Request{Kind: "CertificateRequest", Namespace: "team-a", Name: "app-1", CSR: csr}, cert)
	got, _ := lines(t, &buf)[0]["subject"].(string)
	if !strings.Contains(got, "CN=admin") || !strings.Contains(got, "CN=team-a-app") {
		t.Errorf("audit subject = %q, want both common names", got)
	}
}

// TestAuditOtherNames checks that an issue line lists the request's
// otherNames, which crypto/x509 does not parse.
func TestAuditOtherNames(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	oid, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3})
	value, _ := asn1.MarshalWithParams("alice@team-a.example.com", "utf8")
	wrapped, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: value})
	san, _ := asn1.Marshal([]asn1.RawValue{
		{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte("alice.team-a.svc")},
		{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, wrapped...)},
	})
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "alice"},
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: san}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(csrDER)
	var buf bytes.Buffer
	jsonLogger(&buf).Deny(Request{Kind: "CertificateRequest", Namespace: "team-a", Name: "alice-1", CSR: csr}, "spec.policy.allowedOtherNames", "not allowed")
	got, _ := lines(t, &buf)[0]["otherNames"].([]any)
	if len(got) != 1 || got[0] != "1.3.6.1.4.1.311.20.2.3:alice@team-a.example.com" {
		t.Errorf("audit otherNames = %v", got)
	}
}
