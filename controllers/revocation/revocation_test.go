package revocation

import (
	"context"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr/funcr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/fixture"
	"github.com/quill-pki/quill/pkg/audit"
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
	entry := ledger.Entry{
		Serial: ledger.SerialHex(issued), Fingerprint: "00", IssuedAt: testNow.UnixMicro(),
		NotAfter: testNow.Add(fixture.Day).Unix(),
		Origin:   &ledger.EntryOrigin{Kind: quillv1.OriginKindCertificateRequest, Namespace: "team-b", Name: "web-1"},
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
		fixture.NewClusterIssuer(),
		revocation(testNamespace, "foreign", issued), revocation(testNamespace, "unknown", never),
		revocation(fixture.ClusterResourceNamespace, "admin", issued),
	}
	api := fake.NewClientBuilder().WithScheme(fixture.Scheme(t)).
		WithStatusSubresource(&quillv1.QuillRevocation{}).
		WithObjects(objs...).Build()
	ix := ledger.NewIndex()
	if err := ix.Replace(nil, "1"); err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(testNow)
	journal := ledger.NewJournal(api, ix, clk)
	if _, err := journal.Record(context.Background(), k, fixture.ClusterResourceNamespace, entry); err != nil {
		t.Fatal(err)
	}
	r := &revocationReconciler{
		revoker:          revoker{client: api, reader: api, index: ix, journal: journal, clock: clk},
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
	if n := revocationLines(t, api); n != 0 {
		t.Fatalf("another namespace revoked the certificate: %d revocation lines", n)
	}
	if rec, _ := ix.Lookup(k, issued); rec.Revoked {
		t.Fatalf("another namespace revoked the certificate: %+v", rec)
	}

	if _, admin := answer(fixture.ClusterResourceNamespace, "admin"); admin.Status != metav1.ConditionTrue {
		t.Errorf("the issuer's home namespace could not revoke: %s %s", admin.Reason, admin.Message)
	}
	if rec, _ := ix.Lookup(k, issued); !rec.Revoked || revocationLines(t, api) != 1 {
		t.Errorf("after the home namespace's revocation: record %+v, %d revocation lines; want revoked, 1", rec, revocationLines(t, api))
	}
}

// revocationLines counts the revocation lines in api's ledger segments.
func revocationLines(t *testing.T, api client.Reader) int {
	t.Helper()
	var list quillv1.LedgerSegmentList
	if err := api.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := range list.Items {
		if err := ledger.SegmentEntries(&list.Items[i], func(e *ledger.Entry) error {
			if e.IsRevocationLine() {
				n++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// TestRevokeOnce: concurrent revocations of one certificate (a
// QuillRevocation and an automatic rule, say) write one revocation line and
// one audit line, and every caller reports the first revocation's reason.
// The audit line goes out even when its subject cannot be read.
func TestRevokeOnce(t *testing.T) {
	t.Parallel()
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: testNamespace, Name: "issuer"}
	serial := big.NewInt(0xbeef)
	api := fake.NewClientBuilder().WithScheme(fixture.Scheme(t)).Build()
	ix := ledger.NewIndex()
	clk := clocktesting.NewFakeClock(testNow)
	journal := ledger.NewJournal(api, ix, clk)
	if _, err := journal.Record(context.Background(), k, testNamespace, ledger.Entry{
		Serial: ledger.SerialHex(serial), Fingerprint: "00", Subject: "CN=web", NotAfter: testNow.Add(fixture.Day).Unix(),
		Origin: &ledger.EntryOrigin{Kind: quillv1.OriginKindCertificateRequest, Namespace: testNamespace, Name: "web-1"},
	}); err != nil {
		t.Fatal(err)
	}
	rec, _ := ix.Lookup(k, serial)
	var mu sync.Mutex
	var audited []string
	sink := funcr.New(func(_, args string) {
		mu.Lock()
		defer mu.Unlock()
		audited = append(audited, args)
	}, funcr.Options{})
	// The segment cannot be read back: the audit detail is lost, not the
	// revocation.
	failing := interceptor.NewClient(api, interceptor.Funcs{
		Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			return errors.New("the API server is unreachable")
		},
	})
	r := revoker{client: api, reader: failing, index: ix, journal: journal, clock: clk, audit: audit.Logger{Log: sink}}

	reasons := []quillv1.RevocationReason{quillv1.ReasonKeyCompromise, quillv1.ReasonSuperseded, quillv1.ReasonCessationOfOperation}
	held := make([]quillv1.RevocationReason, len(reasons))
	var wg sync.WaitGroup
	for i, reason := range reasons {
		wg.Go(func() {
			var err error
			if held[i], err = r.revoke(context.Background(), rec, reason, "test"); err != nil {
				t.Errorf("revoke with %s: %v", reason, err)
			}
		})
	}
	wg.Wait()
	if n := revocationLines(t, api); n != 1 {
		t.Fatalf("%d revocation lines for one certificate revoked thrice at once; want 1", n)
	}
	for i := range held {
		if held[i] != held[0] {
			t.Fatalf("callers report reasons %v; want the first revocation's for all", held)
		}
	}
	if len(audited) != 1 || !strings.Contains(audited[0], `"reason"="`+string(held[0])+`"`) {
		t.Fatalf("audit lines %q; want one, with reason %s", audited, held[0])
	}
	if got, _ := ix.Lookup(k, serial); !got.Revoked || quillv1.RevocationReasonCodes[held[0]] != got.Reason {
		t.Fatalf("index record %+v; want revoked with %s", got, held[0])
	}
}
