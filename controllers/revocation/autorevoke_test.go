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
	// The newest record, as the index holds it: supersedes reads no
	// segment (none exists here).
	record := ledger.Record{Namespace: testNamespace, Segment: "qi.ca.j02",
		OriginKind: quillv1.OriginKindCertificateRequest, OriginNamespace: testNamespace, RequestName: "web-2", RequestUID: "cr-uid", Certificate: "web"}
	elsewhere, signingRequest := record, record
	elsewhere.OriginNamespace = "elsewhere"
	signingRequest.OriginKind = quillv1.OriginKindCertificateSigningRequest
	tests := []struct {
		name      string
		record    ledger.Record
		objs      []client.Object
		supersede bool
		transient bool
	}{
		{name: "cert-manager-renewal", record: record, objs: []client.Object{request(), certificate("crt-uid", revision(2))}, supersede: true},
		{name: "origin-not-a-certificaterequest", record: signingRequest, objs: []client.Object{request(), certificate("crt-uid", revision(2))}},
		{name: "origin-in-another-namespace", record: elsewhere, objs: []client.Object{request(), certificate("crt-uid", revision(2))}},
		{name: "request-gone", record: record, objs: []client.Object{certificate("crt-uid", revision(2))}},
		{name: "request-replaced", record: record, objs: []client.Object{request(func(cr *cmapi.CertificateRequest) { cr.UID = "other" }), certificate("crt-uid", revision(2))}},
		{name: "requested-by-a-tenant", record: record, objs: []client.Object{request(func(cr *cmapi.CertificateRequest) { cr.Spec.Username = "mallory" }), certificate("crt-uid", revision(2))}},
		{name: "not-controlled", record: record, objs: []client.Object{request(func(cr *cmapi.CertificateRequest) { cr.OwnerReferences = nil }), certificate("crt-uid", revision(2))}},
		{name: "certificate-gone", record: record, objs: []client.Object{request()}},
		{name: "earlier-certificate-of-that-name", record: record, objs: []client.Object{request(), certificate("new-uid", revision(2))}},
		{name: "no-revision-annotation", record: record, objs: []client.Object{request(func(cr *cmapi.CertificateRequest) {
			delete(cr.Annotations, cmapi.CertificateRequestRevisionAnnotationKey)
		}), certificate("crt-uid", revision(2))}},
		{name: "certificate-not-caught-up", record: record, objs: []client.Object{request(), certificate("crt-uid", revision(1))}, transient: true},
		{name: "certificate-never-issued", record: record, objs: []client.Object{request(), certificate("crt-uid", nil)}, transient: true},
		{name: "certificate-past-the-request", record: record, objs: []client.Object{request(), certificate("crt-uid", revision(3))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := &lifecycleReconciler{revoker: revoker{reader: newAPI(t, tc.objs...)}, certManagerUsername: cm}
			doubt, transient, err := r.supersedes(context.Background(), testNamespace, "web", tc.record)
			if err != nil {
				t.Fatal(err)
			}
			if (doubt == "") != tc.supersede || transient != tc.transient {
				t.Errorf("supersedes: doubt %q, transient %v; want superseding %v, transient %v", doubt, transient, tc.supersede, tc.transient)
			}
		})
	}
}
