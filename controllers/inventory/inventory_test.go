package inventory

import (
	"context"
	"fmt"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/pkg/metrics"
)

// countingStatus counts status patches, to tell a recount that wrote from
// one that found nothing changed.
type countingStatus struct {
	client.Client
	patches *atomic.Int32
}

func (c countingStatus) Status() client.SubResourceWriter {
	return countingWriter{SubResourceWriter: c.Client.Status(), patches: c.patches}
}

type countingWriter struct {
	client.SubResourceWriter
	patches *atomic.Int32
}

func (w countingWriter) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	w.patches.Add(1)
	return w.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

func ledgerRecord(k quillv1.IssuerID, serial int64, keyAlg, sigAlg string, notAfter time.Time) ledger.Record {
	return ledger.Record{
		Segment: fmt.Sprintf("qi.%s.%040x", k.Name, serial), Namespace: k.Namespace, Issuer: k, Serial: big.NewInt(serial),
		IssuedAt: testNow.Add(-time.Hour), NotBefore: testNow.Add(-time.Hour), NotAfter: notAfter,
		KeyAlgorithm: keyAlg, SignatureAlgorithm: sigAlg,
	}
}

// TestInventoryReconciler: the issuer's status.inventory and metrics follow
// its ledger, are written only when they change, are recounted when the
// earliest certificate expires, and the metrics go with the issuer.
func TestInventoryReconciler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	iss := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "pq"},
		Status:     quillv1.IssuerStatus{CA: &quillv1.CASummary{KeyAlgorithm: "ML-DSA-65", SignatureAlgorithm: "ML-DSA-65"}},
	}
	var patches atomic.Int32
	api := countingStatus{Client: newAPI(t, iss), patches: &patches}
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: testNamespace, Name: "pq"}
	ix := ledger.NewIndex()
	clk := clocktesting.NewFakePassiveClock(testNow)
	reg := prometheus.NewRegistry()
	m := metrics.New()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	r := &inventoryReconciler{p: &inventoryPublisher{client: api, index: ix, metrics: m, clock: clk}, kind: &quillv1.QuillIssuer{}}
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: testNamespace, Name: "pq"}}
	reconcile := func() ctrl.Result {
		t.Helper()
		res, err := r.Reconcile(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	inventory := func() *quillv1.InventoryStatus {
		t.Helper()
		var got quillv1.QuillIssuer
		if err := api.Get(ctx, req.NamespacedName, &got); err != nil {
			t.Fatal(err)
		}
		return got.Status.Inventory
	}
	scraped := func(want string) {
		t.Helper()
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "quill_certificates_unexpired", "quill_ca_info"); err != nil {
			t.Error(err)
		}
	}

	// Until the ledger is read in full, nothing is counted.
	if res := reconcile(); res.RequeueAfter != time.Second || inventory() != nil || patches.Load() != 0 {
		t.Fatalf("before the ledger is synced: %+v, %+v, %d patches", res, inventory(), patches.Load())
	}
	if err := ix.Replace(nil, ""); err != nil {
		t.Fatal(err)
	}
	soon := testNow.Add(2 * time.Minute)
	ix.Put(ledgerRecord(k, 1, "ECDSA-P256", "ML-DSA-65", soon))
	ix.Put(ledgerRecord(k, 2, "ECDSA-P256", "ML-DSA-65", testNow.Add(48*time.Hour)))
	ix.Put(ledgerRecord(k, 3, "ML-DSA-65", "ML-DSA-65", testNow.Add(48*time.Hour)))
	ix.Put(ledgerRecord(k, 4, "ML-DSA-44", "ML-DSA-65", testNow.Add(-time.Minute))) // expired
	revoked := ledgerRecord(k, 5, "ML-DSA-65", "ML-DSA-65", testNow.Add(72*time.Hour))
	revoked.Revoked = true
	ix.Put(revoked)

	if res := reconcile(); res.RequeueAfter != 2*time.Minute+time.Second {
		t.Errorf("requeue after %v; want just after the first expiry, 2m1s", res.RequeueAfter)
	}
	want := &quillv1.InventoryStatus{
		UnexpiredCertificates: 4, QuantumVulnerable: 2, Revoked: 1,
		KeyAlgorithms: []quillv1.AlgorithmCount{
			{Algorithm: "ECDSA-P256", Certificates: 2, QuantumVulnerable: 2},
			{Algorithm: "ML-DSA-65", Certificates: 2, Revoked: 1},
		},
		SignatureAlgorithms: []quillv1.AlgorithmCount{{Algorithm: "ML-DSA-65", Certificates: 4, QuantumVulnerable: 2, Revoked: 1}},
		NextExpiry:          &metav1.Time{Time: soon},
	}
	if got := inventory(); !equality.Semantic.DeepEqual(got, want) {
		t.Fatalf("status.inventory = %+v; want %+v", got, want)
	}
	const help = `
# HELP quill_ca_info 1 for the key and signature algorithm of the issuer's signing CA.
# TYPE quill_ca_info gauge
quill_ca_info{issuer="team-a/pq",issuer_kind="QuillIssuer",key_algorithm="ML-DSA-65",signature_algorithm="ML-DSA-65"} 1
# HELP quill_certificates_unexpired Unexpired certificates in the issuer's ledger, revoked ones included, by key algorithm and whether they are quantum-vulnerable (classical key or classical signature).
# TYPE quill_certificates_unexpired gauge
`
	scraped(help + `quill_certificates_unexpired{issuer="team-a/pq",issuer_kind="QuillIssuer",key_algorithm="ECDSA-P256",quantum_vulnerable="true"} 2
quill_certificates_unexpired{issuer="team-a/pq",issuer_kind="QuillIssuer",key_algorithm="ML-DSA-65",quantum_vulnerable="false"} 2
`)

	// Nothing changed: no write.
	reconcile()
	if n := patches.Load(); n != 1 {
		t.Errorf("%d status patches after an unchanged recount; want 1", n)
	}

	// The first ECDSA certificate expires.
	clk.SetTime(soon)
	if res := reconcile(); res.RequeueAfter != InventoryRefresh {
		t.Errorf("requeue after %v; want the periodic %v", res.RequeueAfter, InventoryRefresh)
	}
	if got := inventory(); got.UnexpiredCertificates != 3 || got.QuantumVulnerable != 1 || !got.NextExpiry.Time.Equal(testNow.Add(48*time.Hour)) {
		t.Errorf("after the first expiry: %+v", got)
	}
	// Both ECDSA certificates gone: its series goes too.
	clk.SetTime(testNow.Add(49 * time.Hour))
	reconcile()
	scraped(help + `quill_certificates_unexpired{issuer="team-a/pq",issuer_kind="QuillIssuer",key_algorithm="ML-DSA-65",quantum_vulnerable="false"} 1
`)
	if got := inventory(); got.UnexpiredCertificates != 1 || got.QuantumVulnerable != 0 || len(got.KeyAlgorithms) != 1 {
		t.Errorf("after the ECDSA certificates expired: %+v", got)
	}
	if n := patches.Load(); n != 3 {
		t.Errorf("%d status patches; want 3 (first count, two expiries)", n)
	}

	// The issuer is deleted: its gauges go, the health check's included.
	m.IssuerChecked(quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: testNamespace, Name: "pq"}, true, testNow.Add(time.Hour))
	if n := testutil.CollectAndCount(m.IssuerReady) + testutil.CollectAndCount(m.CANotAfter); n != 2 {
		t.Fatalf("%d readiness and expiry series before the deletion, want 2", n)
	}
	if err := api.Delete(ctx, iss.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	reconcile()
	if n := testutil.CollectAndCount(m.CertificatesUnexpired) + testutil.CollectAndCount(m.CAInfo); n != 0 {
		t.Errorf("%d inventory series left after the issuer was deleted", n)
	}
	if n := testutil.CollectAndCount(m.IssuerReady) + testutil.CollectAndCount(m.CANotAfter); n != 0 {
		t.Errorf("%d readiness and expiry series left after the issuer was deleted", n)
	}
}
