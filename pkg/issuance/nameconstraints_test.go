package issuance

import (
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
)

// TestSignNameConstraints checks that policy-decided name constraints land,
// critical, in a subordinate CA certificate, that the subordinate can then
// sign only names inside them, and that OpenSSL reads them the same way.
func TestSignNameConstraints(t *testing.T) {
	t.Parallel()
	root := newCA(t)
	subKey := testKey(t, ECDSAP256, 1)
	_, permittedIPs, _ := net.ParseCIDR("10.1.0.0/16")
	issued := mustSign(t, root, Request{
		CSR:      newCSR(t, withKey(subKey), withCN("Team CA"), withDNS()),
		IsCA:     true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		NameConstraints: &NameConstraints{
			PermittedDNSDomains: []string{"team.example.test"},
			ExcludedDNSDomains:  []string{"secret.team.example.test"},
			PermittedIPRanges:   []*net.IPNet{permittedIPs},
		},
	}, baseOptions())
	sub := issued.Certificate
	if !sub.PermittedDNSDomainsCritical || len(sub.PermittedDNSDomains) != 1 || sub.PermittedDNSDomains[0] != "team.example.test" ||
		len(sub.ExcludedDNSDomains) != 1 || len(sub.PermittedIPRanges) != 1 || sub.PermittedIPRanges[0].String() != "10.1.0.0/16" {
		t.Fatalf("name constraints not as asked: critical=%t permitted=%v excluded=%v ips=%v",
			sub.PermittedDNSDomainsCritical, sub.PermittedDNSDomains, sub.ExcludedDNSDomains, sub.PermittedIPRanges)
	}
	bin := requireOpenSSL(t)
	text := runOpenSSL(t, bin, "x509", "-noout", "-text", "-in", writeFile(t, t.TempDir(), "sub.pem", issued.ChainPEM))
	for _, want := range []string{"X509v3 Name Constraints: critical", "DNS:team.example.test", "DNS:secret.team.example.test", "IP:10.1.0.0/255.255.0.0"} {
		if !strings.Contains(text, want) {
			t.Errorf("openssl does not show %q:\n%s", want, text)
		}
	}

	subCA, err := NewAuthority(issued.ChainPEM, issued.CAPEM, subKey)
	if err != nil {
		t.Fatalf("loading the subordinate: %v", err)
	}
	tests := []struct {
		name    string
		dns     string
		refused bool
	}{
		{name: "inside", dns: "api.team.example.test"},
		{name: "outside", dns: "api.other.example.test", refused: true},
		{name: "excluded", dns: "db.secret.team.example.test", refused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := subCA.Sign(Request{CSR: newCSR(t, withCN(tt.dns), withDNS(tt.dns)), KeyUsage: DefaultKeyUsage}, baseOptions())
			if tt.refused != (err != nil) {
				t.Fatalf("Sign(%s) error = %v; want refused=%t", tt.dns, err, tt.refused)
			}
			if tt.refused && !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("refusal %v does not wrap ErrInvalidRequest", err)
			}
		})
	}
}

func TestSignNameConstraintsNeedCA(t *testing.T) {
	t.Parallel()
	_, err := newCA(t).Sign(Request{
		CSR: newCSR(t), KeyUsage: DefaultKeyUsage,
		NameConstraints: &NameConstraints{PermittedDNSDomains: []string{"example.test"}},
	}, baseOptions())
	if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), "only allowed with isCA") {
		t.Fatalf("Sign error = %v; want an invalid request about isCA", err)
	}
}

func TestParseCSRClassifies(t *testing.T) {
	t.Parallel()
	if _, err := ParseCSR([]byte("not a CSR")); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("ParseCSR(garbage) = %v; want ErrInvalidRequest", err)
	}
	csr, err := ParseCSR(newCSR(t, withDNS("a.example.test")))
	if err != nil || csr.DNSNames[0] != "a.example.test" {
		t.Fatalf("ParseCSR = %v, %v", csr, err)
	}
}
