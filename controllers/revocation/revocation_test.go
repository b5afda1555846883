package revocation

import (
	"context"
	"math/big"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/fixture"
	"github.com/quill-pki/quill/pkg/ledger"
)

// TestRevocationAnswersAlike: a namespace that revokes a serial the
// cluster issuer signed for another namespace gets the answer a serial
// never signed gets (reason, message with the serial swapped, retry), so
// it cannot learn which serials the issuer signed; the certificate stays
// unrevoked, and the issuer's home namespace still revokes it.
func TestRevocationAnswersAlike(t *testing.T) {
	t.Parallel()
	k := quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "cluster-issuer"}
	issued, never := big.NewInt(0x1234), big.NewInt(0x5678)
	entry := &quillv1.IssuedCertificate{
		ObjectMeta: metav1.ObjectMeta{Namespace: fixture.ClusterResourceNamespace, Name: ledger.EntryName(k, issued)},
		Spec: quillv1.IssuedCertificateSpec{
			IssuerRef:    k.Ref(),
			SerialNumber: ledger.SerialHex(issued),
			NotAfter:     metav1.NewTime(testNow.Add(fixture.Day)),
			Origin:       quillv1.LedgerOrigin{Kind: quillv1.OriginKindCertificateRequest, Namespace: "team-b", Name: "web-1"},
		},
	}
	revocation := func(ns, name string, serial *big.Int) *quillv1.QuillRevocation {
		return &quillv1.QuillRevocation{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: quillv1.QuillRevocationSpec{
				IssuerRef:    quillv1.RevocationIssuerRef{Kind: quillv1.ClusterIssuerKind, Name: k.Name},
				SerialNumber: serial.Text(16),
				Reason:       quillv1.ReasonKeyCompromise,
			},
		}
	}
	objs := []client.Object{
		fixture.NewClusterIssuer(), entry,
		revocation(testNamespace, "foreign", issued), revocation(testNamespace, "unknown", never),
		revocation(fixture.ClusterResourceNamespace, "admin", issued),
	}
	api := fake.NewClientBuilder().WithScheme(fixture.Scheme(t)).
		WithStatusSubresource(&quillv1.QuillRevocation{}, &quillv1.IssuedCertificate{}).
		WithObjects(objs...).Build()
	ix := ledger.NewIndex()
	if err := ix.Replace([]any{entry}, "1"); err != nil {
		t.Fatal(err)
	}
	r := &revocationReconciler{
		revoker:          revoker{client: api, reader: api, index: ix, clock: clocktesting.NewFakeClock(testNow)},
		clusterNamespace: fixture.ClusterResourceNamespace,
		recorder:         events.NewFakeRecorder(10),
	}
	answer := func(ns, name string) (ctrl.Result, *metav1.Condition) {
		t.Helper()
		key := types.NamespacedName{Namespace: ns, Name: name}
		res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key})
		if err != nil {
			t.Fatalf("Reconcile %s: %v", key, err)
		}
		var rev quillv1.QuillRevocation
		if err := api.Get(context.Background(), key, &rev); err != nil {
			t.Fatal(err)
		}
		c := meta.FindStatusCondition(rev.Status.Conditions, quillv1.ConditionRevoked)
		if c == nil {
			t.Fatalf("%s has no Revoked condition", key)
		}
		return res, c
	}

	foreignRes, foreign := answer(testNamespace, "foreign")
	unknownRes, unknown := answer(testNamespace, "unknown")
	if foreign.Status != unknown.Status || foreign.Reason != unknown.Reason || foreign.Reason != quillv1.ReasonNotFound {
		t.Errorf("another namespace's serial answers %s/%s, an unknown one %s/%s; want both False/%s",
			foreign.Status, foreign.Reason, unknown.Status, unknown.Reason, quillv1.ReasonNotFound)
	}
	if got, want := strings.ReplaceAll(foreign.Message, "serial "+ledger.SerialHex(issued), "serial S"),
		strings.ReplaceAll(unknown.Message, "serial "+ledger.SerialHex(never), "serial S"); got != want || !strings.Contains(got, "serial S") {
		t.Errorf("messages differ beyond the serial:\n%q\n%q", foreign.Message, unknown.Message)
	}
	if foreignRes != unknownRes {
		t.Errorf("retry differs: %+v for another namespace's serial, %+v for an unknown one", foreignRes, unknownRes)
	}
	var e quillv1.IssuedCertificate
	if err := api.Get(context.Background(), client.ObjectKeyFromObject(entry), &e); err != nil {
		t.Fatal(err)
	}
	if e.Status.Revocation != nil {
		t.Fatalf("another namespace revoked the certificate: %+v", e.Status.Revocation)
	}

	if _, admin := answer(fixture.ClusterResourceNamespace, "admin"); admin.Status != metav1.ConditionTrue {
		t.Errorf("the issuer's home namespace could not revoke: %s %s", admin.Reason, admin.Message)
	}
}
