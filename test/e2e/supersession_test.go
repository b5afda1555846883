package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"golang.org/x/crypto/ocsp"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/test/harness"
)

// requestCreator returns a client that acts as user, who may only create
// and read CertificateRequests in ns: the rights of an ordinary tenant.
func requestCreator(t *testing.T, ns, user string) client.Client {
	t.Helper()
	create(t, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "request-creator"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{cmapi.SchemeGroupVersion.Group}, Resources: []string{"certificaterequests"}, Verbs: []string{"create", "get"},
		}},
	})
	create(t, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "request-creator"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "request-creator"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	})
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSupersessionClaimRevokesNothing is issue 12's third attack: a tenant
// who may only create CertificateRequests sends one annotated
// cert-manager.io/certificate-name for a neighbour's Certificate. Once it is
// signed, revokeSupersededAfter must not revoke the neighbour's live
// certificate, because cert-manager did not make that request; a genuine
// renewal of the neighbour's Certificate still revokes the certificate it
// supersedes. Also checks that cert-manager's webhook recorded the real
// requester of both.
func TestSupersessionClaimRevokesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := newNamespace(t)
	ref := quillIssuer(t, ns, "ca", "ECDSA-P256", fastCRL, func(s *quillv1.IssuerSpec) {
		s.Revocation.RevokeSupersededAfter = &metav1.Duration{Duration: time.Second}
	})
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: ns, Name: "ca"}
	create(t, certificate(ns, "web", ref))
	webSecret := waitCertificateReady(t, ns, "web")
	live := leafOf(t, webSecret)
	caCert := parseCerts(t, webSecret.Data["ca.crt"])[0]
	if len(live.OCSPServer) != 1 {
		t.Fatalf("the neighbour's certificate names OCSP responders %v, want one", live.OCSPServer)
	}
	if r := ocspQuery(t, live.OCSPServer[0], live, caCert); r.Status != ocsp.Good {
		t.Fatalf("OCSP status %d of the neighbour's certificate before the attack, want good", r.Status)
	}

	// The attack: a request claiming to be the neighbour's renewal.
	const mallory = "mallory"
	tenant := requestCreator(t, ns, mallory)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	claim := &cmapi.CertificateRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "claim", Annotations: map[string]string{
			cmapi.CertificateNameKey:                      "web",
			cmapi.CertificateRequestRevisionAnnotationKey: "2",
		}},
		Spec: cmapi.CertificateRequestSpec{
			Request:   makeCSR(t, key, "mallory.example.test"),
			IssuerRef: ref,
			Usages:    []cmapi.KeyUsage{cmapi.UsageDigitalSignature, cmapi.UsageServerAuth},
		},
	}
	if err := tenant.Create(ctx, claim); err != nil {
		t.Fatalf("the tenant could not create a CertificateRequest: %v", err)
	}
	signed := waitRequestCondition(t, ns, "claim", cmapi.CertificateRequestConditionReady, cmmeta.ConditionTrue, cmapi.CertificateRequestReasonIssued)
	claimed := parseCerts(t, signed.Status.Certificate)[0]
	claimRecord := ledgerRecord(t, ns, k, claimed)

	// The rule acts about a second after a new record, and one second
	// after the newest certificate's issuance: four times that and the
	// neighbour's certificate must still be good.
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		if e := ledgerRecord(t, ns, k, live); e.Status.Revocation != nil {
			t.Fatalf("a request the tenant annotated with the neighbour's Certificate revoked the neighbour's live certificate: %+v", e.Status.Revocation)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if r := ocspQuery(t, live.OCSPServer[0], live, caCert); r.Status != ocsp.Good {
		t.Fatalf("OCSP status %d of the neighbour's certificate after the attack, want good", r.Status)
	}

	// What the ledger says: the requesters cert-manager's webhook recorded,
	// and the Certificate only where cert-manager made the request.
	webRecord := ledgerRecord(t, ns, k, live)
	if webRecord.Spec.Requester != harness.CertManagerUsername || webRecord.Spec.Origin.Certificate != "web" {
		t.Errorf("the neighbour's record: requester %q, Certificate %q; want %q and web",
			webRecord.Spec.Requester, webRecord.Spec.Origin.Certificate, harness.CertManagerUsername)
	}
	if claimRecord.Spec.Requester != mallory || claimRecord.Spec.Origin.Certificate != "" {
		t.Errorf("the tenant's record: requester %q, Certificate %q; want %q and none (the annotation is only a claim)",
			claimRecord.Spec.Requester, claimRecord.Spec.Origin.Certificate, mallory)
	}

	// A genuine renewal still supersedes.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var crt cmapi.Certificate
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, &crt); err != nil {
			return err
		}
		crt.Spec.DNSNames = append(crt.Spec.DNSNames, "web2.example.test")
		return env.Client.Update(ctx, &crt)
	}); err != nil {
		t.Fatal(err)
	}
	var renewed *x509.Certificate
	eventually(t, "the neighbour's renewed certificate", func() (bool, error) {
		var s corev1.Secret
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-tls"}, &s); err != nil {
			return false, err
		}
		renewed = leafOf(t, &s)
		return renewed.SerialNumber.Cmp(live.SerialNumber) != 0, nil
	})
	eventually(t, "the neighbour's superseded certificate revoked", func() (bool, error) {
		e := ledgerRecord(t, ns, k, live)
		return e.Status.Revocation != nil && e.Status.Revocation.Reason == quillv1.ReasonSuperseded, nil
	})
	eventually(t, "OCSP says the superseded certificate is revoked", func() (bool, error) {
		return ocspQuery(t, live.OCSPServer[0], live, caCert).Status == ocsp.Revoked, nil
	})
	for _, c := range []*x509.Certificate{renewed, claimed} {
		if e := ledgerRecord(t, ns, k, c); e.Status.Revocation != nil {
			t.Errorf("serial %x (requested by %s) was revoked: %+v", c.SerialNumber, e.Spec.Requester, e.Status.Revocation)
		}
	}
}
