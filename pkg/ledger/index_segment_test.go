package ledger

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// issued is an issued entry of serial for the request uid, of the
// Certificate app in team-a, keeping its certificate.
func issued(serial int64, uid string) Entry {
	return Entry{
		Serial: SerialHex(big.NewInt(serial)), Fingerprint: fmt.Sprintf("%064x", serial),
		IssuedAt: t0.Add(time.Duration(serial) * time.Second).UnixMicro(), NotBefore: t0.Unix(), NotAfter: t0.Add(24 * time.Hour).Unix(),
		KeyAlgorithm: "ECDSA-P256", SignatureAlgorithm: "ECDSA-SHA256", Template: "server",
		Origin: &EntryOrigin{
			Kind: quillv1.OriginKindCertificateRequest, Namespace: "team-a", Name: "app-" + uid, UID: uid, Certificate: "app",
		},
		Certificate: []byte{0x30},
	}
}

func revokedAs(e Entry, reason quillv1.RevocationReason, at int64) Entry {
	e.Revocation = &EntryRevocation{Reason: reason, At: at}
	return e
}

// revocationLine revokes serial, recorded in another segment.
func revocationLine(serial int64, reason quillv1.RevocationReason, at int64) Entry {
	return Entry{Serial: SerialHex(big.NewInt(serial)), NotAfter: t0.Add(24 * time.Hour).Unix(),
		Revocation: &EntryRevocation{Reason: reason, At: at}}
}

// segment is a segment of issuerA named name (which must sort as the
// stage does) as the API server returns it at resourceVersion rv.
func segment(t testing.TB, stage, name, rv string, entries ...Entry) *quillv1.LedgerSegment {
	t.Helper()
	seg, err := NewSegment(issuerA, "team-a", stage, t0, entries)
	if err != nil {
		t.Fatal(err)
	}
	seg.Name, seg.ResourceVersion = name, rv
	seg.CreationTimestamp = metav1.NewTime(t0)
	return seg
}

func mustApply(t testing.TB, ix *Index, objs ...any) {
	t.Helper()
	for _, o := range objs {
		if err := ix.Add(o); err != nil {
			t.Fatal(err)
		}
	}
}

// permutations of 0..n-1.
func permutations(n int) [][]int {
	if n == 1 {
		return [][]int{{0}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

// TestIndexSegmentsInAnyOrder: whatever order the segments arrive in, the
// index ends with the same records: revocations seen before their entries
// are applied when the entries come, the earliest revocation wins, and a
// record points at the sealed segment over the journals.
func TestIndexSegmentsInAnyOrder(t *testing.T) {
	t.Parallel()
	uid1, uid2 := "0f8fad5b-d9cb-469f-a165-70867728950e", "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	segs := []*quillv1.LedgerSegment{
		segment(t, quillv1.LedgerStageJournal, "qi.ca.j01", "1", issued(1, uid1), issued(2, uid2)),
		segment(t, quillv1.LedgerStageJournal, "qi.ca.j02", "2", revocationLine(1, quillv1.ReasonKeyCompromise, 100)),
		segment(t, quillv1.LedgerStageJournal, "qi.ca.j03", "3", revocationLine(2, quillv1.ReasonCessationOfOperation, 50), revocationLine(9, quillv1.ReasonSuperseded, 60)),
		segment(t, quillv1.LedgerStageSealed, "qi.ca.s01", "4",
			revokedAs(issued(1, uid1), quillv1.ReasonSuperseded, 200), withoutCertificate(issued(2, uid2)),
			revocationLine(2, quillv1.ReasonKeyCompromise, 50)),
	}
	for _, p := range permutations(len(segs)) {
		t.Run(fmt.Sprint(p), func(t *testing.T) {
			t.Parallel()
			ix := NewIndex()
			for _, i := range p {
				mustApply(t, ix, segs[i])
			}
			r1, ok1 := ix.Lookup(issuerA, big.NewInt(1))
			r2, ok2 := ix.Lookup(issuerA, big.NewInt(2))
			if !ok1 || !ok2 || ix.Count(issuerA) != 2 {
				t.Fatalf("records 1 %v, 2 %v, count %d; want both and only them", ok1, ok2, ix.Count(issuerA))
			}
			if !r1.Revoked || r1.Reason != 1 || r1.RevokedAt.Unix() != 100 {
				t.Errorf("serial 1 revoked %v reason %d at %d; want keyCompromise at 100, the earliest", r1.Revoked, r1.Reason, r1.RevokedAt.Unix())
			}
			// Same time: the smaller reason name wins (cessationOfOperation < keyCompromise).
			if !r2.Revoked || r2.Reason != 5 || r2.RevokedAt.Unix() != 50 {
				t.Errorf("serial 2 revoked %v reason %d at %d; want cessationOfOperation at 50", r2.Revoked, r2.Reason, r2.RevokedAt.Unix())
			}
			if r1.Segment != "qi.ca.s01" || r2.Segment != "qi.ca.s01" || r1.Legacy || r2.HasCertificate || !r1.HasCertificate {
				t.Errorf("records point at %s (cert %v), %s (cert %v); want the sealed segment, as it holds them",
					r1.Segment, r1.HasCertificate, r2.Segment, r2.HasCertificate)
			}
			if got := serials(ix.Revoked(issuerA, t0)); got != "1,2" && got != "2,1" {
				t.Errorf("Revoked = %s, want 1 and 2 (9 was never issued)", got)
			}
			if r, ok := ix.ByRequest(issuerA, types.UID(uid2)); !ok || r.Serial.Int64() != 2 {
				t.Errorf("ByRequest(%s) = %v, %v", uid2, r.Serial, ok)
			}
			if got := serials(ix.ForCertificate(issuerA, "team-a", "app")); got != "1,2" {
				t.Errorf("ForCertificate = %s, want 1,2", got)
			}
		})
	}
}

func withoutCertificate(e Entry) Entry {
	e.Certificate = nil
	return e
}

// TestIndexRecordFromSegment: every field of a Record comes back from the
// compact form as the entry said it.
func TestIndexRecordFromSegment(t *testing.T) {
	t.Parallel()
	for _, uid := range []string{"0f8fad5b-d9cb-469f-a165-70867728950e", "not-a-uuid", "0F8FAD5B-D9CB-469F-A165-70867728950E", ""} {
		t.Run("uid-"+strings.ToLower(uid), func(t *testing.T) {
			t.Parallel()
			e := revokedAs(issued(0x7fffffffffffffff, uid), quillv1.ReasonPrivilegeWithdrawn, t0.Unix()+5)
			e.Serial = strings.Repeat("f", 40) // the longest serial
			e.NoRevAvail = true
			ix := NewIndex()
			mustApply(t, ix, segment(t, quillv1.LedgerStageJournal, "qi.ca.j01", "1", e))
			serial, _ := e.SerialInt()
			got, ok := ix.Lookup(issuerA, serial)
			want := Record{
				Segment: "qi.ca.j01", Namespace: "team-a", HasCertificate: true, Issuer: issuerA, Serial: serial,
				IssuedAt: time.UnixMicro(e.IssuedAt).UTC(), NotBefore: t0, NotAfter: t0.Add(24 * time.Hour), KeyAlgorithm: "ECDSA-P256",
				RequestUID: types.UID(uid), OriginKind: quillv1.OriginKindCertificateRequest, RequestName: "app-" + uid, Template: "server",
				OriginNamespace: "team-a", Certificate: "app", Revoked: true, RevokedAt: t0.Add(5 * time.Second), Reason: 9,
				NoRevocationAvailable: true, SignatureAlgorithm: "ECDSA-SHA256",
			}
			if !ok || fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
				t.Fatalf("Lookup =\n%+v\nwant\n%+v", got, want)
			}
			if r, ok := ix.ByRequest(issuerA, types.UID(uid)); uid != "" && (!ok || r.Serial.Cmp(serial) != 0) {
				t.Errorf("ByRequest(%q) = %v, %v", uid, r.Serial, ok)
			}
		})
	}
}

// TestIndexRemovalRules: deleting a journal removes nothing, deleting a
// sealed segment removes what points at it, deleting an IssuedCertificate
// removes its record only while the record still points at it.
func TestIndexRemovalRules(t *testing.T) {
	t.Parallel()
	uid := func(i int) string { return fmt.Sprintf("00000000-0000-0000-0000-%012d", i) }
	journal := segment(t, quillv1.LedgerStageJournal, "qi.ca.j01", "1", issued(1, uid(1)), issued(2, uid(2)), revocationLine(7, quillv1.ReasonKeyCompromise, 1))
	sealed := segment(t, quillv1.LedgerStageSealed, "qi.ca.s01", "2", issued(1, uid(1)), revocationLine(8, quillv1.ReasonKeyCompromise, 1))
	other := segment(t, quillv1.LedgerStageSealed, "qi.ca.s02", "3", issued(3, uid(3)))
	migrated := entry(issuerA, 3, uid(3), "app", t0, t0.Add(time.Hour))
	legacyOnly := entry(issuerA, 4, uid(4), "app", t0, t0.Add(time.Hour))
	ix := NewIndex()
	mustApply(t, ix, journal, sealed, migrated, other, legacyOnly)
	if ix.Count(issuerA) != 4 {
		t.Fatalf("count %d, want 4", ix.Count(issuerA))
	}
	if r, _ := ix.Lookup(issuerA, big.NewInt(3)); r.Segment != "qi.ca.s02" || r.Legacy {
		t.Fatalf("a migrated record points at %s (legacy %v), want its sealed segment", r.Segment, r.Legacy)
	}
	if r, _ := ix.Lookup(issuerA, big.NewInt(4)); r.Segment != legacyOnly.Name || !r.Legacy || r.Namespace != "team-a" {
		t.Fatalf("a legacy record points at %s/%s (legacy %v)", r.Namespace, r.Segment, r.Legacy)
	}

	steps := []struct {
		name  string
		del   any
		count int
		gone  []int64
	}{
		{name: "journal-removes-nothing", del: journal, count: 4},
		{name: "migrated-legacy-removes-nothing", del: migrated, count: 4},
		{name: "sealed-removes-what-it-holds", del: sealed, count: 3, gone: []int64{1}},
		{name: "legacy-removes-its-own", del: legacyOnly, count: 2, gone: []int64{4}},
		{name: "sealed-again-is-a-no-op", del: sealed, count: 2},
	}
	for _, s := range steps {
		if err := ix.Delete(s.del); err != nil {
			t.Fatal(err)
		}
		if ix.Count(issuerA) != s.count {
			t.Fatalf("%s: count %d, want %d", s.name, ix.Count(issuerA), s.count)
		}
		for _, g := range s.gone {
			if _, ok := ix.Lookup(issuerA, big.NewInt(g)); ok {
				t.Fatalf("%s: serial %d still found", s.name, g)
			}
		}
	}
	// Serial 2 stays, pointing at the deleted journal: it was never sealed.
	if r, ok := ix.Lookup(issuerA, big.NewInt(2)); !ok || r.Segment != "qi.ca.j01" {
		t.Errorf("serial 2: %v at %s", ok, r.Segment)
	}
	// The pending revocation of serial 8 left with its sealed segment; that
	// of 7, held by the journal, stays and applies when 7 arrives.
	mustApply(t, ix, segment(t, quillv1.LedgerStageSealed, "qi.ca.s03", "9", issued(7, uid(7)), issued(8, uid(8))))
	if r, _ := ix.Lookup(issuerA, big.NewInt(7)); !r.Revoked {
		t.Error("serial 7's pending revocation was lost")
	}
	if r, _ := ix.Lookup(issuerA, big.NewInt(8)); r.Revoked {
		t.Error("serial 8 was revoked by a line whose segment was deleted")
	}
	if got := len(ix.Segments(issuerA)); got != 2 {
		t.Errorf("%d segments listed, want 2 (s02, s03)", got)
	}
}

// TestIndexLegacyUpdateAfterMigration: an IssuedCertificate revoked after
// its record was migrated still revokes the record, which keeps pointing
// at its sealed segment.
func TestIndexLegacyUpdateAfterMigration(t *testing.T) {
	t.Parallel()
	ic := entry(issuerA, 5, "u5", "", t0, t0.Add(time.Hour))
	ix := NewIndex()
	mustApply(t, ix, segment(t, quillv1.LedgerStageSealed, "qi.ca.s01", "2", issued(5, "u5")), ic)
	mustApply(t, ix, revokedEntry(ic, quillv1.ReasonKeyCompromise, t0))
	r, _ := ix.Lookup(issuerA, big.NewInt(5))
	if !r.Revoked || r.Segment != "qi.ca.s01" {
		t.Errorf("record revoked %v at %s; want revoked, in the sealed segment", r.Revoked, r.Segment)
	}
}

// TestIndexPutSegmentSurvivesStaleRelist: a segment this process created
// is kept by a relist whose list predates its creation, dropped by one
// that postdates it without it, and no longer kept once the watch
// delivered it.
func TestIndexPutSegmentSurvivesStaleRelist(t *testing.T) {
	t.Parallel()
	found := func(ix *Index, uid string) bool {
		_, ok := ix.ByRequest(issuerA, types.UID(uid))
		return ok
	}
	put := func(ix *Index, serial int64, uid, rv string) *quillv1.LedgerSegment {
		seg := segment(t, quillv1.LedgerStageJournal, fmt.Sprintf("qi.ca.j%02d", serial), rv, issued(serial, uid))
		ix.PutSegment(seg, []Entry{issued(serial, uid)})
		return seg
	}
	ix := NewIndex()
	_ = ix.Replace(nil, "5")
	put(ix, 1, "u1", "10")
	if !found(ix, "u1") || len(ix.Segments(issuerA)) != 1 {
		t.Fatal("a segment put is not in the index at once")
	}
	other := segment(t, quillv1.LedgerStageJournal, "qi.ca.j02", "3", issued(2, "u2"))
	_ = ix.Replace([]any{other}, "7")
	if !found(ix, "u1") || !found(ix, "u2") {
		t.Fatalf("after a relist older than the creation: u1 %v, u2 %v; want both", found(ix, "u1"), found(ix, "u2"))
	}
	_ = ix.Replace([]any{other}, "12")
	if found(ix, "u1") {
		t.Fatal("a segment deleted after its creation survived a newer relist")
	}
	seg := put(ix, 3, "u3", "20")
	mustApply(t, ix, seg)
	_ = ix.Replace(nil, "15")
	if found(ix, "u3") {
		t.Fatal("a segment the watch delivered was kept against a list without it")
	}
	if n := len(ix.created); n != 0 {
		t.Fatalf("%d created objects still waiting, want none", n)
	}
}

// TestIndexCorruptSegment: a segment that does not decode is counted and
// skipped whole; the rest of the ledger loads, through the watch and
// through a list alike.
func TestIndexCorruptSegment(t *testing.T) {
	t.Parallel()
	good := segment(t, quillv1.LedgerStageSealed, "qi.ca.s01", "1", issued(1, "u1"))
	tests := []struct {
		name    string
		corrupt func(*quillv1.LedgerSegment)
	}{
		{name: "not-gzip", corrupt: func(s *quillv1.LedgerSegment) { s.Spec.Data = []byte("plain text") }},
		{name: "truncated-gzip", corrupt: func(s *quillv1.LedgerSegment) { s.Spec.Data = s.Spec.Data[:len(s.Spec.Data)-9] }},
		{name: "bad-json", corrupt: func(s *quillv1.LedgerSegment) { s.Spec.Data = gzipOf(t, "{\"s\":\"2\",\"f\":\"ab\"}\n{not json\n") }},
		{name: "bad-serial", corrupt: func(s *quillv1.LedgerSegment) { s.Spec.Data = gzipOf(t, "{\"s\":\"xyz\",\"f\":\"ab\"}\n") }},
		{name: "unknown-format", corrupt: func(s *quillv1.LedgerSegment) { s.Spec.Format = "zstd+cbor/v9" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bad := segment(t, quillv1.LedgerStageJournal, "qi.ca.j01", "2", issued(2, "u2"), issued(3, "u3"))
			tt.corrupt(bad)
			for _, how := range []string{"watch", "list"} {
				ix := NewIndex()
				if how == "watch" {
					mustApply(t, ix, bad, good)
				} else if err := ix.Replace([]any{bad, good}, "3"); err != nil {
					t.Fatalf("a list with a corrupt segment failed: %v", err)
				}
				if ix.CorruptSegments() != 1 || ix.Count(issuerA) != 1 {
					t.Fatalf("%s: %d corrupt, %d records; want 1 corrupt and the good segment's record", how, ix.CorruptSegments(), ix.Count(issuerA))
				}
				if _, ok := ix.Lookup(issuerA, big.NewInt(2)); ok {
					t.Fatalf("%s: an entry of the corrupt segment was applied", how)
				}
				mustApply(t, ix, bad) // seen again: still one
				if ix.CorruptSegments() != 1 || len(ix.Segments(issuerA)) != 2 {
					t.Fatalf("%s: %d corrupt, %d segments after a second delivery", how, ix.CorruptSegments(), len(ix.Segments(issuerA)))
				}
				if err := ix.Delete(bad); err != nil || ix.CorruptSegments() != 0 {
					t.Fatalf("%s: after deleting it, %d corrupt (%v)", how, ix.CorruptSegments(), err)
				}
			}
		})
	}
}

// TestIndexSegmentChanges: subscribers hear of new records and changed
// revocations, not of a record moving from a journal into a sealed
// segment, and one change per issuer for a large segment.
func TestIndexSegmentChanges(t *testing.T) {
	t.Parallel()
	ix := NewIndex()
	var got []Change
	ix.Subscribe(func(c Change) { got = append(got, c) })
	mustApply(t, ix, segment(t, quillv1.LedgerStageJournal, "qi.ca.j01", "1", issued(1, "u1"), issued(2, "u2")))
	if len(got) != 2 || got[0].Serial.Int64() != 1 || got[0].RevocationChanged {
		t.Fatalf("a journal of two entries reported %+v", got)
	}
	got = nil
	mustApply(t, ix, segment(t, quillv1.LedgerStageSealed, "qi.ca.s01", "2", issued(1, "u1"), issued(2, "u2")))
	if len(got) != 0 {
		t.Fatalf("sealing reported %+v; nothing a subscriber sees changed", got)
	}
	mustApply(t, ix, segment(t, quillv1.LedgerStageJournal, "qi.ca.j02", "3", revocationLine(2, quillv1.ReasonKeyCompromise, 9)))
	if len(got) != 1 || got[0].Serial.Int64() != 2 || !got[0].RevocationChanged {
		t.Fatalf("a revocation reported %+v", got)
	}
	got = nil
	var many []Entry
	for i := range maxSerialChanges + 1 {
		many = append(many, issued(int64(100+i), fmt.Sprint("m", i)))
	}
	many = append(many, revocationLine(1, quillv1.ReasonKeyCompromise, 9))
	mustApply(t, ix, segment(t, quillv1.LedgerStageJournal, "qi.ca.j03", "4", many...))
	if len(got) != 1 || got[0].Serial != nil || got[0].Issuer != issuerA || !got[0].RevocationChanged {
		t.Fatalf("a large segment reported %d changes (%+v); want one for the issuer", len(got), got)
	}
}

// TestIndexSegmentsInfo: Segments describes k's segments from their specs
// without their data.
func TestIndexSegmentsInfo(t *testing.T) {
	t.Parallel()
	ix := NewIndex()
	s := segment(t, quillv1.LedgerStageSealed, "qi.ca.s01", "1", issued(1, "u1"), revocationLine(9, quillv1.ReasonKeyCompromise, 1))
	mustApply(t, ix, s, segment(t, quillv1.LedgerStageJournal, "qi.ca.j01", "2", issued(2, "u2")))
	got := ix.Segments(issuerA)
	want := SegmentInfo{Name: "qi.ca.s01", Namespace: "team-a", Stage: quillv1.LedgerStageSealed, ExpiresAfter: s.Spec.ExpiresAfter.Time,
		Entries: 1, Revocations: 1, Created: t0}
	if len(got) != 2 || got[0].Name != "qi.ca.j01" || fmt.Sprint(got[1]) != fmt.Sprint(want) {
		t.Fatalf("Segments = %+v; want the journal, then %+v", got, want)
	}
	if len(ix.Segments(issuerB)) != 0 {
		t.Error("another issuer has segments")
	}
}

func gzipOf(t testing.TB, text string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestIndexSealedDeletionRemovesAll: deleting a sealed segment removes
// every record it holds, wherever they sit among other segments' records.
func TestIndexSealedDeletionRemovesAll(t *testing.T) {
	t.Parallel()
	var all []Entry
	for i := int64(1); i <= 5; i++ {
		all = append(all, issued(i, fmt.Sprint("u", i)))
	}
	odd := segment(t, quillv1.LedgerStageSealed, "qi.ca.s01", "2", all[0], all[2], all[4])
	even := segment(t, quillv1.LedgerStageSealed, "qi.ca.s02", "3", all[1], all[3])
	ix := NewIndex()
	mustApply(t, ix, segment(t, quillv1.LedgerStageJournal, "qi.ca.j01", "1", all...), odd, even)
	if err := ix.Delete(odd); err != nil {
		t.Fatal(err)
	}
	if got := serials(ix.ForCertificate(issuerA, "team-a", "app")); got != "2,4" {
		t.Fatalf("after deleting the odd serials' segment: %s, want 2,4", got)
	}
	if err := ix.Delete(even); err != nil {
		t.Fatal(err)
	}
	if n := ix.Count(issuerA); n != 0 {
		t.Fatalf("%d records after deleting both sealed segments", n)
	}
}

// TestIndexManyRecords crosses chunk boundaries and reuses freed slots.
func TestIndexManyRecords(t *testing.T) {
	t.Parallel()
	batch := func(name string, from, n int64) *quillv1.LedgerSegment {
		var es []Entry
		for i := from; i < from+n; i++ {
			es = append(es, issued(i, fmt.Sprint("u", i)))
		}
		return segment(t, quillv1.LedgerStageSealed, name, "1", es...)
	}
	ix := NewIndex()
	middle := batch("qi.ca.s02", 1500, 1500)
	mustApply(t, ix, batch("qi.ca.s01", 0, 1500), middle, batch("qi.ca.s03", 3000, 1500))
	if err := ix.Delete(middle); err != nil {
		t.Fatal(err)
	}
	mustApply(t, ix, batch("qi.ca.s04", 10_000, 1000))
	if n := ix.Count(issuerA); n != 4000 {
		t.Fatalf("count %d, want 4000", n)
	}
	for i := int64(0); i < 11_000; i++ {
		want := i < 1500 || 3000 <= i && i < 4500 || i >= 10_000
		r, ok := ix.ByRequest(issuerA, types.UID(fmt.Sprint("u", i)))
		if ok != want || ok && r.Serial.Int64() != i {
			t.Fatalf("request u%d: found %v (serial %v), want %v", i, ok, r.Serial, want)
		}
		if _, ok := ix.Lookup(issuerA, big.NewInt(i)); ok != want {
			t.Fatalf("serial %d: found %v, want %v", i, ok, want)
		}
	}
	if got := len(ix.ForCertificate(issuerA, "team-a", "app")); got != 4000 {
		t.Fatalf("ForCertificate lists %d, want 4000", got)
	}
}

func TestDerivedEntryName(t *testing.T) {
	t.Parallel()
	long := quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: strings.Repeat("x", 250)}
	for _, k := range []quillv1.IssuerID{issuerA, issuerB, long} {
		for _, s := range []*big.Int{big.NewInt(0), big.NewInt(0xabc), new(big.Int).Lsh(big.NewInt(1), 159)} {
			key, _ := keyOf(s)
			if got, want := derivedEntryName(k, &key), EntryName(k, s); got != want {
				t.Errorf("derivedEntryName(%s, %x) = %s, want %s", k.Name[:2], s, got, want)
			}
		}
	}
}

// TestIndexIgnoresForeignLedgerObjects: a segment or IssuedCertificate is
// believed only in its issuer's home namespace. Someone who may write
// ledger objects in their own namespace must not revoke, or vouch for, a
// certificate of another namespace's issuer or of a cluster issuer.
func TestIndexIgnoresForeignLedgerObjects(t *testing.T) {
	t.Parallel()
	cluster := quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "root"}
	forge := func(k quillv1.IssuerID, namespace string, e Entry) *quillv1.LedgerSegment {
		seg, err := NewSegment(k, namespace, quillv1.LedgerStageSealed, t0, []Entry{e})
		if err != nil {
			t.Fatal(err)
		}
		seg.ResourceVersion = "5"
		return seg
	}
	tests := []struct {
		name   string
		issuer quillv1.IssuerID
		ns     string
		want   bool
	}{
		{name: "issuer-in-its-namespace", issuer: issuerA, ns: "team-a", want: true},
		{name: "issuer-from-another-namespace", issuer: issuerA, ns: "team-b"},
		{name: "cluster-issuer-in-cluster-resource-namespace", issuer: cluster, ns: "quill-system", want: true},
		{name: "cluster-issuer-from-a-team-namespace", issuer: cluster, ns: "team-b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ix := NewIndex()
			ix.SetClusterResourceNamespace("quill-system")
			mustApply(t, ix, forge(tc.issuer, tc.ns, issued(7, "u7")))
			// A forged revocation of a serial the index does know.
			if tc.want {
				mustApply(t, ix, forge(tc.issuer, "team-b", revocationLine(7, quillv1.ReasonKeyCompromise, t0.Unix())))
			}
			rec, ok := ix.Lookup(tc.issuer, big.NewInt(7))
			if ok != tc.want {
				t.Fatalf("record known = %v; want %v", ok, tc.want)
			}
			if ok && rec.Revoked {
				t.Error("a revocation line from another namespace revoked the certificate")
			}
			if !tc.want && ix.ForeignObjects() != 1 {
				t.Errorf("ForeignObjects = %d; want 1", ix.ForeignObjects())
			}
		})
	}
}

// TestIndexPendingRevocationFollowsMerge: a revocation line whose entry the
// index has not seen, copied by a merge into a new sealed segment, survives
// the deletion of the segment it was copied from.
func TestIndexPendingRevocationFollowsMerge(t *testing.T) {
	t.Parallel()
	ix := NewIndex()
	small := segment(t, quillv1.LedgerStageSealed, "qi.ca.s01", "1", revocationLine(9, quillv1.ReasonKeyCompromise, 5))
	merged := segment(t, quillv1.LedgerStageSealed, "qi.ca.s02", "2", revocationLine(9, quillv1.ReasonKeyCompromise, 5))
	mustApply(t, ix, small, merged)
	if err := ix.Delete(small); err != nil {
		t.Fatal(err)
	}
	mustApply(t, ix, segment(t, quillv1.LedgerStageSealed, "qi.ca.s03", "3", issued(9, "u9")))
	if rec, ok := ix.Lookup(issuerA, big.NewInt(9)); !ok || !rec.Revoked {
		t.Errorf("record %+v (found %v); want serial 9 revoked by the merged segment's line", rec, ok)
	}
}
