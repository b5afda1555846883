package issuance

import (
	"context"
	"errors"
	"strings"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"github.com/cert-manager/issuer-lib/controllers/signer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/classify"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/metrics"
)

func withTemplates(names ...string) issuerOption {
	return func(s *quillv1.IssuerSpec) { s.Templates = names }
}

func withPolicy(p quillv1.RequestPolicy) issuerOption {
	return func(s *quillv1.IssuerSpec) { s.Policy = &p }
}

func withState(st quillv1.IssuerState) issuerOption {
	return func(s *quillv1.IssuerSpec) { s.State = st }
}

func withTemplateAnnotation(name string) crOption {
	return func(cr *cmapi.CertificateRequest) {
		cr.Annotations = map[string]string{quillv1.AnnotationTemplate: name}
	}
}

// TestSignPolicy drives Sign through templates and policy: what is allowed
// is signed and counted, what is refused fails for good with the rule in
// the message, a PolicyDenied event and a denied count.
func TestSignPolicy(t *testing.T) {
	t.Parallel()
	root := newCA(t)
	partner := &quillv1.QuillTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: "partner"},
		Spec:       quillv1.TemplateSpec{KeyUsages: []quillv1.KeyUsage{"digital signature", "key encipherment"}, ExtKeyUsages: []quillv1.KeyUsage{"client auth"}},
	}
	tests := []struct {
		name     string
		issuer   *quillv1.QuillIssuer
		request  []crOption
		wantRule string // "" signs
		template string // label expected on the metric
	}{
		{
			name:     "builtin-template-fits",
			issuer:   newIssuer(withTemplates("server-auth")),
			request:  []crOption{withTemplateAnnotation("server-auth"), withUsages(cmapi.UsageServerAuth, cmapi.UsageDigitalSignature, cmapi.UsageKeyEncipherment)},
			template: "server-auth",
		},
		{
			name:     "custom-template-fits",
			issuer:   newIssuer(withTemplates("partner")),
			request:  []crOption{withTemplateAnnotation("partner"), withUsages(cmapi.UsageClientAuth, cmapi.UsageDigitalSignature)},
			template: "partner",
		},
		{
			name:     "template-required",
			issuer:   newIssuer(withTemplates("server-auth")),
			wantRule: "spec.templates",
		},
		{
			name:     "template-not-listed-is-not-a-label",
			issuer:   newIssuer(withTemplates("server-auth")),
			request:  []crOption{withTemplateAnnotation("made-up-7f3a9c")},
			wantRule: "spec.templates",
			template: templateNotListed,
		},
		{
			name:     "template-does-not-fit",
			issuer:   newIssuer(withTemplates("partner")),
			request:  []crOption{withTemplateAnnotation("partner"), withUsages(cmapi.UsageServerAuth, cmapi.UsageDigitalSignature)},
			wantRule: "template extKeyUsages (partner)",
			template: "partner",
		},
		{
			name:     "policy-allows-namespace-name",
			issuer:   newIssuer(withPolicy(quillv1.RequestPolicy{DNSNames: []string{"*.example.test"}})),
			template: "",
		},
		{
			name:     "policy-refuses-name",
			issuer:   newIssuer(withPolicy(quillv1.RequestPolicy{DNSNames: []string{"*.{namespace}.svc"}})),
			wantRule: "spec.policy.dnsNames",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newSigner(t, withObjects(caSecret(testNamespace, "ca", root), partner))
			f.signer.Templates = f.api
			f.signer.Metrics = metrics.New()
			if err := f.signer.Metrics.Register(prometheus.NewRegistry()); err != nil {
				t.Fatal(err)
			}
			cr := signer.CertificateRequestObjectFromCertificateRequest(newCertificateRequest(t, "cr", tt.request...))
			_, err := f.signer.Sign(context.Background(), cr, tt.issuer)
			evs := drainEvents(f.recorder)
			m := f.signer.Metrics
			if tt.wantRule == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if got := testutil.ToFloat64(m.Issued.WithLabelValues(quillv1.IssuerKind, testNamespace+"/issuer", tt.template, "ECDSA-P256")); got != 1 {
					t.Errorf("issued counter = %v, want 1", got)
				}
				return
			}
			var perm signer.PermanentError
			var cond signer.SetCertificateRequestConditionError
			if !errors.As(err, &perm) || !errors.As(err, &cond) {
				t.Fatalf("error %v; want a permanent failure with a condition", err)
			}
			if cond.ConditionType != cmapi.CertificateRequestConditionInvalidRequest || cond.Status != cmmeta.ConditionTrue || cond.Reason != quillv1.ReasonPolicyDenied {
				t.Errorf("condition %s=%s (%s); want InvalidRequest=True (PolicyDenied)", cond.ConditionType, cond.Status, cond.Reason)
			}
			if !strings.Contains(err.Error(), "refused by "+tt.wantRule) {
				t.Errorf("message %q does not name rule %q", err, tt.wantRule)
			}
			if len(evs) != 1 || !strings.HasPrefix(evs[0], "Warning PolicyDenied refused by "+tt.wantRule) {
				t.Errorf("events %q; want one PolicyDenied naming the rule", evs)
			}
			if got := testutil.ToFloat64(m.Denied.WithLabelValues(quillv1.IssuerKind, testNamespace+"/issuer", tt.template, "ECDSA-P256", tt.wantRule)); got != 1 {
				t.Errorf("denied counter = %v, want 1", got)
			}
		})
	}
}

// TestSignMissingTemplate: a listed QuillTemplate that does not exist is
// the issuer's fault; the request waits.
func TestSignMissingTemplate(t *testing.T) {
	t.Parallel()
	f := newSigner(t, withObjects(caSecret(testNamespace, "ca", newCA(t))))
	f.signer.Templates = f.api
	cr := signer.CertificateRequestObjectFromCertificateRequest(newCertificateRequest(t, "cr", withTemplateAnnotation("gone")))
	_, err := f.signer.Sign(context.Background(), cr, newIssuer(withTemplates("gone")))
	var iss signer.IssuerError
	if class, reason := classify.Of(err); !errors.As(err, &iss) || class != classify.IssuerFault || reason != quillv1.ReasonInvalidConfig {
		t.Fatalf("error %v; want an IssuerError with reason InvalidConfig", err)
	}
	if err := f.signer.Check(context.Background(), newIssuer(withTemplates("gone"))); !classify.Is(err, classify.IssuerFault) {
		t.Fatalf("Check = %v; want InvalidConfig", err)
	} else if _, reason := classify.Of(err); reason != quillv1.ReasonInvalidConfig {
		t.Fatalf("Check = %v; want InvalidConfig", err)
	}
}

// TestDisabledIssuer: Check fails for good and says Disabled; Sign makes
// the request wait; the state change is recorded in status.state.
func TestDisabledIssuer(t *testing.T) {
	t.Parallel()
	iss := newIssuer(withState(quillv1.StateDisabled))
	iss.Annotations = map[string]string{quillv1.AnnotationDisabledBy: "alice"}
	iss.Status.State = quillv1.StateActive
	f := newSigner(t, withObjects(caSecret(testNamespace, "ca", newCA(t)), iss))
	err := f.signer.Check(context.Background(), iss)
	var perm signer.PermanentError
	if !errors.As(err, &perm) || !strings.HasPrefix(err.Error(), "Disabled: ") {
		t.Fatalf("Check = %v; want a permanent error starting with Disabled", err)
	}
	evs := drainEvents(f.recorder)
	if len(evs) != 1 || !strings.Contains(evs[0], `StateChanged state changed from "Active" to Disabled by alice`) {
		t.Errorf("events %q; want one StateChanged naming alice", evs)
	}
	got := fetchIssuerStatus(t, f, iss)
	if got.State != quillv1.StateDisabled {
		t.Errorf("status.state = %q; want Disabled", got.State)
	}

	cr := signer.CertificateRequestObjectFromCertificateRequest(newCertificateRequest(t, "cr"))
	_, err = f.signer.Sign(context.Background(), cr, iss)
	var ie signer.IssuerError
	if !errors.As(err, &ie) || errors.As(err, &perm) || !strings.Contains(err.Error(), "Disabled") {
		t.Fatalf("Sign = %v; want an IssuerError saying Disabled", err)
	}
}

// TestCheckMarksKeySecret: the CA Secret Quill created gets the label the
// admission policies select on, once (TestCheckMarksOnlyOwnedKeySecret
// says which Secrets do not).
func TestCheckMarksKeySecret(t *testing.T) {
	t.Parallel()
	f := newSigner(t, withObjects(markedSecret(caSecret(testNamespace, "ca", newCA(t)), "QuillIssuer/"+testNamespace+"/issuer")))
	f.signer.KeySecretReader, f.signer.KeySecretWriter = f.api, f.api
	iss := newIssuer(withBootstrap("ca", "Root"))
	for range 2 {
		if err := f.signer.Check(context.Background(), iss); err != nil {
			t.Fatalf("Check: %v", err)
		}
	}
	var secret corev1.Secret
	if err := f.api.Get(context.Background(), types.NamespacedName{Namespace: testNamespace, Name: "ca"}, &secret); err != nil {
		t.Fatal(err)
	}
	if secret.Labels[quillv1.LabelCAKey] != "true" || secret.Annotations[quillv1.AnnotationCAKeyOf] != "QuillIssuer/"+testNamespace+"/issuer" {
		t.Fatalf("labels %v annotations %v; want the CA key label and the issuer named", secret.Labels, secret.Annotations)
	}
	if len(secret.Data[castore.KeyTLSKey]) == 0 {
		t.Fatal("labelling lost the Secret's data")
	}
}
