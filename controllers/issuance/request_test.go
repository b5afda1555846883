package issuance

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	issuerapi "github.com/cert-manager/issuer-lib/api/v1alpha1"
	"github.com/cert-manager/issuer-lib/controllers/signer"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/issuers"
)

var certificateRequestsResource = schema.GroupResource{Group: cmapi.SchemeGroupVersion.Group, Resource: "certificaterequests"}

type requestFixture struct {
	r        *requestReconciler
	api      client.WithWatch
	recorder *events.FakeRecorder
	patches  *patchLog
	signed   atomic.Int32
	rechecks []quillv1.IssuerID
}

type requestConfig struct {
	objects  []client.Object
	getErr   error
	patchErr error
	sign     signer.Sign
}

type requestOption func(*requestConfig)

func withRequests(objs ...client.Object) requestOption {
	return func(c *requestConfig) { c.objects = append(c.objects, objs...) }
}

func withGetErr(err error) requestOption { return func(c *requestConfig) { c.getErr = err } }

func withPatchErr(err error) requestOption { return func(c *requestConfig) { c.patchErr = err } }

// signing makes the fixture's Sign return bundle and err.
func signing(bundle signer.PEMBundle, err error) requestOption {
	return func(c *requestConfig) {
		c.sign = func(context.Context, signer.CertificateRequestObject, issuerapi.Issuer) (signer.PEMBundle, error) {
			return bundle, err
		}
	}
}

// requestNow is the reconciler's clock, distinct from the fixtures' times.
var requestNow = testNow.Add(90 * time.Second)

// newRequestReconciler is a requestReconciler on a fake API server holding
// objs; status patches are recorded and applied. Sign fails the test
// unless an option says what it returns.
func newRequestReconciler(t testing.TB, opts ...requestOption) *requestFixture {
	t.Helper()
	cfg := &requestConfig{}
	for _, o := range opts {
		o(cfg)
	}
	api := newAPI(t, cfg.objects...)
	f := &requestFixture{api: api, recorder: events.NewFakeRecorder(10), patches: &patchLog{}}
	c := interceptor.NewClient(api, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if cfg.getErr != nil {
				return cfg.getErr
			}
			return c.Get(ctx, key, obj, opts...)
		},
		SubResourcePatch: recordPatches(t, f.patches, cfg.patchErr),
	})
	f.r = &requestReconciler{
		client: c,
		sign: func(ctx context.Context, cr signer.CertificateRequestObject, iss issuerapi.Issuer) (signer.PEMBundle, error) {
			f.signed.Add(1)
			if cfg.sign == nil {
				t.Error("Sign called")
				return signer.PEMBundle{}, errors.New("unexpected Sign")
			}
			return cfg.sign(ctx, cr, iss)
		},
		recheck:  func(id quillv1.IssuerID) { f.rechecks = append(f.rechecks, id) },
		clock:    clocktesting.NewFakeClock(requestNow),
		recorder: f.recorder,
		maxRetry: maxWaitForTest,
	}
	return f
}

func denied() crOption {
	return withCondition(cmapi.CertificateRequestConditionDenied, cmmeta.ConditionTrue, "PolicyDenied", "no wildcard names")
}

func TestRequestReconcileDenied(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		request    *cmapi.CertificateRequest
		wantFinish bool
		// readySince is when Ready turned False: now, unless it was
		// False (Pending) already.
		readySince time.Time
	}{
		{
			name:       "denied-quill-request-is-finished",
			request:    newCertificateRequest(t, "cr", denied()),
			wantFinish: true,
		},
		{
			name:       "denied-request-pending-is-finished",
			request:    newCertificateRequest(t, "cr", denied(), withCondition(cmapi.CertificateRequestConditionReady, cmmeta.ConditionFalse, cmapi.CertificateRequestReasonPending, "waiting")),
			wantFinish: true,
			readySince: testNow.Add(-time.Minute),
		},
		{
			name:    "denied-request-for-another-group-is-left-alone",
			request: newCertificateRequest(t, "cr", denied(), withIssuerGroup("cert-manager.io")),
		},
		{
			name:    "denied-request-already-ready-is-left-alone",
			request: newCertificateRequest(t, "cr", denied(), withCondition(cmapi.CertificateRequestConditionReady, cmmeta.ConditionTrue, cmapi.CertificateRequestReasonIssued, "issued")),
		},
		{
			name:    "denied-request-already-finished-is-left-alone",
			request: newCertificateRequest(t, "cr", denied(), withCondition(cmapi.CertificateRequestConditionReady, cmmeta.ConditionFalse, cmapi.CertificateRequestReasonDenied, "denied before")),
		},
		{
			name:    "denied-request-already-failed-is-left-alone",
			request: newCertificateRequest(t, "cr", denied(), withCondition(cmapi.CertificateRequestConditionReady, cmmeta.ConditionFalse, cmapi.CertificateRequestReasonFailed, "failed")),
		},
		{
			name:    "unapproved-request-is-left-alone",
			request: newCertificateRequest(t, "cr"),
		},
		{
			name:    "denied-false-is-left-alone",
			request: newCertificateRequest(t, "cr", withCondition(cmapi.CertificateRequestConditionDenied, cmmeta.ConditionFalse, "NotDenied", "")),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newRequestReconciler(t, withRequests(tt.request))
			key := client.ObjectKeyFromObject(tt.request)
			res, err := f.r.Reconcile(ctx, ctrl.Request{NamespacedName: key})
			if err != nil {
				t.Fatalf("Reconcile: %v", err)
			}
			if res != (ctrl.Result{}) {
				t.Errorf("result = %+v, want no requeue", res)
			}
			var got cmapi.CertificateRequest
			if err := f.api.Get(ctx, key, &got); err != nil {
				t.Fatal(err)
			}
			patches := f.patches.all()
			evs := drainEvents(f.recorder)
			if !tt.wantFinish {
				if len(patches) != 0 {
					t.Errorf("%d status patches, want none", len(patches))
				}
				if len(evs) != 0 {
					t.Errorf("events %q, want none", evs)
				}
				if len(got.Status.Conditions) != len(tt.request.Status.Conditions) || got.Status.FailureTime != nil {
					t.Errorf("status changed: %+v", got.Status)
				}
				return
			}

			if len(patches) != 1 {
				t.Fatalf("%d status patches, want 1", len(patches))
			}
			p := patches[0]
			if p.subResource != "status" || p.patchType != types.ApplyPatchType || p.opts.FieldManager != issuers.FieldOwner || p.opts.Force == nil || !*p.opts.Force {
				t.Errorf("patch: %s of %q by %q (force %v), want a forced apply of status by %q", p.patchType, p.subResource, p.opts.FieldManager, p.opts.Force, issuers.FieldOwner)
			}
			if p.body["apiVersion"] != cmapi.SchemeGroupVersion.String() || p.body["kind"] != cmapi.CertificateRequestKind {
				t.Errorf("patch is for %v %v", p.body["apiVersion"], p.body["kind"])
			}

			wantTime := requestNow
			if got.Status.FailureTime == nil || !got.Status.FailureTime.Time.Equal(wantTime) {
				t.Errorf("failureTime = %v, want %s", got.Status.FailureTime, wantTime)
			}
			var ready, denial *cmapi.CertificateRequestCondition
			for i, c := range got.Status.Conditions {
				switch c.Type {
				case cmapi.CertificateRequestConditionReady:
					ready = &got.Status.Conditions[i]
				case cmapi.CertificateRequestConditionDenied:
					denial = &got.Status.Conditions[i]
				}
			}
			if ready == nil {
				t.Fatalf("no Ready condition in %+v", got.Status.Conditions)
			}
			if ready.Status != cmmeta.ConditionFalse || ready.Reason != cmapi.CertificateRequestReasonDenied {
				t.Errorf("Ready = %s (%s), want False (%s)", ready.Status, ready.Reason, cmapi.CertificateRequestReasonDenied)
			}
			if !strings.Contains(ready.Message, "PolicyDenied") || !strings.Contains(ready.Message, "no wildcard names") {
				t.Errorf("Ready message %q does not carry the denial's reason and message", ready.Message)
			}
			if tt.readySince.IsZero() {
				tt.readySince = wantTime
			}
			if ready.LastTransitionTime == nil || !ready.LastTransitionTime.Time.Equal(tt.readySince) {
				t.Errorf("Ready lastTransitionTime = %v, want %s", ready.LastTransitionTime, tt.readySince)
			}
			if denial == nil || denial.Status != cmmeta.ConditionTrue {
				t.Errorf("the approver's Denied condition was lost: %+v", got.Status.Conditions)
			}
			if len(evs) != 1 || !strings.HasPrefix(evs[0], "Warning "+cmapi.CertificateRequestReasonDenied+" ") {
				t.Errorf("events = %q, want one Warning %s", evs, cmapi.CertificateRequestReasonDenied)
			}

			// A second pass sees the finished request and does nothing.
			if _, err := f.r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
				t.Fatalf("second Reconcile: %v", err)
			}
			if n := len(f.patches.all()); n != 1 {
				t.Errorf("%d status patches after a second Reconcile, want still 1", n)
			}
		})
	}
}

func TestRequestReconcileErrors(t *testing.T) {
	t.Parallel()
	apiDown := apierrors.NewServiceUnavailable("etcd is down")
	tests := []struct {
		name        string
		objects     []client.Object
		getErr      error
		patchErr    error
		wantErr     error
		wantPatches int
	}{
		{name: "request-gone", wantPatches: 0},
		{name: "get-fails", objects: []client.Object{newCertificateRequest(t, "cr", denied())}, getErr: apiDown, wantErr: apiDown},
		{
			name:        "deleted-before-patch",
			objects:     []client.Object{newCertificateRequest(t, "cr", denied())},
			patchErr:    apierrors.NewNotFound(certificateRequestsResource, "cr"),
			wantPatches: 1,
		},
		{
			name:        "patch-fails",
			objects:     []client.Object{newCertificateRequest(t, "cr", denied())},
			patchErr:    apiDown,
			wantErr:     apiDown,
			wantPatches: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newRequestReconciler(t, withRequests(tt.objects...), withGetErr(tt.getErr), withPatchErr(tt.patchErr))
			res, err := f.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: testNamespace, Name: "cr"}})
			switch {
			case tt.wantErr == nil && err != nil:
				t.Errorf("Reconcile: %v, want no error", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("Reconcile error = %v, want %v", err, tt.wantErr)
			}
			if res != (ctrl.Result{}) {
				t.Errorf("result = %+v, want none", res)
			}
			if n := len(f.patches.all()); n != tt.wantPatches {
				t.Errorf("%d status patches, want %d", n, tt.wantPatches)
			}
			if evs := drainEvents(f.recorder); len(evs) != 0 {
				t.Errorf("events %q recorded although nothing was written", evs)
			}
		})
	}
}

// approvedRequest is CertificateRequest "cr" for QuillIssuer
// testNamespace/issuer, approved, created a minute before requestNow.
func approvedRequest(t testing.TB, opts ...crOption) *cmapi.CertificateRequest {
	cr := newCertificateRequest(t, "cr", append([]crOption{
		withCondition(cmapi.CertificateRequestConditionApproved, cmmeta.ConditionTrue, "Approved", "ok"),
		func(cr *cmapi.CertificateRequest) {
			cr.CreationTimestamp = metav1.NewTime(requestNow.Add(-time.Minute))
		},
	}, opts...)...)
	return cr
}

// requestsIssuer is QuillIssuer testNamespace/issuer (generation 1) with
// the Ready status and reason given; reason "" for no Ready condition.
func requestsIssuer(status metav1.ConditionStatus, reason string) *quillv1.QuillIssuer {
	iss := readyIssuer(status, reason, 1)
	iss.Namespace, iss.Name = testNamespace, "issuer"
	return iss
}

// conditionsOf is the conditions in a status patch's body, by type.
func conditionsOf(t *testing.T, p patchCall) map[string]map[string]any {
	t.Helper()
	status, _ := p.body["status"].(map[string]any)
	conds, _ := status["conditions"].([]any)
	out := map[string]map[string]any{}
	for _, c := range conds {
		m := c.(map[string]any)
		out[m["type"].(string)] = m
	}
	return out
}

func TestRequestReconcileApproved(t *testing.T) {
	t.Parallel()
	ready := requestsIssuer(metav1.ConditionTrue, issuerapi.IssuerConditionReasonChecked)
	bundle := signer.PEMBundle{ChainPEM: []byte("chain"), CAPEM: []byte("ca")}
	id := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: testNamespace, Name: "issuer"}
	tests := []struct {
		name    string
		objects []client.Object
		opts    []requestOption
		// maxRetry replaces the fixture's retry window when set.
		maxRetry time.Duration
		// wantStatus and wantReason are the Ready condition the one status
		// patch writes.
		wantStatus, wantReason string
		wantMessage            string // a substring of its message
		wantInvalid            string // InvalidRequest's reason, if set
		wantEvent              string // "type reason" prefix of the one event, if any
		wantResult             ctrl.Result
		wantErr                bool
		wantRecheck            bool
	}{
		{
			name: "signed-on-first-reconcile", objects: []client.Object{ready}, opts: []requestOption{signing(bundle, nil)},
			wantStatus: "True", wantReason: cmapi.CertificateRequestReasonIssued, wantMessage: id.String(),
		},
		{
			name:       "issuer-missing-waits",
			wantStatus: "False", wantReason: cmapi.CertificateRequestReasonPending, wantMessage: quillv1.ReasonIssuerNotFound,
			wantEvent: "Warning " + eventWaitingForIssuer,
		},
		{
			name: "issuer-not-checked-waits", objects: []client.Object{requestsIssuer("", "")},
			wantStatus: "False", wantReason: cmapi.CertificateRequestReasonPending, wantMessage: "has not been checked yet",
			wantEvent: "Warning " + eventWaitingForIssuer,
		},
		{
			name: "issuer-failed-waits", objects: []client.Object{requestsIssuer(metav1.ConditionFalse, issuerapi.IssuerConditionReasonFailed)},
			wantStatus: "False", wantReason: cmapi.CertificateRequestReasonPending, wantMessage: quillv1.ReasonIssuerNotReady,
			wantEvent: "Warning " + eventWaitingForIssuer,
		},
		{
			name: "refused-fails-with-invalid-request", objects: []client.Object{ready}, opts: []requestOption{signing(signer.PEMBundle{}, invalidRequest(errors.New("no such name")))},
			wantStatus: "False", wantReason: cmapi.CertificateRequestReasonFailed, wantMessage: "no such name",
			wantInvalid: quillv1.ReasonInvalidRequest, wantEvent: "Warning " + quillv1.ReasonInvalidRequest,
		},
		{
			name: "issuer-fault-rechecks-and-waits", objects: []client.Object{ready}, opts: []requestOption{signing(signer.PEMBundle{}, signer.IssuerError{Err: errors.New("token gone")})},
			wantStatus: "False", wantReason: cmapi.CertificateRequestReasonPending, wantMessage: "token gone",
			wantEvent: "Warning " + eventWaitingForIssuer, wantResult: ctrl.Result{RequeueAfter: recheckWait}, wantRecheck: true,
		},
		{
			name: "pending-looks-again", objects: []client.Object{ready}, opts: []requestOption{signing(signer.PEMBundle{}, signer.PendingError{Err: errors.New("ledger loading"), RequeueAfter: 5 * time.Second})},
			wantStatus: "False", wantReason: cmapi.CertificateRequestReasonPending, wantMessage: "ledger loading",
			wantResult: ctrl.Result{RequeueAfter: 5 * time.Second},
		},
		{
			name: "retryable-error-retries", objects: []client.Object{ready}, opts: []requestOption{signing(signer.PEMBundle{}, errors.New("etcd is slow"))},
			wantStatus: "False", wantReason: cmapi.CertificateRequestReasonPending, wantMessage: "etcd is slow",
			wantEvent: "Warning " + eventRetryableError, wantErr: true,
		},
		{
			name: "retryable-error-fails-after-window", objects: []client.Object{ready}, opts: []requestOption{signing(signer.PEMBundle{}, errors.New("etcd is slow"))},
			maxRetry:   30 * time.Second,
			wantStatus: "False", wantReason: cmapi.CertificateRequestReasonFailed, wantMessage: "still failing",
			wantEvent: "Warning " + quillv1.ReasonSigningFailed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cr := approvedRequest(t)
			f := newRequestReconciler(t, append([]requestOption{withRequests(append(tt.objects, cr)...)}, tt.opts...)...)
			if tt.maxRetry != 0 {
				f.r.maxRetry = tt.maxRetry
			}
			key := client.ObjectKeyFromObject(cr)
			res, err := f.r.Reconcile(ctx, ctrl.Request{NamespacedName: key})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Reconcile error = %v, want error %t", err, tt.wantErr)
			}
			if res != tt.wantResult {
				t.Errorf("result = %+v, want %+v", res, tt.wantResult)
			}
			patches := f.patches.all()
			if len(patches) != 1 {
				t.Fatalf("%d status patches, want exactly 1 (the outcome, nothing before it)", len(patches))
			}
			conds := conditionsOf(t, patches[0])
			got := conds[string(cmapi.CertificateRequestConditionReady)]
			if got == nil || got["status"] != tt.wantStatus || got["reason"] != tt.wantReason || !strings.Contains(got["message"].(string), tt.wantMessage) {
				t.Errorf("Ready = %v, want %s/%s containing %q", got, tt.wantStatus, tt.wantReason, tt.wantMessage)
			}
			invalid := conds[string(cmapi.CertificateRequestConditionInvalidRequest)]
			switch {
			case tt.wantInvalid == "" && invalid != nil:
				t.Errorf("InvalidRequest = %v, want none", invalid)
			case tt.wantInvalid != "" && (invalid == nil || invalid["status"] != "True" || invalid["reason"] != tt.wantInvalid):
				t.Errorf("InvalidRequest = %v, want True/%s", invalid, tt.wantInvalid)
			}
			var stored cmapi.CertificateRequest
			if err := f.api.Get(ctx, key, &stored); err != nil {
				t.Fatal(err)
			}
			final := tt.wantReason == cmapi.CertificateRequestReasonFailed
			if final != (stored.Status.FailureTime != nil) {
				t.Errorf("failureTime = %v, want one only when Failed", stored.Status.FailureTime)
			}
			if signed := tt.wantReason == cmapi.CertificateRequestReasonIssued; signed != (string(stored.Status.Certificate) == "chain" && string(stored.Status.CA) == "ca") {
				t.Errorf("certificate %q, ca %q stored; signed %t", stored.Status.Certificate, stored.Status.CA, signed)
			}
			evs := drainEvents(f.recorder)
			switch {
			case tt.wantEvent == "" && len(evs) != 0:
				t.Errorf("events %q, want none", evs)
			case tt.wantEvent != "" && (len(evs) != 1 || !strings.HasPrefix(evs[0], tt.wantEvent+" ")):
				t.Errorf("events %q, want one %s", evs, tt.wantEvent)
			}
			if tt.wantRecheck != (len(f.rechecks) == 1 && f.rechecks[0] == id) {
				t.Errorf("rechecks %v, want %s: %t", f.rechecks, id, tt.wantRecheck)
			}

			// Looking again without a change writes nothing more: a final
			// request is left alone, a waiting one already says why.
			signedBefore := f.signed.Load()
			if _, err := f.r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); (err != nil) != tt.wantErr {
				t.Fatalf("second Reconcile: %v", err)
			}
			if n := len(f.patches.all()); n != 1 {
				t.Errorf("%d status patches after a second Reconcile, want still 1", n)
			}
			if evs := drainEvents(f.recorder); len(evs) != 0 {
				t.Errorf("second Reconcile recorded %q", evs)
			}
			if final || tt.wantReason == cmapi.CertificateRequestReasonIssued {
				if f.signed.Load() != signedBefore {
					t.Error("a finished request was signed again")
				}
			}
		})
	}
}

func TestRequestIssuer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		group, kind string
		want        quillv1.IssuerID
		ours        bool
	}{
		{group: quillv1.GroupVersion.Group, kind: "", want: quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: testNamespace, Name: "issuer"}, ours: true},
		{group: quillv1.GroupVersion.Group, kind: quillv1.IssuerKind, want: quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: testNamespace, Name: "issuer"}, ours: true},
		{group: quillv1.GroupVersion.Group, kind: quillv1.ClusterIssuerKind, want: quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "issuer"}, ours: true},
		{group: quillv1.GroupVersion.Group, kind: "ClusterIssuer"},
		{group: "cert-manager.io", kind: quillv1.IssuerKind},
		{group: "", kind: "Issuer"},
	}
	for _, tt := range tests {
		cr := newCertificateRequest(t, "cr", withIssuerGroup(tt.group), func(cr *cmapi.CertificateRequest) { cr.Spec.IssuerRef.Kind = tt.kind })
		got, ours := requestIssuer(cr)
		if got != tt.want || ours != tt.ours {
			t.Errorf("%s/%s: %v, %t; want %v, %t", tt.group, tt.kind, got, ours, tt.want, tt.ours)
		}
	}
}
