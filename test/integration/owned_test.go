package integration

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/revocationdata"
)

// crlPartSize is the CRL part size the suite's Quill runs with
// (controllers.Options.CRLPartSize): small, so that even an empty CRL is
// published in parts.
const crlPartSize = 128

// caValidReason waits until the issuer's CAValid condition for its current
// generation has reason and returns it.
func caValidReason(t *testing.T, iss *quillv1.QuillIssuer, reason string) metav1.Condition {
	t.Helper()
	var last metav1.Condition
	waitFor(t, "CAValid reason "+reason, func() (bool, error) {
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(iss), iss); err != nil {
			return false, err
		}
		c := meta.FindStatusCondition(iss.Status.Conditions, quillv1.ConditionCAValid)
		if c == nil || c.ObservedGeneration != iss.Generation {
			return false, nil
		}
		last = *c
		return c.Reason == reason, nil
	})
	return last
}

// issuerEvent waits for an event on the issuer with reason and returns its
// note.
func issuerEvent(t *testing.T, iss client.Object, reason string) string {
	t.Helper()
	var note string
	waitFor(t, "a "+reason+" event on "+iss.GetName(), func() (bool, error) {
		var list eventsv1.EventList
		if err := env.Client.List(context.Background(), &list, client.InNamespace(iss.GetNamespace())); err != nil {
			return false, err
		}
		for _, e := range list.Items {
			if e.Regarding.Name == iss.GetName() && e.Reason == reason {
				note = e.Note
				return true, nil
			}
		}
		return false, nil
	})
	return note
}

// TestBootstrapNamingAppSecret is the attack of a bootstrap secretName
// naming an app's TLS Secret: the Secret is neither used as the CA nor
// labelled quill.dev/ca-key (which would let the two-person admission policy
// lock it), and the issuer's condition names the collision.
func TestBootstrapNamingAppSecret(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	app := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-tls", Labels: map[string]string{"app": "web"}},
		Type:       corev1.SecretTypeTLS,
		Data:       caSecretData(t, withoutCA()),
	}
	if err := env.Client.Create(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	iss := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "boot"},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{
			SecretName: "app-tls", Subject: quillv1.Subject{CommonName: "Boot Root"},
		}}},
	}
	if err := env.Client.Create(context.Background(), iss); err != nil {
		t.Fatal(err)
	}
	c := caValidReason(t, iss, quillv1.ReasonNameCollision)
	if !strings.Contains(c.Message, ns+"/app-tls") {
		t.Errorf("CAValid message %q does not name the Secret", c.Message)
	}
	readyCondition(t, iss, func() []metav1.Condition { return iss.Status.Conditions }, notReadyWith(quillv1.ReasonNameCollision))
	// Give a labelling reconcile every chance to happen.
	time.Sleep(2 * time.Second)
	var after corev1.Secret
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(app), &after); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(after.Labels, app.Labels) || len(after.Annotations) != 0 || after.ResourceVersion != app.ResourceVersion {
		t.Fatalf("the app's Secret was written: labels %v, annotations %v", after.Labels, after.Annotations)
	}
}

// TestCRLPartNameCollision is the attack of a ConfigMap named like a CRL
// part (<issuer>-crl-1): when the CRL needs parts, that ConfigMap is left
// as it is, and the issuer says why its CRL is not published, in
// status.revocation.message and in an event. The suite's Quill splits CRLs
// into parts of crlPartSize bytes, so the first CRL already needs parts.
func TestCRLPartNameCollision(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := newNamespace(t)
	theirs := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: revocationdata.CRLConfigMapName("ca") + "-1"},
		Data:       map[string]string{"app.conf": "keep me"},
	}
	if err := env.Client.Create(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	iss := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ca"},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{
			SecretName: "ca-root", Subject: quillv1.Subject{CommonName: "CRL Root"},
		}}},
	}
	if err := env.Client.Create(ctx, iss); err != nil {
		t.Fatal(err)
	}
	readyCondition(t, iss, func() []metav1.Condition { return iss.Status.Conditions }, isReady)
	waitFor(t, "status.revocation to report the collision", func() (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(iss), iss); err != nil {
			return false, err
		}
		r := iss.Status.Revocation
		return r != nil && strings.Contains(r.Message, quillv1.ReasonNameCollision) && strings.Contains(r.Message, theirs.Name), nil
	})
	if note := issuerEvent(t, iss, quillv1.ReasonNameCollision); !strings.Contains(note, theirs.Name) {
		t.Errorf("event %q does not name the ConfigMap", note)
	}
	var after corev1.ConfigMap
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(theirs), &after); err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != theirs.ResourceVersion || len(after.BinaryData) != 0 || after.Data["app.conf"] != "keep me" || len(after.Labels) != 0 {
		t.Fatalf("the ConfigMap named like a CRL part was written: labels %v, data keys %v, binary %d keys",
			after.Labels, slices.Collect(maps.Keys(after.Data)), len(after.BinaryData))
	}

	// Once it is gone, the CRL is published in parts that carry the
	// issuer's mark. The ConfigMap is not watched: a spec change brings the
	// publisher back at once (otherwise it looks again within a minute).
	if err := env.Client.Delete(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	before := iss.DeepCopy()
	iss.Spec.Revocation.CRL.Validity = &metav1.Duration{Duration: 2 * time.Hour}
	if err := env.Client.Patch(ctx, iss, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the CRL published in marked parts", func() (bool, error) {
		var part corev1.ConfigMap
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(theirs), &part); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return part.Labels[quillv1.LabelManagedBy] == quillv1.ManagedByQuill && part.Annotations[quillv1.AnnotationOwner] == "QuillIssuer/"+ns+"/ca" &&
			len(part.BinaryData[revocationdata.KeyPart]) > 0 && len(part.BinaryData[revocationdata.KeyPart]) <= crlPartSize, nil
	})
}
