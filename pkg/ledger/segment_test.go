package ledger

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// fullEntry sets every field of an issued entry.
func fullEntry() Entry {
	return Entry{
		Serial: "7e57a11", Fingerprint: strings.Repeat("ab", 32), IssuedAt: t0.UnixMicro() + 7, NotBefore: t0.Unix(), NotAfter: t0.Unix() + 3600,
		KeyAlgorithm: "ML-DSA-65", SignatureAlgorithm: "ML-DSA-65", Subject: "CN=a <b> & c", DNSNames: []string{"a.test", "b.test"},
		IPAddresses: []string{"10.0.0.1"}, URIs: []string{"spiffe://t/a"}, EmailAddresses: []string{"a@test"},
		OtherNames: []EntryOtherName{{TypeID: "1.3.6.1.4.1.311.20.2.3", Value: "a@team"}}, IsCA: true, NoRevAvail: true,
		Origin:    &EntryOrigin{Kind: quillv1.OriginKindCertificateRequest, Namespace: "team-a", Name: "r", UID: "u", Certificate: "app"},
		Requester: "alice", Template: "server", Revocation: &EntryRevocation{Reason: quillv1.ReasonKeyCompromise, At: 9, By: "superseded"},
		Extra: map[string]string{"k": "v"}, Certificate: []byte{0x30, 0x82, 0x01},
	}
}

func decodeAll(data []byte) ([]Entry, error) {
	var out []Entry
	err := DecodeEntries(data, func(e *Entry) error {
		out = append(out, *e)
		return nil
	})
	return out, err
}

func TestEntriesRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		entries []Entry
	}{
		{name: "none"},
		{name: "issued-entry-with-every-field", entries: []Entry{fullEntry()}},
		{name: "entry-and-revocation-line", entries: []Entry{issued(1, "u1"), revocationLine(1, quillv1.ReasonSuperseded, 5)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data, err := EncodeEntries(tt.entries)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeAll(data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.entries) {
				t.Fatalf("decoded\n%+v\nwant\n%+v", got, tt.entries)
			}
		})
	}
}

// TestDecodeEntriesKeepsEachEntry: fn may keep the entries it is given.
func TestDecodeEntriesKeepsEachEntry(t *testing.T) {
	t.Parallel()
	data, _ := EncodeEntries([]Entry{issued(1, "u1"), issued(2, "u2")})
	var kept []*Entry
	if err := DecodeEntries(data, func(e *Entry) error { kept = append(kept, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(kept) != 2 || kept[0].Serial != "1" || kept[1].Serial != "2" || kept[0].Origin.UID != "u1" {
		t.Fatalf("kept entries %+v, %+v", kept[0], kept[1])
	}
}

func TestDecodeEntriesStopsAtFnError(t *testing.T) {
	t.Parallel()
	data, _ := EncodeEntries([]Entry{issued(1, "u1"), issued(2, "u2")})
	stop := errors.New("enough")
	calls := 0
	err := DecodeEntries(data, func(*Entry) error { calls++; return stop })
	if err != stop || calls != 1 { //nolint:errorlint // returned as is, by contract
		t.Fatalf("err %v after %d calls; want fn's own error after one", err, calls)
	}
}

func TestDecodeEntriesCorrupt(t *testing.T) {
	t.Parallel()
	good, _ := EncodeEntries([]Entry{issued(1, "u1")})
	tests := []struct {
		name string
		data []byte
	}{
		{name: "empty", data: nil},
		{name: "not-gzip", data: []byte(`{"s":"1","f":"ab"}`)},
		{name: "truncated", data: good[:len(good)/2]},
		{name: "bad-checksum", data: append(append([]byte{}, good[:len(good)-8]...), 0, 0, 0, 0, 0, 0, 0, 0)},
		{name: "bad-json", data: gzipOf(t, "{\"s\":\"1\",\"f\":\"ab\"}\n{\"s\":\n")},
		{name: "wrong-type", data: gzipOf(t, "{\"s\":1}\n")},
		{name: "no-serial", data: gzipOf(t, "{\"f\":\"ab\"}\n")},
		{name: "serial-too-long", data: gzipOf(t, "{\"s\":\""+strings.Repeat("1", 41)+"\"}\n")},
		{name: "serial-not-hex", data: gzipOf(t, "{\"s\":\"xyz\"}\n")},
		{name: "line-over-1mib", data: gzipOf(t, "{\"s\":\"1\",\"sub\":\""+strings.Repeat("a", 1<<20)+"\"}\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := decodeAll(tt.data); !errors.Is(err, ErrCorruptSegment) {
				t.Fatalf("DecodeEntries: %v; want ErrCorruptSegment", err)
			}
		})
	}
}

// TestEntrySerialIsCanonical: a line's serial must be spelled as
// SerialHex spells it. The index keys serials by value, but ReadEntry and
// every reader compare spellings: an entry spelled otherwise would be in
// the index and never found in its segment.
func TestEntrySerialIsCanonical(t *testing.T) {
	t.Parallel()
	tests := []struct {
		serial string
		ok     bool
	}{
		{serial: "0", ok: true},
		{serial: "7e57", ok: true},
		{serial: strings.Repeat("f", 40), ok: true},
		{serial: "7E57"},
		{serial: "07e57"},
		{serial: "-7e57"},
		{serial: "+7e57"},
		{serial: "7e_57"},
		{serial: ""},
	}
	for _, tt := range tests {
		t.Run("serial-"+strings.NewReplacer("-", "minus", "+", "plus", "_", "underscore").Replace(tt.serial), func(t *testing.T) {
			t.Parallel()
			e := Entry{Serial: tt.serial}
			if _, ok := e.SerialInt(); ok != tt.ok {
				t.Fatalf("SerialInt(%q) ok = %v, want %v", tt.serial, ok, tt.ok)
			}
			_, err := decodeAll(gzipOf(t, `{"s":"`+tt.serial+`","f":"ab"}`+"\n"))
			if (err == nil) != tt.ok {
				t.Fatalf("decoding a line with serial %q: %v", tt.serial, err)
			}
		})
	}
}

// TestDecodeEntriesBound: a segment that decompresses to more than 64 MiB
// is refused, however small it is compressed.
func TestDecodeEntriesBound(t *testing.T) {
	t.Parallel()
	line := `{"s":"1","f":"ab"}` + "\n"
	for _, tt := range []struct {
		name     string
		newlines int
		ok       bool
	}{
		{name: "at-the-bound", newlines: maxDecodedSegment - len(line), ok: true},
		{name: "one-byte-over", newlines: maxDecodedSegment - len(line) + 1},
		{name: "far-over", newlines: 2 * maxDecodedSegment},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data := gzipPadded(t, line, tt.newlines)
			if len(data) > 1<<20 {
				t.Fatalf("the test's segment is %d bytes compressed; it should be small", len(data))
			}
			n := 0
			err := DecodeEntries(data, func(*Entry) error { n++; return nil })
			if tt.ok && (err != nil || n != 1) {
				t.Fatalf("%d entries, %v; want the one entry", n, err)
			}
			if !tt.ok && (!errors.Is(err, ErrCorruptSegment) || !strings.Contains(err.Error(), "more than")) {
				t.Fatalf("%v; want ErrCorruptSegment for its size", err)
			}
		})
	}
}

// gzipPadded compresses text followed by n newlines, without holding them.
func gzipPadded(t *testing.T, text string, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	_, _ = zw.Write([]byte(text))
	chunk := bytes.Repeat([]byte("\n"), 1<<16)
	for n > 0 {
		m := min(n, len(chunk))
		if _, err := zw.Write(chunk[:m]); err != nil {
			t.Fatal(err)
		}
		n -= m
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDecodeEntriesFromMultistream: an archive file may be several gzip
// members appended one after another.
func TestDecodeEntriesFromMultistream(t *testing.T) {
	t.Parallel()
	a, _ := EncodeEntries([]Entry{issued(1, "u1")})
	b, _ := EncodeEntries([]Entry{issued(2, "u2"), issued(3, "u3")})
	var got []string
	if err := DecodeEntriesFrom(bytes.NewReader(append(a, b...)), func(e *Entry) error { got = append(got, e.Serial); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "1,2,3" {
		t.Fatalf("serials %v, want 1,2,3", got)
	}
	if err := DecodeEntriesFrom(strings.NewReader("nope"), func(*Entry) error { return nil }); !errors.Is(err, ErrCorruptSegment) {
		t.Fatalf("not gzip: %v", err)
	}
}

func TestWins(t *testing.T) {
	t.Parallel()
	early := &EntryRevocation{Reason: quillv1.ReasonSuperseded, At: 1}
	late := &EntryRevocation{Reason: quillv1.ReasonKeyCompromise, At: 2}
	sameTimeSmaller := &EntryRevocation{Reason: quillv1.ReasonAffiliationChanged, At: 1}
	tests := []struct {
		name string
		a, b *EntryRevocation
		want bool
	}{
		{name: "earlier-wins", a: early, b: late, want: true},
		{name: "later-loses", a: late, b: early},
		{name: "same-time-smaller-reason-wins", a: sameTimeSmaller, b: early, want: true},
		{name: "same-time-larger-reason-loses", a: early, b: sameTimeSmaller},
		{name: "equal-loses", a: early, b: &EntryRevocation{Reason: quillv1.ReasonSuperseded, At: 1}},
		{name: "over-nil", a: late, want: true},
		{name: "nil-loses", b: late},
		{name: "nil-nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.a.Wins(tt.b); got != tt.want {
				t.Fatalf("Wins = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewSegment(t *testing.T) {
	t.Parallel()
	entries := []Entry{issued(2, "u2"), withoutCertificate(issued(1, "u1")), revocationLine(9, quillv1.ReasonKeyCompromise, 3)}
	entries[2].NotAfter = t0.Add(48 * time.Hour).Unix()
	seg, err := NewSegment(issuerB, "quill-system", quillv1.LedgerStageSealed, t0, entries)
	if err != nil {
		t.Fatal(err)
	}
	s := seg.Spec
	if !strings.HasPrefix(seg.Name, "qci.ca.s") || seg.Namespace != "quill-system" || seg.Labels[LabelStage] != quillv1.LedgerStageSealed ||
		seg.Labels[LabelIssuerName] != "ca" || seg.Labels[LabelIssuerKind] != quillv1.ClusterIssuerKind {
		t.Errorf("object meta %+v", seg.ObjectMeta)
	}
	if s.Entries != 2 || s.Revocations != 1 || s.Certificates != 1 || s.Format != quillv1.LedgerFormatGzipJSONLines ||
		!s.ExpiresAfter.Equal(&metav1.Time{Time: t0.Add(48 * time.Hour)}) || s.IssuerRef != issuerB.Ref() {
		t.Errorf("spec %+v", s)
	}
	if s.FirstIssuedAt == nil || s.FirstIssuedAt.UnixMicro() != entries[1].IssuedAt || s.LastIssuedAt.UnixMicro() != entries[0].IssuedAt {
		t.Errorf("issued between %v and %v", s.FirstIssuedAt, s.LastIssuedAt)
	}
	var got []Entry
	if err := SegmentEntries(seg, func(e *Entry) error { got = append(got, *e); return nil }); err != nil || !reflect.DeepEqual(got, entries) {
		t.Fatalf("SegmentEntries: %v\n%+v", err, got)
	}
	seg.Spec.Format = "gzip+jsonl/v2"
	if err := SegmentEntries(seg, func(*Entry) error { return nil }); !errors.Is(err, ErrCorruptSegment) || !strings.Contains(err.Error(), seg.Name) {
		t.Fatalf("an unknown format: %v; want ErrCorruptSegment naming the segment", err)
	}
}

func TestSegmentName(t *testing.T) {
	t.Parallel()
	j, s := SegmentName(issuerA, quillv1.LedgerStageJournal, t0), SegmentName(issuerA, quillv1.LedgerStageSealed, t0)
	if !strings.HasPrefix(j, "qi.ca.j") || !strings.HasPrefix(s, "qi.ca.s") || len(j) != len("qi.ca.j")+16+8 {
		t.Errorf("names %s, %s", j, s)
	}
	if SegmentName(issuerA, quillv1.LedgerStageJournal, t0) == j {
		t.Error("two names for the same instant collide")
	}
	if later := SegmentName(issuerA, quillv1.LedgerStageJournal, t0.Add(time.Nanosecond)); later[:len(later)-8] <= j[:len(j)-8] {
		t.Errorf("%s does not sort after %s", later, j)
	}
	long := quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: strings.Repeat("x", 250)}
	if n := SegmentName(long, quillv1.LedgerStageSealed, t0); len(n) > 253 || !strings.HasPrefix(n, "qci.") {
		t.Errorf("a long issuer's segment is named %s (%d chars)", n, len(n))
	}
}

func TestEntryOfLegacy(t *testing.T) {
	t.Parallel()
	ic := revokedEntry(entry(issuerA, 0x7e57, "u1", "app", t0, t0.Add(time.Hour)), quillv1.ReasonKeyCompromise, t0)
	ic.Spec.Certificate = "-----BEGIN CERTIFICATE-----\nMAM=\n-----END CERTIFICATE-----\n"
	e, err := EntryOfLegacy(ic)
	if err != nil {
		t.Fatal(err)
	}
	if e.Serial != "7e57" || !bytes.Equal(e.Certificate, []byte{0x30, 0x03}) || e.Revocation == nil || e.Revocation.At != t0.Unix() ||
		e.Origin.Certificate != "app" || e.IssuedAt != t0.UnixMicro() {
		t.Errorf("entry %+v", e)
	}
	// The API's pattern allows leading zeros; the entry spells it canonically.
	ic.Spec.SerialNumber = "007e57"
	if e, err := EntryOfLegacy(ic); err != nil || e.Serial != "7e57" {
		t.Errorf("serial 007e57: %q, %v; want 7e57", e.Serial, err)
	}
	ic.Spec.SerialNumber = "zz"
	if _, err := EntryOfLegacy(ic); !errors.Is(err, ErrCorruptSegment) {
		t.Errorf("an unparsable serial: %v", err)
	}
}

func TestReadEntry(t *testing.T) {
	t.Parallel()
	scheme := runtime.NewScheme()
	if err := quillv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	seg := segment(t, quillv1.LedgerStageJournal, "qi.ca.j01", "", issued(1, "u1"), revocationLine(2, quillv1.ReasonKeyCompromise, 1))
	seg.ResourceVersion = ""
	ic := entry(issuerA, 3, "u3", "", t0, t0.Add(time.Hour))
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(seg, ic).Build()
	ctx := context.Background()
	rec := func(serial int64, name string, legacy bool) Record {
		return Record{Segment: name, Namespace: "home", Legacy: legacy, Serial: big.NewInt(serial)}
	}
	if e, err := ReadEntry(ctx, c, rec(1, seg.Name, false)); err != nil || e.Origin.UID != "u1" || len(e.Certificate) == 0 {
		t.Errorf("entry 1: %+v, %v", e, err)
	}
	if e, err := ReadEntry(ctx, c, rec(3, ic.Name, true)); err != nil || e.Serial != "3" {
		t.Errorf("legacy entry 3: %+v, %v", e, err)
	}
	for _, gone := range []Record{rec(2, seg.Name, false), rec(4, seg.Name, false), rec(1, "qi.ca.j02", false), rec(5, "qi.ca.x", true)} {
		if _, err := ReadEntry(ctx, c, gone); !errors.Is(err, ErrEntryGone) {
			t.Errorf("serial %v in %s: %v; want ErrEntryGone", gone.Serial, gone.Segment, err)
		}
	}
}
