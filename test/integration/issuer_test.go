package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/owned"
)

// readyCondition waits until the issuer's Ready condition for its current
// generation satisfies want, and returns it.
func readyCondition(t *testing.T, obj client.Object, conditions func() []metav1.Condition, want func(metav1.Condition) bool) metav1.Condition {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last metav1.Condition
	for time.Now().Before(deadline) {
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			t.Fatal(err)
		}
		for _, c := range conditions() {
			if c.Type == "Ready" && c.ObservedGeneration == obj.GetGeneration() {
				last = c
				if want(c) {
					return c
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("issuer %s: Ready condition never matched; last %s=%s %s", obj.GetName(), last.Status, last.Reason, last.Message)
	return last
}

func isReady(c metav1.Condition) bool { return c.Status == metav1.ConditionTrue }

func notReadyWith(reason string) func(metav1.Condition) bool {
	return func(c metav1.Condition) bool {
		return c.Status == metav1.ConditionFalse && strings.Contains(c.Message, reason)
	}
}

// TestIssuerReadiness checks the health check's verdict for each kind of CA
// Secret a QuillIssuer can meet.
func TestIssuerReadiness(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tests := []struct {
		name   string
		data   func(t *testing.T) map[string][]byte
		reason string // empty: Ready
	}{
		{name: "good-ca", data: func(t *testing.T) map[string][]byte { return caSecretData(t) }},
		{name: "key-mismatch", data: func(t *testing.T) map[string][]byte { return caSecretData(t, withWrongKey()) }, reason: quillv1.ReasonKeyMismatch},
		{name: "not-a-ca", data: func(t *testing.T) map[string][]byte { return caSecretData(t, withoutCA()) }, reason: quillv1.ReasonNotACA},
		{name: "no-cert-sign", data: func(t *testing.T) map[string][]byte { return caSecretData(t, withoutCertSign()) }, reason: quillv1.ReasonNotACA},
		{name: "expired", data: func(t *testing.T) map[string][]byte {
			return caSecretData(t, withValidity(now.Add(-48*time.Hour), now.Add(-time.Hour)))
		}, reason: quillv1.ReasonCAExpired},
		{name: "not-yet-valid", data: func(t *testing.T) map[string][]byte {
			return caSecretData(t, withValidity(now.Add(time.Hour), now.Add(48*time.Hour)))
		}, reason: quillv1.ReasonCAExpired},
		{name: "corrupt-pem", data: func(t *testing.T) map[string][]byte {
			d := caSecretData(t)
			d["tls.crt"] = []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
			return d
		}, reason: quillv1.ReasonSecretInvalid},
		{name: "missing-key", data: func(t *testing.T) map[string][]byte {
			d := caSecretData(t)
			delete(d, "tls.key")
			return d
		}, reason: quillv1.ReasonSecretInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			createSecret(t, ns, "ca", tc.data(t))
			iss := &quillv1.QuillIssuer{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "issuer"},
				Spec:       quillv1.IssuerSpec{CA: quillv1.CASource{SecretRef: &quillv1.SecretReference{Name: "ca"}}},
			}
			if err := env.Client.Create(context.Background(), iss); err != nil {
				t.Fatal(err)
			}
			conds := func() []metav1.Condition { return iss.Status.Conditions }
			want := quillv1.ReasonValid
			if tc.reason == "" {
				readyCondition(t, iss, conds, isReady)
			} else {
				readyCondition(t, iss, conds, notReadyWith(tc.reason))
				want = tc.reason
			}
			// The precise reason is machine-readable in CAValid.
			if got := meta.FindStatusCondition(iss.Status.Conditions, quillv1.ConditionCAValid); got == nil || got.Reason != want ||
				got.ObservedGeneration != iss.Generation {
				t.Fatalf("CAValid = %+v, want reason %s for generation %d", got, want, iss.Generation)
			}
		})
	}
}

// TestIssuerWaitsForSecret checks that an issuer whose Secret is missing is
// not Ready, and becomes Ready when the Secret appears, without any change
// to the issuer itself.
func TestIssuerWaitsForSecret(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	iss := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "waiting"},
		Spec:       quillv1.IssuerSpec{CA: quillv1.CASource{SecretRef: &quillv1.SecretReference{Name: "later"}}},
	}
	if err := env.Client.Create(context.Background(), iss); err != nil {
		t.Fatal(err)
	}
	conds := func() []metav1.Condition { return iss.Status.Conditions }
	readyCondition(t, iss, conds, notReadyWith(quillv1.ReasonSecretNotFound))
	createSecret(t, ns, "later", caSecretData(t))
	readyCondition(t, iss, conds, isReady)
}

// TestClusterIssuerTenancy checks that a QuillClusterIssuer reads Secrets
// only from the cluster resource namespace, even when a Secret of the
// same name exists elsewhere.
func TestClusterIssuerTenancy(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	createSecret(t, ns, "tenancy-ca", caSecretData(t))
	iss := &quillv1.QuillClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: "tenancy"},
		Spec:       quillv1.IssuerSpec{CA: quillv1.CASource{SecretRef: &quillv1.SecretReference{Name: "tenancy-ca"}}},
	}
	if err := env.Client.Create(context.Background(), iss); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), iss) })
	conds := func() []metav1.Condition { return iss.Status.Conditions }
	c := readyCondition(t, iss, conds, notReadyWith(quillv1.ReasonSecretNotFound))
	if !strings.Contains(c.Message, clusterResourceNamespace+"/tenancy-ca") {
		t.Errorf("message %q should name the Secret in %s", c.Message, clusterResourceNamespace)
	}
}

// TestBootstrapCreatesOnce checks that a bootstrap issuer creates its root
// CA Secret, reports the CA in status, and never replaces the key: a spec
// change re-runs the check, and the fingerprint stays the same.
func TestBootstrapCreatesOnce(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	iss := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "boot"},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{
			SecretName: "boot-root", Subject: quillv1.Subject{CommonName: "Boot Root"}, KeyAlgorithm: "ECDSA-P384",
		}}},
	}
	if err := env.Client.Create(context.Background(), iss); err != nil {
		t.Fatal(err)
	}
	conds := func() []metav1.Condition { return iss.Status.Conditions }
	readyCondition(t, iss, conds, isReady)
	var secret corev1.Secret
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "boot-root"}, &secret); err != nil {
		t.Fatalf("bootstrap Secret: %v", err)
	}
	if got := secret.Annotations[castore.AnnotationBootstrappedBy]; got != "QuillIssuer/"+ns+"/boot" {
		t.Errorf("annotation %s = %q", castore.AnnotationBootstrappedBy, got)
	}
	first := waitSummary(t, iss)
	if first.KeyAlgorithm != "ECDSA-P384" || !strings.Contains(first.Subject, "CN=Boot Root") {
		t.Errorf("status.ca = %+v", first)
	}

	// A spec change bumps the generation and re-runs the check. A merge
	// patch, not an update: the controller may write status in between,
	// and a stale resourceVersion would make this test flaky, not wrong.
	before := iss.DeepCopy()
	iss.Spec.OCSPServers = []string{"http://ocsp.example.test"}
	if err := env.Client.Patch(context.Background(), iss, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	readyCondition(t, iss, conds, isReady)
	if again := waitSummary(t, iss); again.SHA256Fingerprint != first.SHA256Fingerprint {
		t.Fatalf("bootstrap CA changed: %s then %s", first.SHA256Fingerprint, again.SHA256Fingerprint)
	}
	var after corev1.Secret
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "boot-root"}, &after); err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != secret.ResourceVersion {
		t.Errorf("bootstrap Secret was rewritten (resourceVersion %s -> %s)", secret.ResourceVersion, after.ResourceVersion)
	}
}

// TestBootstrapKeepsCorruptSecret checks that Quill refuses to overwrite an
// existing but unusable bootstrap Secret: the issuer is not Ready and the
// Secret is untouched.
func TestBootstrapKeepsCorruptSecret(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	// Quill's own Secret (its ownership mark names the issuer), since any
	// other is a name collision (TestBootstrapNamingAppSecret).
	orig := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "boot-root"}, Data: map[string][]byte{"tls.crt": []byte("garbage"), "tls.key": []byte("garbage")}}
	owned.Mark(orig, "QuillIssuer/"+ns+"/boot")
	if err := env.Client.Create(context.Background(), orig); err != nil {
		t.Fatal(err)
	}
	iss := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "boot"},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{
			SecretName: "boot-root", Subject: quillv1.Subject{CommonName: "Boot Root"},
		}}},
	}
	if err := env.Client.Create(context.Background(), iss); err != nil {
		t.Fatal(err)
	}
	readyCondition(t, iss, func() []metav1.Condition { return iss.Status.Conditions }, notReadyWith(quillv1.ReasonSecretInvalid))
	var after corev1.Secret
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(orig), &after); err != nil {
		t.Fatal(err)
	}
	if string(after.Data["tls.key"]) != "garbage" {
		t.Fatal("an existing bootstrap Secret was overwritten")
	}
}

func waitSummary(t *testing.T, iss *quillv1.QuillIssuer) quillv1.CASummary {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(iss), iss); err != nil {
			t.Fatal(err)
		}
		if iss.Status.CA != nil && iss.Status.CA.SHA256Fingerprint != "" {
			return *iss.Status.CA
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("status.ca never written")
	return quillv1.CASummary{}
}
