package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// TestSchemaRejects checks that the API server itself refuses invalid
// issuers, with the messages written in the CRD's CEL rules.
func TestSchemaRejects(t *testing.T) {
	t.Parallel()
	bootstrap := &quillv1.BootstrapCA{SecretName: "root", Subject: quillv1.Subject{CommonName: "root"}}
	secretRef := &quillv1.SecretReference{Name: "ca"}
	tests := []struct {
		name string
		spec quillv1.IssuerSpec
		want string
	}{
		{
			name: "no-ca-source",
			spec: quillv1.IssuerSpec{},
			want: "spec.ca must set exactly one of secretRef, bootstrap or pkcs11",
		},
		{
			name: "two-ca-sources",
			spec: quillv1.IssuerSpec{CA: quillv1.CASource{SecretRef: secretRef, Bootstrap: bootstrap}},
			want: "spec.ca must set exactly one of secretRef, bootstrap or pkcs11",
		},
		{
			name: "bootstrap-without-subject",
			spec: quillv1.IssuerSpec{CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{SecretName: "root"}}},
			want: "subject needs a commonName or at least one organization",
		},
		{
			name: "bootstrap-unknown-key-algorithm",
			spec: quillv1.IssuerSpec{CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{
				SecretName: "root", Subject: quillv1.Subject{CommonName: "root"}, KeyAlgorithm: "DSA-1024",
			}}},
			want: "Unsupported value: \"DSA-1024\"",
		},
		{
			name: "bootstrap-validity-too-short",
			spec: quillv1.IssuerSpec{CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{
				SecretName: "root", Subject: quillv1.Subject{CommonName: "root"}, Validity: &metav1.Duration{Duration: time.Hour},
			}}},
			want: "bootstrap.validity must be at least 24h",
		},
		{
			name: "pkcs11-and-secret",
			spec: quillv1.IssuerSpec{CA: quillv1.CASource{SecretRef: secretRef, PKCS11: pkcs11(func(p *quillv1.PKCS11CA) {})}},
			want: "spec.ca must set exactly one of secretRef, bootstrap or pkcs11",
		},
		{
			name: "pkcs11-two-tokens",
			spec: quillv1.IssuerSpec{CA: quillv1.CASource{PKCS11: pkcs11(func(p *quillv1.PKCS11CA) { p.TokenSerial = "1234" })}},
			want: "pkcs11 needs exactly one of tokenLabel or tokenSerial",
		},
		{
			name: "pkcs11-no-key",
			spec: quillv1.IssuerSpec{CA: quillv1.CASource{PKCS11: pkcs11(func(p *quillv1.PKCS11CA) { p.KeyLabel = "" })}},
			want: "pkcs11 needs keyLabel, keyID or both",
		},
		{
			name: "pkcs11-two-certificate-sources",
			spec: quillv1.IssuerSpec{CA: quillv1.CASource{PKCS11: pkcs11(func(p *quillv1.PKCS11CA) { p.CertificateLabel = "ca" })}},
			want: "pkcs11 needs exactly one of certificateSecretRef or certificateLabel",
		},
		{
			name: "pkcs11-issued-by-without-secret",
			spec: quillv1.IssuerSpec{CA: quillv1.CASource{PKCS11: pkcs11(func(p *quillv1.PKCS11CA) {
				p.CertificateSecretRef, p.CertificateLabel = nil, "ca"
				p.IssuedBy = &quillv1.ParentIssuer{Name: "root", Subject: quillv1.Subject{CommonName: "sub"}}
			})}},
			want: "pkcs11.issuedBy needs certificateSecretRef",
		},
		{
			name: "pkcs11-module-path",
			spec: quillv1.IssuerSpec{CA: quillv1.CASource{PKCS11: pkcs11(func(p *quillv1.PKCS11CA) { p.Module = "/usr/lib/evil.so" })}},
			want: "spec.ca.pkcs11.module",
		},
		{
			name: "pkcs11-key-id-not-hex",
			spec: quillv1.IssuerSpec{CA: quillv1.CASource{PKCS11: pkcs11(func(p *quillv1.PKCS11CA) { p.KeyID = "xyz" })}},
			want: "spec.ca.pkcs11.keyID",
		},
		{
			name: "default-duration-over-max",
			spec: quillv1.IssuerSpec{
				CA: quillv1.CASource{SecretRef: secretRef},
				Issuance: quillv1.IssuancePolicy{
					DefaultDuration: &metav1.Duration{Duration: 48 * time.Hour},
					MaxDuration:     &metav1.Duration{Duration: 24 * time.Hour},
				},
			},
			want: "issuance.defaultDuration must not exceed issuance.maxDuration",
		},
		{
			name: "unknown-rsa-scheme",
			spec: quillv1.IssuerSpec{CA: quillv1.CASource{SecretRef: secretRef}, Issuance: quillv1.IssuancePolicy{RSASignatureScheme: "PSS-ish"}},
			want: "Unsupported value: \"PSS-ish\"",
		},
		{
			name: "crl-url-not-a-url",
			spec: quillv1.IssuerSpec{CA: quillv1.CASource{SecretRef: secretRef}, CRLDistributionPoints: []string{"crl.example.test"}},
			want: "crlDistributionPoints[0]",
		},
		{
			name: "secret-name-invalid",
			spec: quillv1.IssuerSpec{CA: quillv1.CASource{SecretRef: &quillv1.SecretReference{Name: "Not_A_Name"}}},
			want: "spec.ca.secretRef.name",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			iss := &quillv1.QuillClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "reject-" + tc.name}, Spec: tc.spec}
			err := env.Client.Create(context.Background(), iss)
			if err == nil {
				_ = env.Client.Delete(context.Background(), iss)
				t.Fatalf("API server accepted an invalid issuer; want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// pkcs11 is a valid PKCS#11 CA source changed by edit.
func pkcs11(edit func(*quillv1.PKCS11CA)) *quillv1.PKCS11CA {
	p := &quillv1.PKCS11CA{
		Module: "softhsm", TokenLabel: "ca", KeyLabel: "ca-key",
		PINSecretRef:         quillv1.SecretKeySelector{Name: "hsm-pin"},
		CertificateSecretRef: &quillv1.SecretReference{Name: "ca-cert"},
	}
	edit(p)
	return p
}

// TestSchemaAcceptsAndDefaults checks a minimal bootstrap issuer is
// accepted and gets the documented defaults.
func TestSchemaAcceptsAndDefaults(t *testing.T) {
	t.Parallel()
	iss := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: newNamespace(t), Name: "defaults"},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{
			SecretName: "root", Subject: quillv1.Subject{Organizations: []string{"Example"}},
		}}},
	}
	if err := env.Client.Create(context.Background(), iss); err != nil {
		t.Fatalf("creating a minimal issuer: %v", err)
	}
	if got := iss.Spec.CA.Bootstrap.KeyAlgorithm; got != "ECDSA-P256" {
		t.Errorf("default keyAlgorithm %q, want ECDSA-P256", got)
	}
	if v := iss.Spec.CA.Bootstrap.Validity; v == nil || v.Duration != 87600*time.Hour {
		t.Errorf("default validity %v, want 87600h", v)
	}
}
