package e2e

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// withAnnotation sets an annotation on a Certificate fixture.
func withCertAnnotation(k, v string) func(*cmapi.Certificate) {
	return func(c *cmapi.Certificate) {
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations[k] = v
	}
}

func withUsages(u ...cmapi.KeyUsage) func(*cmapi.Certificate) {
	return func(c *cmapi.Certificate) { c.Spec.Usages = u }
}

// requestOf returns the (first) CertificateRequest cert-manager created
// for Certificate name, once it exists.
func requestOf(t *testing.T, ns, name string) *cmapi.CertificateRequest {
	t.Helper()
	var found *cmapi.CertificateRequest
	eventually(t, "a CertificateRequest for "+name, func() (bool, error) {
		var list cmapi.CertificateRequestList
		if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		for i := range list.Items {
			if list.Items[i].Annotations[cmapi.CertificateNameKey] == name {
				found = &list.Items[i]
				return true, nil
			}
		}
		return false, nil
	})
	return found
}

// waitRequestDenied waits for a CertificateRequest of Certificate name to
// fail with InvalidRequest=True/PolicyDenied, and returns the message.
func waitRequestDenied(t *testing.T, ns, name string) string {
	t.Helper()
	var msg string
	eventually(t, "the request of "+name+" to be refused by policy", func() (bool, error) {
		cr := requestOf(t, ns, name)
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(cr), cr); err != nil {
			return false, err
		}
		var invalid, failed bool
		for _, c := range cr.Status.Conditions {
			if c.Type == cmapi.CertificateRequestConditionInvalidRequest && c.Status == cmmeta.ConditionTrue && c.Reason == quillv1.ReasonPolicyDenied {
				invalid, msg = true, c.Message
			}
			if c.Type == cmapi.CertificateRequestConditionReady && c.Status == cmmeta.ConditionFalse && c.Reason == cmapi.CertificateRequestReasonFailed {
				failed = cr.Status.FailureTime != nil
			}
		}
		return invalid && failed, fmt.Errorf("conditions: %s", requestConditions(ns))
	})
	return msg
}

// waitEvent waits for an event with reason about the object named regarding.
func waitEvent(t *testing.T, ns, regarding, reason string) *eventsv1.Event {
	t.Helper()
	var found *eventsv1.Event
	eventually(t, reason+" event on "+regarding, func() (bool, error) {
		var list eventsv1.EventList
		if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		for i, e := range list.Items {
			if e.Reason == reason && e.Regarding.Name == regarding {
				found = &list.Items[i]
				return true, nil
			}
		}
		return false, nil
	})
	return found
}

// TestPolicyTemplates proves that a cert-manager Certificate carries its
// template choice to the CertificateRequest in an annotation (cert-manager
// copies a Certificate's annotations, bar kubectl's, Flux's and Argo CD's),
// that a fitting request is signed with exactly the template's purpose, and
// that one that does not fit is refused, never switched.
func TestPolicyTemplates(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ref := quillIssuer(t, ns, "partners", "ECDSA-P256", func(s *quillv1.IssuerSpec) {
		s.Templates = []string{quillv1.TemplateClientAuth}
	})

	create(t, certificate(ns, "partner-a", ref,
		withCertAnnotation(quillv1.AnnotationTemplate, quillv1.TemplateClientAuth),
		withUsages(cmapi.UsageClientAuth, cmapi.UsageDigitalSignature, cmapi.UsageKeyEncipherment)))
	leaf := verifyChain(t, waitCertificateReady(t, ns, "partner-a"), x509.ExtKeyUsageClientAuth)
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("extended key usages %v; want client auth only", leaf.ExtKeyUsage)
	}
	if got := requestOf(t, ns, "partner-a").Annotations[quillv1.AnnotationTemplate]; got != quillv1.TemplateClientAuth {
		t.Errorf("the CertificateRequest carries %s=%q; cert-manager should have copied it from the Certificate", quillv1.AnnotationTemplate, got)
	}
	issuedReq := requestOf(t, ns, "partner-a").Name
	waitEvent(t, ns, issuedReq, "CertificateIssued")
	// One event per signed request: issuer-lib's own "Issued" would be a
	// second API write per certificate saying less. It is recorded with
	// the status write, which the Certificate's readiness above follows.
	var evs eventsv1.EventList
	if err := env.Client.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		if e.Regarding.Name == issuedReq && e.Reason == "Issued" {
			t.Errorf("request %s has issuer-lib's Issued event besides CertificateIssued: %q", issuedReq, e.Note)
		}
	}

	create(t, certificate(ns, "partner-server", ref,
		withCertAnnotation(quillv1.AnnotationTemplate, quillv1.TemplateClientAuth),
		withUsages(cmapi.UsageServerAuth, cmapi.UsageDigitalSignature, cmapi.UsageKeyEncipherment)))
	if msg := waitRequestDenied(t, ns, "partner-server"); !strings.Contains(msg, "refused by template extKeyUsages (client-auth)") || !strings.Contains(msg, "'server auth'") {
		t.Errorf("refusal %q does not name the template rule and the usage", msg)
	}
	waitEvent(t, ns, requestOf(t, ns, "partner-server").Name, "PolicyDenied")

	create(t, certificate(ns, "no-template", ref, withUsages(cmapi.UsageClientAuth, cmapi.UsageDigitalSignature)))
	if msg := waitRequestDenied(t, ns, "no-template"); !strings.Contains(msg, "refused by spec.templates") {
		t.Errorf("refusal %q does not name spec.templates", msg)
	}
}

// TestPolicyNamespaceNames: one cluster issuer gives each namespace only
// its own names, and only namespaces it lists.
func TestPolicyNamespaceNames(t *testing.T) {
	t.Parallel()
	ns, other := newNamespace(t), newNamespace(t)
	name := "mesh-" + ns
	iss := &quillv1.QuillClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: quillv1.IssuerSpec{
			CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{SecretName: name + "-root", Subject: quillv1.Subject{CommonName: "mesh root"}}},
			Policy: &quillv1.RequestPolicy{
				DNSNames:   []string{"*.{namespace}.svc", "*.{namespace}.svc.cluster.local"},
				URIs:       []string{"spiffe://cluster.local/ns/{namespace}/sa/*"},
				Namespaces: []string{ns},
			},
		},
	}
	create(t, iss)
	t.Cleanup(func() { _ = ignoreNotFound(env.Client.Delete(context.Background(), iss)) })
	waitIssuerReady(t, iss)
	ref := cmmeta.IssuerReference{Group: "quill.dev", Kind: quillv1.ClusterIssuerKind, Name: name}
	mesh := func(svc, namespace string) func(*cmapi.Certificate) {
		return func(c *cmapi.Certificate) {
			c.Spec.CommonName = ""
			c.Spec.DNSNames = []string{svc + "." + namespace + ".svc", svc + "." + namespace + ".svc.cluster.local"}
			c.Spec.URIs = []string{"spiffe://cluster.local/ns/" + namespace + "/sa/" + svc}
			c.Spec.Usages = []cmapi.KeyUsage{cmapi.UsageServerAuth, cmapi.UsageClientAuth, cmapi.UsageDigitalSignature}
		}
	}
	create(t, certificate(ns, "web", ref, mesh("web", ns)))
	verifyChain(t, waitCertificateReady(t, ns, "web"), x509.ExtKeyUsageClientAuth)

	create(t, certificate(ns, "steal", ref, mesh("web", other)))
	if msg := waitRequestDenied(t, ns, "steal"); !strings.Contains(msg, "refused by spec.policy.dnsNames") || !strings.Contains(msg, "web."+other+".svc") {
		t.Errorf("refusal %q does not name the rule and the name", msg)
	}
	create(t, certificate(other, "outsider", ref, mesh("web", other)))
	if msg := waitRequestDenied(t, other, "outsider"); !strings.Contains(msg, "refused by spec.policy.namespaces") {
		t.Errorf("refusal %q does not name spec.policy.namespaces", msg)
	}
}

// TestPolicySubordinateCA issues a subordinate CA under a template with
// path length 0 and the policy's required name constraints, and checks
// them with Go and OpenSSL.
func TestPolicySubordinateCA(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ref := quillIssuer(t, ns, "root", "ECDSA-P384", func(s *quillv1.IssuerSpec) {
		s.Templates = []string{quillv1.TemplateSubordinateCAPathLen0}
		s.Policy = &quillv1.RequestPolicy{
			CommonNames: []string{"* Issuing CA"},
			CA: &quillv1.CAPolicy{MaxPathLen: ptr.To(1), NameConstraints: &quillv1.NameConstraints{
				Permitted: &quillv1.NameConstraintItems{DNSDomains: []string{ns + ".svc"}},
			}},
		}
	})
	create(t, certificate(ns, "sub", ref,
		withCertAnnotation(quillv1.AnnotationTemplate, quillv1.TemplateSubordinateCAPathLen0),
		withUsages(cmapi.UsageDigitalSignature, cmapi.UsageCertSign, cmapi.UsageCRLSign),
		func(c *cmapi.Certificate) {
			c.Spec.IsCA, c.Spec.DNSNames, c.Spec.CommonName = true, nil, "Team Issuing CA"
		}))
	secret := waitCertificateReady(t, ns, "sub")
	sub := parseCerts(t, secret.Data["tls.crt"])[0]
	if !sub.IsCA || sub.MaxPathLen != 0 || !sub.MaxPathLenZero {
		t.Errorf("subordinate: isCA=%t pathLen=%d zero=%t; want a CA with path length 0", sub.IsCA, sub.MaxPathLen, sub.MaxPathLenZero)
	}
	if !sub.PermittedDNSDomainsCritical || len(sub.PermittedDNSDomains) != 1 || sub.PermittedDNSDomains[0] != ns+".svc" {
		t.Errorf("name constraints %v (critical %t); want %s.svc, critical", sub.PermittedDNSDomains, sub.PermittedDNSDomainsCritical, ns)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "sub.pem")
	if err := os.WriteFile(path, secret.Data["tls.crt"], 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("openssl", "x509", "-noout", "-text", "-in", path).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	for _, want := range []string{"CA:TRUE, pathlen:0", "X509v3 Name Constraints: critical", "DNS:" + ns + ".svc"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("openssl does not show %q:\n%s", want, out)
		}
	}
	waitEvent(t, ns, requestOf(t, ns, "sub").Name, "IssuanceAdjusted")

	// A leaf certificate under a CA-only template is refused.
	create(t, certificate(ns, "leaf", ref, withCertAnnotation(quillv1.AnnotationTemplate, quillv1.TemplateSubordinateCAPathLen0)))
	if msg := waitRequestDenied(t, ns, "leaf"); !strings.Contains(msg, "refused by template isCA") {
		t.Errorf("refusal %q does not name the template's isCA rule", msg)
	}
}

// TestPolicyMetrics serves controller-runtime's metrics registry (the one
// quill-controller exposes on --metrics-bind-address) over HTTP on
// loopback, runs an issuance and a refusal, and checks the scraped series.
func TestPolicyMetrics(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ref := quillIssuer(t, ns, "metered", "ECDSA-P256", func(s *quillv1.IssuerSpec) {
		s.Templates = []string{quillv1.TemplateServerAuth}
	})
	// cert-manager's default key is RSA-2048; the key algorithm label
	// should say what was asked for.
	ecdsa := func(c *cmapi.Certificate) {
		c.Spec.PrivateKey = &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256}
	}
	create(t, certificate(ns, "ok", ref, ecdsa,
		withCertAnnotation(quillv1.AnnotationTemplate, quillv1.TemplateServerAuth),
		withUsages(cmapi.UsageServerAuth, cmapi.UsageDigitalSignature, cmapi.UsageKeyEncipherment)))
	waitCertificateReady(t, ns, "ok")
	create(t, certificate(ns, "refused", ref, ecdsa,
		withCertAnnotation(quillv1.AnnotationTemplate, quillv1.TemplateServerAuth),
		withUsages(cmapi.UsageClientAuth, cmapi.UsageDigitalSignature)))
	waitRequestDenied(t, ns, "refused")

	issuer := fmt.Sprintf(`issuer=%q,issuer_kind="QuillIssuer"`, ns+"/metered")
	signed, _ := signedFor(t, ns, "metered") // one, unless cert-manager replaced a signed request
	waitMetrics(t, scrape(t), ns,
		fmt.Sprintf(`quill_certificates_issued_total{`+issuer+`,key_algorithm="ECDSA-P256",template="server-auth"} %d`, signed["ok"]),
		`quill_certificates_denied_total{`+issuer+`,key_algorithm="ECDSA-P256",rule="template extKeyUsages (server-auth)",template="server-auth"} 1`,
		fmt.Sprintf(`quill_signing_duration_seconds_count{`+issuer+`} %d`, signed["ok"]),
		`quill_issuer_ready{`+issuer+`} 1`,
		`quill_ca_not_after_timestamp_seconds{`+issuer+`} `,
	)
}
