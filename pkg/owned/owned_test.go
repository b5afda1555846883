package owned_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/owned"
)

const (
	owner = "QuillIssuer/team-a/ca"
	other = "QuillIssuer/team-a/other"
)

// legacyAnn stands for a writer's recognition of its pre-mark objects.
func legacyAnn(obj client.Object, o string) bool {
	return obj.GetAnnotations()["quill.dev/issuer"] == o
}

type objOption func(*corev1.ConfigMap)

func marked(o string) objOption { return func(cm *corev1.ConfigMap) { owned.Mark(cm, o) } }

func labelled(k, v string) objOption {
	return func(cm *corev1.ConfigMap) {
		if cm.Labels == nil {
			cm.Labels = map[string]string{}
		}
		cm.Labels[k] = v
	}
}

func annotated(k, v string) objOption {
	return func(cm *corev1.ConfigMap) {
		if cm.Annotations == nil {
			cm.Annotations = map[string]string{}
		}
		cm.Annotations[k] = v
	}
}

func configMap(opts ...objOption) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "ca-crl-1"},
		Data:       map[string]string{"app.conf": "keep me"},
	}
	for _, o := range opts {
		o(cm)
	}
	return cm
}

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		obj        *corev1.ConfigMap
		legacy     owned.Legacy
		wantHolder string
		wantErr    bool
	}{
		{name: "marked-for-the-owner", obj: configMap(marked(owner))},
		{name: "marked-for-the-owner-with-other-labels", obj: configMap(marked(owner), labelled("app", "web"))},
		{name: "no-mark", obj: configMap(), wantErr: true},
		{name: "no-mark-no-legacy-test", obj: configMap(annotated("quill.dev/issuer", owner)), wantErr: true},
		{name: "legacy-for-the-owner", obj: configMap(annotated("quill.dev/issuer", owner)), legacy: legacyAnn},
		{name: "legacy-for-another", obj: configMap(annotated("quill.dev/issuer", other)), legacy: legacyAnn, wantErr: true},
		{name: "marked-for-another", obj: configMap(marked(other)), wantHolder: other, wantErr: true},
		{name: "marked-for-another-is-not-legacy", obj: configMap(marked(other), annotated("quill.dev/issuer", owner)), legacy: legacyAnn, wantHolder: other, wantErr: true},
		{name: "annotation-without-label", obj: configMap(annotated(quillv1.AnnotationOwner, owner)), wantErr: true},
		{name: "label-without-annotation", obj: configMap(labelled(quillv1.LabelManagedBy, quillv1.ManagedByQuill)), wantErr: true},
		{name: "another-manager", obj: configMap(labelled(quillv1.LabelManagedBy, "helm"), annotated(quillv1.AnnotationOwner, owner)), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := owned.Check("ConfigMap", tt.obj, owner, tt.legacy)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			var ce *owned.CollisionError
			if !errors.Is(err, owned.ErrCollision) || !errors.As(err, &ce) {
				t.Fatalf("Check = %v, want a *CollisionError wrapping ErrCollision", err)
			}
			if ce.Holder != tt.wantHolder || ce.Owner != owner || ce.Kind != "ConfigMap" || ce.Namespace != "team-a" || ce.Name != "ca-crl-1" {
				t.Errorf("collision %+v, want holder %q", ce, tt.wantHolder)
			}
			if msg := err.Error(); !strings.Contains(msg, "ConfigMap team-a/ca-crl-1") || !strings.Contains(msg, owner) {
				t.Errorf("message %q names neither the object nor the issuer", msg)
			}
		})
	}
}

func TestMarkKeepsLabelsAndAnnotations(t *testing.T) {
	t.Parallel()
	cm := configMap(labelled("app", "web"), annotated("note", "x"))
	owned.Mark(cm, owner)
	if !owned.Marked(cm, owner) || owned.Marked(cm, other) {
		t.Fatalf("Marked: %v %v", cm.Labels, cm.Annotations)
	}
	if cm.Labels["app"] != "web" || cm.Annotations["note"] != "x" {
		t.Errorf("Mark dropped the object's own metadata: %v %v", cm.Labels, cm.Annotations)
	}
	if l, a := owned.Labels(), owned.Annotations(owner); l[quillv1.LabelManagedBy] != quillv1.ManagedByQuill || a[quillv1.AnnotationOwner] != owner {
		t.Errorf("Labels %v, Annotations %v", l, a)
	}
}

func newAPI(t *testing.T, objs ...client.Object) client.WithWatch {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
}

// TestWriters: Update, Patch and Delete write only an object the owner may
// write, leave any other exactly as it was, and mark what they write;
// Create marks what it creates.
func TestWriters(t *testing.T) {
	t.Parallel()
	ops := map[string]func(ctx context.Context, c client.Client, existing *corev1.ConfigMap) error{
		"update": func(ctx context.Context, c client.Client, existing *corev1.ConfigMap) error {
			next := configMap()
			next.Data = map[string]string{"crl": "new"}
			return owned.Update(ctx, c, "ConfigMap", existing, next, owner, legacyAnn)
		},
		"patch": func(ctx context.Context, c client.Client, existing *corev1.ConfigMap) error {
			next := existing.DeepCopy()
			next.Data = map[string]string{"crl": "new"}
			return owned.Patch(ctx, c, "ConfigMap", existing, next, owner, legacyAnn)
		},
		"delete": func(ctx context.Context, c client.Client, existing *corev1.ConfigMap) error {
			return owned.Delete(ctx, c, "ConfigMap", existing, owner, legacyAnn)
		},
	}
	objects := []struct {
		name    string
		obj     *corev1.ConfigMap
		allowed bool
	}{
		{name: "own", obj: configMap(marked(owner)), allowed: true},
		{name: "legacy", obj: configMap(annotated("quill.dev/issuer", owner)), allowed: true},
		{name: "users", obj: configMap()},
		{name: "another-issuers", obj: configMap(marked(other))},
	}
	for op, do := range ops {
		for _, o := range objects {
			t.Run(op+"-"+o.name, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				api := newAPI(t, o.obj)
				var existing corev1.ConfigMap
				if err := api.Get(ctx, client.ObjectKeyFromObject(o.obj), &existing); err != nil {
					t.Fatal(err)
				}
				err := do(ctx, api, &existing)
				var after corev1.ConfigMap
				gerr := api.Get(ctx, client.ObjectKeyFromObject(o.obj), &after)
				if !o.allowed {
					if !errors.Is(err, owned.ErrCollision) {
						t.Fatalf("%s = %v, want a collision", op, err)
					}
					if gerr != nil || after.ResourceVersion != existing.ResourceVersion {
						t.Fatalf("the object that is not the owner's was written (%v)", gerr)
					}
					return
				}
				if err != nil {
					t.Fatalf("%s: %v", op, err)
				}
				if op == "delete" {
					if !apierrors.IsNotFound(gerr) {
						t.Fatalf("after delete: %v", gerr)
					}
					return
				}
				if gerr != nil || after.Data["crl"] != "new" || !owned.Marked(&after, owner) {
					t.Fatalf("after %s: %v, data %v, marked %v", op, gerr, after.Data, owned.Marked(&after, owner))
				}
			})
		}
	}
}

// TestWritersRefuseAReplacedObject: an object replaced after it was read
// and checked is not written over (the resourceVersion precondition).
func TestWritersRefuseAReplacedObject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	api := newAPI(t, configMap(marked(owner)))
	var existing corev1.ConfigMap
	if err := api.Get(ctx, client.ObjectKeyFromObject(configMap()), &existing); err != nil {
		t.Fatal(err)
	}
	// Someone takes the name over between the read and the write.
	taken := existing.DeepCopy()
	taken.Labels, taken.Annotations = nil, nil
	if err := api.Update(ctx, taken); err != nil {
		t.Fatal(err)
	}
	if err := owned.Update(ctx, api, "ConfigMap", &existing, configMap(), owner, nil); !apierrors.IsConflict(err) {
		t.Errorf("Update = %v, want Conflict", err)
	}
	if err := owned.Delete(ctx, api, "ConfigMap", &existing, owner, nil); !apierrors.IsConflict(err) {
		t.Errorf("Delete = %v, want Conflict", err)
	}
	var after corev1.ConfigMap
	if err := api.Get(ctx, client.ObjectKeyFromObject(configMap()), &after); err != nil || after.Data["app.conf"] != "keep me" || owned.Marked(&after, owner) {
		t.Errorf("the replacement was written: %v %v", err, after.ObjectMeta)
	}
}

func TestCreateMarks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	api := newAPI(t)
	if err := owned.Create(ctx, api, configMap(), owner); err != nil {
		t.Fatal(err)
	}
	var got corev1.ConfigMap
	if err := api.Get(ctx, client.ObjectKeyFromObject(configMap()), &got); err != nil || !owned.Marked(&got, owner) {
		t.Fatalf("created object: %v, %v", err, got.ObjectMeta)
	}
	if err := owned.Create(ctx, api, configMap(), other); !apierrors.IsAlreadyExists(err) {
		t.Errorf("second Create = %v, want AlreadyExists", err)
	}
}
