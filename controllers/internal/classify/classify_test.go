package classify

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cert-manager/issuer-lib/controllers/signer"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/castore"
)

var errBoom = errors.New("boom")

func TestOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		err        error
		wantClass  Class
		wantReason string
	}{
		{name: "nil", err: nil, wantClass: Retry},
		{name: "plain", err: errBoom, wantClass: Retry},
		{name: "classified", err: New(Permanent, quillv1.ReasonForbidden, errBoom), wantClass: Permanent, wantReason: quillv1.ReasonForbidden},
		{name: "classified-wrapped", err: fmt.Errorf("ctx: %w", New(Pending, quillv1.ReasonNotFound, errBoom)), wantClass: Pending, wantReason: quillv1.ReasonNotFound},
		{name: "ca-store-error", err: &castore.Error{Reason: quillv1.ReasonSecretNotFound, Err: errBoom}, wantClass: IssuerFault, wantReason: quillv1.ReasonSecretNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, r := Of(tt.err)
			if c != tt.wantClass || r != tt.wantReason {
				t.Errorf("Of = %s %q, want %s %q", c, r, tt.wantClass, tt.wantReason)
			}
		})
	}
}

func TestForIssuerLib(t *testing.T) {
	t.Parallel()
	if _, ok := errors.AsType[signer.PermanentError](ForIssuerLib(New(Permanent, "r", errBoom))); !ok {
		t.Error("Permanent is not issuer-lib's PermanentError")
	}
	if _, ok := errors.AsType[signer.IssuerError](ForIssuerLib(&castore.Error{Reason: "r", Err: errBoom})); !ok {
		t.Error("a CA store error is not issuer-lib's IssuerError")
	}
	if _, ok := errors.AsType[signer.PendingError](ForIssuerLib(New(Pending, "r", errBoom))); !ok {
		t.Error("Pending is not issuer-lib's PendingError")
	}
	if got := ForIssuerLib(errBoom); got != errBoom {
		t.Errorf("a plain error became %T", got)
	}
}

func TestResult(t *testing.T) {
	t.Parallel()
	if res, err := Result(nil, time.Minute); err != nil || res.RequeueAfter != 0 {
		t.Errorf("nil: %+v %v", res, err)
	}
	if _, err := Result(New(Permanent, "r", errBoom), time.Minute); !errors.Is(err, reconcile.TerminalError(nil)) {
		t.Errorf("Permanent: %v, want a terminal error", err)
	}
	if res, err := Result(New(Pending, "r", errBoom), time.Minute); err != nil || res.RequeueAfter != time.Minute {
		t.Errorf("Pending: %+v %v, want a look again after a minute", res, err)
	}
	if _, err := Result(errBoom, time.Minute); err != errBoom {
		t.Errorf("plain: %v, want it returned for backoff", err)
	}
}
