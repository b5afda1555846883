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
