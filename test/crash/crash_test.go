// Package crash kills quill-controller between signing a certificate and
// publishing it, and checks the ledger's promises: the certificate was
// recorded before anyone could receive it, and the request, retried by a
// new controller, receives that same certificate rather than a second one.
package crash

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/test/harness"
)

const (
	clusterNS  = "quill-system"
	crashLabel = "quill.dev/crash-test"
)

var env *harness.Env

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, &env, func(e *harness.Env) (func(), error) {
		for _, ns := range []string{"cert-manager", clusterNS} {
			if err := e.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
				return nil, err
			}
		}
		if _, err := e.StartCertManager(); err != nil { // built-in approver approves
			return nil, err
		}
		return func() {}, nil
	}))
}

// startQuill runs quill-controller until it is killed or the test ends.
func startQuill(t *testing.T) {
	t.Helper()
	stop, err := env.StartProcess("quill-controller", "--kubeconfig", env.Kubeconfig, "--cluster-resource-namespace", clusterNS,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--revocation-bind-address", "0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() }) // a killed process is already gone
}

// eventually is harness.Eventually, with the controller's log when it
// times out.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("--- quill-controller log ---\n%s", env.Log("quill-controller"))
		}
	}()
	harness.Eventually(t, what, timeout, cond)
}

// record is a ledger entry and the segment holding it.
type record struct {
	segment string
	entry   ledger.Entry
}

// recordsFor lists the ledger entries in ns of the request with uid,
// reading every segment there, one per serial (an entry being sealed is
// briefly in two segments). The test reads no index: what counts is what
// the API server holds.
func recordsFor(t *testing.T, ns, uid string) []record {
	t.Helper()
	var list quillv1.LedgerSegmentList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []record
	seen := map[string]bool{}
	for i := range list.Items {
		seg := &list.Items[i]
		if err := ledger.SegmentEntries(seg, func(e *ledger.Entry) error {
			if !e.IsRevocationLine() && e.Origin != nil && e.Origin.UID == uid && !seen[e.Serial] {
				seen[e.Serial] = true
				out = append(out, record{segment: seg.Name, entry: *e})
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestKilledBetweenSigningAndPublishing(t *testing.T) {
	ctx := context.Background()
	c := env.Client
	ns := env.Namespace(t, "crash-")

	// The API server refuses to let the signed certificate reach this
	// request: everything up to publishing happens, publishing does not.
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "crash-test-withhold-certificate"},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Update},
					Rule:       admissionv1.Rule{APIGroups: []string{"cert-manager.io"}, APIVersions: []string{"*"}, Resources: []string{"certificaterequests/status"}},
				},
			}}},
			MatchConditions: []admissionv1.MatchCondition{{Name: "labelled", Expression: `has(object.metadata.labels) && '` + crashLabel + `' in object.metadata.labels`}},
			Validations:     []admissionv1.Validation{{Expression: `!has(object.status.certificate) || size(object.status.certificate) == 0`, Message: "crash test: certificate withheld"}},
		},
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "crash-test-withhold-certificate"},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: policy.Name, ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
		},
	}
	for _, o := range []client.Object{policy, binding} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), o) })
	}
	// The API server applies a new policy a moment after it is created:
	// wait until it refuses a certificate on a labelled request that no
	// issuer serves. (The request is a real CSR: cert-manager's webhook
	// refuses anything else.)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "crash.example.test"}, DNSNames: []string{"crash.example.test"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	probe := &cmapi.CertificateRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "policy-probe", Labels: map[string]string{crashLabel: "true"}},
		Spec: cmapi.CertificateRequestSpec{
			Request:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}),
			IssuerRef: cmmeta.IssuerReference{Group: "probe.invalid", Kind: "None", Name: "none"},
		},
	}
	if err := c.Create(ctx, probe); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the admission policy to withhold certificates", time.Minute, func() (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(probe), probe); err != nil {
			return false, err
		}
		probe.Status.Certificate = []byte("probe")
		err := c.Status().Update(ctx, probe)
		if err == nil {
			return false, errors.New("a certificate was accepted")
		}
		return strings.Contains(err.Error(), "certificate withheld"), err
	})
	if err := c.Delete(ctx, probe); err != nil {
		t.Fatal(err)
	}

	startQuill(t)
	iss := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ca"},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{
			SecretName: "ca-root", Subject: quillv1.Subject{CommonName: "crash root"}, KeyAlgorithm: "ECDSA-P256",
		}}},
	}
	if err := c.Create(ctx, iss); err != nil {
		t.Fatal(err)
	}
	// The namespace never finishes terminating here (no namespace
	// controller), so the issuer goes by itself.
	t.Cleanup(func() { _ = c.Delete(context.Background(), iss) })
	cr := &cmapi.CertificateRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "victim", Labels: map[string]string{crashLabel: "true"}},
		Spec: cmapi.CertificateRequestSpec{
			Request:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}),
			IssuerRef: cmmeta.IssuerReference{Group: "quill.dev", Kind: quillv1.IssuerKind, Name: "ca"},
			Usages:    []cmapi.KeyUsage{cmapi.UsageDigitalSignature, cmapi.UsageServerAuth},
		},
	}
	if err := c.Create(ctx, cr); err != nil {
		t.Fatal(err)
	}
	uid := string(cr.UID)

	// Signed and recorded, but withheld; retries meanwhile must return the
	// recorded certificate, not sign again.
	eventually(t, "the certificate to be recorded", time.Minute, func() (bool, error) {
		return len(recordsFor(t, ns, uid)) > 0, nil
	})
	time.Sleep(3 * time.Second) // several publishing attempts fail meanwhile
	if err := env.Kill("quill-controller"); err != nil {
		t.Fatal(err)
	}
	recs := recordsFor(t, ns, uid)
	if len(recs) != 1 {
		t.Fatalf("%d ledger records for one request before the crash", len(recs))
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(cr), cr); err != nil {
		t.Fatal(err)
	}
	if len(cr.Status.Certificate) != 0 {
		t.Fatal("the certificate reached the request although publishing was refused")
	}

	if err := c.Delete(ctx, binding); err != nil {
		t.Fatal(err)
	}
	startQuill(t)
	eventually(t, "the request to be issued by the restarted controller", time.Minute, func() (bool, error) {
		err := c.Get(ctx, client.ObjectKeyFromObject(cr), cr)
		return err == nil && len(cr.Status.Certificate) > 0, err
	})
	block, _ := pem.Decode(cr.Status.Certificate)
	if block == nil {
		t.Fatal("status.certificate is not PEM")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	after := recordsFor(t, ns, uid)
	if len(after) != 1 {
		t.Fatalf("%d ledger records for one request after the restart: signed twice", len(after))
	}
	if after[0].entry.Serial != leaf.SerialNumber.Text(16) {
		t.Fatalf("the request received serial %x, the ledger recorded %s: a second signature", leaf.SerialNumber, after[0].entry.Serial)
	}
	if string(after[0].entry.Certificate) != string(leaf.Raw) {
		t.Fatal("the request received another certificate than the one the ledger kept")
	}
	if after[0].entry.Serial != recs[0].entry.Serial {
		t.Fatalf("the ledger recorded serial %s before the crash (segment %s) and %s after it (segment %s)",
			recs[0].entry.Serial, recs[0].segment, after[0].entry.Serial, after[0].segment)
	}
}
