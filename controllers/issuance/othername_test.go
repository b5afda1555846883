package issuance

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/cert-manager/issuer-lib/controllers/signer"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/names"
)

// upnCSR is a PEM CSR for app.example.test with a UPN, encoded as
// cert-manager encodes spec.otherNames.
func upnCSR(t testing.TB, upn string) []byte {
	t.Helper()
	oid, _ := asn1.Marshal(names.OIDUPN)
	value, _ := asn1.MarshalWithParams(upn, "utf8")
	wrapped, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: value})
	san, err := asn1.Marshal([]asn1.RawValue{
		{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte("app.example.test")},
		{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, wrapped...)},
	})
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:         pkix.Name{CommonName: "app.example.test"},
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: san}},
	}, requestKey())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// TestSignOtherNames drives a UPN through Sign: signed when the issuer's
// policy allows it (and then in the certificate), refused by
// spec.policy.allowedOtherNames otherwise, also without any policy.
func TestSignOtherNames(t *testing.T) {
	t.Parallel()
	root := newCA(t)
	allow := withPolicy(quillv1.RequestPolicy{
		DNSNames:          []string{"*.example.test"},
		AllowedOtherNames: []quillv1.OtherNamePolicy{{TypeID: "1.3.6.1.4.1.311.20.2.3", Values: []string{"*@{namespace}.example.test"}}},
	})
	tests := []struct {
		name    string
		issuer  *quillv1.QuillIssuer
		upn     string
		wantMsg string // "" signs
	}{
		{name: "allowed", issuer: newIssuer(allow), upn: "alice@" + testNamespace + ".example.test"},
		{name: "other-namespace", issuer: newIssuer(allow), upn: "alice@other.example.test", wantMsg: "refused by spec.policy.allowedOtherNames"},
		{name: "policy-without-other-names", issuer: newIssuer(withPolicy(quillv1.RequestPolicy{DNSNames: []string{"*.example.test"}})),
			upn: "alice@" + testNamespace + ".example.test", wantMsg: "refused by spec.policy.allowedOtherNames"},
		{name: "no-policy", issuer: newIssuer(), upn: "alice@" + testNamespace + ".example.test", wantMsg: "this issuer has no policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newSigner(t, withObjects(caSecret(testNamespace, "ca", root)))
			cr := signer.CertificateRequestObjectFromCertificateRequest(newCertificateRequest(t, "cr", withRequest(upnCSR(t, tt.upn))))
			bundle, err := f.signer.Sign(context.Background(), cr, tt.issuer)
			if tt.wantMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("Sign = %v; want a refusal saying %q", err, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("Sign = %v", err)
			}
			leaf := parseChain(t, bundle.ChainPEM)[0]
			got, err := names.OtherNamesOfCertificate(leaf)
			if err != nil || len(got) != 1 || !got[0].TypeID.Equal(names.OIDUPN) || got[0].Value != tt.upn {
				t.Errorf("signed otherNames %v (%v), want the UPN %q", got, err, tt.upn)
			}
		})
	}
}
