package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/names"
)

// TestMeshCookbook applies the README's mesh cookbook as written: a
// QuillClusterIssuer "mesh" with maxDuration 720h over a CA Secret, and a
// Certificate in a team-* namespace with no duration. cert-manager's own
// default is 2160h; the Certificate is signed for the policy's 720h, with
// an IssuanceAdjusted event saying so. A Certificate that asks for 2160h
// explicitly is refused, and one for another namespace's service too.
func TestMeshCookbook(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t, "team-")
	other := env.Namespace(t, "team-")
	certPEM, keyPEM, err := issuance.NewSelfSignedRoot(pkix.Name{CommonName: "Mesh Issuing CA"}, issuance.ECDSAP256, 365*24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: clusterResourceNamespace, Name: "mesh-issuing-ca"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM, "ca.crt": certPEM},
	}
	create(t, secret)
	t.Cleanup(func() { _ = ignoreNotFound(env.Client.Delete(context.Background(), secret)) })
	iss := &quillv1.QuillClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: "mesh"},
		Spec: quillv1.IssuerSpec{
			CA:        quillv1.CASource{SecretRef: &quillv1.SecretReference{Name: "mesh-issuing-ca"}},
			Templates: []string{quillv1.TemplateEndEntity},
			Policy: &quillv1.RequestPolicy{
				DNSNames:      []string{"*.{namespace}.svc", "*.{namespace}.svc.cluster.local"},
				URIs:          []string{"spiffe://cluster.local/ns/{namespace}/sa/*"},
				Namespaces:    []string{"team-*", "payments"},
				MaxDuration:   &metav1.Duration{Duration: 720 * time.Hour},
				KeyAlgorithms: []quillv1.PolicyKeyAlgorithm{"ECDSA", "Ed25519"},
			},
		},
	}
	create(t, iss)
	t.Cleanup(func() { _ = ignoreNotFound(env.Client.Delete(context.Background(), iss)) })
	waitIssuerReady(t, iss)
	ref := cmmeta.IssuerReference{Group: "quill.dev", Kind: quillv1.ClusterIssuerKind, Name: "mesh"}
	// The cookbook's Certificate, as the README shows it.
	web := func(name, svcNamespace string, duration *metav1.Duration) *cmapi.Certificate {
		return &cmapi.Certificate{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{quillv1.AnnotationTemplate: quillv1.TemplateEndEntity}},
			Spec: cmapi.CertificateSpec{
				SecretName: name + "-tls",
				DNSNames:   []string{"web." + svcNamespace + ".svc", "web." + svcNamespace + ".svc.cluster.local"},
				URIs:       []string{"spiffe://cluster.local/ns/" + svcNamespace + "/sa/web"},
				PrivateKey: &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm},
				Usages:     []cmapi.KeyUsage{cmapi.UsageDigitalSignature, cmapi.UsageServerAuth, cmapi.UsageClientAuth},
				Duration:   duration,
				IssuerRef:  ref,
			},
		}
	}

	create(t, web("web", ns, nil))
	leaf := parseCerts(t, waitCertificateReady(t, ns, "web").Data["tls.crt"])[0]
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got != 720*time.Hour {
		t.Errorf("a Certificate without a duration was signed for %s; want the policy's 720h", got)
	}
	if ev := waitEvent(t, ns, requestOf(t, ns, "web").Name, "IssuanceAdjusted"); !strings.Contains(ev.Note, "no duration was requested") {
		t.Errorf("IssuanceAdjusted says %q; want the lowered duration explained", ev.Note)
	}

	create(t, web("web-long", ns, &metav1.Duration{Duration: 2160 * time.Hour}))
	if msg := waitRequestDenied(t, ns, "web-long"); !strings.Contains(msg, "refused by spec.policy.maxDuration") {
		t.Errorf("refusal %q does not name spec.policy.maxDuration", msg)
	}
	create(t, web("web-other", other, nil))
	if msg := waitRequestDenied(t, ns, "web-other"); !strings.Contains(msg, "refused by spec.policy.dnsNames") {
		t.Errorf("refusal %q does not name spec.policy.dnsNames", msg)
	}
}

// TestCertificateFieldsReachTheDecision sends what else a cert-manager
// user may write through the real controller and webhook: a literalSubject
// the policy allows is signed byte for byte; nameConstraints on a CA
// Certificate, which Quill does not take from requesters, are refused with
// a reason rather than dropped; a CertificateRequest whose usages the
// CSR's own extensions contradict is refused with a reason. cert-manager's
// validating webhook already refuses that last request, so the namespace
// turns it off: what is tested is that Quill refuses it on its own.
func TestCertificateFieldsReachTheDecision(t *testing.T) {
	t.Parallel()
	ns := unvalidatedNamespace(t)
	ref := quillIssuer(t, ns, "fields", "ECDSA-P256", func(s *quillv1.IssuerSpec) {
		s.Policy = &quillv1.RequestPolicy{
			DNSNames:    []string{"*.{namespace}.svc"},
			CommonNames: []string{ns + "-app"},
			CA:          &quillv1.CAPolicy{},
		}
	})

	t.Run("literal-subject", func(t *testing.T) {
		t.Parallel()
		create(t, certificate(ns, "literal", ref, func(c *cmapi.Certificate) {
			c.Spec.CommonName = ""
			c.Spec.LiteralSubject = "CN=" + ns + "-app,OU=Payments,O=Example Corp"
			c.Spec.DNSNames = []string{"app." + ns + ".svc"}
		}))
		leaf := parseCerts(t, waitCertificateReady(t, ns, "literal").Data["tls.crt"])[0]
		subject, err := names.SubjectOfCertificate(leaf)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := subject.String(), "CN="+ns+"-app,OU=Payments,O=Example Corp"; got != want {
			t.Errorf("signed subject %q; want the literal subject %q", got, want)
		}
		cr := requestOf(t, ns, "literal")
		csr, err := issuance.ParseCSR(cr.Spec.Request)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(leaf.RawSubject, csr.RawSubject) {
			t.Errorf("the subject was re-encoded: %x, the CSR has %x", leaf.RawSubject, csr.RawSubject)
		}
	})

	t.Run("name-constraints-refused", func(t *testing.T) {
		t.Parallel()
		create(t, certificate(ns, "constrained", ref, withUsages(cmapi.UsageDigitalSignature, cmapi.UsageCertSign, cmapi.UsageCRLSign), func(c *cmapi.Certificate) {
			c.Spec.IsCA, c.Spec.CommonName = true, ns+"-app"
			c.Spec.DNSNames = nil
			c.Spec.NameConstraints = &cmapi.NameConstraints{Critical: true, Permitted: &cmapi.NameConstraintItem{DNSDomains: []string{ns + ".svc"}}}
		}))
		cr := requestOf(t, ns, "constrained")
		cr = waitRequestCondition(t, ns, cr.Name, cmapi.CertificateRequestConditionInvalidRequest, cmmeta.ConditionTrue, "")
		assertFailed(t, cr, "name constraints")
		assertFailed(t, cr, "spec.policy.ca.nameConstraints")
	})

	t.Run("usages-contradict-csr", func(t *testing.T) {
		t.Parallel()
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		eku, err := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 2}}) // client auth
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			Subject:         pkix.Name{CommonName: ns + "-app"},
			DNSNames:        []string{"app." + ns + ".svc"},
			ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Value: eku}},
		}, key)
		if err != nil {
			t.Fatal(err)
		}
		// requestFor asks for digital signature and server auth.
		requestFor(t, ns, "contradicts", ref, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil)
		cr := waitRequestCondition(t, ns, "contradicts", cmapi.CertificateRequestConditionInvalidRequest, cmmeta.ConditionTrue, "")
		assertFailed(t, cr, "extended key usage")
	})
}
