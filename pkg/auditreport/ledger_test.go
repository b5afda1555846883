package auditreport

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
)

var rootIssuer = &quillv1.QuillClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "root"}}

// reportRows runs the report and returns its rows by serial, and the
// serials in report order.
func reportRows(t *testing.T, c client.Reader, opts Options) (map[string][]string, []string, error) {
	t.Helper()
	var buf bytes.Buffer
	_, err := Write(context.Background(), c, opts, FormatCSV, &buf)
	recs, cerr := csv.NewReader(&buf).ReadAll()
	if cerr != nil {
		t.Fatalf("CSV: %v\n%s", cerr, buf.String())
	}
	rows := map[string][]string{}
	var order []string
	if len(recs) > 0 {
		for _, r := range recs[1:] {
			rows[r[0]] = r
			order = append(order, r[0])
		}
	}
	return rows, order, err
}

// TestMerge: one row per serial whatever holds its lines, with the
// revocation wherever it was written, the earliest of several winning.
func TestMerge(t *testing.T) {
	t.Parallel()
	home := "quill-system"
	sealed := func(es ...*ledger.Entry) client.Object {
		return segment(t, root, home, quillv1.LedgerStageSealed, es...)
	}
	journal := func(es ...*ledger.Entry) client.Object {
		return segment(t, root, home, quillv1.LedgerStageJournal, es...)
	}
	early, late := t0.Add(time.Hour), t0.Add(2*time.Hour)
	for _, tt := range []struct {
		name string
		objs []client.Object
		// want maps serials to "reason@unix" or "" for not revoked.
		want map[string]string
	}{
		{name: "entry-in-sealed-revocation-in-journal",
			objs: []client.Object{sealed(entry(1, 0), entry(2, 0)), journal(revocationLine(1, early, quillv1.ReasonKeyCompromise))},
			want: map[string]string{"1": "keyCompromise@" + fmt.Sprint(early.Unix()), "2": ""}},
		{name: "revocation-read-before-its-entry",
			objs: []client.Object{journal(revocationLine(2, early, quillv1.ReasonSuperseded)), journal(entry(2, 0))},
			want: map[string]string{"2": "superseded@" + fmt.Sprint(early.Unix())}},
		{name: "entry-in-journal-and-sealed",
			objs: []client.Object{sealed(entry(3, 0)), journal(entry(3, 0), entry(4, 0))},
			want: map[string]string{"3": "", "4": ""}},
		{name: "earliest-revocation-wins",
			objs: []client.Object{
				sealed(entry(5, 0, func(e *ledger.Entry) {
					e.Revocation = &ledger.EntryRevocation{Reason: quillv1.ReasonSuperseded, At: late.Unix(), By: "superseded"}
				})),
				journal(revocationLine(5, early, quillv1.ReasonKeyCompromise)),
				journal(revocationLine(5, late.Add(time.Hour), quillv1.ReasonAffiliationChanged)),
			},
			want: map[string]string{"5": "keyCompromise@" + fmt.Sprint(early.Unix())}},
		{name: "legacy-record-and-its-migrated-segment",
			objs: []client.Object{legacy(root, home, entry(6, 0, revoked(early))), sealed(entry(6, 0)), legacy(root, home, entry(7, 0))},
			want: map[string]string{"6": "keyCompromise@" + fmt.Sprint(early.Unix()), "7": ""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var warnings []string
			rows, _, err := reportRows(t, newClient(append(tt.objs, rootIssuer)...),
				Options{Issuer: root, ClusterResourceNamespace: home, Warn: func(s string) { warnings = append(warnings, s) }})
			if err != nil || len(warnings) != 0 {
				t.Fatalf("report: %v, warnings %q", err, warnings)
			}
			if len(rows) != len(tt.want) {
				t.Fatalf("%d rows %v; want %d", len(rows), rows, len(tt.want))
			}
			for serial, want := range tt.want {
				r := rows[serial]
				if r == nil {
					t.Fatalf("no row for serial %s", serial)
				}
				got := ""
				if r[11] != "" {
					at, _ := time.Parse(time.RFC3339, r[12])
					got = r[11] + "@" + fmt.Sprint(at.Unix())
				}
				if got != want {
					t.Errorf("serial %s revocation %q; want %q", serial, got, want)
				}
			}
		})
	}
}

// TestMergerPlaces: with KeepPlaces and KeepCertificates, a merged entry
// says every place its lines were read and keeps the certificate from
// whichever still has it.
func TestMergerPlaces(t *testing.T) {
	t.Parallel()
	m := Merger{KeepPlaces: true, KeepCertificates: true}
	sealedAt := Place{Kind: PlaceSegment, Namespace: "q", Name: "s1", Stage: quillv1.LedgerStageSealed}
	journalAt := Place{Kind: PlaceSegment, Namespace: "q", Name: "j1", Stage: quillv1.LedgerStageJournal}
	withDER := entry(9, 0)
	withDER.Certificate = []byte{0x30, 0x03}
	rev := revocationLine(9, t0, quillv1.ReasonKeyCompromise)
	revAt := journalAt
	revAt.RevocationOnly = true
	for _, l := range []struct {
		e *ledger.Entry
		p Place
	}{{rev, revAt}, {entry(9, 0), sealedAt}, {withDER, journalAt}} {
		if err := m.Add(l.e, l.p); err != nil {
			t.Fatal(err)
		}
	}
	got := m.Entries()
	if len(got) != 1 || len(m.Unmatched()) != 0 {
		t.Fatalf("%d entries, unmatched %v; want one", len(got), m.Unmatched())
	}
	if e := *got[0].Entry; e.Revocation == nil || string(e.Certificate) != "\x30\x03" {
		t.Errorf("entry %+v; want revoked, with the journal's certificate", e)
	}
	var places []string
	for _, p := range got[0].Places {
		places = append(places, p.String())
	}
	want := "LedgerSegment q/s1 (Sealed)|LedgerSegment q/j1 (Journal), revocation only|LedgerSegment q/j1 (Journal)"
	if got := strings.Join(places, "|"); got != want {
		t.Errorf("places %q; want %q", got, want)
	}
}

// TestCorruptSegment: a segment that does not decode is skipped with a
// warning naming it, the rest is reported, and the report says it is
// incomplete.
func TestCorruptSegment(t *testing.T) {
	t.Parallel()
	bad := segment(t, root, "quill-system", quillv1.LedgerStageSealed, entry(1, 0))
	bad.Name += "bad"
	bad.Spec.Data = []byte("not gzip")
	var warnings []string
	rows, _, err := reportRows(t, newClient(rootIssuer, bad, segment(t, root, "quill-system", quillv1.LedgerStageSealed, entry(2, 0))),
		Options{Issuer: root, ClusterResourceNamespace: "quill-system", Warn: func(s string) { warnings = append(warnings, s) }})
	if !errors.Is(err, ledger.ErrCorruptSegment) {
		t.Fatalf("error %v; want ErrCorruptSegment", err)
	}
	if len(rows) != 1 || rows["2"] == nil {
		t.Errorf("rows %v; want serial 2 alone", rows)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], bad.Name) {
		t.Errorf("warnings %q; want one naming %s", warnings, bad.Name)
	}
}

// TestArchive: with ArchiveDir the report adds the archived entries,
// merged with the live ledger (an entry both archived and still in a
// segment, as a crash between the two leaves it, is one row; a
// revocation line still live applies to its archived entry). Without it,
// that revocation is reported as unmatched.
func TestArchive(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := &ledger.Archive{Dir: dir}
	other := quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "other"}
	old := -200 * 24 * time.Hour
	if err := a.Append(root, "qci.root.s1", []ledger.Entry{*entry(1, old), *entry(2, old)}); err != nil {
		t.Fatal(err)
	}
	if err := a.Append(other, "qci.other.s1", []ledger.Entry{*entry(3, old)}); err != nil {
		t.Fatal(err)
	}
	c := newClient(rootIssuer,
		segment(t, root, "quill-system", quillv1.LedgerStageSealed, entry(2, old), entry(4, 0)),
		segment(t, root, "quill-system", quillv1.LedgerStageJournal, revocationLine(1, t0, quillv1.ReasonCessationOfOperation)))

	var warnings []string
	rows, order, err := reportRows(t, c, Options{Issuer: root, ClusterResourceNamespace: "quill-system", ArchiveDir: dir,
		Warn: func(s string) { warnings = append(warnings, s) }})
	if err != nil || len(warnings) != 0 {
		t.Fatalf("report: %v, warnings %q", err, warnings)
	}
	if got := strings.Join(order, " "); got != "1 2 4" {
		t.Fatalf("serials %q; want 1 2 4", got)
	}
	if rows["1"][11] != string(quillv1.ReasonCessationOfOperation) {
		t.Errorf("archived serial 1 revocation %q; want the live line's", rows["1"][11])
	}

	warnings = nil
	rows, _, err = reportRows(t, c, Options{Issuer: root, ClusterResourceNamespace: "quill-system",
		Warn: func(s string) { warnings = append(warnings, s) }})
	if err != nil || len(rows) != 2 {
		t.Fatalf("report without the archive: %v, %d rows", err, len(rows))
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "--archive-dir") || !strings.HasSuffix(warnings[0], ": 1") {
		t.Errorf("warnings %q; want serial 1's revocation unmatched, with a hint", warnings)
	}

	// An issuer deleted long ago, whose ledger is only in the archive.
	rows, _, err = reportRows(t, newClient(), Options{Issuer: other, ClusterResourceNamespace: "quill-system", ArchiveDir: dir})
	if err != nil || len(rows) != 1 || rows["3"] == nil {
		t.Errorf("archived-only issuer: %v, rows %v", err, rows)
	}
}

// TestSegmentPaging: segments are listed a page at a time, pages no
// larger than SegmentChunkSize whatever the chunk size, and every page
// is read.
func TestSegmentPaging(t *testing.T) {
	t.Parallel()
	objs := []client.Object{rootIssuer}
	for i := range 2*SegmentChunkSize + 1 {
		seg := segment(t, root, "quill-system", quillv1.LedgerStageSealed, entry(int64(2*i+1), 0), entry(int64(2*i+2), 0))
		seg.Name = fmt.Sprintf("%s%02d", seg.Name[:len(seg.Name)-2], i)
		objs = append(objs, seg)
	}
	for _, tt := range []struct {
		name  string
		chunk int64
		pages int
	}{
		{name: "default-chunk", pages: 3},
		{name: "chunk-of-one", chunk: 1, pages: 2*SegmentChunkSize + 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var p pager
			rows, _, err := reportRows(t, pagedClient(&p, objs...), Options{Issuer: root, ClusterResourceNamespace: "quill-system", ChunkSize: tt.chunk})
			if err != nil || len(rows) != 2*(2*SegmentChunkSize+1) {
				t.Fatalf("report: %v, %d rows", err, len(rows))
			}
			kind := fmt.Sprintf("%T", &quillv1.LedgerSegmentList{})
			if p.lists[kind] != tt.pages || p.maxLimit[kind] > SegmentChunkSize {
				t.Errorf("%d segment list requests of at most %d; want %d of at most %d", p.lists[kind], p.maxLimit[kind], tt.pages, SegmentChunkSize)
			}
		})
	}
}

// realisticEntries makes n entries as the compactor seals them: the
// fields of a real ECDSA leaf signed by Quill's path (ledger.EntryOf),
// varied per certificate (serial, fingerprint, names, request), no
// certificate kept, a few percent revoked.
func realisticEntries(tb testing.TB, first, n int) []ledger.Entry {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	u, _ := url.Parse("spiffe://cluster.local/ns/shop/sa/checkout")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "checkout.shop.svc"},
		NotBefore: t0, NotAfter: t0.Add(time.Hour), DNSNames: []string{"checkout.shop.svc", "checkout.shop.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("10.96.12.7")}, URIs: []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	base, err := ledger.EntryOf(cert, t0, ledger.Origin{Kind: quillv1.OriginKindCertificateRequest, Namespace: "shop", Name: "checkout-1",
		UID: "6f1c0a52-3c1e-4a55-9d1c-1f3e0f6f2a11", Certificate: "checkout", Requester: "system:serviceaccount:cert-manager:cert-manager", Template: "server-auth"})
	if err != nil {
		tb.Fatal(err)
	}
	base.Certificate = nil
	out := make([]ledger.Entry, n)
	for i := range out {
		e := base
		id := first + i
		serial := new(big.Int).Lsh(big.NewInt(int64(id)+1), 100)
		serial.Add(serial, big.NewInt(int64(id)*7919))
		e.Serial = ledger.SerialHex(serial)
		sum := sha256.Sum256([]byte(e.Serial))
		e.Fingerprint = hex.EncodeToString(sum[:])
		pod := fmt.Sprintf("checkout-%d", id%5000)
		e.Subject = "CN=" + pod + ".shop.svc"
		e.DNSNames = []string{pod + ".shop.svc", pod + ".shop.svc.cluster.local"}
		e.IssuedAt = t0.Add(time.Duration(id) * 700 * time.Millisecond).UnixMicro()
		e.NotBefore, e.NotAfter = e.IssuedAt/1e6, e.IssuedAt/1e6+3600
		e.Origin = &ledger.EntryOrigin{Kind: base.Origin.Kind, Namespace: "shop", Name: fmt.Sprintf("%s-%d", pod, id),
			UID: fmt.Sprintf("6f1c0a52-3c1e-4a55-9d1c-%012x", id), Certificate: pod}
		if id%30 == 0 {
			e.Revocation = &ledger.EntryRevocation{Reason: quillv1.ReasonSuperseded, At: e.NotBefore + 60, By: "superseded"}
		}
		out[i] = e
	}
	return out
}

// BenchmarkReport100k writes the report of a ledger of 100,000
// certificates held as 50 sealed segments of 2,000 (the compactor's
// size), listed through a client that pages as the API server does, and
// reports the time per report and the heap it peaks at.
func BenchmarkReport100k(b *testing.B) {
	const segments, per = 50, 2000
	objs := []client.Object{rootIssuer}
	var encoded int
	for s := range segments {
		es := realisticEntries(b, s*per, per)
		seg, err := ledger.NewSegment(root, "quill-system", quillv1.LedgerStageSealed, t0.Add(time.Duration(s)*time.Second), es)
		if err != nil {
			b.Fatal(err)
		}
		encoded += len(seg.Spec.Data)
		objs = append(objs, seg)
	}
	var p pager
	c := pagedClient(&p, objs...)
	opts := Options{Issuer: root, ClusterResourceNamespace: "quill-system"}
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for b.Loop() {
		n, err := Write(context.Background(), c, opts, FormatCSV, io.Discard)
		if err != nil || n != segments*per {
			b.Fatalf("Write: %d rows, %v", n, err)
		}
	}
	b.StopTimer()
	// CPU time, not only wall time: the machine these run on is shared.
	b.ReportMetric((cpuTime(b)-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(encoded)/segments/per, "segment-bytes/entry")
	var m Merger
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := Walk(context.Background(), c, opts, m.Add); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(m.Len()), "merged-bytes/entry")
	runtime.KeepAlive(&m)
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
