package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/test/harness"
)

// quillIssuer creates a bootstrap QuillIssuer in ns with a root CA of the
// given algorithm, waits for it to be Ready and returns its reference.
func quillIssuer(t *testing.T, ns, name string, alg quillv1.KeyAlgorithm, opts ...func(*quillv1.IssuerSpec)) cmmeta.IssuerReference {
	t.Helper()
	iss := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{
			SecretName: name + "-root", Subject: quillv1.Subject{CommonName: name + " root", Organizations: []string{"Quill e2e"}}, KeyAlgorithm: alg,
		}}},
	}
	for _, o := range opts {
		o(&iss.Spec)
	}
	create(t, iss)
	waitIssuerReady(t, iss)
	return cmmeta.IssuerReference{Group: "quill.dev", Kind: quillv1.IssuerKind, Name: name}
}

func waitIssuerReady(t *testing.T, obj client.Object) {
	t.Helper()
	env.WaitIssuerReady(t, obj)
}

// TestQuillKeyTypes issues Certificates for each supported leaf key type
// from CAs of each family and verifies them with Go and OpenSSL.
func TestQuillKeyTypes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		caAlg  quillv1.KeyAlgorithm
		pss    bool
		leaf   cmapi.CertificatePrivateKey
		pubAlg x509.PublicKeyAlgorithm
		sigAlg x509.SignatureAlgorithm
	}{
		{name: "rsa-leaf-ecdsa-ca", caAlg: "ECDSA-P256", leaf: cmapi.CertificatePrivateKey{Algorithm: cmapi.RSAKeyAlgorithm, Size: 2048}, pubAlg: x509.RSA, sigAlg: x509.ECDSAWithSHA256},
		{name: "ecdsa-leaf-rsa-ca", caAlg: "RSA-2048", leaf: cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256}, pubAlg: x509.ECDSA, sigAlg: x509.SHA256WithRSA},
		{name: "ecdsa-p384-leaf-p384-ca", caAlg: "ECDSA-P384", leaf: cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 384}, pubAlg: x509.ECDSA, sigAlg: x509.ECDSAWithSHA384},
		{name: "ed25519-leaf-ed25519-ca", caAlg: "Ed25519", leaf: cmapi.CertificatePrivateKey{Algorithm: cmapi.Ed25519KeyAlgorithm}, pubAlg: x509.Ed25519, sigAlg: x509.PureEd25519},
		{name: "rsa-leaf-rsa-pss-ca", caAlg: "RSA-3072", pss: true, leaf: cmapi.CertificatePrivateKey{Algorithm: cmapi.RSAKeyAlgorithm, Size: 3072}, pubAlg: x509.RSA, sigAlg: x509.SHA256WithRSAPSS},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			ref := quillIssuer(t, ns, "ca", tc.caAlg, func(s *quillv1.IssuerSpec) {
				if tc.pss {
					s.Issuance.RSASignatureScheme = quillv1.RSASignatureSchemePSS
				}
			})
			leafKey := tc.leaf
			create(t, certificate(ns, "leaf", ref, func(c *cmapi.Certificate) {
				c.Spec.PrivateKey = &leafKey
				c.Spec.Usages = []cmapi.KeyUsage{cmapi.UsageServerAuth, cmapi.UsageDigitalSignature}
			}))
			secret := waitCertificateReady(t, ns, "leaf")
			leaf := verifyChain(t, secret, x509.ExtKeyUsageServerAuth)
			if leaf.PublicKeyAlgorithm != tc.pubAlg || leaf.SignatureAlgorithm != tc.sigAlg {
				t.Errorf("leaf key %s signed with %s; want %s signed with %s", leaf.PublicKeyAlgorithm, leaf.SignatureAlgorithm, tc.pubAlg, tc.sigAlg)
			}
			if len(leaf.SerialNumber.Bytes()) < 16 || leaf.SerialNumber.Sign() <= 0 {
				t.Errorf("serial %x is not a positive number of 128 bits or more", leaf.SerialNumber)
			}
			if len(leaf.SubjectKeyId) == 0 || len(leaf.AuthorityKeyId) == 0 {
				t.Error("leaf lacks subject or authority key identifier")
			}
		})
	}
}

// TestQuillSubjectAndSANs checks DNS, IP, URI and email SANs, the subject,
// the requested duration, usages and the issuer's URLs.
func TestQuillSubjectAndSANs(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ref := quillIssuer(t, ns, "ca", "ECDSA-P256", func(s *quillv1.IssuerSpec) {
		s.CRLDistributionPoints = []string{"http://crl.example.test/ca.crl"}
		s.OCSPServers = []string{"http://ocsp.example.test"}
		s.IssuingCertificateURLs = []string{"http://pki.example.test/ca.crt"}
	})
	create(t, certificate(ns, "sans", ref, func(c *cmapi.Certificate) {
		c.Spec.Subject = &cmapi.X509Subject{Organizations: []string{"Quill e2e"}, OrganizationalUnits: []string{"SANs"}}
		c.Spec.DNSNames = []string{"sans.example.test", "*.wild.example.test"}
		c.Spec.IPAddresses = []string{"127.0.0.1", "::1"}
		c.Spec.URIs = []string{"spiffe://cluster.local/ns/e2e/sa/sans"}
		c.Spec.EmailAddresses = []string{"pki@example.test"}
		c.Spec.Duration = &metav1.Duration{Duration: 2 * time.Hour}
		c.Spec.Usages = []cmapi.KeyUsage{cmapi.UsageServerAuth, cmapi.UsageClientAuth, cmapi.UsageDigitalSignature, cmapi.UsageKeyEncipherment}
	}))
	leaf := verifyChain(t, waitCertificateReady(t, ns, "sans"), x509.ExtKeyUsageClientAuth)
	checks := map[string]bool{
		"subject O/OU/CN":  strings.Contains(leaf.Subject.String(), "OU=SANs") && strings.Contains(leaf.Subject.String(), "O=Quill e2e") && leaf.Subject.CommonName == "sans.example.test",
		"DNS SANs":         len(leaf.DNSNames) == 2 && leaf.DNSNames[1] == "*.wild.example.test",
		"IP SANs":          len(leaf.IPAddresses) == 2 && leaf.IPAddresses[0].String() == "127.0.0.1" && leaf.IPAddresses[1].String() == "::1",
		"URI SAN":          len(leaf.URIs) == 1 && leaf.URIs[0].String() == "spiffe://cluster.local/ns/e2e/sa/sans",
		"email SAN":        len(leaf.EmailAddresses) == 1 && leaf.EmailAddresses[0] == "pki@example.test",
		"duration 2h":      leaf.NotAfter.Sub(leaf.NotBefore) == 2*time.Hour,
		"server+client":    len(leaf.ExtKeyUsage) == 2,
		"key usages":       leaf.KeyUsage == x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment,
		"not a CA":         !leaf.IsCA,
		"CRL DP":           len(leaf.CRLDistributionPoints) == 1 && leaf.CRLDistributionPoints[0] == "http://crl.example.test/ca.crl",
		"OCSP":             len(leaf.OCSPServer) == 1 && leaf.OCSPServer[0] == "http://ocsp.example.test",
		"issuing cert URL": len(leaf.IssuingCertificateURL) == 1 && leaf.IssuingCertificateURL[0] == "http://pki.example.test/ca.crt",
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("%s wrong in %+v", what, leaf)
		}
	}
}

// TestQuillIntermediate issues an isCA Certificate from a root issuer, uses
// its Secret as the CA of a second issuer, and checks the chain shape
// cert-manager writes: tls.crt = leaf + intermediate, ca.crt = root.
func TestQuillIntermediate(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	root := quillIssuer(t, ns, "root", "ECDSA-P384")
	create(t, certificate(ns, "intermediate", root, func(c *cmapi.Certificate) {
		c.Spec.IsCA = true
		c.Spec.DNSNames = nil
		c.Spec.CommonName = "e2e intermediate"
	}))
	interSecret := waitCertificateReady(t, ns, "intermediate")
	inter := parseCerts(t, interSecret.Data["tls.crt"])[0]
	if !inter.IsCA || inter.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("intermediate is not a CA with certSign: IsCA=%v KeyUsage=%b", inter.IsCA, inter.KeyUsage)
	}
	create(t, &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "issuing"},
		Spec:       quillv1.IssuerSpec{CA: quillv1.CASource{SecretRef: &quillv1.SecretReference{Name: interSecret.Name}}},
	})
	waitIssuerReady(t, &quillv1.QuillIssuer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "issuing"}})
	create(t, certificate(ns, "leaf", cmmeta.IssuerReference{Group: "quill.dev", Kind: quillv1.IssuerKind, Name: "issuing"}))
	leafSecret := waitCertificateReady(t, ns, "leaf")
	chain := parseCerts(t, leafSecret.Data["tls.crt"])
	if len(chain) != 2 || !chain[1].Equal(inter) {
		t.Fatalf("tls.crt holds %d certificates; want leaf + intermediate", len(chain))
	}
	if string(leafSecret.Data["ca.crt"]) != string(interSecret.Data["ca.crt"]) {
		t.Fatal("ca.crt of the leaf is not the root")
	}
	verifyChain(t, leafSecret, x509.ExtKeyUsageServerAuth)
}

// requestFor creates a CertificateRequest for csrPEM against ref directly,
// as cert-manager would, with extra labels.
func requestFor(t *testing.T, ns, name string, ref cmmeta.IssuerReference, csrPEM []byte, labels map[string]string) {
	t.Helper()
	create(t, &cmapi.CertificateRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: cmapi.CertificateRequestSpec{
			Request:   csrPEM,
			IssuerRef: ref,
			Usages:    []cmapi.KeyUsage{cmapi.UsageDigitalSignature, cmapi.UsageServerAuth},
		},
	})
}

func makeCSR(t *testing.T, key any, cn string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// waitRequestCondition waits for a CertificateRequest condition and
// returns the request.
func waitRequestCondition(t *testing.T, ns, name string, typ cmapi.CertificateRequestConditionType, status cmmeta.ConditionStatus, reason string) *cmapi.CertificateRequest {
	t.Helper()
	var cr cmapi.CertificateRequest
	eventually(t, "CertificateRequest "+name+" "+string(typ)+"="+string(status)+" "+reason, func() (bool, error) {
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &cr); err != nil {
			return false, err
		}
		var seen []string
		for _, c := range cr.Status.Conditions {
			if c.Type == typ && c.Status == status && (reason == "" || c.Reason == reason) {
				return true, nil
			}
			seen = append(seen, fmt.Sprintf("%s=%s(%s: %s)", c.Type, c.Status, c.Reason, c.Message))
		}
		return false, fmt.Errorf("conditions: %s", strings.Join(seen, ", "))
	})
	return &cr
}

// TestQuillRefusals checks the request outcomes that are not an issued
// certificate: a denied request, and input Quill refuses. Each must be
// terminal, carry the reason, set failureTime and hold no certificate.
func TestQuillRefusals(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ref := quillIssuer(t, ns, "ca", "ECDSA-P256", func(s *quillv1.IssuerSpec) {
		s.Issuance.MaxDuration = &metav1.Duration{Duration: 24 * time.Hour}
	})
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("denied", func(t *testing.T) {
		t.Parallel()
		requestFor(t, ns, "denied", ref, makeCSR(t, p256, "denied.example.test"), map[string]string{labelDeny: "true"})
		cr := waitRequestCondition(t, ns, "denied", cmapi.CertificateRequestConditionReady, cmmeta.ConditionFalse, cmapi.CertificateRequestReasonDenied)
		if cr.Status.FailureTime == nil || len(cr.Status.Certificate) != 0 {
			t.Fatalf("denied request: failureTime %v, certificate %d bytes", cr.Status.FailureTime, len(cr.Status.Certificate))
		}
	})
	t.Run("weak-key", func(t *testing.T) {
		t.Parallel()
		requestFor(t, ns, "weak", ref, makeCSR(t, rsa1024, "weak.example.test"), nil)
		cr := waitRequestCondition(t, ns, "weak", cmapi.CertificateRequestConditionInvalidRequest, cmmeta.ConditionTrue, "")
		assertFailed(t, cr, "1024")
	})
	// cert-manager's webhook refuses a request that is not a valid CSR;
	// where an administrator turned its validation off, Quill must refuse
	// it itself.
	tamperedBlock, _ := pem.Decode(makeCSR(t, p256, "tampered.example.test"))
	tamperedBlock.Bytes[len(tamperedBlock.Bytes)-3] ^= 0xff // break the signature
	tampered := pem.EncodeToMemory(tamperedBlock)
	garbage := []byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
	for name, csr := range map[string][]byte{"tampered": tampered, "garbage": garbage} {
		cr := &cmapi.CertificateRequest{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       cmapi.CertificateRequestSpec{Request: csr, IssuerRef: ref, Usages: []cmapi.KeyUsage{cmapi.UsageDigitalSignature}},
		}
		if err := env.Client.Create(context.Background(), cr); err == nil || !strings.Contains(err.Error(), "spec.request") {
			t.Errorf("cert-manager's webhook let the %s CSR through: %v", name, err)
		}
	}
	unvalidated := unvalidatedNamespace(t)
	unvalidatedRef := quillIssuer(t, unvalidated, "ca", "ECDSA-P256")
	t.Run("tampered-csr", func(t *testing.T) {
		t.Parallel()
		requestFor(t, unvalidated, "tampered", unvalidatedRef, tampered, nil)
		cr := waitRequestCondition(t, unvalidated, "tampered", cmapi.CertificateRequestConditionInvalidRequest, cmmeta.ConditionTrue, "")
		assertFailed(t, cr, "signature")
	})
	t.Run("not-a-csr", func(t *testing.T) {
		t.Parallel()
		requestFor(t, unvalidated, "garbage", unvalidatedRef, garbage, nil)
		cr := waitRequestCondition(t, unvalidated, "garbage", cmapi.CertificateRequestConditionInvalidRequest, cmmeta.ConditionTrue, "")
		assertFailed(t, cr, "")
	})
	t.Run("duration-over-max", func(t *testing.T) {
		t.Parallel()
		create(t, certificate(ns, "too-long", ref, func(c *cmapi.Certificate) {
			c.Spec.Duration = &metav1.Duration{Duration: 48 * time.Hour}
		}))
		eventually(t, "a failed request for too-long", func() (bool, error) {
			var list cmapi.CertificateRequestList
			if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
				return false, err
			}
			for _, cr := range list.Items {
				if cr.Annotations[cmapi.CertificateNameKey] != "too-long" {
					continue
				}
				for _, c := range cr.Status.Conditions {
					if c.Type == cmapi.CertificateRequestConditionInvalidRequest && c.Status == cmmeta.ConditionTrue {
						assertFailed(t, &cr, "maximum")
						return true, nil
					}
				}
			}
			return false, nil
		})
	})
}

// unvalidatedNamespace is a new namespace where cert-manager's validating
// webhook is turned off, for requests only Quill's own checks refuse.
func unvalidatedNamespace(t *testing.T) string {
	t.Helper()
	ns := newNamespace(t)
	obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
	patch := []byte(`{"metadata":{"labels":{"` + harness.DisableValidationLabel + `":"true"}}}`)
	if err := env.Client.Patch(context.Background(), obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatal(err)
	}
	return ns
}

func assertFailed(t *testing.T, cr *cmapi.CertificateRequest, msg string) {
	t.Helper()
	var ready *cmapi.CertificateRequestCondition
	for i, c := range cr.Status.Conditions {
		if c.Type == cmapi.CertificateRequestConditionReady {
			ready = &cr.Status.Conditions[i]
		}
	}
	if ready == nil || ready.Status != cmmeta.ConditionFalse || ready.Reason != cmapi.CertificateRequestReasonFailed {
		t.Fatalf("request %s: Ready = %+v, want False/Failed", cr.Name, ready)
	}
	if !strings.Contains(ready.Message, msg) {
		t.Errorf("request %s: message %q does not mention %q", cr.Name, ready.Message, msg)
	}
	if cr.Status.FailureTime == nil || len(cr.Status.Certificate) != 0 {
		t.Errorf("request %s: failureTime %v, certificate %d bytes", cr.Name, cr.Status.FailureTime, len(cr.Status.Certificate))
	}
}

// TestQuillIssuerCannotReadOtherNamespaces checks tenancy end to end: a
// QuillIssuer naming a Secret that exists only in another namespace is not
// Ready, and a Certificate for it stays Pending, unsigned.
func TestQuillIssuerCannotReadOtherNamespaces(t *testing.T) {
	t.Parallel()
	victim := newNamespace(t)
	quillIssuer(t, victim, "victim", "ECDSA-P256") // its root Secret is victim-root in victim's namespace
	attacker := newNamespace(t)
	iss := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: attacker, Name: "thief"},
		Spec:       quillv1.IssuerSpec{CA: quillv1.CASource{SecretRef: &quillv1.SecretReference{Name: "victim-root"}}},
	}
	create(t, iss)
	eventually(t, "thief issuer NotReady with SecretNotFound", func() (bool, error) {
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(iss), iss); err != nil {
			return false, err
		}
		for _, c := range iss.Status.Conditions {
			if c.Type == "Ready" && c.Status == metav1.ConditionFalse && strings.Contains(c.Message, quillv1.ReasonSecretNotFound) &&
				strings.Contains(c.Message, attacker+"/victim-root") {
				return true, nil
			}
		}
		return false, nil
	})
	create(t, certificate(attacker, "stolen", cmmeta.IssuerReference{Group: "quill.dev", Kind: quillv1.IssuerKind, Name: "thief"}))
	eventually(t, "stolen request Pending", func() (bool, error) {
		var list cmapi.CertificateRequestList
		if err := env.Client.List(context.Background(), &list, client.InNamespace(attacker)); err != nil {
			return false, err
		}
		for _, cr := range list.Items {
			for _, c := range cr.Status.Conditions {
				if c.Type == cmapi.CertificateRequestConditionReady && c.Reason == cmapi.CertificateRequestReasonPending {
					return len(cr.Status.Certificate) == 0, nil
				}
			}
		}
		return false, nil
	})
}

// TestKubernetesCSR signs a Kubernetes CertificateSigningRequest addressed to
// a QuillClusterIssuer once it is approved.
func TestKubernetesCSR(t *testing.T) {
	t.Parallel()
	iss := &quillv1.QuillClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: "k8s-csr"},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{
			SecretName: "k8s-csr-root", Subject: quillv1.Subject{CommonName: "k8s csr root"},
		}}},
	}
	create(t, iss)
	t.Cleanup(func() { _ = ignoreNotFound(env.Client.Delete(context.Background(), iss)) })
	waitIssuerReady(t, iss)

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr := &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "quill-e2e-kube-csr"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:           makeCSR(t, key, "kube-csr.example.test"),
			SignerName:        "quillclusterissuers.quill.dev/k8s-csr",
			Usages:            []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth},
			ExpirationSeconds: new(int32(3600)),
		},
	}
	create(t, csr)
	t.Cleanup(func() { _ = ignoreNotFound(env.Client.Delete(context.Background(), csr)) })
	csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "E2E", Message: "approved by the e2e test",
	})
	kc := kubernetes.NewForConfigOrDie(env.Config)
	if _, err := kc.CertificatesV1().CertificateSigningRequests().UpdateApproval(context.Background(), csr.Name, csr, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("approving: %v", err)
	}
	eventually(t, "CSR signed", func() (bool, error) {
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(csr), csr); err != nil {
			return false, err
		}
		return len(csr.Status.Certificate) > 0, nil
	})
	leaf := parseCerts(t, csr.Status.Certificate)[0]
	if leaf.Subject.CommonName != "kube-csr.example.test" || leaf.NotAfter.Sub(leaf.NotBefore) != time.Hour {
		t.Fatalf("signed CSR: subject %s, lifetime %s", leaf.Subject, leaf.NotAfter.Sub(leaf.NotBefore))
	}
}

// TestQuillClampsToCAExpiry checks that a certificate never outlives its CA:
// the 90-day default is cut to the CA's expiry, and an IssuanceAdjusted
// event on the request says so.
func TestQuillClampsToCAExpiry(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ref := quillIssuer(t, ns, "short", "ECDSA-P256", func(s *quillv1.IssuerSpec) {
		s.CA.Bootstrap.Validity = &metav1.Duration{Duration: 48 * time.Hour}
	})
	create(t, certificate(ns, "long", ref))
	leaf := verifyChain(t, waitCertificateReady(t, ns, "long"), x509.ExtKeyUsageServerAuth)
	var root corev1.Secret
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "short-root"}, &root); err != nil {
		t.Fatal(err)
	}
	if ca := parseCerts(t, root.Data["tls.crt"])[0]; !leaf.NotAfter.Equal(ca.NotAfter) {
		t.Fatalf("leaf expires %s, CA %s: want the leaf clamped to the CA", leaf.NotAfter, ca.NotAfter)
	}
	eventually(t, "an IssuanceAdjusted event", func() (bool, error) {
		var list corev1.EventList
		if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		for _, e := range list.Items {
			if e.Reason == "IssuanceAdjusted" && e.InvolvedObject.Kind == "CertificateRequest" && strings.Contains(e.Message, "clamped") {
				return true, nil
			}
		}
		return false, nil
	})
}
