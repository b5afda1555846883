package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"

	experimentalapi "github.com/cert-manager/cert-manager/pkg/apis/experimental/v1alpha1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/test/harness"
)

// kubeCSR is a CSR for dnsName (also its CN), changed by opts.
func kubeCSR(t *testing.T, dnsName string, opts ...func(*x509.CertificateRequest)) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: dnsName}, DNSNames: []string{dnsName}}
	for _, o := range opts {
		o(tmpl)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// withCSRExtension adds an extension (id, DER value) to the CSR.
func withCSRExtension(id asn1.ObjectIdentifier, value any) func(*x509.CertificateRequest) {
	return func(r *x509.CertificateRequest) {
		der, err := asn1.Marshal(value)
		if err != nil {
			panic(err)
		}
		r.ExtraExtensions = append(r.ExtraExtensions, pkix.Extension{Id: id, Value: der})
	}
}

// csrRequester lets user create Kubernetes CSRs, cluster-wide, as anyone
// who may ask for a certificate can.
func csrRequester(t *testing.T, user string) {
	t.Helper()
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "csr-requester-" + user},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{certificatesv1.GroupName},
			Resources: []string{"certificatesigningrequests"}, Verbs: []string{"create", "get"}}},
	}
	env.Create(t, role)
	env.Create(t, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
	})
}

// allowReference lets user reference the QuillIssuer ns/name, the way the
// README tells administrators to.
func allowReference(t *testing.T, ns, name, user string) {
	t.Helper()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reference-" + name},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{quillv1.GroupVersion.Group},
			Resources: []string{quillv1.SignerResource}, Verbs: []string{quillv1.VerbReference}, ResourceNames: []string{name}}},
	}
	env.Create(t, role)
	env.Create(t, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: role.Name + "-" + user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
	})
}

// submitCSR creates a CSR as user (so the API server records that user as
// its requester) and approves it as the administrator.
func submitCSR(t *testing.T, c client.Client, name, signerName string, request []byte, annotations map[string]string) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	ctx := context.Background()
	csr := &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request: request, SignerName: signerName, ExpirationSeconds: new(int32(3600)),
			Usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth},
		},
	}
	if err := c.Create(ctx, csr); err != nil {
		t.Fatalf("creating CSR %s: %v", name, err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), csr) })
	csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "IntegrationTest", Message: "approved by the test",
	})
	kc := kubernetes.NewForConfigOrDie(env.Config)
	if _, err := kc.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, name, csr, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("approving CSR %s: %v", name, err)
	}
	return csr
}

// csrOutcome waits until the CSR is signed or Failed and returns it.
func csrOutcome(t *testing.T, name string) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	var csr certificatesv1.CertificateSigningRequest
	harness.Eventually(t, "CSR "+name+" signed or failed", harness.WaitTimeout, func() (bool, error) {
		if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, &csr); err != nil {
			return false, err
		}
		if len(csr.Status.Certificate) > 0 {
			return true, nil
		}
		for _, c := range csr.Status.Conditions {
			if c.Type == certificatesv1.CertificateFailed {
				return true, nil
			}
		}
		return false, fmt.Errorf("conditions %+v", csr.Status.Conditions)
	})
	return &csr
}

func failedWith(t *testing.T, csr *certificatesv1.CertificateSigningRequest, reason, inMessage string) {
	t.Helper()
	if len(csr.Status.Certificate) > 0 {
		t.Fatalf("CSR %s was signed; want Failed with reason %s", csr.Name, reason)
	}
	for _, c := range csr.Status.Conditions {
		if c.Type == certificatesv1.CertificateFailed {
			if c.Status != corev1.ConditionTrue || c.Reason != reason || !strings.Contains(c.Message, inMessage) {
				t.Fatalf("CSR %s: Failed=%s reason %q message %q; want reason %q and a message with %q", csr.Name, c.Status, c.Reason, c.Message, reason, inMessage)
			}
			return
		}
	}
	t.Fatalf("CSR %s has no Failed condition", csr.Name)
}

// TestKubernetesCSRForNamespacedIssuer checks Kubernetes CSRs addressed to
// a QuillIssuer (quillissuers.quill.dev/<namespace>.<name>): a requester
// allowed to reference the issuer gets a certificate from its CA, with the
// issuer's namespace standing for {namespace} in its policy; a requester
// without that permission, a malformed signer name and a request policy
// refuses end Failed with a reason. The requesters are real users
// (impersonated) whose permissions come from real RBAC.
func TestKubernetesCSRForNamespacedIssuer(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	iss := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "team-ca"},
		Spec: quillv1.IssuerSpec{
			CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{SecretName: "team-ca-root", Subject: quillv1.Subject{CommonName: "team root " + ns}}},
			Policy: &quillv1.RequestPolicy{
				DNSNames: []string{"*.{namespace}.example.test"},
				CA:       &quillv1.CAPolicy{},
			},
		},
	}
	env.Create(t, iss)
	env.WaitIssuerReady(t, iss)

	alice, mallory := "alice-"+ns, "mallory-"+ns
	csrRequester(t, alice)
	csrRequester(t, mallory)
	allowReference(t, ns, iss.Name, alice)
	signerName := iss.ID().SignerName()
	if want := "quillissuers.quill.dev/" + ns + ".team-ca"; signerName != want {
		t.Fatalf("signer name %q, want %q", signerName, want)
	}

	serverAuth := func(r *x509.CertificateRequest) {}
	eku := withCSRExtension(asn1.ObjectIdentifier{2, 5, 29, 37}, []asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 2}}) // clientAuth only
	type bc struct {
		IsCA       bool `asn1:"optional"`
		MaxPathLen int  `asn1:"optional,default:-1"`
	}
	subCA := withCSRExtension(asn1.ObjectIdentifier{2, 5, 29, 19}, bc{IsCA: true, MaxPathLen: 0})
	isCA := map[string]string{experimentalapi.CertificateSigningRequestIsCAAnnotationKey: "true"}
	tests := []struct {
		name        string
		user        string
		signerName  string
		dnsName     string
		csrOpt      func(*x509.CertificateRequest)
		annotations map[string]string
		wantReason  string // "" for signed
		wantMessage string
		wantCA      bool
	}{
		{name: "allowed", user: alice, signerName: signerName, dnsName: "app." + ns + ".example.test", csrOpt: serverAuth},
		{name: "not-allowed", user: mallory, signerName: signerName, dnsName: "app." + ns + ".example.test", csrOpt: serverAuth,
			wantReason: quillv1.ReasonDeniedReference, wantMessage: `"` + mallory + `" may not reference QuillIssuer/` + ns + "/team-ca"},
		{name: "malformed-signer-name", user: alice, signerName: "quillissuers.quill.dev/team-ca", dnsName: "app." + ns + ".example.test", csrOpt: serverAuth,
			wantReason: quillv1.ReasonInvalidSignerName, wantMessage: "<namespace>.<name>"},
		{name: "policy-other-namespace", user: alice, signerName: signerName, dnsName: "app.elsewhere.example.test", csrOpt: serverAuth,
			wantReason: quillv1.ReasonPolicyDenied, wantMessage: "spec.policy.dnsNames"},
		{name: "usages-contradict-csr", user: alice, signerName: signerName, dnsName: "app." + ns + ".example.test", csrOpt: eku,
			wantReason: quillv1.ReasonInvalidRequest, wantMessage: "CSR"},
		{name: "is-ca-unreadable", user: alice, signerName: signerName, dnsName: "app." + ns + ".example.test", csrOpt: serverAuth,
			annotations: map[string]string{experimentalapi.CertificateSigningRequestIsCAAnnotationKey: "yes"},
			wantReason:  quillv1.ReasonInvalidRequest, wantMessage: "request-is-ca"},
		{name: "sub-ca-path-length-zero", user: alice, signerName: signerName, dnsName: "sub." + ns + ".example.test", csrOpt: subCA,
			annotations: isCA, wantCA: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := ns + "-" + tt.name
			submitCSR(t, as(t, tt.user), name, tt.signerName, kubeCSR(t, tt.dnsName, tt.csrOpt), tt.annotations)
			csr := csrOutcome(t, name)
			if csr.Spec.Username != tt.user {
				t.Fatalf("the API server recorded requester %q, want %q", csr.Spec.Username, tt.user)
			}
			if tt.wantReason != "" {
				failedWith(t, csr, tt.wantReason, tt.wantMessage)
				return
			}
			if len(csr.Status.Certificate) == 0 {
				t.Fatalf("CSR not signed: %+v", csr.Status.Conditions)
			}
			leaf := harness.ParseCerts(t, csr.Status.Certificate)[0]
			if leaf.Issuer.CommonName != "team root "+ns || leaf.DNSNames[0] != tt.dnsName {
				t.Errorf("certificate for %v issued by %q; want %s from the issuer's CA", leaf.DNSNames, leaf.Issuer, tt.dnsName)
			}
			if leaf.IsCA != tt.wantCA || (tt.wantCA && (leaf.MaxPathLen != 0 || !leaf.MaxPathLenZero)) {
				t.Errorf("isCA %v, pathLen %d (zero %v); want isCA %v and, for a CA, the requested pathLen 0", leaf.IsCA, leaf.MaxPathLen, leaf.MaxPathLenZero, tt.wantCA)
			}
		})
	}
}

// TestKubernetesCSRForClusterIssuerFails checks that an approved CSR for a
// QuillClusterIssuer that Quill cannot serve ends Failed with a reason,
// once the controller's retry window has passed: one that does not exist
// and one that is not Ready (its CA Secret is missing).
func TestKubernetesCSRForClusterIssuerFails(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t) // only for unique names
	broken := &quillv1.QuillClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: "csr-broken-" + ns},
		Spec:       quillv1.IssuerSpec{CA: quillv1.CASource{SecretRef: &quillv1.SecretReference{Name: "no-such-secret"}}},
	}
	env.Create(t, broken)
	tests := []struct {
		name, signerName, reason, message string
	}{
		{name: "missing", signerName: "quillclusterissuers.quill.dev/missing-" + ns, reason: quillv1.ReasonIssuerNotFound, message: "does not exist"},
		{name: "not-ready", signerName: broken.ID().SignerName(), reason: quillv1.ReasonIssuerNotReady, message: "is not Ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := ns + "-" + tt.name
			submitCSR(t, env.Client, name, tt.signerName, kubeCSR(t, "app.example.test"), nil)
			failedWith(t, csrOutcome(t, name), tt.reason, tt.message)
		})
	}
}
