// Package owned is Quill's one rule for the Kubernetes objects it writes
// (api/v1alpha1/ownership.go names the mark): Quill creates an object with
// the ownership mark naming the issuer it is for, and updates, labels or
// deletes an object only while its mark names that same issuer. Any other
// object under the name Quill wants is a collision, an error wrapping
// ErrCollision that the caller reports on the issuer (reason
// quillv1.ReasonNameCollision) and never resolves by writing.
//
// The mark is only as strong as the right to write the object: whoever may
// edit an object may also put the mark on it, and so hands it to Quill. What
// the rule prevents is Quill writing, on behalf of someone who may only name
// an object in an issuer's spec, an object that person could not write.
//
// Objects written by a Quill from before the mark carry no mark. Each
// writer may pass a Legacy test that recognises its own earlier objects by
// the specific labels and annotations that Quill wrote (naming the same
// issuer); such an object is adopted, and gets the mark with the next write.
// Legacy tests must never match an object that Quill did not write.
//
// Every function takes the owner as IssuerID.String(), the value of the
// owner annotation.
package owned

import (
	"context"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// ErrCollision is an object Quill wants to write that is not the issuer's:
// it has no ownership mark, or its mark names another issuer.
var ErrCollision = errors.New("name collision")

// CollisionError describes a collision: which object, the issuer that
// wanted it, and the issuer its mark names ("" when it has none). It wraps
// ErrCollision.
type CollisionError struct {
	Kind, Namespace, Name string
	// Owner is the issuer that wanted to write the object.
	Owner string
	// Holder is the issuer the object's mark names; empty when the object
	// carries no mark (a user's object).
	Holder string
}

func (e *CollisionError) Error() string {
	held := "it carries no Quill ownership mark"
	if e.Holder != "" {
		held = "its ownership mark names " + e.Holder
	}
	return fmt.Sprintf("%s: %s %s/%s is not %s's (%s); Quill leaves it alone: rename or delete it, or change the issuer",
		ErrCollision, e.Kind, e.Namespace, e.Name, e.Owner, held)
}

// Is makes errors.Is(err, ErrCollision) true.
func (e *CollisionError) Is(target error) bool { return target == ErrCollision }

// Legacy reports whether obj is one that a Quill from before the ownership
// mark created for owner. A nil Legacy adopts nothing.
type Legacy func(obj client.Object, owner string) bool

// Labels is the mark's label, for apply configurations and selectors.
func Labels() map[string]string {
	return map[string]string{quillv1.LabelManagedBy: quillv1.ManagedByQuill}
}

// Annotations is the mark's annotation naming owner.
func Annotations(owner string) map[string]string {
	return map[string]string{quillv1.AnnotationOwner: owner}
}

// Mark puts the ownership mark naming owner on obj, keeping its other
// labels and annotations.
func Mark(obj metav1.Object, owner string) {
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[quillv1.LabelManagedBy] = quillv1.ManagedByQuill
	obj.SetLabels(labels)
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[quillv1.AnnotationOwner] = owner
	obj.SetAnnotations(ann)
}

// Marked reports whether obj carries the mark naming owner.
func Marked(obj metav1.Object, owner string) bool {
	return obj.GetLabels()[quillv1.LabelManagedBy] == quillv1.ManagedByQuill && obj.GetAnnotations()[quillv1.AnnotationOwner] == owner
}

// holder is the issuer obj's mark names, "" when it carries no mark.
func holder(obj metav1.Object) string {
	if obj.GetLabels()[quillv1.LabelManagedBy] != quillv1.ManagedByQuill {
		return ""
	}
	return obj.GetAnnotations()[quillv1.AnnotationOwner]
}

// Check returns nil when owner may write obj, an object read from the API
// server: its mark names owner, or it carries no mark at all and legacy
// recognises it as an earlier Quill's object for owner. Otherwise it
// returns a *CollisionError. kind names obj in the error ("Secret",
// "ConfigMap"), since typed objects read by a client carry no kind.
func Check(kind string, obj client.Object, owner string, legacy Legacy) error {
	if Marked(obj, owner) {
		return nil
	}
	h := holder(obj)
	if h == "" && legacy != nil && legacy(obj, owner) {
		return nil
	}
	return &CollisionError{Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName(), Owner: owner, Holder: h}
}

// Create creates obj with the mark naming owner. An AlreadyExists error is
// returned as it is: the caller reads the object that won and checks it.
func Create(ctx context.Context, w client.Writer, obj client.Object, owner string, opts ...client.CreateOption) error {
	Mark(obj, owner)
	return w.Create(ctx, obj, opts...)
}

// Update replaces existing (as read from the API server) with obj, after
// Check: obj gets the mark and existing's resourceVersion, so that an
// object replaced since it was read is not overwritten (Conflict).
func Update(ctx context.Context, w client.Writer, kind string, existing, obj client.Object, owner string, legacy Legacy, opts ...client.UpdateOption) error {
	if err := Check(kind, existing, owner, legacy); err != nil {
		return err
	}
	Mark(obj, owner)
	obj.SetResourceVersion(existing.GetResourceVersion())
	return w.Update(ctx, obj, opts...)
}

// Patch applies a merge patch from existing (as read) to patched, after
// Check; patched gets the mark, and the patch carries existing's
// resourceVersion so that it applies only to the object that was checked.
func Patch(ctx context.Context, w client.Writer, kind string, existing, patched client.Object, owner string, legacy Legacy) error {
	if err := Check(kind, existing, owner, legacy); err != nil {
		return err
	}
	Mark(patched, owner)
	patched.SetResourceVersion(existing.GetResourceVersion())
	return w.Patch(ctx, patched, client.MergeFromWithOptions(existing, client.MergeFromWithOptimisticLock{}))
}

// Delete deletes existing (as read) after Check, on the condition that it
// is still the object that was checked (same UID and resourceVersion): an
// object recreated or relabelled in between is left alone (Conflict).
func Delete(ctx context.Context, w client.Writer, kind string, existing client.Object, owner string, legacy Legacy) error {
	if err := Check(kind, existing, owner, legacy); err != nil {
		return err
	}
	uid, rv := existing.GetUID(), existing.GetResourceVersion()
	return w.Delete(ctx, existing, client.Preconditions{UID: &uid, ResourceVersion: &rv})
}
