package revocation

import (
	"math/big"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/pkg/metrics"
)

// TestCountLedger: the ledger gauge follows records added, deleted and
// dropped by a relist.
func TestCountLedger(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	if err := m.Register(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	ix := ledger.NewIndex()
	countLedger(ix, m)
	k := quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "root"}
	gauge := func() float64 { return testutil.ToFloat64(m.LedgerEntries.WithLabelValues(k.Kind, "root")) }
	entry := func(serial int64) *quillv1.IssuedCertificate {
		s := big.NewInt(serial)
		return &quillv1.IssuedCertificate{
			ObjectMeta: metav1.ObjectMeta{Namespace: "quill-system", Name: ledger.EntryName(k, s)},
			Spec:       quillv1.IssuedCertificateSpec{IssuerRef: k.Ref(), SerialNumber: ledger.SerialHex(s)},
		}
	}
	for _, s := range []int64{1, 2, 3} {
		if err := ix.Add(entry(s)); err != nil {
			t.Fatal(err)
		}
	}
	if g := gauge(); g != 3 {
		t.Fatalf("gauge %v after three records; want 3", g)
	}
	if err := ix.Delete(entry(2)); err != nil {
		t.Fatal(err)
	}
	if g := gauge(); g != 2 {
		t.Fatalf("gauge %v after a deletion; want 2", g)
	}
	if err := ix.Replace(nil, ""); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m.LedgerEntries); n != 0 {
		t.Fatalf("%d ledger series after a relist found no records; want 0", n)
	}
}

// TestCountIgnoredLedgerObjects: a segment that does not decode and one
// outside its issuer's home namespace are counted, so that someone is told
// their entries are missing.
func TestCountIgnoredLedgerObjects(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	if err := m.Register(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	ix := ledger.NewIndex()
	ix.SetClusterResourceNamespace("quill-system")
	countLedger(ix, m)
	k := quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "root"}
	gauge := func(reason string) float64 { return testutil.ToFloat64(m.LedgerIgnored.WithLabelValues(reason)) }
	segment := func(ns string) *quillv1.LedgerSegment {
		seg, err := ledger.NewSegment(k, ns, quillv1.LedgerStageSealed, testNow, []ledger.Entry{{
			Serial: "1", Fingerprint: "ab", IssuedAt: testNow.UnixMicro(), NotAfter: testNow.Unix() + 3600,
		}})
		if err != nil {
			t.Fatal(err)
		}
		return seg
	}
	corrupt := segment("quill-system")
	corrupt.Spec.Data = []byte("not gzip")
	if err := ix.Add(corrupt); err != nil {
		t.Fatal(err)
	}
	if err := ix.Add(segment("team-a")); err != nil {
		t.Fatal(err)
	}
	if c, f := gauge("corrupt"), gauge("foreign"); c != 1 || f != 1 {
		t.Fatalf("ignored objects: corrupt %v, foreign %v; want 1 and 1", c, f)
	}
	if err := ix.Add(segment("quill-system")); err != nil {
		t.Fatal(err)
	}
	if g := testutil.ToFloat64(m.LedgerEntries.WithLabelValues(k.Kind, "root")); g != 1 {
		t.Errorf("ledger gauge %v; want the one believed entry", g)
	}
}
