package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"slices"
	"strings"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

var (
	oidCommonName   = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
)

// attackCSR is a PEM CSR with the subject rawSubject (DER, as an attacker
// encodes it) and the DNS SANs dns, encoded by hand when crypto/x509
// refuses them.
func attackCSR(t *testing.T, rawSubject []byte, dns ...string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{RawSubject: rawSubject, DNSNames: dns}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		sans := make([]asn1.RawValue, len(dns))
		for i, d := range dns {
			sans[i] = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte(d)}
		}
		san, merr := asn1.Marshal(sans)
		if merr != nil {
			t.Fatal(merr)
		}
		tmpl.DNSNames = nil
		tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: san}}
		if der, err = x509.CreateCertificateRequest(rand.Reader, tmpl, key); err != nil {
			t.Fatal(err)
		}
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(csr.DNSNames, dns) {
		t.Fatalf("the CSR carries DNS names %q, want %q", csr.DNSNames, dns)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// subjectDER encodes rdns, each a set of attributes, as a subject.
func subjectDER(t *testing.T, rdns ...[]pkix.AttributeTypeAndValue) []byte {
	t.Helper()
	var seq pkix.RDNSequence
	for _, set := range rdns {
		seq = append(seq, set)
	}
	der, err := asn1.Marshal(seq)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// refusedByPolicy sends csrPEM to the tenant issuer as CertificateRequest
// name, and requires it refused by policy (InvalidRequest=True,
// PolicyDenied) with a message containing each of want, without a
// certificate and without a ledger record.
func refusedByPolicy(t *testing.T, ns, name string, ref cmmeta.IssuerReference, csrPEM []byte, want ...string) {
	t.Helper()
	requestFor(t, ns, name, ref, csrPEM, nil)
	cr := waitRequestCondition(t, ns, name, cmapi.CertificateRequestConditionInvalidRequest, cmmeta.ConditionTrue, quillv1.ReasonPolicyDenied)
	for _, c := range cr.Status.Conditions {
		if c.Type != cmapi.CertificateRequestConditionInvalidRequest {
			continue
		}
		for _, w := range want {
			if !strings.Contains(c.Message, w) {
				t.Errorf("refusal %q does not say %q", c.Message, w)
			}
		}
	}
	if len(cr.Status.Certificate) != 0 {
		t.Error("the request carries a certificate")
	}
	if _, bySerial := signedFor(t, ns, "tenant"); len(bySerial) != 0 {
		t.Errorf("the ledger holds %d certificates; want none", len(bySerial))
	}
}

// TestTrustMultiValuedRDN: one RDN holding two common names
// (CN=<ns>-app+CN=admin) hides "admin" from a reader of the last CN only;
// every CN is judged, so the request is refused and the refusal names it.
func TestTrustMultiValuedRDN(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ref := quillIssuer(t, ns, "tenant", "ECDSA-P256", namespacePolicy(ns))
	subject := subjectDER(t, []pkix.AttributeTypeAndValue{
		{Type: oidCommonName, Value: ns + "-app"}, {Type: oidCommonName, Value: "admin"},
	})
	csrPEM := attackCSR(t, subject, "app."+ns+".svc")
	refusedByPolicy(t, ns, "multi-valued", ref, csrPEM, "admin", "spec.policy.commonNames")
}

// TestTrustEmailAddressAttribute: an emailAddress attribute in the subject
// naming another namespace's domain is a name a relying party may read
// (S/MIME, some client-auth checks); it is judged against the policy's
// emailAddresses like an email SAN, and refused.
func TestTrustEmailAddressAttribute(t *testing.T) {
	t.Parallel()
	ns, other := newNamespace(t), newNamespace(t)
	ref := quillIssuer(t, ns, "tenant", "ECDSA-P256", namespacePolicy(ns), func(s *quillv1.IssuerSpec) {
		s.Policy.EmailAddresses = []string{"*@" + ns + ".example.test"}
	})
	evil := "admin@" + other + ".example.test"
	subject := subjectDER(t,
		[]pkix.AttributeTypeAndValue{{Type: oidCommonName, Value: ns + "-app"}},
		[]pkix.AttributeTypeAndValue{{Type: oidEmailAddress, Value: evil}},
	)
	csrPEM := attackCSR(t, subject, "app."+ns+".svc")
	refusedByPolicy(t, ns, "email-attribute", ref, csrPEM, evil, "spec.policy.emailAddresses")
}

// TestTrustDNSNameWithSlashSpace: "evil.example.com/ .<ns>.svc" matches
// "**.{namespace}.svc" as a string, but is no host name: a verifier that
// splits at the space or the slash reads evil.example.com. Quill refuses
// it by name syntax, before policy.
func TestTrustDNSNameWithSlashSpace(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ref := quillIssuer(t, ns, "tenant", "ECDSA-P256", namespacePolicy(ns))
	csrPEM := attackCSR(t, nil, "evil.example.com/ ."+ns+".svc")
	refusedByPolicy(t, ns, "slash-space", ref, csrPEM, "name syntax", "evil.example.com/ ."+ns+".svc")
}
