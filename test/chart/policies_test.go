package chart

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// sourceManifests decodes every manifest in the repository folder rel.
func sourceManifests(t *testing.T, rel string) []*unstructured.Unstructured {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(env.Root, rel, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", rel, err)
	}
	var out []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeManifests(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, objs...)
	}
	return out
}

// TestChartShipsPoliciesAndRoles: the chart renders every admission
// policy of config/admission and every duty role of config/rbac/roles, as
// written there plus the chart's labels, and the values turn them off.
func TestChartShipsPoliciesAndRoles(t *testing.T) {
	t.Parallel()
	objs := render(t, "")
	sources := append(sourceManifests(t, "config/admission"), sourceManifests(t, "config/rbac/roles")...)
	for _, src := range sources {
		got := find(t, objs, src.GetKind(), src.GetName()).DeepCopy()
		if got.GetLabels()["app.kubernetes.io/managed-by"] != "Helm" {
			t.Errorf("%s %s lacks the chart's labels: %v", got.GetKind(), got.GetName(), got.GetLabels())
		}
		unstructured.RemoveNestedField(got.Object, "metadata", "labels")
		if !reflect.DeepEqual(got.Object, src.Object) {
			t.Errorf("%s %s differs from its source in config/:\nchart:  %v\nsource: %v", src.GetKind(), src.GetName(), got.Object, src.Object)
		}
	}

	count := func(objs []*unstructured.Unstructured) string {
		k := kinds(objs)
		return fmt.Sprintf("VAP %d, VAPB %d, MAP %d, MAPB %d, quill-auditor %v", k["ValidatingAdmissionPolicy"], k["ValidatingAdmissionPolicyBinding"],
			k["MutatingAdmissionPolicy"], k["MutatingAdmissionPolicyBinding"], hasObject(objs, "ClusterRole", "quill-auditor"))
	}
	for _, tt := range []struct{ values, want string }{
		{"", "VAP 2, VAPB 2, MAP 2, MAPB 2, quill-auditor true"},
		{"admissionPolicies: {mutating: {enabled: false}}\n", "VAP 2, VAPB 2, MAP 0, MAPB 0, quill-auditor true"},
		{"admissionPolicies: {enabled: false}\nrbac: {roles: {enabled: false}}\n", "VAP 0, VAPB 0, MAP 0, MAPB 0, quill-auditor false"},
	} {
		if got := count(render(t, tt.values)); got != tt.want {
			t.Errorf("values %q render %s; want %s", tt.values, got, tt.want)
		}
	}
}

func hasObject(objs []*unstructured.Unstructured, kind, name string) bool {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return true
		}
	}
	return false
}

// TestChartPoliciesInForce applies the chart's admission policies and
// checks that the API server enforces them: an Active issuer cannot be
// deleted, disabling it records the user (the mutating policy), and that
// same user cannot then delete it.
func TestChartPoliciesInForce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, o := range render(t, "") {
		if !strings.HasSuffix(o.GetKind(), "AdmissionPolicy") && !strings.HasSuffix(o.GetKind(), "AdmissionPolicyBinding") {
			continue
		}
		if err := env.Client.Patch(ctx, o, client.Apply, client.FieldOwner("helm"), client.ForceOwnership); err != nil { //nolint:staticcheck // unstructured SSA
			t.Fatalf("applying %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	iss := &quillv1.QuillClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: "chart-guarded"},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{
			SecretName: "chart-guarded-ca", Subject: quillv1.Subject{CommonName: "chart-guarded root"}, KeyAlgorithm: "ECDSA-P256",
		}}},
	}
	// Policies take effect a moment after they are created: an issuer
	// deleted before that is created again.
	eventually(t, "deleting an Active issuer to be refused", func() (bool, error) {
		if err := env.Client.Create(ctx, iss.DeepCopy()); err != nil && !apierrors.IsAlreadyExists(err) {
			return false, err
		}
		err := env.Client.Delete(ctx, iss)
		return err != nil && strings.Contains(err.Error(), "only while spec.state is Disabled"), err
	})
	// Until the mutating policy is in force, the validating one refuses a
	// disabling without the annotation.
	eventually(t, "disabling to record the user", func() (bool, error) {
		fresh := &quillv1.QuillClusterIssuer{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(iss), fresh); err != nil {
			return false, err
		}
		changed := fresh.DeepCopy()
		changed.Spec.State = quillv1.StateDisabled
		if err := env.Client.Patch(ctx, changed, client.MergeFrom(fresh)); err != nil {
			return false, err
		}
		return changed.Annotations[quillv1.AnnotationDisabledBy] != "", nil
	})
	err := env.Client.Delete(ctx, iss)
	if err == nil || !strings.Contains(err.Error(), "two-person rule") {
		t.Fatalf("the user who disabled the issuer deleted it: %v", err)
	}
}
