package trustbundle

import (
	"context"
	"crypto/x509"
	"errors"
	"maps"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/owned"
)

func TestBundleName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		issuer  string
		tb      *quillv1.TrustBundle
		want    string
		wantErr bool
	}{
		{name: "default", issuer: "web", want: "web-ca-bundle"},
		{name: "default-with-empty-spec", issuer: "web", tb: &quillv1.TrustBundle{}, want: "web-ca-bundle"},
		{name: "explicit", issuer: "web", tb: &quillv1.TrustBundle{ConfigMapName: "trust"}, want: "trust"},
		{name: "default-too-long", issuer: strings.Repeat("a", 250), wantErr: true},
		{name: "long-issuer-with-explicit-name", issuer: strings.Repeat("a", 250), tb: &quillv1.TrustBundle{ConfigMapName: "trust"}, want: "trust"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := bundleName(tt.issuer, tt.tb)
			if tt.wantErr {
				if !errors.Is(err, errBundleName) {
					t.Fatalf("got %q, %v; want errBundleName", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestBundlePEM(t *testing.T) {
	t.Parallel()
	root := newCA(t, withCN("Root"))
	inter := newCA(t, withCN("Intermediate"), issuedBy(root))
	tests := []struct {
		name          string
		issuing       testCA
		intermediates []*x509.Certificate
		with          bool
		want          []*x509.Certificate
	}{
		{name: "root-issuer", issuing: root, want: []*x509.Certificate{root.Cert}},
		{name: "root-issuer-with-intermediates", issuing: root, with: true, want: []*x509.Certificate{root.Cert}},
		{name: "intermediate-roots-only", issuing: inter, want: []*x509.Certificate{root.Cert}},
		{name: "intermediate-included", issuing: inter, with: true, want: []*x509.Certificate{root.Cert, inter.Cert}},
		{name: "chain-listing-the-root-is-not-repeated", issuing: inter, intermediates: []*x509.Certificate{root.Cert}, with: true,
			want: []*x509.Certificate{root.Cert, inter.Cert}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := parseChain(t, []byte(bundlePEM(root.Cert, tt.issuing.Cert, tt.intermediates, tt.with)))
			if len(got) != len(tt.want) {
				t.Fatalf("bundle has %d certificates, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !got[i].Equal(tt.want[i]) {
					t.Errorf("certificate %d is %s, want %s", i, got[i].Subject, tt.want[i].Subject)
				}
			}
		})
	}
}

// TestTrustBundleReconcile runs the reconciler against a fake API: the
// bundle is written for a usable CA, nothing is written for an unusable one.
func TestTrustBundleReconcile(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	tests := []struct {
		name      string
		objs      []client.Object
		kind      quillv1.GenericIssuer
		key       client.ObjectKey
		wantNS    string
		wantName  string
		wantNoMap bool
	}{
		{name: "namespaced", kind: &quillv1.QuillIssuer{}, objs: []client.Object{newIssuer(), caSecret(testNamespace, "ca", ca)},
			key: client.ObjectKey{Namespace: testNamespace, Name: "issuer"}, wantNS: testNamespace, wantName: "issuer-ca-bundle"},
		{name: "cluster-uses-cluster-resource-namespace", kind: &quillv1.QuillClusterIssuer{},
			objs: []client.Object{newClusterIssuer(), caSecret(clusterResourceNamespace, "ca", ca)},
			key:  client.ObjectKey{Name: "cluster-issuer"}, wantNS: clusterResourceNamespace, wantName: "cluster-issuer-ca-bundle"},
		{name: "cluster-ignores-secret-in-other-namespace", kind: &quillv1.QuillClusterIssuer{},
			objs: []client.Object{newClusterIssuer(), caSecret(testNamespace, "ca", ca)},
			key:  client.ObjectKey{Name: "cluster-issuer"}, wantNS: clusterResourceNamespace, wantName: "cluster-issuer-ca-bundle", wantNoMap: true},
		{name: "missing-secret-publishes-nothing", kind: &quillv1.QuillIssuer{}, objs: []client.Object{newIssuer()},
			key: client.ObjectKey{Namespace: testNamespace, Name: "issuer"}, wantNS: testNamespace, wantName: "issuer-ca-bundle", wantNoMap: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := newAPI(t, tt.objs...)
			r := &trustBundleReconciler{
				client: api, reader: api, kind: tt.kind, clusterNamespace: clusterResourceNamespace,
				store:    &castore.Store{Reader: api, Metadata: api, Writer: api, Clock: clock.RealClock{}},
				recorder: events.NewFakeRecorder(10),
			}
			if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: tt.key}); err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			var cm corev1.ConfigMap
			err := api.Get(context.Background(), client.ObjectKey{Namespace: tt.wantNS, Name: tt.wantName}, &cm)
			if tt.wantNoMap {
				if err == nil {
					t.Fatalf("a bundle was published: %v", cm.Data)
				}
				return
			}
			if err != nil {
				t.Fatalf("bundle not published: %v", err)
			}
			got := parseChain(t, []byte(cm.Data[quillv1.TrustBundleKey]))
			if len(got) != 1 || !got[0].Equal(ca.Cert) {
				t.Fatalf("bundle holds %d certificates, want the root", len(got))
			}
		})
	}
}

// TestTrustBundleLeavesForeignConfigMap: a ConfigMap under the bundle's name
// that this issuer did not publish is left as it is (taking it over would
// make it go when the issuer goes), and the issuer gets a warning.
func TestTrustBundleLeavesForeignConfigMap(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	theirs := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "issuer-ca-bundle"},
		Data:       map[string]string{"app.conf": "keep me"},
	}
	api := newAPI(t, newIssuer(), caSecret(testNamespace, "ca", ca), theirs)
	rec := events.NewFakeRecorder(10)
	r := &trustBundleReconciler{
		client: api, reader: api, clusterNamespace: clusterResourceNamespace, kind: &quillv1.QuillIssuer{},
		store:    &castore.Store{Reader: api, Metadata: api, Writer: api, Clock: clock.RealClock{}},
		recorder: rec,
	}
	res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: testNamespace, Name: "issuer"}})
	if err != nil || res.RequeueAfter != bundleTakenRetry {
		t.Fatalf("reconcile: %+v, %v; want a retry after %v", res, err, bundleTakenRetry)
	}
	var cm corev1.ConfigMap
	if err := api.Get(context.Background(), client.ObjectKeyFromObject(theirs), &cm); err != nil {
		t.Fatal(err)
	}
	if len(cm.OwnerReferences) != 0 || len(cm.Labels) != 0 || len(cm.Data) != 1 || cm.Data["app.conf"] != "keep me" {
		t.Fatalf("the foreign ConfigMap was changed: owners %v, labels %v, data %v", cm.OwnerReferences, cm.Labels, cm.Data)
	}
	select {
	case e := <-rec.Events:
		if !strings.Contains(e, quillv1.ReasonNameCollision) || !strings.Contains(e, "configMapName") {
			t.Fatalf("event %q; want a NameCollision warning naming spec.trustBundle.configMapName", e)
		}
	default:
		t.Fatal("no event")
	}
}

// TestTrustBundleOwnership: the bundle ConfigMap is written only when it is
// the issuer's (its mark, or an earlier Quill's bundle the issuer controls,
// which is adopted and marked), and stale bundles are deleted only when
// they are the issuer's, whatever labels the others carry.
func TestTrustBundleOwnership(t *testing.T) {
	t.Parallel()
	const owner = "QuillIssuer/" + testNamespace + "/issuer"
	const uid = types.UID("issuer-uid")
	ca := newCA(t)
	bundleLabels := func() map[string]string {
		return map[string]string{quillv1.LabelTrustBundleKind: quillv1.IssuerKind, quillv1.LabelTrustBundleIssuer: "issuer"}
	}
	controlledBy := func(u types.UID) []metav1.OwnerReference {
		yes := true
		return []metav1.OwnerReference{{APIVersion: quillv1.GroupVersion.String(), Kind: quillv1.IssuerKind, Name: "issuer", UID: u, Controller: &yes}}
	}
	configMap := func(name string, labels map[string]string, refs []metav1.OwnerReference, mark string) *corev1.ConfigMap {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name, Labels: labels, OwnerReferences: refs},
			Data:       map[string]string{quillv1.TrustBundleKey: "old"},
		}
		if mark != "" {
			owned.Mark(cm, mark)
		}
		return cm
	}
	tests := []struct {
		name      string
		existing  *corev1.ConfigMap
		wantOwned bool // the ConfigMap is (now) the issuer's bundle
		wantGone  bool // a stale bundle was deleted
	}{
		{name: "marked-bundle-is-updated", existing: configMap("issuer-ca-bundle", bundleLabels(), controlledBy(uid), owner), wantOwned: true},
		{name: "legacy-bundle-is-adopted", existing: configMap("issuer-ca-bundle", bundleLabels(), controlledBy(uid), ""), wantOwned: true},
		{name: "another-issuers-bundle-is-left", existing: configMap("issuer-ca-bundle", bundleLabels(), nil, "QuillIssuer/"+testNamespace+"/other")},
		{name: "bundle-of-a-previous-issuer-is-left", existing: configMap("issuer-ca-bundle", bundleLabels(), controlledBy("old-uid"), owner)},
		{name: "own-stale-bundle-is-deleted", existing: configMap("old-name", bundleLabels(), controlledBy(uid), owner), wantGone: true},
		{name: "own-legacy-stale-bundle-is-deleted", existing: configMap("old-name", bundleLabels(), controlledBy(uid), ""), wantGone: true},
		{name: "labelled-configmap-is-not-deleted", existing: configMap("old-name", bundleLabels(), nil, "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			iss := newIssuer()
			iss.UID = uid
			api := newAPI(t, iss, caSecret(testNamespace, "ca", ca), tt.existing)
			r := &trustBundleReconciler{
				client: api, reader: api, clusterNamespace: clusterResourceNamespace, kind: &quillv1.QuillIssuer{},
				store:    &castore.Store{Reader: api, Metadata: api, Writer: api, Clock: clock.RealClock{}},
				recorder: events.NewFakeRecorder(10),
			}
			if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(iss)}); err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			var cm corev1.ConfigMap
			err := api.Get(ctx, client.ObjectKeyFromObject(tt.existing), &cm)
			switch {
			case tt.wantGone:
				if err == nil {
					t.Fatal("the issuer's stale bundle was not deleted")
				}
			case err != nil:
				t.Fatalf("ConfigMap %s: %v", tt.existing.Name, err)
			case tt.wantOwned:
				if !owned.Marked(&cm, owner) || cm.Data[quillv1.TrustBundleKey] == "old" {
					t.Errorf("bundle %v with %q: want the issuer's mark and its CA", cm.ObjectMeta, cm.Data[quillv1.TrustBundleKey])
				}
			default:
				if cm.Data[quillv1.TrustBundleKey] != "old" || !maps.Equal(cm.Labels, tt.existing.Labels) || len(cm.OwnerReferences) != len(tt.existing.OwnerReferences) {
					t.Errorf("a ConfigMap that is not the issuer's was written: %v", cm.ObjectMeta)
				}
			}
		})
	}
}
