package integration

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/test/harness"
)

// applyManifests creates every object in a multi-document YAML file of the
// repository (config/...), as the cluster administrator.
func applyManifests(t *testing.T, rel string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(env.Root, rel))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if len(m) == 0 {
			continue
		}
		obj := &unstructured.Unstructured{Object: m}
		if err := env.Client.Create(context.Background(), obj); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("%s: creating %s %s: %v", rel, obj.GetKind(), obj.GetName(), err)
		}
	}
}

// as is a client acting as user (impersonated by the administrator).
func as(t *testing.T, user string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// bindRoles binds the shipped ClusterRoles to user cluster-wide.
func bindRoles(t *testing.T, user string, roles ...string) {
	t.Helper()
	for _, r := range roles {
		b := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: r + "-" + user},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: r},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
		}
		if err := env.Client.Create(context.Background(), b); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}

// waitFor polls cond for up to a minute: admission policies take effect
// a moment after they are created, once the API server has compiled them.
func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	harness.Eventually(t, what, time.Minute, cond)
}

func clusterIssuer(name string) *quillv1.QuillClusterIssuer {
	return &quillv1.QuillClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{
			SecretName: name + "-root", Subject: quillv1.Subject{CommonName: name + " root"},
		}}},
	}
}

// mergePatch applies change to a fresh copy of obj as c's user.
func mergePatch(c client.Client, obj client.Object, change func(client.Object)) error {
	fresh := obj.DeepCopyObject().(client.Object)
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), fresh); err != nil {
		return err
	}
	changed := fresh.DeepCopyObject().(client.Object)
	change(changed)
	return c.Patch(context.Background(), changed, client.MergeFrom(fresh))
}

func setAnnotation(k, v string) func(client.Object) {
	return func(o client.Object) {
		a := o.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		if v == "" {
			delete(a, k)
		} else {
			a[k] = v
		}
		o.SetAnnotations(a)
	}
}

func disable(by string) func(client.Object) {
	return func(o client.Object) {
		o.(*quillv1.QuillClusterIssuer).Spec.State = quillv1.StateDisabled
		if by != "" {
			setAnnotation(quillv1.AnnotationDisabledBy, by)(o)
		}
	}
}

// refused checks that err is the API server's admission refusal and
// carries want.
func refused(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("allowed; want refused with %q", want)
	}
	if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) {
		t.Fatalf("error %v is not an admission refusal", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("refusal %q does not say %q", err, want)
	}
}

// TestTwoPersonRule installs config/admission and config/rbac/roles and
// checks, against the real kube-apiserver with impersonated users, that an
// issuer and its CA key Secret are deleted only once disabled, and only by
// another user than the one who disabled them. Both users hold both the
// CA administrator and the CA deleter roles, so every refusal below comes
// from the admission policies, not from RBAC.
//
// It is not parallel: the mutating policy installed at its end would
// change what the steps before it see.
func TestTwoPersonRule(t *testing.T) {
	for _, f := range []string{"ca-admin.yaml", "ca-deleter.yaml", "certificate-requester.yaml", "revoker.yaml", "auditor.yaml"} {
		applyManifests(t, filepath.Join("config", "rbac", "roles", f))
	}
	applyManifests(t, "config/admission/issuer-lifecycle.yaml")
	applyManifests(t, "config/admission/ca-key-lifecycle.yaml")
	bindRoles(t, "alice", "quill-ca-admin", "quill-ca-deleter")
	bindRoles(t, "bob", "quill-ca-admin", "quill-ca-deleter")
	alice, bob := as(t, "alice"), as(t, "bob")
	ctx := context.Background()

	// The policy is in force once it refuses deleting an Active issuer.
	waitFor(t, "the issuer policy to take effect", func() (bool, error) {
		probe := clusterIssuer("policy-probe")
		if err := env.Client.Create(ctx, probe); err != nil && !apierrors.IsAlreadyExists(err) {
			return false, err
		}
		err := env.Client.Delete(ctx, probe)
		return err != nil && strings.Contains(err.Error(), "only while spec.state is Disabled"), err
	})

	iss := clusterIssuer("two-person")
	if err := env.Client.Create(ctx, iss); err != nil {
		t.Fatal(err)
	}
	readyCondition(t, iss, func() []metav1.Condition { return iss.Status.Conditions }, isReady)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: clusterResourceNamespace, Name: "two-person-root"}}
	waitFor(t, "Quill to label the CA key Secret", func() (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(secret), secret)
		return err == nil && secret.Labels[quillv1.LabelCAKey] == "true", err
	})
	if got := secret.Annotations[quillv1.AnnotationCAKeyOf]; got != "QuillClusterIssuer/two-person" {
		t.Errorf("%s = %q", quillv1.AnnotationCAKeyOf, got)
	}

	steps := []struct {
		name string
		do   func() error
		want string // "" allowed
	}{
		{"active-issuer-delete-refused", func() error { return bob.Delete(ctx, iss) }, "only while spec.state is Disabled"},
		{"forged-disabled-by-refused", func() error { return mergePatch(alice, iss, disable("bob")) }, "quill.dev/disabled-by: alice"},
		{"disable-without-name-refused", func() error { return mergePatch(alice, iss, disable("")) }, "quill.dev/disabled-by: alice"},
		{"disable-with-own-name", func() error { return mergePatch(alice, iss, disable("alice")) }, ""},
		{"rewrite-disabled-by-refused", func() error {
			return mergePatch(bob, iss, setAnnotation(quillv1.AnnotationDisabledBy, "carol"))
		}, "only be set to your own user name, bob"},
		{"remove-disabled-by-refused", func() error {
			return mergePatch(bob, iss, setAnnotation(quillv1.AnnotationDisabledBy, ""))
		}, "only be set to your own user name, bob"},
		{"same-user-delete-refused", func() error { return alice.Delete(ctx, iss) }, "disabled by alice, so it must be deleted by someone else"},
		{"second-user-delete-allowed", func() error { return bob.Delete(ctx, iss) }, ""},

		{"key-label-removal-refused", func() error {
			return mergePatch(alice, secret, func(o client.Object) { o.SetLabels(nil) })
		}, "label quill.dev/ca-key cannot be removed"},
		{"active-key-delete-refused", func() error { return bob.Delete(ctx, secret) }, "only while its annotation quill.dev/state is Disabled"},
		{"key-forged-disabled-by-refused", func() error {
			return mergePatch(alice, secret, func(o client.Object) {
				setAnnotation(quillv1.AnnotationState, "Disabled")(o)
				setAnnotation(quillv1.AnnotationDisabledBy, "bob")(o)
			})
		}, "quill.dev/disabled-by: alice"},
		{"key-disable-with-own-name", func() error {
			return mergePatch(alice, secret, func(o client.Object) {
				setAnnotation(quillv1.AnnotationState, "Disabled")(o)
				setAnnotation(quillv1.AnnotationDisabledBy, "alice")(o)
			})
		}, ""},
		{"key-same-user-delete-refused", func() error { return alice.Delete(ctx, secret) }, "disabled by alice"},
		{"key-second-user-delete-allowed", func() error { return bob.Delete(ctx, secret) }, ""},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) {
			err := s.do()
			if s.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			refused(t, err, s.want)
		}) {
			t.FailNow() // later steps depend on earlier ones
		}
		if s.name == "disable-with-own-name" {
			// The controller stops signing and says why.
			readyCondition(t, iss, func() []metav1.Condition { return iss.Status.Conditions }, notReadyWith(quillv1.ReasonDisabled))
			if iss.Status.State != quillv1.StateDisabled {
				t.Errorf("status.state = %q", iss.Status.State)
			}
		}
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(iss), iss); !apierrors.IsNotFound(err) {
		t.Errorf("issuer still there after the second user deleted it: %v", err)
	}

	t.Run("mutating-policy-fills-disabled-by", func(t *testing.T) { mutatingPolicy(t, alice, bob) })
}

// mutatingPolicy checks that the v1.37 API server serves
// MutatingAdmissionPolicy in admissionregistration.k8s.io/v1, installs
// config/admission/mutating.yaml, and sees it stamp the disabling user.
func mutatingPolicy(t *testing.T, alice, bob client.Client) {
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	res, err := dc.ServerResourcesForGroupVersion("admissionregistration.k8s.io/v1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(res.APIResources, func(r metav1.APIResource) bool { return r.Name == "mutatingadmissionpolicies" }) {
		t.Fatal("the API server does not serve admissionregistration.k8s.io/v1 mutatingadmissionpolicies")
	}
	applyManifests(t, "config/admission/mutating.yaml")
	ctx := context.Background()

	iss := clusterIssuer("two-person-mutating")
	if err := env.Client.Create(ctx, iss); err != nil {
		t.Fatal(err)
	}
	// Until the mutating policy is compiled, disabling without the
	// annotation is refused by the validating one; then it goes through.
	waitFor(t, "the mutating policy to stamp quill.dev/disabled-by", func() (bool, error) {
		err := mergePatch(alice, iss, disable(""))
		return err == nil, err
	})
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(iss), iss); err != nil {
		t.Fatal(err)
	}
	if got := iss.Annotations[quillv1.AnnotationDisabledBy]; got != "alice" {
		t.Fatalf("quill.dev/disabled-by = %q; want alice", got)
	}
	refused(t, alice.Delete(ctx, iss), "disabled by alice")
	if err := bob.Delete(ctx, iss); err != nil {
		t.Fatalf("second user refused: %v", err)
	}

	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: clusterResourceNamespace, Name: "mutating-key", Labels: map[string]string{quillv1.LabelCAKey: "true"}},
		Data:       map[string][]byte{"tls.key": []byte("not a real key")},
	}
	if err := env.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	// The Secret's mutating policy is its own object and may be compiled
	// after the issuers' one: wait for it the same way.
	waitFor(t, "the mutating policy to stamp quill.dev/disabled-by on a key Secret", func() (bool, error) {
		err := mergePatch(bob, secret, setAnnotation(quillv1.AnnotationState, "Disabled"))
		return err == nil, err
	})
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(secret), secret); err != nil {
		t.Fatal(err)
	}
	if got := secret.Annotations[quillv1.AnnotationDisabledBy]; got != "bob" {
		t.Fatalf("Secret quill.dev/disabled-by = %q; want bob", got)
	}
	refused(t, bob.Delete(ctx, secret), "disabled by bob")
	if err := alice.Delete(ctx, secret); err != nil {
		t.Fatalf("second user refused: %v", err)
	}
}

// TestPolicySchema checks what the API server itself refuses in templates
// and policies, with the messages of the CRDs' rules.
func TestPolicySchema(t *testing.T) {
	t.Parallel()
	bootstrap := quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{SecretName: "root", Subject: quillv1.Subject{CommonName: "root"}}}
	tests := []struct {
		name string
		obj  client.Object
		want string
	}{
		{
			name: "template-builtin-name",
			obj: &quillv1.QuillTemplate{ObjectMeta: metav1.ObjectMeta{Name: quillv1.TemplateServerAuth},
				Spec: quillv1.TemplateSpec{KeyUsages: []quillv1.KeyUsage{"digital signature"}}},
			want: "this name belongs to a built-in template",
		},
		{
			name: "template-pathlen-without-ca",
			obj: &quillv1.QuillTemplate{ObjectMeta: metav1.ObjectMeta{Name: "schema-pathlen"},
				Spec: quillv1.TemplateSpec{KeyUsages: []quillv1.KeyUsage{"digital signature"}, MaxPathLen: new(int)}},
			want: "maxPathLen needs isCA: true",
		},
		{
			name: "template-unknown-usage",
			obj: &quillv1.QuillTemplate{ObjectMeta: metav1.ObjectMeta{Name: "schema-usage"},
				Spec: quillv1.TemplateSpec{KeyUsages: []quillv1.KeyUsage{"world domination"}}},
			want: "Unsupported value",
		},
		{
			name: "policy-bad-cidr",
			obj: &quillv1.QuillClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "schema-cidr"},
				Spec: quillv1.IssuerSpec{CA: bootstrap, Policy: &quillv1.RequestPolicy{IPRanges: []string{"10.0.0.1"}}}},
			want: "policy.ipRanges must be CIDRs",
		},
		{
			name: "policy-min-above-max",
			obj: &quillv1.QuillClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "schema-durations"},
				Spec: quillv1.IssuerSpec{CA: bootstrap, Policy: &quillv1.RequestPolicy{
					MinDuration: &metav1.Duration{Duration: 48 * time.Hour}, MaxDuration: &metav1.Duration{Duration: time.Hour}}}},
			want: "policy.minDuration must not exceed policy.maxDuration",
		},
		{
			name: "state-unknown",
			obj: &quillv1.QuillClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "schema-state"},
				Spec: quillv1.IssuerSpec{CA: bootstrap, State: "Paused"}},
			want: "Unsupported value: \"Paused\"",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := env.Client.Create(context.Background(), tc.obj)
			if err == nil {
				t.Fatalf("API server accepted it; want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}
