package policy

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/keyusage"
	"github.com/quill-pki/quill/pkg/names"
)

// oidSubjectAltName is the subjectAltName extension, which carries the
// otherNames that crypto/x509 does not parse.
var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// Recheck judges a certificate Quill signed from the certificate alone:
// its names must be valid (names.CheckCertificate), its key usages must fit
// its key (keyusage.Check), and policy p with template tmpl (named
// templateName; nil for none) must allow what it carries — subject, names,
// otherNames, usages, CA constraints and lifetime — asked again as a CSR
// from namespace would have asked for them. It is the invariant that tests
// and fuzzing hold the signing gate to: whatever was signed passes it.
func Recheck(cert *x509.Certificate, p *quillv1.RequestPolicy, tmpl *Template, templateName, namespace string) error {
	if err := names.CheckCertificate(cert); err != nil {
		return fmt.Errorf("names: %w", err)
	}
	if err := keyusage.Check(cert.PublicKey, cert.KeyUsage, cert.IsCA); err != nil {
		return fmt.Errorf("key usage table: %w", err)
	}
	var maxPathLen *int
	if cert.IsCA && (cert.MaxPathLen > 0 || cert.MaxPathLenZero) {
		maxPathLen = &cert.MaxPathLen
	}
	asked := &x509.CertificateRequest{
		RawSubject: cert.RawSubject, Subject: cert.Subject,
		PublicKey: cert.PublicKey, PublicKeyAlgorithm: cert.PublicKeyAlgorithm,
		DNSNames: cert.DNSNames, EmailAddresses: cert.EmailAddresses, IPAddresses: cert.IPAddresses, URIs: cert.URIs,
	}
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(oidSubjectAltName) {
			asked.Extensions = append(asked.Extensions, ext)
		}
	}
	if _, err := Evaluate(p, tmpl, Request{
		CSR: asked, Namespace: namespace, Template: templateName, Duration: cert.NotAfter.Sub(cert.NotBefore),
		IsCA: cert.IsCA, MaxPathLen: maxPathLen, KeyUsage: cert.KeyUsage, ExtKeyUsage: cert.ExtKeyUsage,
	}); err != nil {
		return fmt.Errorf("policy, judged from the certificate: %w", err)
	}
	return nil
}
