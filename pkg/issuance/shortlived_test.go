package issuance

import (
	"crypto/x509"
	"encoding/asn1"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestShortLived checks RFC 9608 signing: an end-entity certificate within
// ShortLivedMaxDuration carries noRevAvail (non-critical, NULL) and no CRL
// distribution point, OCSP server or Must-Staple; a longer one and a CA
// certificate are signed as before.
func TestShortLived(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	tests := []struct {
		name      string
		bound     time.Duration
		duration  time.Duration
		isCA      bool
		wantShort bool
	}{
		{name: "within-bound", bound: 24 * time.Hour, duration: time.Hour, wantShort: true},
		{name: "exactly-the-bound", bound: 24 * time.Hour, duration: 24 * time.Hour, wantShort: true},
		{name: "over-the-bound", bound: 24 * time.Hour, duration: 24*time.Hour + time.Second},
		{name: "option-off", duration: time.Hour},
		{name: "ca-certificate", bound: 24 * time.Hour, duration: time.Hour, isCA: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := baseOptions()
			opts.ShortLivedMaxDuration = tt.bound
			opts.CRLDistributionPoints = []string{"http://pki.example.test/quill.crl"}
			opts.OCSPServers = []string{"http://ocsp.example.test"}
			opts.IssuingCertificateURLs = []string{"http://pki.example.test/ca.crt"}
			opts.MustStaple = true
			req := Request{CSR: newCSR(t, withDNS("app.example.test")), Duration: tt.duration, KeyUsage: x509.KeyUsageDigitalSignature}
			if tt.isCA {
				req.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
				req.IsCA = true
			}
			cert := mustSign(t, ca, req, opts).Certificate
			var ext, staple bool
			for _, e := range cert.Extensions {
				switch {
				case e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 56}):
					ext = true
					if e.Critical || string(e.Value) != "\x05\x00" {
						t.Errorf("noRevAvail critical=%v value=%x, want non-critical NULL (0500)", e.Critical, e.Value)
					}
				case e.Id.Equal(mustStapleExtension.Id):
					staple = true
				}
			}
			if ext != tt.wantShort || HasNoRevAvail(cert) != tt.wantShort {
				t.Fatalf("noRevAvail present %v (HasNoRevAvail %v), want %v", ext, HasNoRevAvail(cert), tt.wantShort)
			}
			pointers := len(cert.CRLDistributionPoints) > 0 || len(cert.OCSPServer) > 0 || staple
			if pointers == tt.wantShort {
				t.Errorf("CRL DP %v, OCSP %v, Must-Staple %v: revocation pointers present %v, want %v",
					cert.CRLDistributionPoints, cert.OCSPServer, staple, pointers, !tt.wantShort)
			}
			if len(cert.IssuingCertificateURL) != 1 {
				t.Errorf("CA Issuers URL %v lost", cert.IssuingCertificateURL)
			}
		})
	}
}

// TestShortLivedOpenSSL has OpenSSL 3.0, the outside reader, find the
// extension and verify the certificate strictly.
func TestShortLivedOpenSSL(t *testing.T) {
	t.Parallel()
	bin := requireOpenSSL(t)
	ca := newCA(t)
	opts := baseOptions()
	opts.ShortLivedMaxDuration = 24 * time.Hour
	opts.CRLDistributionPoints = []string{"http://pki.example.test/quill.crl"}
	opts.OCSPServers = []string{"http://ocsp.example.test"}
	issued := mustSign(t, ca, Request{CSR: newCSR(t, withDNS("app.example.test")), Duration: 6 * time.Hour, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, opts)
	dir := t.TempDir()
	leaf := writeFile(t, dir, "leaf.pem", EncodeCertificatesPEM(issued.Certificate))
	text := runOpenSSL(t, bin, "x509", "-noout", "-text", "-in", leaf)
	// OpenSSL 3.0 names the extension "X509v3 No Revocation Available";
	// releases that do not know it print the OID.
	if !strings.Contains(text, "No Revocation Available") && !strings.Contains(text, "2.5.29.56") {
		t.Fatalf("openssl x509 -text does not show noRevAvail:\n%s", text)
	}
	for _, absent := range []string{"CRL Distribution Points", "OCSP - URI"} {
		if strings.Contains(text, absent) {
			t.Errorf("openssl x509 -text shows %q in a short-lived certificate", absent)
		}
	}
	root := writeFile(t, dir, "root.pem", issued.CAPEM)
	args := []string{"verify", "-x509_strict", "-purpose", "sslserver", "-attime", strconv.FormatInt(testNow.Unix(), 10), "-CAfile", root}
	if chain := pemCerts(t, issued.ChainPEM); len(chain) > 1 {
		args = append(args, "-untrusted", writeFile(t, dir, "chain.pem", EncodeCertificatesPEM(chain[1:]...)))
	}
	if out := runOpenSSL(t, bin, append(args, leaf)...); strings.TrimSpace(out) != leaf+": OK" {
		t.Errorf("openssl verify: %s", out)
	}
}
