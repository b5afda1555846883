package issuance

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/quill-pki/quill/controllers/internal/issuers"
)

var certificateRequestsResource = schema.GroupResource{Group: cmapi.SchemeGroupVersion.Group, Resource: "certificaterequests"}

type deniedFixture struct {
	r        *deniedReconciler
	api      client.WithWatch
	recorder *events.FakeRecorder
	patches  *patchLog
}

type deniedConfig struct {
	objects  []client.Object
	getErr   error
	patchErr error
}

type deniedOption func(*deniedConfig)

func withRequests(objs ...client.Object) deniedOption {
	return func(c *deniedConfig) { c.objects = append(c.objects, objs...) }
}

func withGetErr(err error) deniedOption { return func(c *deniedConfig) { c.getErr = err } }

func withPatchErr(err error) deniedOption { return func(c *deniedConfig) { c.patchErr = err } }

// deniedNow is the reconciler's clock, distinct from the fixtures' times.
var deniedNow = testNow.Add(90 * time.Second)

func newDeniedReconciler(t testing.TB, opts ...deniedOption) *deniedFixture {
	t.Helper()
	cfg := &deniedConfig{}
	for _, o := range opts {
		o(cfg)
	}
	api := newAPI(t, cfg.objects...)
	f := &deniedFixture{api: api, recorder: events.NewFakeRecorder(10), patches: &patchLog{}}
	c := interceptor.NewClient(api, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if cfg.getErr != nil {
				return cfg.getErr
			}
			return c.Get(ctx, key, obj, opts...)
		},
		SubResourcePatch: recordPatches(t, f.patches, cfg.patchErr),
	})
	f.r = &deniedReconciler{client: c, clock: clocktesting.NewFakeClock(deniedNow), recorder: f.recorder}
	return f
}

func denied() crOption {
	return withCondition(cmapi.CertificateRequestConditionDenied, cmmeta.ConditionTrue, "PolicyDenied", "no wildcard names")
}

func TestDeniedReconcile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		request    *cmapi.CertificateRequest
		wantFinish bool
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
			name:    "approved-request-is-left-alone",
			request: newCertificateRequest(t, "cr", withCondition(cmapi.CertificateRequestConditionApproved, cmmeta.ConditionTrue, "Approved", "ok")),
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
			f := newDeniedReconciler(t, withRequests(tt.request))
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

			wantTime := deniedNow
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
			if ready.LastTransitionTime == nil || !ready.LastTransitionTime.Time.Equal(wantTime) {
				t.Errorf("Ready lastTransitionTime = %v, want %s", ready.LastTransitionTime, wantTime)
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

func TestDeniedReconcileErrors(t *testing.T) {
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
			f := newDeniedReconciler(t, withRequests(tt.objects...), withGetErr(tt.getErr), withPatchErr(tt.patchErr))
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
