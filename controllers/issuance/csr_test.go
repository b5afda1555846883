package issuance

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	issuerapi "github.com/cert-manager/issuer-lib/api/v1alpha1"
	"github.com/cert-manager/issuer-lib/controllers/signer"
	authzv1 "k8s.io/api/authorization/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

const maxWaitForTest = 2 * time.Minute

// csrFixture is a csrReconciler on a fake API server; status patches and
// SubjectAccessReviews are recorded, not applied.
type csrFixture struct {
	r       *csrReconciler
	mu      sync.Mutex
	patches []map[string]any
	sars    []authzv1.SubjectAccessReviewSpec
	signed  int
	recheck []quillv1.IssuerID
}

// newCSRFixture serves objs; allowed says which SubjectAccessReviews the
// API server allows; sign stands in for Signer.Sign.
func newCSRFixture(t *testing.T, now time.Time, allowed func(authzv1.SubjectAccessReviewSpec) bool, sign signer.Sign, objs ...client.Object) *csrFixture {
	t.Helper()
	f := &csrFixture{}
	api := interceptor.NewClient(newAPI(t, objs...), interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			sar, ok := obj.(*authzv1.SubjectAccessReview)
			if !ok {
				return c.Create(ctx, obj, opts...)
			}
			f.mu.Lock()
			f.sars = append(f.sars, sar.Spec)
			f.mu.Unlock()
			sar.Status.Allowed = allowed(sar.Spec)
			return nil
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			var body map[string]any
			data, err := patch.Data(obj)
			if err == nil {
				err = json.Unmarshal(data, &body)
			}
			if err != nil {
				t.Errorf("patch: %v", err)
			}
			f.mu.Lock()
			f.patches = append(f.patches, body)
			f.mu.Unlock()
			return nil
		},
	})
	f.r = &csrReconciler{
		client: api,
		sign: func(ctx context.Context, cr signer.CertificateRequestObject, iss issuerapi.Issuer) (signer.PEMBundle, error) {
			f.mu.Lock()
			f.signed++
			f.mu.Unlock()
			return sign(ctx, cr, iss)
		},
		recheck:  func(id quillv1.IssuerID) { f.recheck = append(f.recheck, id) },
		clock:    clocktesting.NewFakeClock(now),
		recorder: events.NewFakeRecorder(100),
		maxWait:  maxWaitForTest,
	}
	return f
}

// failedReason is the reason of the Failed condition the fixture's one
// status patch wrote, "" for none.
func (f *csrFixture) failedReason(t *testing.T) string {
	t.Helper()
	if len(f.patches) == 0 {
		return ""
	}
	if len(f.patches) > 1 {
		t.Fatalf("%d status patches, want one: %v", len(f.patches), f.patches)
	}
	status, _ := f.patches[0]["status"].(map[string]any)
	conds, _ := status["conditions"].([]any)
	if len(conds) != 1 {
		return ""
	}
	c := conds[0].(map[string]any)
	if c["type"] != string(certificatesv1.CertificateFailed) || c["status"] != "True" {
		t.Fatalf("condition %v, want Failed=True", c)
	}
	return c["reason"].(string)
}

func (f *csrFixture) wroteCertificate() bool {
	if len(f.patches) != 1 {
		return false
	}
	status, _ := f.patches[0]["status"].(map[string]any)
	_, ok := status["certificate"]
	return ok
}

type csrTestOption func(*certificatesv1.CertificateSigningRequest)

func approved(at time.Time) csrTestOption {
	return func(c *certificatesv1.CertificateSigningRequest) {
		c.Status.Conditions = append(c.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at),
		})
	}
}

func withCSRCondition(t certificatesv1.RequestConditionType) csrTestOption {
	return func(c *certificatesv1.CertificateSigningRequest) {
		c.Status.Conditions = append(c.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{Type: t, Status: corev1.ConditionTrue})
	}
}

func signerNamed(name string) csrTestOption {
	return func(c *certificatesv1.CertificateSigningRequest) { c.Spec.SignerName = name }
}

func testCSR(opts ...csrTestOption) *certificatesv1.CertificateSigningRequest {
	csr := &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "csr"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			SignerName: "quillissuers.quill.dev/team-a.ca",
			Username:   "alice", Groups: []string{"devs"}, UID: "uid-1",
			Extra: map[string]certificatesv1.ExtraValue{"scope": {"x"}},
		},
	}
	for _, o := range opts {
		o(csr)
	}
	return csr
}

// readyIssuer is QuillIssuer team-a/ca (generation 1) with Ready status,
// reason; "" for no Ready condition.
func readyIssuer(status metav1.ConditionStatus, reason string, observed int64) *quillv1.QuillIssuer {
	iss := &quillv1.QuillIssuer{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "ca", Generation: 1}}
	if reason != "" {
		iss.Status.Conditions = []metav1.Condition{{Type: issuerapi.IssuerConditionTypeReady, Status: status, Reason: reason, ObservedGeneration: observed}}
	}
	return iss
}

func TestCSRReconcile(t *testing.T) {
	t.Parallel()
	now := testNow
	fresh, stale := now.Add(-time.Minute), now.Add(-maxWaitForTest-time.Second)
	ready := readyIssuer(metav1.ConditionTrue, issuerapi.IssuerConditionReasonChecked, 1)
	readyCluster := &quillv1.QuillClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "root", Generation: 1}}
	readyCluster.Status.Conditions = ready.Status.Conditions
	allowAll := func(authzv1.SubjectAccessReviewSpec) bool { return true }
	allowNone := func(authzv1.SubjectAccessReviewSpec) bool { return false }
	allowStar := func(s authzv1.SubjectAccessReviewSpec) bool { return s.ResourceAttributes.Name == "*" }
	signs := func(context.Context, signer.CertificateRequestObject, issuerapi.Issuer) (signer.PEMBundle, error) {
		return signer.PEMBundle{ChainPEM: []byte("chain")}, nil
	}
	failsWith := func(err error) signer.Sign {
		return func(context.Context, signer.CertificateRequestObject, issuerapi.Issuer) (signer.PEMBundle, error) {
			return signer.PEMBundle{}, err
		}
	}
	policyDenied := signer.PermanentError{Err: signer.SetCertificateRequestConditionError{
		Err: errors.New("refused by spec.policy.dnsNames"), ConditionType: cmapi.CertificateRequestConditionInvalidRequest,
		Status: cmmeta.ConditionTrue, Reason: quillv1.ReasonPolicyDenied,
	}}
	tests := []struct {
		name        string
		csr         *certificatesv1.CertificateSigningRequest
		issuer      client.Object
		allowed     func(authzv1.SubjectAccessReviewSpec) bool
		sign        signer.Sign
		wantReason  string // Failed reason; "" for none
		wantCert    bool
		wantSigned  bool
		wantRequeue bool
		wantErr     bool
		wantRecheck bool
	}{
		{name: "other-signer-left-alone", csr: testCSR(approved(fresh), signerNamed("kubernetes.io/kube-apiserver-client")), issuer: ready, allowed: allowAll, sign: signs},
		{name: "not-approved-left-alone", csr: testCSR(), issuer: ready, allowed: allowAll, sign: signs},
		{name: "denied-left-alone", csr: testCSR(withCSRCondition(certificatesv1.CertificateDenied)), issuer: ready, allowed: allowAll, sign: signs},
		{name: "failed-left-alone", csr: testCSR(approved(fresh), withCSRCondition(certificatesv1.CertificateFailed)), issuer: ready, allowed: allowAll, sign: signs},
		{name: "malformed-signer-name", csr: testCSR(approved(fresh), signerNamed("quillissuers.quill.dev/ca")), issuer: ready, allowed: allowAll, sign: signs,
			wantReason: quillv1.ReasonInvalidSignerName},
		{name: "reference-denied", csr: testCSR(approved(fresh)), issuer: ready, allowed: allowNone, sign: signs, wantReason: quillv1.ReasonDeniedReference},
		{name: "reference-denied-before-issuer-lookup", csr: testCSR(approved(fresh), signerNamed("quillissuers.quill.dev/team-a.missing")), issuer: ready,
			allowed: allowNone, sign: signs, wantReason: quillv1.ReasonDeniedReference},
		{name: "reference-allowed-signs", csr: testCSR(approved(fresh)), issuer: ready, allowed: allowAll, sign: signs, wantSigned: true, wantCert: true},
		{name: "reference-allowed-for-all-names", csr: testCSR(approved(fresh)), issuer: ready, allowed: allowStar, sign: signs, wantSigned: true, wantCert: true},
		{name: "cluster-issuer-needs-no-reference", csr: testCSR(approved(fresh), signerNamed("quillclusterissuers.quill.dev/root")), issuer: readyCluster,
			allowed: allowNone, sign: signs, wantSigned: true, wantCert: true},
		{name: "issuer-missing-waits", csr: testCSR(approved(fresh), signerNamed("quillclusterissuers.quill.dev/missing")), issuer: ready, allowed: allowAll, sign: signs,
			wantRequeue: true},
		{name: "issuer-missing-fails-after-window", csr: testCSR(approved(stale), signerNamed("quillclusterissuers.quill.dev/missing")), issuer: ready, allowed: allowAll,
			sign: signs, wantReason: quillv1.ReasonIssuerNotFound},
		{name: "issuer-unchecked-waits", csr: testCSR(approved(fresh)), issuer: readyIssuer("", "", 0), allowed: allowAll, sign: signs, wantRequeue: true},
		{name: "issuer-outdated-waits", csr: testCSR(approved(fresh)), issuer: readyIssuer(metav1.ConditionTrue, issuerapi.IssuerConditionReasonChecked, 0),
			allowed: allowAll, sign: signs, wantRequeue: true},
		{name: "issuer-pending-waits", csr: testCSR(approved(fresh)), issuer: readyIssuer(metav1.ConditionFalse, issuerapi.IssuerConditionReasonPending, 1),
			allowed: allowAll, sign: signs, wantRequeue: true},
		{name: "issuer-pending-fails-after-window", csr: testCSR(approved(stale)), issuer: readyIssuer(metav1.ConditionFalse, issuerapi.IssuerConditionReasonPending, 1),
			allowed: allowAll, sign: signs, wantReason: quillv1.ReasonIssuerNotReady},
		{name: "issuer-failed-for-good-fails-at-once", csr: testCSR(approved(fresh)), issuer: readyIssuer(metav1.ConditionFalse, issuerapi.IssuerConditionReasonFailed, 1),
			allowed: allowAll, sign: signs, wantReason: quillv1.ReasonIssuerNotReady},
		{name: "policy-refusal", csr: testCSR(approved(fresh)), issuer: ready, allowed: allowAll, sign: failsWith(policyDenied),
			wantSigned: true, wantReason: quillv1.ReasonPolicyDenied},
		{name: "permanent-without-reason", csr: testCSR(approved(fresh)), issuer: ready, allowed: allowAll, sign: failsWith(signer.PermanentError{Err: errors.New("no")}),
			wantSigned: true, wantReason: quillv1.ReasonSigningFailed},
		{name: "issuer-fault-rechecks", csr: testCSR(approved(fresh)), issuer: ready, allowed: allowAll, sign: failsWith(signer.IssuerError{Err: errors.New("CA gone")}),
			wantSigned: true, wantRequeue: true, wantRecheck: true},
		{name: "pending-requeues", csr: testCSR(approved(fresh)), issuer: ready, allowed: allowAll, sign: failsWith(signer.PendingError{Err: errors.New("ledger loading")}),
			wantSigned: true, wantRequeue: true},
		{name: "retryable-retries", csr: testCSR(approved(fresh)), issuer: ready, allowed: allowAll, sign: failsWith(errors.New("API server hiccup")),
			wantSigned: true, wantErr: true},
		{name: "retryable-fails-after-window", csr: testCSR(approved(stale)), issuer: ready, allowed: allowAll, sign: failsWith(errors.New("API server hiccup")),
			wantSigned: true, wantReason: quillv1.ReasonSigningFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newCSRFixture(t, now, tt.allowed, tt.sign, tt.csr, tt.issuer)
			res, err := f.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Name: tt.csr.Name}})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Reconcile error = %v, want error %v", err, tt.wantErr)
			}
			if got := res.RequeueAfter > 0; got != tt.wantRequeue {
				t.Errorf("RequeueAfter = %s, want a requeue %v", res.RequeueAfter, tt.wantRequeue)
			}
			if got := f.failedReason(t); got != tt.wantReason {
				t.Errorf("Failed reason = %q, want %q (patches %v)", got, tt.wantReason, f.patches)
			}
			if got := f.wroteCertificate(); got != tt.wantCert {
				t.Errorf("wrote a certificate: %v, want %v", got, tt.wantCert)
			}
			if got := f.signed > 0; got != tt.wantSigned {
				t.Errorf("Sign called: %v, want %v", got, tt.wantSigned)
			}
			if got := len(f.recheck) > 0; got != tt.wantRecheck {
				t.Errorf("issuer recheck asked: %v, want %v", f.recheck, tt.wantRecheck)
			}
			for _, s := range f.sars {
				ra := s.ResourceAttributes
				if s.User != "alice" || len(s.Groups) != 1 || s.UID != "uid-1" || len(s.Extra["scope"]) != 1 ||
					ra.Group != "quill.dev" || ra.Resource != "signers" || ra.Verb != "reference" || ra.Namespace != "team-a" {
					t.Errorf("SubjectAccessReview %+v (%+v) does not ask for alice's reference on quill.dev signers in team-a", s, ra)
				}
			}
		})
	}
}
