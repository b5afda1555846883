package revocation

import (
	"context"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
)

// TestSupersedes: the newest certificate recorded for a Certificate
// supersedes the older ones only when cert-manager made its request for the
// live Certificate of that name and the Certificate's status has taken it
// as current; every doubt keeps the older certificates, and only a
// Certificate that has not caught up yet is a doubt worth a quick recheck.
func TestSupersedes(t *testing.T) {
	t.Parallel()
	const cm = "system:serviceaccount:cert-manager:cert-manager"
	revision := func(n int) *int { return &n }
	isController := true
	request := func(opts ...func(*cmapi.CertificateRequest)) *cmapi.CertificateRequest {
		cr := &cmapi.CertificateRequest{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: testNamespace, Name: "web-2", UID: "cr-uid",
				Annotations: map[string]string{cmapi.CertificateNameKey: "web", cmapi.CertificateRequestRevisionAnnotationKey: "2"},
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: "cert-manager.io/v1", Kind: "Certificate", Name: "web", UID: "crt-uid", Controller: &isController,
				}},
			},
			Spec: cmapi.CertificateRequestSpec{Username: cm},
		}
		for _, o := range opts {
			o(cr)
		}
		return cr
	}
	certificate := func(uid types.UID, rev *int) *cmapi.Certificate {
		return &cmapi.Certificate{
			ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "web", UID: uid},
			Status:     cmapi.CertificateStatus{Revision: rev},
		}
	}
	record := func(originNamespace string) *quillv1.IssuedCertificate {
		return &quillv1.IssuedCertificate{
			ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "qi.ca.02"},
			Spec: quillv1.IssuedCertificateSpec{Origin: quillv1.LedgerOrigin{
				Kind: quillv1.OriginKindCertificateRequest, Namespace: originNamespace, Name: "web-2", UID: "cr-uid", Certificate: "web",
			}},
		}
	}
	tests := []struct {
		name      string
		objs      []client.Object
		supersede bool
		transient bool
	}{
		{name: "cert-manager-renewal", objs: []client.Object{record(testNamespace), request(), certificate("crt-uid", revision(2))}, supersede: true},
		{name: "record-gone", objs: []client.Object{request(), certificate("crt-uid", revision(2))}},
		{name: "origin-in-another-namespace", objs: []client.Object{record("elsewhere"), request(), certificate("crt-uid", revision(2))}},
		{name: "request-gone", objs: []client.Object{record(testNamespace), certificate("crt-uid", revision(2))}},
		{name: "request-replaced", objs: []client.Object{record(testNamespace), request(func(cr *cmapi.CertificateRequest) { cr.UID = "other" }), certificate("crt-uid", revision(2))}},
		{name: "requested-by-a-tenant", objs: []client.Object{record(testNamespace), request(func(cr *cmapi.CertificateRequest) { cr.Spec.Username = "mallory" }), certificate("crt-uid", revision(2))}},
		{name: "not-controlled", objs: []client.Object{record(testNamespace), request(func(cr *cmapi.CertificateRequest) { cr.OwnerReferences = nil }), certificate("crt-uid", revision(2))}},
		{name: "certificate-gone", objs: []client.Object{record(testNamespace), request()}},
		{name: "earlier-certificate-of-that-name", objs: []client.Object{record(testNamespace), request(), certificate("new-uid", revision(2))}},
		{name: "no-revision-annotation", objs: []client.Object{record(testNamespace), request(func(cr *cmapi.CertificateRequest) {
			delete(cr.Annotations, cmapi.CertificateRequestRevisionAnnotationKey)
		}), certificate("crt-uid", revision(2))}},
		{name: "certificate-not-caught-up", objs: []client.Object{record(testNamespace), request(), certificate("crt-uid", revision(1))}, transient: true},
		{name: "certificate-never-issued", objs: []client.Object{record(testNamespace), request(), certificate("crt-uid", nil)}, transient: true},
		{name: "certificate-past-the-request", objs: []client.Object{record(testNamespace), request(), certificate("crt-uid", revision(3))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := &lifecycleReconciler{revoker: revoker{reader: newAPI(t, tc.objs...)}, certManagerUsername: cm}
			doubt, transient, err := r.supersedes(context.Background(), testNamespace, "web", ledger.Record{Namespace: testNamespace, Segment: "qi.ca.02", Legacy: true})
			if err != nil {
				t.Fatal(err)
			}
			if (doubt == "") != tc.supersede || transient != tc.transient {
				t.Errorf("supersedes: doubt %q, transient %v; want superseding %v, transient %v", doubt, transient, tc.supersede, tc.transient)
			}
		})
	}
}
