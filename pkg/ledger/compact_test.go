package ledger

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

var (
	compactIssuer = quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-c", Name: "ca"}
	compactT0     = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
)

// compactSigner makes real ECDSA leaves for the compactor's tests.
type compactSigner struct {
	ca  *x509.Certificate
	key *ecdsa.PrivateKey
}

func newCompactSigner(t testing.TB) *compactSigner {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "compact CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: compactT0.Add(-time.Hour), NotAfter: compactT0.Add(1000 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return &compactSigner{ca: ca, key: key}
}

// entry signs a leaf with the given serial, valid for an hour from
// issued, for the CertificateRequest team-c/r<serial> with UID u<serial>.
func (s *compactSigner) entry(t testing.TB, serial int64, issued time.Time) Entry {
	t.Helper()
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), DNSNames: []string{fmt.Sprintf("svc-%d.team-c.svc.cluster.local", serial)},
		NotBefore: issued, NotAfter: issued.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.ca, &leafKey.PublicKey, s.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	e, err := EntryOf(cert, issued, Origin{Kind: quillv1.OriginKindCertificateRequest, Namespace: "team-c",
		Name: fmt.Sprintf("r%d", serial), UID: types.UID(fmt.Sprintf("u%d", serial)), Certificate: "web"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func compactRevocationLine(serial int64, notAfter time.Time, reason quillv1.RevocationReason, at time.Time) Entry {
	return Entry{Serial: SerialHex(big.NewInt(serial)), NotAfter: notAfter.Unix(),
		Revocation: &EntryRevocation{Reason: reason, At: at.Unix(), By: "test"}}
}

func compactScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{quillv1.AddToScheme, cmapi.AddToScheme, certificatesv1.AddToScheme, corev1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// compactFailDeletes is a client whose deletes fail, as if the compactor crashed
// between writing and deleting.
type compactFailDeletes struct{ client.Client }

var errCompactCrash = errors.New("crashed before deleting")

func (compactFailDeletes) Delete(context.Context, client.Object, ...client.DeleteOption) error {
	return errCompactCrash
}

type compactFixture struct {
	c     *Compactor
	cl    client.Client
	ix    *Index
	clock *clocktesting.FakeClock
	sig   *compactSigner
}

func newCompactFixture(t *testing.T, objs ...client.Object) *compactFixture {
	t.Helper()
	cl := fake.NewClientBuilder().WithScheme(compactScheme(t)).WithObjects(objs...).Build()
	ix := NewIndex()
	if err := ix.Replace(nil, "1"); err != nil { // an empty, synced ledger
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(compactT0)
	return &compactFixture{
		c:  &Compactor{Client: cl, Requests: cl, Index: ix, Clock: clk},
		cl: cl, ix: ix, clock: clk, sig: newCompactSigner(t),
	}
}

// journal creates a journal of entries, as the signing path does, created
// at the fixture clock's time.
func (f *compactFixture) journal(t *testing.T, entries ...Entry) *quillv1.LedgerSegment {
	t.Helper()
	seg, err := NewSegment(compactIssuer, "team-c", quillv1.LedgerStageJournal, f.clock.Now(), entries)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cl.Create(t.Context(), seg); err != nil {
		t.Fatal(err)
	}
	seg.CreationTimestamp = metav1.NewTime(f.clock.Now())
	f.ix.PutSegment(seg, entries)
	return seg
}

// live returns every line of the issuer's segments in the API, by stage.
func (f *compactFixture) live(t *testing.T) (segs map[string][]Entry) {
	t.Helper()
	var list quillv1.LedgerSegmentList
	if err := f.cl.List(t.Context(), &list); err != nil {
		t.Fatal(err)
	}
	segs = map[string][]Entry{}
	for i := range list.Items {
		seg := &list.Items[i]
		if err := SegmentEntries(seg, func(e *Entry) error {
			segs[seg.Spec.Stage] = append(segs[seg.Spec.Stage], *e)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return segs
}

func compactIssuedBySerial(t *testing.T, entries []Entry) map[string]Entry {
	t.Helper()
	out := map[string]Entry{}
	for _, e := range entries {
		if e.IsRevocationLine() {
			continue
		}
		if _, dup := out[e.Serial]; dup {
			t.Errorf("serial %s is held twice", e.Serial)
		}
		out[e.Serial] = e
	}
	return out
}

func compactPendingRequest(serial int64, mutate func(*cmapi.CertificateRequest)) *cmapi.CertificateRequest {
	cr := &cmapi.CertificateRequest{ObjectMeta: metav1.ObjectMeta{Namespace: "team-c", Name: fmt.Sprintf("r%d", serial),
		UID: types.UID(fmt.Sprintf("u%d", serial))}}
	if mutate != nil {
		mutate(cr)
	}
	return cr
}

func TestSealFoldsRevocationsAndDropsCertificates(t *testing.T) {
	t.Parallel()
	f := newCompactFixture(t,
		compactPendingRequest(2, nil), // still waiting for its certificate: keeps it
		compactPendingRequest(3, func(cr *cmapi.CertificateRequest) { cr.Status.Certificate = []byte("x") }),
		compactPendingRequest(4, func(cr *cmapi.CertificateRequest) { cr.UID = "another" }),
	)
	ctx := t.Context()
	e1, e2, e3, e4 := f.sig.entry(t, 1, compactT0), f.sig.entry(t, 2, compactT0), f.sig.entry(t, 3, compactT0), f.sig.entry(t, 4, compactT0)
	f.journal(t, e1, e2)
	f.journal(t, e3, e4, compactRevocationLine(1, compactT0.Add(time.Hour), quillv1.ReasonKeyCompromise, compactT0))
	f.clock.Step(30 * time.Second)
	young := f.journal(t, compactRevocationLine(99, compactT0.Add(time.Hour), quillv1.ReasonSuperseded, compactT0),
		compactRevocationLine(1, compactT0.Add(time.Hour), quillv1.ReasonSuperseded, compactT0.Add(-time.Minute)))

	f.clock.Step(40 * time.Second) // the first two are older than a minute, the third is not
	st, err := f.c.Seal(ctx, compactIssuer, "team-c")
	if err != nil {
		t.Fatal(err)
	}
	want := SealStats{Journals: 2, Segments: 1, Entries: 4, Revocations: 1, CertificatesKept: 1, CertificatesDropped: 3}
	if fmt.Sprint(st) != fmt.Sprint(want) {
		t.Fatalf("Seal = %+v; want %+v", st, want)
	}
	live := f.live(t)
	if n := len(live[quillv1.LedgerStageJournal]); n != 2 {
		t.Fatalf("%d journal lines left; want the young journal's 2", n)
	}
	sealed := compactIssuedBySerial(t, live[quillv1.LedgerStageSealed])
	if len(sealed) != 4 {
		t.Fatalf("sealed %d entries; want 4", len(sealed))
	}
	if rv := sealed["1"].Revocation; rv == nil || rv.Reason != quillv1.ReasonKeyCompromise {
		t.Errorf("serial 1 sealed with revocation %+v; want the keyCompromise line folded in", rv)
	}
	for serial, keep := range map[string]bool{"1": false, "2": true, "3": false, "4": false} {
		if got := len(sealed[serial].Certificate) > 0; got != keep {
			t.Errorf("serial %s keeps its certificate: %v; want %v", serial, got, keep)
		}
	}

	// The young journal, once due, seals into revocation lines: serial
	// 99 is not in that output, and serial 1 is sealed elsewhere.
	f.clock.Step(time.Minute)
	if _, err := f.c.Seal(ctx, compactIssuer, "team-c"); err != nil {
		t.Fatal(err)
	}
	if err := f.cl.Get(ctx, client.ObjectKeyFromObject(young), young); err == nil {
		t.Fatal("the young journal was not sealed once due")
	}
	live = f.live(t)
	lines := 0
	for _, e := range live[quillv1.LedgerStageSealed] {
		if e.IsRevocationLine() {
			lines++
		}
	}
	if lines != 2 {
		t.Fatalf("%d revocation lines sealed; want 2", lines)
	}
}

func TestSealSplitsSegments(t *testing.T) {
	t.Parallel()
	f := newCompactFixture(t)
	f.c.MaxEntries = 3
	var es []Entry
	for i := range int64(7) {
		es = append(es, f.sig.entry(t, 100+i, compactT0))
	}
	f.journal(t, es[:4]...)
	f.journal(t, es[4:]...)
	f.clock.Step(2 * time.Minute)
	st, err := f.c.Seal(t.Context(), compactIssuer, "team-c")
	if err != nil {
		t.Fatal(err)
	}
	if st.Segments != 3 || st.Entries != 7 || st.Journals != 2 {
		t.Fatalf("Seal = %+v; want 7 entries in 3 segments of at most 3", st)
	}
	var list quillv1.LedgerSegmentList
	if err := f.cl.List(t.Context(), &list); err != nil {
		t.Fatal(err)
	}
	for _, s := range list.Items {
		if s.Spec.Entries > 3 || s.Spec.Stage != quillv1.LedgerStageSealed {
			t.Errorf("segment %s: stage %s with %d entries", s.Name, s.Spec.Stage, s.Spec.Entries)
		}
	}
}

// TestSealCrashBetweenWriteAndDelete checks that a Seal whose journal
// deletion fails (a crash after the sealed segment was written) leaves
// every entry present, and that the next Seal deletes the journal without
// writing the entries a second time.
func TestSealCrashBetweenWriteAndDelete(t *testing.T) {
	t.Parallel()
	f := newCompactFixture(t)
	ctx := t.Context()
	var es []Entry
	for i := range int64(5) {
		es = append(es, f.sig.entry(t, 200+i, compactT0))
	}
	f.journal(t, es[:3]...)
	f.journal(t, append(es[3:], compactRevocationLine(201, compactT0.Add(time.Hour), quillv1.ReasonKeyCompromise, compactT0))...)
	f.clock.Step(2 * time.Minute)

	crashing := *f.c
	crashing.Client = compactFailDeletes{f.cl}
	if _, err := crashing.Seal(ctx, compactIssuer, "team-c"); !errors.Is(err, errCompactCrash) {
		t.Fatalf("Seal with failing deletes: %v; want the delete's error", err)
	}
	live := f.live(t)
	if got := len(compactIssuedBySerial(t, live[quillv1.LedgerStageSealed])); got != 5 {
		t.Fatalf("after the crash %d entries sealed; want 5", got)
	}
	st, err := f.c.Seal(ctx, compactIssuer, "team-c")
	if err != nil {
		t.Fatal(err)
	}
	if st.Journals != 2 || st.Duplicates != 5 || st.Entries != 0 {
		t.Fatalf("rerun = %+v; want both journals deleted and 5 duplicates left out", st)
	}
	live = f.live(t)
	if len(live[quillv1.LedgerStageJournal]) != 0 {
		t.Fatal("journals left after the rerun")
	}
	sealed := compactIssuedBySerial(t, live[quillv1.LedgerStageSealed])
	if len(sealed) != 5 {
		t.Fatalf("%d entries sealed after the rerun; want 5 exactly once", len(sealed))
	}
	if sealed[SerialHex(big.NewInt(201))].Revocation == nil {
		t.Fatal("serial 201 lost its revocation")
	}
}

func TestSealLeavesCorruptJournal(t *testing.T) {
	t.Parallel()
	f := newCompactFixture(t)
	good := f.journal(t, f.sig.entry(t, 300, compactT0))
	bad, err := NewSegment(compactIssuer, "team-c", quillv1.LedgerStageJournal, f.clock.Now(), []Entry{f.sig.entry(t, 301, compactT0)})
	if err != nil {
		t.Fatal(err)
	}
	bad.Spec.Data = []byte("not gzip")
	if err := f.cl.Create(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	bad.CreationTimestamp = metav1.NewTime(f.clock.Now())
	f.ix.PutSegment(bad, nil)
	f.clock.Step(2 * time.Minute)
	st, err := f.c.Seal(t.Context(), compactIssuer, "team-c")
	if !errors.Is(err, ErrCorruptSegment) {
		t.Fatalf("Seal: %v; want ErrCorruptSegment", err)
	}
	if st.Journals != 1 || len(st.Corrupt) != 1 || st.Corrupt[0] != bad.Name {
		t.Fatalf("Seal = %+v; want the good journal sealed and the corrupt one named", st)
	}
	if err := f.cl.Get(t.Context(), client.ObjectKeyFromObject(bad), bad); err != nil {
		t.Fatalf("the corrupt journal was deleted: %v", err)
	}
	if err := f.cl.Get(t.Context(), client.ObjectKeyFromObject(good), good); err == nil {
		t.Fatal("the good journal was not sealed")
	}
}

func TestSealBeforeSyncRefused(t *testing.T) {
	t.Parallel()
	c := &Compactor{Index: NewIndex()}
	if _, err := c.Seal(t.Context(), compactIssuer, "team-c"); !errors.Is(err, ErrNotSynced) {
		t.Fatalf("Seal: %v; want ErrNotSynced", err)
	}
	if _, err := c.Migrate(t.Context()); !errors.Is(err, ErrNotSynced) {
		t.Fatalf("Migrate: %v; want ErrNotSynced", err)
	}
	c.Archive = &Archive{Dir: t.TempDir()}
	if _, err := c.Retain(t.Context(), compactIssuer, "team-c", time.Hour); !errors.Is(err, ErrNotSynced) {
		t.Fatalf("Retain: %v; want ErrNotSynced", err)
	}
}

func TestRetainArchivesExpiredSegments(t *testing.T) {
	t.Parallel()
	f := newCompactFixture(t)
	ctx := t.Context()
	old := []Entry{f.sig.entry(t, 400, compactT0), f.sig.entry(t, 401, compactT0)}
	fresh := []Entry{f.sig.entry(t, 402, compactT0.Add(48*time.Hour))}
	f.journal(t, old...)
	f.clock.Step(2 * time.Minute)
	if _, err := f.c.Seal(ctx, compactIssuer, "team-c"); err != nil {
		t.Fatal(err)
	}
	// Serial 401 is revoked later, by a line in a segment of its own.
	f.journal(t, fresh[0], compactRevocationLine(401, compactT0.Add(time.Hour), quillv1.ReasonKeyCompromise, compactT0.Add(30*time.Minute)))
	f.clock.Step(2 * time.Minute)
	if _, err := f.c.Seal(ctx, compactIssuer, "team-c"); err != nil {
		t.Fatal(err)
	}

	if _, err := f.c.Retain(ctx, compactIssuer, "team-c", time.Hour); !errors.Is(err, ErrNoArchive) {
		t.Fatalf("Retain without an archive: %v; want ErrNoArchive", err)
	}
	dir := t.TempDir()
	f.c.Archive = &Archive{Dir: dir}
	// At notAfter + 71h nothing is due under the default 72h margin.
	f.clock.SetTime(compactT0.Add(72 * time.Hour))
	if st, err := f.c.Retain(ctx, compactIssuer, "team-c", 0); err != nil || st.Segments != 0 {
		t.Fatalf("Retain before the margin = %+v, %v; want nothing archived", st, err)
	}
	f.clock.SetTime(compactT0.Add(74 * time.Hour))
	st, err := f.c.Retain(ctx, compactIssuer, "team-c", 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Segments != 1 || st.Entries != 2 || st.Revocations != 1 {
		t.Fatalf("Retain = %+v; want the first sealed segment (2 entries, 1 revoked) archived", st)
	}
	archived := map[string]Entry{}
	if err := ReadArchive(dir, compactIssuer, func(e *Entry) error { archived[e.Serial] = *e; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(archived) != 2 {
		t.Fatalf("archive holds %d entries; want 2", len(archived))
	}
	if rv := archived[SerialHex(big.NewInt(401))].Revocation; rv == nil || rv.Reason != quillv1.ReasonKeyCompromise {
		t.Fatalf("serial 401 archived with revocation %+v; want its final keyCompromise", rv)
	}
	live := f.live(t)
	got := compactIssuedBySerial(t, live[quillv1.LedgerStageSealed])
	if _, ok := got[SerialHex(big.NewInt(402))]; !ok || len(got) != 1 {
		t.Fatalf("live sealed entries %v; want only the unexpired 402", got)
	}
}

// TestRetainCrashBetweenArchiveAndDelete checks that a segment whose
// deletion failed after it was archived is archived (again, same file)
// and deleted by the next run, each serial once in live+archive.
func TestRetainCrashBetweenArchiveAndDelete(t *testing.T) {
	t.Parallel()
	f := newCompactFixture(t)
	ctx := t.Context()
	f.journal(t, f.sig.entry(t, 500, compactT0), f.sig.entry(t, 501, compactT0))
	f.clock.Step(2 * time.Minute)
	if _, err := f.c.Seal(ctx, compactIssuer, "team-c"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f.c.Archive = &Archive{Dir: dir}
	f.clock.SetTime(compactT0.Add(100 * time.Hour))
	crashing := *f.c
	crashing.Client = compactFailDeletes{f.cl}
	if _, err := crashing.Retain(ctx, compactIssuer, "team-c", 0); !errors.Is(err, errCompactCrash) {
		t.Fatalf("Retain with failing deletes: %v; want the delete's error", err)
	}
	if st, err := f.c.Retain(ctx, compactIssuer, "team-c", 0); err != nil || st.Segments != 1 {
		t.Fatalf("rerun = %+v, %v; want the segment deleted", st, err)
	}
	var all []Entry
	if err := ReadArchive(dir, quillv1.IssuerID{}, func(e *Entry) error { all = append(all, *e); return nil }); err != nil {
		t.Fatal(err)
	}
	all = append(all, f.live(t)[quillv1.LedgerStageSealed]...)
	if got := compactIssuedBySerial(t, all); len(got) != 2 {
		t.Fatalf("live+archive hold %d serials; want 2, once each", len(got))
	}
}

func compactLegacyObject(t *testing.T, e Entry) *quillv1.IssuedCertificate {
	t.Helper()
	cert, err := x509.ParseCertificate(e.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	ic, err := NewEntry(compactIssuer, "team-c", cert, time.UnixMicro(e.IssuedAt), Origin{Kind: e.Origin.Kind,
		Namespace: e.Origin.Namespace, Name: e.Origin.Name, UID: types.UID(e.Origin.UID), Certificate: e.Origin.Certificate})
	if err != nil {
		t.Fatal(err)
	}
	return ic
}

func TestMigrateConvertsLegacyLedger(t *testing.T) {
	t.Parallel()
	f := newCompactFixture(t, compactPendingRequest(602, nil))
	ctx := t.Context()
	f.c.MaxEntries = 2
	for i := range int64(5) {
		ic := compactLegacyObject(t, f.sig.entry(t, 600+i, compactT0))
		if i == 1 {
			ic.Status.Revocation = &quillv1.RevocationRecord{Reason: quillv1.ReasonSuperseded, RevokedAt: metav1.NewTime(compactT0), By: "test"}
		}
		if err := f.cl.Create(ctx, ic); err != nil {
			t.Fatal(err)
		}
	}
	bad := compactLegacyObject(t, f.sig.entry(t, 700, compactT0))
	bad.Spec.SerialNumber = "not hex"
	if err := f.cl.Create(ctx, bad); err != nil {
		t.Fatal(err)
	}

	crashing := *f.c
	crashing.Client = compactFailDeletes{f.cl}
	if _, err := crashing.Migrate(ctx); !errors.Is(err, errCompactCrash) {
		t.Fatalf("Migrate with failing deletes: %v; want the delete's error", err)
	}
	n, err := f.c.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Fatalf("Migrate deleted %d IssuedCertificates; want 5", n)
	}
	var left quillv1.IssuedCertificateList
	if err := f.cl.List(ctx, &left); err != nil {
		t.Fatal(err)
	}
	if len(left.Items) != 1 || left.Items[0].Name != bad.Name {
		t.Fatalf("%d IssuedCertificates left; want only the unparsable one", len(left.Items))
	}
	sealed := compactIssuedBySerial(t, f.live(t)[quillv1.LedgerStageSealed])
	if len(sealed) != 5 {
		t.Fatalf("%d entries sealed; want 5, once each", len(sealed))
	}
	for s, e := range sealed {
		if keep := s == SerialHex(big.NewInt(602)); keep != (len(e.Certificate) > 0) {
			t.Errorf("serial %s keeps its certificate: %v; want %v", s, !keep, keep)
		}
	}
	if rv := sealed[SerialHex(big.NewInt(601))].Revocation; rv == nil || rv.Reason != quillv1.ReasonSuperseded {
		t.Errorf("serial 601 migrated with revocation %+v; want superseded", rv)
	}
}

func TestRequestMayNeed(t *testing.T) {
	t.Parallel()
	now := metav1.NewTime(compactT0)
	objs := []client.Object{
		compactPendingRequest(1, nil),
		compactPendingRequest(2, func(cr *cmapi.CertificateRequest) { cr.Status.Certificate = []byte("pem") }),
		compactPendingRequest(3, func(cr *cmapi.CertificateRequest) { cr.Status.FailureTime = &now }),
		compactPendingRequest(4, func(cr *cmapi.CertificateRequest) {
			cr.Status.Conditions = []cmapi.CertificateRequestCondition{{Type: cmapi.CertificateRequestConditionDenied, Status: cmmeta.ConditionTrue}}
		}),
		compactPendingRequest(5, func(cr *cmapi.CertificateRequest) {
			cr.Status.Conditions = []cmapi.CertificateRequestCondition{{Type: cmapi.CertificateRequestConditionReady, Status: cmmeta.ConditionFalse, Reason: cmapi.CertificateRequestReasonPending}}
		}),
		&certificatesv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: "csr-pending", UID: "c1"}},
		&certificatesv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: "csr-denied", UID: "c2"},
			Status: certificatesv1.CertificateSigningRequestStatus{Conditions: []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateDenied, Status: corev1.ConditionTrue}}}},
	}
	c := &Compactor{Requests: fake.NewClientBuilder().WithScheme(compactScheme(t)).WithObjects(objs...).Build()}
	cr := func(n int) *EntryOrigin {
		return &EntryOrigin{Kind: quillv1.OriginKindCertificateRequest, Namespace: "team-c", Name: fmt.Sprintf("r%d", n), UID: fmt.Sprintf("u%d", n)}
	}
	for _, tc := range []struct {
		name   string
		origin *EntryOrigin
		want   bool
	}{
		{"pending-request", cr(1), true},
		{"pending-condition", cr(5), true},
		{"issued-request", cr(2), false},
		{"failed-request", cr(3), false},
		{"denied-request", cr(4), false},
		{"deleted-request", cr(9), false},
		{"recreated-request", &EntryOrigin{Kind: quillv1.OriginKindCertificateRequest, Namespace: "team-c", Name: "r1", UID: "old"}, false},
		{"pending-csr", &EntryOrigin{Kind: quillv1.OriginKindCertificateSigningRequest, Name: "csr-pending", UID: "c1"}, true},
		{"denied-csr", &EntryOrigin{Kind: quillv1.OriginKindCertificateSigningRequest, Name: "csr-denied", UID: "c2"}, false},
		{"responder", &EntryOrigin{Kind: quillv1.OriginKindOCSPResponder, Namespace: "team-c", Name: "s"}, false},
		{"no-origin", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := c.requestMayNeed(t.Context(), tc.origin)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("requestMayNeed = %v; want %v", got, tc.want)
			}
		})
	}
}

// TestRetainKeepsRevocationOfUnknownExpiry checks that a segment due by
// its spec is kept when one of its revocation lines has no notAfter the
// compactor can find: archiving that revocation while its certificate may
// still be valid would make OCSP answer good.
func TestRetainKeepsRevocationOfUnknownExpiry(t *testing.T) {
	t.Parallel()
	f := newCompactFixture(t)
	f.c.Archive = &Archive{Dir: t.TempDir()}
	lines := []Entry{f.sig.entry(t, 800, compactT0), {Serial: "ff01", Revocation: &EntryRevocation{Reason: quillv1.ReasonKeyCompromise, At: compactT0.Unix()}}}
	seg, err := NewSegment(compactIssuer, "team-c", quillv1.LedgerStageSealed, compactT0, lines)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cl.Create(t.Context(), seg); err != nil {
		t.Fatal(err)
	}
	f.ix.PutSegment(seg, lines)
	f.clock.SetTime(compactT0.Add(100 * time.Hour))
	st, err := f.c.Retain(t.Context(), compactIssuer, "team-c", 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Segments != 0 || st.Unexpired != 1 {
		t.Fatalf("Retain = %+v; want the segment kept", st)
	}
	if err := f.cl.Get(t.Context(), client.ObjectKeyFromObject(seg), seg); err != nil {
		t.Fatalf("the segment is gone: %v", err)
	}
}

// sealed creates a sealed segment of issuer k holding lines, created at
// the fixture clock's time, as an earlier Seal would have.
func (f *compactFixture) sealed(t *testing.T, k quillv1.IssuerID, lines ...Entry) *quillv1.LedgerSegment {
	t.Helper()
	seg, err := NewSegment(k, "team-c", quillv1.LedgerStageSealed, f.clock.Now(), lines)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cl.Create(t.Context(), seg); err != nil {
		t.Fatal(err)
	}
	seg.CreationTimestamp = metav1.NewTime(f.clock.Now())
	f.ix.PutSegment(seg, lines)
	f.clock.Step(time.Second) // names order segments by creation
	return seg
}

// sealedNames lists issuer k's sealed segments in the API, by name.
func (f *compactFixture) sealedNames(t *testing.T, k quillv1.IssuerID) []string {
	t.Helper()
	var list quillv1.LedgerSegmentList
	if err := f.cl.List(t.Context(), &list); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range list.Items {
		if s.Spec.Stage == quillv1.LedgerStageSealed && s.Spec.IssuerRef.ID() == k {
			out = append(out, s.Name)
		}
	}
	sort.Strings(out)
	return out
}

// relisted is a fresh index loaded from every segment in the API, in name
// order, as the ledger index's list after a restart reads them.
func (f *compactFixture) relisted(t *testing.T) *Index {
	t.Helper()
	var list quillv1.LedgerSegmentList
	if err := f.cl.List(t.Context(), &list); err != nil {
		t.Fatal(err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	objs := make([]any, len(list.Items))
	for i := range list.Items {
		objs[i] = &list.Items[i]
	}
	ix := NewIndex()
	if err := ix.Replace(objs, "1"); err != nil {
		t.Fatal(err)
	}
	return ix
}

// compactWantIndexed fails unless ix holds every serial of want in segment
// (when not empty), revoked with the reason want gives ("" for not
// revoked).
func compactWantIndexed(t *testing.T, what string, ix *Index, segment string, want map[int64]quillv1.RevocationReason) {
	t.Helper()
	for serial, reason := range want {
		rec, ok := ix.Lookup(compactIssuer, big.NewInt(serial))
		if !ok {
			t.Errorf("%s: serial %d is not in the index", what, serial)
			continue
		}
		if segment != "" && rec.Segment != segment {
			t.Errorf("%s: serial %d is in %s; want the merged %s", what, serial, rec.Segment, segment)
		}
		if got := reasonOfCode(rec.Reason); rec.Revoked != (reason != "") || (rec.Revoked && got != reason) {
			t.Errorf("%s: serial %d revoked %v (%s); want %q", what, serial, rec.Revoked, got, reason)
		}
	}
}

func TestSealMergesSmallSealedSegments(t *testing.T) {
	t.Parallel()
	f := newCompactFixture(t, compactPendingRequest(2, nil)) // serial 2's request still waits for it
	f.c.MaxEntries = 40                                      // small: under 10 lines
	ctx := t.Context()
	other := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-c", Name: "other"}
	notAfter := compactT0.Add(time.Hour)

	var bigLines []Entry
	for i := range int64(10) {
		e := f.sig.entry(t, 50+i, compactT0)
		e.Certificate = nil
		bigLines = append(bigLines, e)
	}
	bigSeg := f.sealed(t, compactIssuer, bigLines...)
	revoked4 := f.sig.entry(t, 4, compactT0)
	revoked4.Certificate = nil
	revoked4.Revocation = &EntryRevocation{Reason: quillv1.ReasonSuperseded, At: compactT0.Unix()}
	small := []*quillv1.LedgerSegment{
		f.sealed(t, compactIssuer, f.sig.entry(t, 1, compactT0), f.sig.entry(t, 2, compactT0)),
		f.sealed(t, compactIssuer, f.sig.entry(t, 3, compactT0), compactRevocationLine(1, notAfter, quillv1.ReasonKeyCompromise, compactT0)),
		// Serial 50's entry is in the big segment, which is not merged.
		f.sealed(t, compactIssuer, compactRevocationLine(50, notAfter, quillv1.ReasonCessationOfOperation, compactT0),
			compactRevocationLine(1, notAfter, quillv1.ReasonSuperseded, compactT0.Add(time.Minute))),
		f.sealed(t, compactIssuer, revoked4),
	}
	foreign := []*quillv1.LedgerSegment{
		f.sealed(t, other, f.sig.entry(t, 900, compactT0)),
		f.sealed(t, other, f.sig.entry(t, 901, compactT0)),
	}
	bad, err := NewSegment(compactIssuer, "team-c", quillv1.LedgerStageSealed, f.clock.Now(), []Entry{f.sig.entry(t, 5, compactT0)})
	if err != nil {
		t.Fatal(err)
	}
	bad.Spec.Data = []byte("not gzip")
	if err := f.cl.Create(ctx, bad); err != nil {
		t.Fatal(err)
	}
	bad.CreationTimestamp = metav1.NewTime(f.clock.Now())
	f.ix.PutSegment(bad, nil)

	f.clock.Step(2 * time.Minute)
	journal := f.journal(t, f.sig.entry(t, 6, compactT0)) // young: neither sealed nor merged
	st, err := f.c.Seal(ctx, compactIssuer, "team-c")
	if !errors.Is(err, ErrCorruptSegment) {
		t.Fatalf("Seal: %v; want ErrCorruptSegment for the corrupt small segment", err)
	}
	if st.Merged != 4 || st.MergedInto != 1 || st.Journals != 0 || len(st.Corrupt) != 1 || st.Corrupt[0] != bad.Name {
		t.Fatalf("Seal = %+v; want the 4 small segments merged into 1 and the corrupt one named", st)
	}
	names := f.sealedNames(t, compactIssuer)
	if len(names) != 3 || names[0] != bigSeg.Name || names[1] != bad.Name {
		t.Fatalf("sealed segments %v; want the big one, the corrupt one and the merged one", names)
	}
	merged := names[2]
	for _, seg := range append(append([]*quillv1.LedgerSegment{journal}, foreign...), bigSeg, bad) {
		if err := f.cl.Get(ctx, client.ObjectKeyFromObject(seg), &quillv1.LedgerSegment{}); err != nil {
			t.Errorf("segment %s was touched: %v", seg.Name, err)
		}
	}

	var got quillv1.LedgerSegment
	if err := f.cl.Get(ctx, types.NamespacedName{Namespace: "team-c", Name: merged}, &got); err != nil {
		t.Fatal(err)
	}
	var lines []Entry
	if err := SegmentEntries(&got, func(e *Entry) error { lines = append(lines, *e); return nil }); err != nil {
		t.Fatal(err)
	}
	issued := compactIssuedBySerial(t, lines)
	if len(issued) != 4 || len(lines) != 5 {
		t.Fatalf("merged segment holds %d lines, %d entries; want serials 1-4 and serial 50's line", len(lines), len(issued))
	}
	if rv := issued["1"].Revocation; rv == nil || rv.Reason != quillv1.ReasonKeyCompromise {
		t.Errorf("serial 1 merged with revocation %+v; want the earlier keyCompromise folded in", rv)
	}
	for serial, keep := range map[string]bool{"1": false, "2": true, "3": false, "4": false} {
		if has := len(issued[serial].Certificate) > 0; has != keep {
			t.Errorf("serial %s keeps its certificate: %v; want %v", serial, has, keep)
		}
	}
	if l := lines[0]; !l.IsRevocationLine() || l.Serial != SerialHex(big.NewInt(50)) || l.NotAfter != notAfter.Unix() {
		t.Errorf("first line %+v; want serial 50's revocation line with its notAfter", l)
	}

	want := map[int64]quillv1.RevocationReason{1: quillv1.ReasonKeyCompromise, 2: "", 3: "", 4: quillv1.ReasonSuperseded}
	compactWantIndexed(t, "after the merge", f.ix, merged, want)
	// The watch then delivers the inputs' deletions: no record goes.
	for _, seg := range small {
		if err := f.ix.Delete(seg); err != nil {
			t.Fatal(err)
		}
	}
	compactWantIndexed(t, "after the deletions", f.ix, merged, want)
	compactWantIndexed(t, "the big segment after the deletions", f.ix, bigSeg.Name,
		map[int64]quillv1.RevocationReason{50: quillv1.ReasonCessationOfOperation, 51: ""})
	compactWantIndexed(t, "after a relist", f.relisted(t), merged, want)
}

// TestSealMergeCrashBetweenWriteAndDelete checks that a merge whose deletes
// fail leaves every entry present, the merged segment holding every
// record even after a relist, and that the rerun deletes the small
// segments without writing anything again.
func TestSealMergeCrashBetweenWriteAndDelete(t *testing.T) {
	t.Parallel()
	f := newCompactFixture(t)
	f.c.MaxEntries = 40
	ctx := t.Context()
	notAfter := compactT0.Add(time.Hour)
	var bigLines []Entry
	for i := range int64(10) {
		bigLines = append(bigLines, f.sig.entry(t, 50+i, compactT0))
	}
	f.sealed(t, compactIssuer, bigLines...)
	for i := range int64(3) {
		f.sealed(t, compactIssuer, f.sig.entry(t, 10*i+1, compactT0), f.sig.entry(t, 10*i+2, compactT0))
	}
	f.sealed(t, compactIssuer, compactRevocationLine(1, notAfter, quillv1.ReasonKeyCompromise, compactT0),
		compactRevocationLine(51, notAfter, quillv1.ReasonAffiliationChanged, compactT0))
	f.clock.Step(2 * time.Minute)

	crashing := *f.c
	crashing.Client = compactFailDeletes{f.cl}
	if _, err := crashing.Seal(ctx, compactIssuer, "team-c"); !errors.Is(err, errCompactCrash) {
		t.Fatalf("Seal with failing deletes: %v; want the delete's error", err)
	}
	names := f.sealedNames(t, compactIssuer)
	if len(names) != 6 {
		t.Fatalf("after the crash %d sealed segments; want the 5 read and the merged one", len(names))
	}
	merged := names[5]
	want := map[int64]quillv1.RevocationReason{1: quillv1.ReasonKeyCompromise, 2: "", 11: "", 12: "", 21: "", 22: ""}
	compactWantIndexed(t, "after the crash", f.ix, merged, want)
	// Both copies are listed after a restart: the newer sorts later and
	// holds every record.
	compactWantIndexed(t, "after the crash and a relist", f.relisted(t), merged, want)

	st, err := f.c.Seal(ctx, compactIssuer, "team-c")
	if err != nil {
		t.Fatal(err)
	}
	if st.Merged != 4 || st.MergedInto != 0 || st.Duplicates != 6 {
		t.Fatalf("rerun = %+v; want the 4 small segments deleted, 6 duplicates and nothing written", st)
	}
	if names := f.sealedNames(t, compactIssuer); len(names) != 2 || names[1] != merged {
		t.Fatalf("after the rerun sealed segments %v; want the big one and %s", names, merged)
	}
	all := f.live(t)[quillv1.LedgerStageSealed]
	if got := compactIssuedBySerial(t, all); len(got) != 16 {
		t.Fatalf("%d entries sealed after the rerun; want 16, once each", len(got))
	}
	lines := 0
	for _, e := range all {
		if e.IsRevocationLine() {
			lines++
		}
	}
	if lines != 1 {
		t.Fatalf("%d revocation lines after the rerun; want serial 51's, once", lines)
	}
	want[51] = quillv1.ReasonAffiliationChanged
	compactWantIndexed(t, "after the rerun and a relist", f.relisted(t), "", want)
}

func TestMergeChoice(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		sizes  []int32 // of segments s0, s1, … in name order
		budget int
		want   string
	}{
		{"none", nil, 100, "[]"},
		{"one", []int32{3}, 100, "[]"},
		{"all-tiny", []int32{1, 2, 1}, 100, "[s0 s1 s2]"},
		{"grown-segment-waits", []int32{8, 1, 1}, 100, "[s1 s2]"},
		{"grown-segments-wait", []int32{8, 4, 1}, 100, "[]"},
		{"grown-segment-joins", []int32{4, 2, 1, 1}, 100, "[s0 s1 s2 s3]"},
		{"young-segment-after-grown-one", []int32{300, 1}, 100, "[]"},
		{"by-size-then-by-name", []int32{5, 1, 2, 1, 40}, 100, "[s0 s1 s2 s3]"},
		{"within-budget", []int32{3, 3, 3, 3, 3}, 10, "[s0 s1 s2]"},
		{"over-budget", []int32{12, 12, 12}, 10, "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var small []SegmentInfo
			for i, n := range tc.sizes {
				small = append(small, SegmentInfo{Name: fmt.Sprintf("s%d", i), Entries: n})
			}
			var got []string
			for _, s := range mergeChoice(small, tc.budget) {
				got = append(got, s.Name)
			}
			if fmt.Sprint(got) != tc.want {
				t.Fatalf("mergeChoice(%v, %d) = %v; want %s", tc.sizes, tc.budget, got, tc.want)
			}
		})
	}
}

// TestSealListsManyJournals seals the one-entry journals a burst of signing
// leaves with a paged List instead of a GET each, and still seals only
// the journals that are due.
func TestSealListsManyJournals(t *testing.T) {
	t.Parallel()
	f := newCompactFixture(t)
	var gets, lists atomic.Int32
	f.c.Client = interceptor.NewClient(f.cl.(client.WithWatch), interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*quillv1.LedgerSegment); ok {
				gets.Add(1)
			}
			return c.Get(ctx, key, obj, opts...)
		},
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			lists.Add(1)
			return c.List(ctx, list, opts...)
		},
	})
	const due, young = 3*listPage + 7, 5
	for i := range int64(due) {
		f.journal(t, f.sig.entry(t, 1000+i, compactT0))
	}
	f.clock.Step(30 * time.Second)
	for i := range int64(young) {
		f.journal(t, f.sig.entry(t, 5000+i, compactT0))
	}
	f.clock.Step(40 * time.Second)
	st, err := f.c.Seal(t.Context(), compactIssuer, "team-c")
	if err != nil {
		t.Fatal(err)
	}
	if st.Journals != due || st.Entries != due {
		t.Fatalf("Seal = %+v; want %d journals and entries sealed", st, due)
	}
	if n := gets.Load(); n != 0 {
		t.Errorf("%d journals read one GET at a time; want all through the List", n)
	}
	// The fake client does not page; test/integration's
	// TestLedgerCompactNothingLostAcrossCrashes lists more than a page
	// from the real API server.
	if n := lists.Load(); n == 0 {
		t.Error("no List; want the journals read through one")
	}
	live := f.live(t)
	if n := len(live[quillv1.LedgerStageJournal]); n != young {
		t.Errorf("%d journal lines left; want the %d young ones", n, young)
	}
	if n := len(compactIssuedBySerial(t, live[quillv1.LedgerStageSealed])); n != due {
		t.Errorf("%d entries sealed; want %d", n, due)
	}
}
