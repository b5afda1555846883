package issuance

import (
	"context"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
)

// TestSignLedger: a certificate is recorded before Sign returns it; a
// retried request gets the recorded certificate back instead of a second
// signature, also when the record's creation failed without saying
// whether it happened (the API server committed it, the reply was lost).
func TestSignLedger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := newCA(t)
	f := newSigner(t, withObjects(caSecret(testNamespace, "ca", root)))
	index := ledger.NewIndex()
	if err := index.Replace(nil, "1"); err != nil {
		t.Fatal(err)
	}
	lostReplies := 1
	writer := interceptor.NewClient(f.api, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if err := c.Create(ctx, obj, opts...); err != nil {
				return err
			}
			if lostReplies > 0 {
				lostReplies--
				return apierrors.NewTimeoutError("the reply was lost", 1)
			}
			return nil
		},
	})
	f.signer.Ledger = &Ledger{Index: index, Writer: writer, Reader: f.api}
	records := func() []quillv1.IssuedCertificate {
		t.Helper()
		var list quillv1.IssuedCertificateList
		if err := f.api.List(ctx, &list); err != nil {
			t.Fatal(err)
		}
		return list.Items
	}

	withUID := func(uid string) crOption {
		return func(cr *cmapi.CertificateRequest) { cr.UID = types.UID(uid) }
	}
	// The first request: the record is created, but Sign cannot know it.
	cr := certificateRequest(withUID("uid-1"))(t)
	if _, err := f.signer.Sign(ctx, cr, newIssuer()); err == nil {
		t.Fatal("Sign succeeded although recording its certificate reported a failure")
	}
	if n := len(records()); n != 1 {
		t.Fatalf("%d ledger records after the lost reply, want 1", n)
	}
	// Its retry: the recorded certificate, no second signature.
	bundle, err := f.signer.Sign(ctx, cr, newIssuer())
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	recs := records()
	if len(recs) != 1 {
		t.Fatalf("%d ledger records after the retry, want 1: signed twice", len(recs))
	}
	leaf := parseChain(t, bundle.ChainPEM)[0]
	if ledger.SerialHex(leaf.SerialNumber) != recs[0].Spec.SerialNumber || recs[0].Spec.Origin.UID != string(cr.GetUID()) {
		t.Fatalf("retry returned serial %x for request %s; the ledger recorded %s for %s", leaf.SerialNumber, cr.GetUID(), recs[0].Spec.SerialNumber, recs[0].Spec.Origin.UID)
	}

	// A request whose record was written normally: found in the index.
	other := certificateRequest(withUID("uid-2"))(t)
	first, err := f.signer.Sign(ctx, other, newIssuer())
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.signer.Sign(ctx, other, newIssuer())
	if err != nil {
		t.Fatal(err)
	}
	if string(first.ChainPEM) != string(again.ChainPEM) || len(records()) != 2 {
		t.Fatalf("a retried request was signed again (%d records)", len(records()))
	}
}

// TestCertificateOf: a request's Certificate is believed only when
// cert-manager made the request (its requester) for that Certificate (its
// controlling owner); the annotation alone is a claim anyone can write.
func TestCertificateOf(t *testing.T) {
	t.Parallel()
	const cm = "system:serviceaccount:cert-manager:cert-manager"
	controller := func(apiVersion, kind, name string, isController bool) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: "crt-uid", Controller: &isController}
	}
	genuine := controller("cert-manager.io/v1", "Certificate", "web", true)
	tests := []struct {
		name     string
		username string
		annotate string
		owners   []metav1.OwnerReference
		identity string
		want     string
	}{
		{name: "cert-manager-request", username: cm, annotate: "web", owners: []metav1.OwnerReference{genuine}, identity: cm, want: "web"},
		{name: "other-requester", username: "mallory", annotate: "web", owners: []metav1.OwnerReference{genuine}, identity: cm},
		{name: "no-requester", annotate: "web", owners: []metav1.OwnerReference{genuine}, identity: cm},
		{name: "no-identity-configured", username: cm, annotate: "web", owners: []metav1.OwnerReference{genuine}},
		{name: "no-annotation", username: cm, owners: []metav1.OwnerReference{genuine}, identity: cm},
		{name: "no-owner", username: cm, annotate: "web", identity: cm},
		{name: "owner-not-controller", username: cm, annotate: "web", owners: []metav1.OwnerReference{controller("cert-manager.io/v1", "Certificate", "web", false)}, identity: cm},
		{name: "controlled-by-another-certificate", username: cm, annotate: "web", owners: []metav1.OwnerReference{controller("cert-manager.io/v1", "Certificate", "db", true)}, identity: cm},
		{name: "controlled-by-another-kind", username: cm, annotate: "web", owners: []metav1.OwnerReference{controller("v1", "Secret", "web", true)}, identity: cm},
		{name: "controlled-by-another-group", username: cm, annotate: "web", owners: []metav1.OwnerReference{controller("example.com/v1", "Certificate", "web", true)}, identity: cm},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cr := &cmapi.CertificateRequest{
				ObjectMeta: metav1.ObjectMeta{Name: "web-1", OwnerReferences: tc.owners},
				Spec:       cmapi.CertificateRequestSpec{Username: tc.username},
			}
			if tc.annotate != "" {
				cr.Annotations = map[string]string{cmapi.CertificateNameKey: tc.annotate}
			}
			if got := CertificateOf(cr, tc.identity); got != tc.want {
				t.Errorf("CertificateOf = %q, want %q", got, tc.want)
			}
		})
	}
}
