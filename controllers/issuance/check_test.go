package issuance

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	issuerapi "github.com/cert-manager/issuer-lib/api/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/issuers"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/issuance"
)

// wantCAStatus is what one Check should record in the issuer's status.
type wantCAStatus struct {
	status metav1.ConditionStatus
	reason string
	// summaryOf is the CA status.ca must describe; nil when no CA could be
	// read, and status.ca is then left out of the patch.
	summaryOf *x509.Certificate
}

func TestCheck(t *testing.T) {
	t.Parallel()
	root := newCA(t)
	expired := newCA(t, withCN("Expired CA"), withValidity(testNow.Add(-400*day), 365*day))
	leafCA := newCA(t, withCN("Not A CA"), asLeaf())
	noCertSign := newCA(t, withCN("CRL-only CA"), withCAKeyUsage(x509.KeyUsageCRLSign|x509.KeyUsageDigitalSignature))
	apiDown := apierrors.NewServiceUnavailable("etcd is down")

	tests := []struct {
		name    string
		issuer  issuerapi.Issuer
		secrets []client.Object
		getErr  error
		want    outcome
		reason  string
		// wantSecret is the Secret the CA is read from (and, for a
		// bootstrap issuer, created in); wantOwner its annotation.
		wantSecret types.NamespacedName
		wantOwner  string
		wantCN     string
		// wantSummary: status.ca is recorded even though Check fails.
		wantSummary bool
	}{
		{
			name:       "secret-ref-issuer-records-status",
			issuer:     newIssuer(),
			secrets:    []client.Object{caSecret(testNamespace, "ca", root)},
			wantSecret: types.NamespacedName{Namespace: testNamespace, Name: "ca"},
			wantCN:     "Test Root CA",
		},
		{
			name:       "bootstrap-issuer-creates-secret",
			issuer:     newIssuer(withBootstrap("root-ca", "Team A Root")),
			wantSecret: types.NamespacedName{Namespace: testNamespace, Name: "root-ca"},
			wantOwner:  "QuillIssuer/" + testNamespace + "/issuer",
			wantCN:     "Team A Root",
		},
		{
			name:       "bootstrap-cluster-issuer-creates-secret-in-cluster-namespace",
			issuer:     newClusterIssuer(withBootstrap("root-ca", "Cluster Root")),
			wantSecret: types.NamespacedName{Namespace: clusterResourceNamespace, Name: "root-ca"},
			wantOwner:  "QuillClusterIssuer/cluster-issuer",
			wantCN:     "Cluster Root",
		},
		{
			name:        "not-a-ca",
			issuer:      newIssuer(),
			secrets:     []client.Object{caSecret(testNamespace, "ca", leafCA)},
			want:        caErr,
			reason:      quillv1.ReasonNotACA,
			wantSecret:  types.NamespacedName{Namespace: testNamespace, Name: "ca"},
			wantCN:      "Not A CA",
			wantSummary: true,
		},
		{
			name:        "ca-without-cert-sign",
			issuer:      newIssuer(),
			secrets:     []client.Object{caSecret(testNamespace, "ca", noCertSign)},
			want:        caErr,
			reason:      quillv1.ReasonNotACA,
			wantSecret:  types.NamespacedName{Namespace: testNamespace, Name: "ca"},
			wantCN:      "CRL-only CA",
			wantSummary: true,
		},
		{
			name:        "expired-ca",
			issuer:      newIssuer(),
			secrets:     []client.Object{caSecret(testNamespace, "ca", expired)},
			want:        caErr,
			reason:      quillv1.ReasonCAExpired,
			wantSecret:  types.NamespacedName{Namespace: testNamespace, Name: "ca"},
			wantCN:      "Expired CA",
			wantSummary: true,
		},
		{
			name:        "max-duration-below-minimum",
			issuer:      newIssuer(withMaxDuration(5 * time.Minute)),
			secrets:     []client.Object{caSecret(testNamespace, "ca", root)},
			want:        caErr,
			reason:      quillv1.ReasonInvalidConfig,
			wantSecret:  types.NamespacedName{Namespace: testNamespace, Name: "ca"},
			wantCN:      "Test Root CA",
			wantSummary: true,
		},
		{
			name:        "relative-crl-url",
			issuer:      newIssuer(withCRL("crl/relative.crl")),
			secrets:     []client.Object{caSecret(testNamespace, "ca", root)},
			want:        caErr,
			reason:      quillv1.ReasonInvalidConfig,
			wantSecret:  types.NamespacedName{Namespace: testNamespace, Name: "ca"},
			wantCN:      "Test Root CA",
			wantSummary: true,
		},
		{
			name:   "missing-secret-ref-is-not-created",
			issuer: newIssuer(),
			want:   caErr,
			reason: quillv1.ReasonSecretNotFound,
		},
		{
			name:    "corrupt-bootstrap-secret-is-kept",
			issuer:  newIssuer(withBootstrap("ca", "Team A Root")),
			secrets: []client.Object{markedSecret(withSecretData(caSecret(testNamespace, "ca", root), castore.KeyTLSCrt, []byte("garbage")), "QuillIssuer/"+testNamespace+"/issuer")},
			want:    caErr,
			reason:  quillv1.ReasonSecretInvalid,
		},
		{
			// spec.ca.bootstrap naming an app's TLS Secret: a collision,
			// not a CA that fails its check.
			name:    "bootstrap-naming-an-app-secret-collides",
			issuer:  newIssuer(withBootstrap("app-tls", "Team A Root")),
			secrets: []client.Object{caSecret(testNamespace, "app-tls", newCA(t, asLeaf()))},
			want:    caErr,
			reason:  quillv1.ReasonNameCollision,
		},
		{
			name:    "api-error-is-plain-and-records-nothing",
			issuer:  newIssuer(withBootstrap("root-ca", "Team A Root")),
			getErr:  apiDown,
			want:    plainErr,
			secrets: nil,
		},
		{
			name:    "unknown-issuer-kind",
			issuer:  foreignIssuer{newIssuer()},
			secrets: []client.Object{caSecret(testNamespace, "ca", root)},
			want:    permanentErr,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			objs := slices.Clone(tt.secrets)
			if iss, ok := tt.issuer.(client.Object); ok && tt.want != permanentErr {
				objs = append(objs, iss.DeepCopyObject().(client.Object))
			}
			opts := []signerOption{withObjects(objs...)}
			if tt.getErr != nil {
				opts = append(opts, withSecretGetError(tt.getErr))
			}
			f := newSigner(t, opts...)
			err := f.signer.Check(ctx, tt.issuer)
			checkOutcome(t, err, tt.want, tt.reason)

			wantCreates := int32(0)
			if tt.wantOwner != "" {
				wantCreates = 1
			}
			if got := f.creates.Load(); got != wantCreates {
				t.Errorf("%d Secret creations, want %d", got, wantCreates)
			}
			patches := f.patches.all()
			if tt.want == permanentErr || tt.want == plainErr {
				if len(patches) != 0 {
					t.Errorf("status patched %d times although Check reached no verdict on the CA", len(patches))
				}
				return
			}

			want := wantCAStatus{status: metav1.ConditionTrue, reason: quillv1.ReasonValid}
			if tt.want != succeeds {
				want = wantCAStatus{status: metav1.ConditionFalse, reason: tt.reason}
			}
			if tt.want == succeeds || tt.wantSummary {
				var secret corev1.Secret
				if err := f.api.Get(ctx, tt.wantSecret, &secret); err != nil {
					t.Fatalf("CA Secret %s: %v", tt.wantSecret, err)
				}
				if got := secret.Annotations[castore.AnnotationBootstrappedBy]; got != tt.wantOwner {
					t.Errorf("%s annotation = %q, want %q", castore.AnnotationBootstrappedBy, got, tt.wantOwner)
				}
				want.summaryOf = parseCert(t, secret.Data[castore.KeyTLSCrt])
				if cn := want.summaryOf.Subject.CommonName; cn != tt.wantCN {
					t.Errorf("CA subject CN = %q, want %q", cn, tt.wantCN)
				}
			}

			if len(patches) != 1 {
				t.Fatalf("%d status patches, want 1", len(patches))
			}
			msg := checkCAStatusPatch(t, patches[0], tt.issuer, want)
			if err != nil && msg != strings.TrimPrefix(err.Error(), tt.reason+": ") {
				t.Errorf("CAValid message %q is not the cause of %q", msg, err)
			}
			checkRecordedStatus(t, fetchIssuerStatus(t, f, tt.issuer), tt.issuer.GetGeneration(), want)
		})
	}
}

// checkCAStatusPatch asserts that p is Quill's server-side apply of the
// CAValid condition and status.ca, and nothing else, under the Signer's own
// field manager; it returns the patched condition's message.
func checkCAStatusPatch(t *testing.T, p patchCall, iss issuerapi.Issuer, want wantCAStatus) string {
	t.Helper()
	if p.subResource != "status" || p.patchType != types.ApplyPatchType {
		t.Errorf("patch is a %s patch of %q, want an apply patch of status", p.patchType, p.subResource)
	}
	if p.opts.FieldManager != issuers.FieldOwner+"/ca-status" {
		t.Errorf("field manager = %q, want the Signer's %q", p.opts.FieldManager, issuers.FieldOwner+"/ca-status")
	}
	if p.opts.Force == nil || !*p.opts.Force {
		t.Error("status patch does not force ownership")
	}
	if p.body["apiVersion"] != quillv1.GroupVersion.String() || p.body["kind"] != iss.(quillv1.GenericIssuer).ID().Kind {
		t.Errorf("patch is for %v %v, want %s %s", p.body["apiVersion"], p.body["kind"], quillv1.GroupVersion, iss.(quillv1.GenericIssuer).ID().Kind)
	}
	md, _ := p.body["metadata"].(map[string]any)
	if md["name"] != iss.GetName() || md["namespace"] != iss.GetNamespace() {
		t.Errorf("patch metadata = %v, want %s/%s", md, iss.GetNamespace(), iss.GetName())
	}
	status, _ := p.body["status"].(map[string]any)
	wantKeys := []string{"conditions", "state"}
	if want.summaryOf != nil {
		wantKeys = []string{"ca", "conditions", "state"}
	}
	if status["state"] != string(quillv1.StateActive) {
		t.Errorf("patched status.state = %v, want Active", status["state"])
	}
	if keys := slices.Sorted(maps.Keys(status)); !slices.Equal(keys, wantKeys) {
		t.Errorf("patch sets status fields %v, want %v", keys, wantKeys)
	}
	conds, _ := status["conditions"].([]any)
	if len(conds) != 1 {
		t.Fatalf("patch carries conditions %v, want CAValid alone (issuer-lib owns Ready)", conds)
	}
	c, _ := conds[0].(map[string]any)
	if c["type"] != quillv1.ConditionCAValid || c["status"] != string(want.status) || c["reason"] != want.reason {
		t.Errorf("patched condition %v, want %s=%s (%s)", c, quillv1.ConditionCAValid, want.status, want.reason)
	}
	if want.summaryOf != nil {
		ca, _ := status["ca"].(map[string]any)
		if ca["sha256Fingerprint"] != fingerprintOf(want.summaryOf) || ca["notAfter"] != want.summaryOf.NotAfter.UTC().Format(time.RFC3339) {
			t.Errorf("patched status.ca = %v, want fingerprint %s and notAfter %s", ca, fingerprintOf(want.summaryOf), want.summaryOf.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	msg, _ := c["message"].(string)
	return msg
}

// checkRecordedStatus asserts what the API server holds after the patch.
func checkRecordedStatus(t *testing.T, got quillv1.IssuerStatus, generation int64, want wantCAStatus) *metav1.Condition {
	t.Helper()
	cond := meta.FindStatusCondition(got.Conditions, quillv1.ConditionCAValid)
	switch {
	case cond == nil:
		t.Errorf("no %s condition in %+v", quillv1.ConditionCAValid, got.Conditions)
	case cond.Status != want.status || cond.Reason != want.reason || cond.ObservedGeneration != generation:
		t.Errorf("%s = %s (%s, generation %d), want %s (%s, generation %d)",
			quillv1.ConditionCAValid, cond.Status, cond.Reason, cond.ObservedGeneration, want.status, want.reason, generation)
	case cond.Message == "":
		t.Errorf("%s has no message", quillv1.ConditionCAValid)
	}
	if want.summaryOf == nil {
		if got.CA != nil {
			t.Errorf("status.ca = %+v, want none: no CA could be read", *got.CA)
		}
		return cond
	}
	c := want.summaryOf
	alg := issuance.ECDSAP256
	switch {
	case got.CA == nil:
		t.Error("status.ca was not written")
	case got.CA.SHA256Fingerprint != fingerprintOf(c) || got.CA.Subject != c.Subject.String() ||
		got.CA.KeyAlgorithm != string(alg) || got.CA.NotAfter == nil || !got.CA.NotAfter.Time.Equal(c.NotAfter):
		t.Errorf("status.ca = %+v (notAfter %v), want the summary of %q", *got.CA, got.CA.NotAfter, c.Subject)
	}
	return cond
}

func fetchIssuerStatus(t *testing.T, f *signerFixture, iss issuerapi.Issuer) quillv1.IssuerStatus {
	t.Helper()
	key := types.NamespacedName{Namespace: iss.GetNamespace(), Name: iss.GetName()}
	switch iss.(type) {
	case *quillv1.QuillIssuer:
		var got quillv1.QuillIssuer
		if err := f.api.Get(context.Background(), key, &got); err != nil {
			t.Fatal(err)
		}
		return got.Status
	case *quillv1.QuillClusterIssuer:
		var got quillv1.QuillClusterIssuer
		if err := f.api.Get(context.Background(), key, &got); err != nil {
			t.Fatal(err)
		}
		return got.Status
	}
	t.Fatalf("unexpected issuer type %T", iss)
	return quillv1.IssuerStatus{}
}

// fingerprintOf is the colon-separated upper-case SHA-256 of the DER.
func fingerprintOf(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// TestCheckStatusWrittenOnlyOnChange runs Check as issuer-lib would, on a
// freshly read issuer each time, through a CA's life: a steady issuer costs
// no writes, and lastTransitionTime moves only when the status flips.
func TestCheckStatusWrittenOnlyOnChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	first := newCA(t, withCN("First CA"))
	leafCA := newCA(t, withCN("Not A CA"), asLeaf())
	other := newCA(t, withCN("Other CA"))
	f := newSigner(t, withObjects(newIssuer(), caSecret(testNamespace, "ca", first)))
	start := testNow

	setSecret := func(s *corev1.Secret) {
		t.Helper()
		var cur corev1.Secret
		if err := f.api.Get(ctx, client.ObjectKeyFromObject(s), &cur); err != nil {
			t.Fatal(err)
		}
		cur.Data = s.Data
		if err := f.api.Update(ctx, &cur); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name        string
		before      func()
		generation  int64
		want        wantCAStatus
		wantPatches int
		wantLTT     time.Time
	}{
		{
			name:        "first-check-records-valid",
			want:        wantCAStatus{status: metav1.ConditionTrue, reason: quillv1.ReasonValid, summaryOf: first.Cert},
			wantPatches: 1, wantLTT: start,
		},
		{
			name:        "steady-valid-issuer-writes-nothing",
			want:        wantCAStatus{status: metav1.ConditionTrue, reason: quillv1.ReasonValid, summaryOf: first.Cert},
			wantPatches: 1, wantLTT: start,
		},
		{
			name:        "ca-replaced-by-leaf-flips-condition",
			before:      func() { setSecret(caSecret(testNamespace, "ca", leafCA)) },
			want:        wantCAStatus{status: metav1.ConditionFalse, reason: quillv1.ReasonNotACA, summaryOf: leafCA.Cert},
			wantPatches: 2, wantLTT: start.Add(2 * time.Minute),
		},
		{
			name:        "steady-failing-issuer-writes-nothing",
			want:        wantCAStatus{status: metav1.ConditionFalse, reason: quillv1.ReasonNotACA, summaryOf: leafCA.Cert},
			wantPatches: 2, wantLTT: start.Add(2 * time.Minute),
		},
		{
			name: "new-reason-keeps-transition-time-and-drops-summary",
			before: func() {
				setSecret(withSecretData(caSecret(testNamespace, "ca", first), castore.KeyTLSKey, other.KeyPEM))
			},
			want:        wantCAStatus{status: metav1.ConditionFalse, reason: quillv1.ReasonKeyMismatch},
			wantPatches: 3, wantLTT: start.Add(2 * time.Minute),
		},
		{
			name:        "steady-unreadable-ca-writes-nothing",
			want:        wantCAStatus{status: metav1.ConditionFalse, reason: quillv1.ReasonKeyMismatch},
			wantPatches: 3, wantLTT: start.Add(2 * time.Minute),
		},
		{
			name:        "new-generation-is-observed",
			generation:  2,
			want:        wantCAStatus{status: metav1.ConditionFalse, reason: quillv1.ReasonKeyMismatch},
			wantPatches: 4, wantLTT: start.Add(2 * time.Minute),
		},
		{
			name:        "repaired-ca-flips-back",
			before:      func() { setSecret(caSecret(testNamespace, "ca", first)) },
			generation:  2,
			want:        wantCAStatus{status: metav1.ConditionTrue, reason: quillv1.ReasonValid, summaryOf: first.Cert},
			wantPatches: 5, wantLTT: start.Add(7 * time.Minute),
		},
	}
	for i, step := range steps {
		// Each step runs a minute after the previous one.
		f.clock.SetTime(start.Add(time.Duration(i) * time.Minute))
		if step.before != nil {
			step.before()
		}
		var iss quillv1.QuillIssuer
		if err := f.api.Get(ctx, client.ObjectKeyFromObject(newIssuer()), &iss); err != nil {
			t.Fatal(err)
		}
		generation := iss.Generation
		if step.generation != 0 {
			generation = step.generation
			iss.Generation = generation
		}
		err := f.signer.Check(ctx, &iss)
		if step.want.status == metav1.ConditionTrue {
			checkOutcome(t, err, succeeds, "")
		} else {
			checkOutcome(t, err, caErr, step.want.reason)
		}
		if got := len(f.patches.all()); got != step.wantPatches {
			t.Errorf("%s: %d status patches so far, want %d", step.name, got, step.wantPatches)
		}
		cond := checkRecordedStatus(t, fetchIssuerStatus(t, f, &iss), generation, step.want)
		if cond != nil && !cond.LastTransitionTime.Time.Equal(step.wantLTT) {
			t.Errorf("%s: lastTransitionTime = %s, want %s", step.name, cond.LastTransitionTime.Time, step.wantLTT)
		}
	}
}

func TestCheckStatusPatchFailureIsPlain(t *testing.T) {
	t.Parallel()
	conflict := apierrors.NewConflict(schema.GroupResource{Group: quillv1.GroupVersion.Group, Resource: "quillissuers"}, "issuer", errors.New("try again"))
	f := newSigner(t, withObjects(newIssuer(), caSecret(testNamespace, "ca", newCA(t))), withStatusPatchError(conflict))
	err := f.signer.Check(context.Background(), newIssuer())
	checkOutcome(t, err, plainErr, "")
	if !errors.Is(err, conflict) {
		t.Errorf("error %q does not wrap the API error", err)
	}
	if n := len(f.patches.all()); n != 1 {
		t.Errorf("%d patch attempts, want 1", n)
	}
}

// TestSummariesEqualSeesSignatureAlgorithm: switching an RSA CA to PSS
// changes only the signature algorithm of its summary, and that must be
// written to status.
func TestSummariesEqualSeesSignatureAlgorithm(t *testing.T) {
	t.Parallel()
	a := &quillv1.CASummary{Subject: "CN=ca", KeyAlgorithm: "RSA-2048", SignatureAlgorithm: "SHA256-RSA", SHA256Fingerprint: "ab"}
	b := a.DeepCopy()
	if !summariesEqual(a, b) {
		t.Fatal("equal summaries differ")
	}
	b.SignatureAlgorithm = "SHA256-RSAPSS"
	if summariesEqual(a, b) {
		t.Fatal("summaries differing in signature algorithm compare equal")
	}
}
