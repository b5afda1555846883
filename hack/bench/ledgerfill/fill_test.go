package ledgerfill

import (
	"context"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
)

// memArchive keeps appended segments in memory.
type memArchive struct {
	mu       sync.Mutex
	segments map[string][]ledger.Entry
}

func (a *memArchive) Append(_ quillv1.IssuerID, segment string, entries []ledger.Entry) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.segments[segment] = entries
	return nil
}

func TestFill(t *testing.T) {
	t.Parallel()
	ca, err := NewCA("ledgerfill test CA", time.Now().Add(-48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	k := quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "fill"}
	tests := []struct {
		name                           string
		format                         Format
		n, archiveN                    int
		wantObjects, wantLive, wantArc int
	}{
		{name: "segments-split-at-2000", format: FormatSegments, n: 4500, wantObjects: 3, wantLive: 4500},
		{name: "segments-with-archive", format: FormatSegments, n: 4500, archiveN: 2500, wantObjects: 1, wantLive: 2000, wantArc: 2500},
		{name: "legacy-one-object-each", format: FormatLegacy, n: 150, wantObjects: 150, wantLive: 150},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			scheme := runtime.NewScheme()
			if err := quillv1.AddToScheme(scheme); err != nil {
				t.Fatal(err)
			}
			c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&quillv1.IssuedCertificate{}).Build()
			arc := &memArchive{segments: map[string][]ledger.Entry{}}
			res, err := Fill(context.Background(), c, Spec{Issuer: k, Home: "quill-system", Authority: ca.Authority, Format: tt.format,
				N: tt.n, IssuedFrom: time.Now().Add(-time.Hour), IssuedSpan: time.Hour, Lifetime: time.Hour,
				RevokedPercent: 3, Archive: arc, ArchiveN: tt.archiveN})
			if err != nil {
				t.Fatal(err)
			}
			if res.Objects != tt.wantObjects || res.Live != tt.wantLive || res.Archived != tt.wantArc {
				t.Errorf("objects %d, live %d, archived %d; want %d, %d, %d", res.Objects, res.Live, res.Archived, tt.wantObjects, tt.wantLive, tt.wantArc)
			}
			if want := tt.n / 33; res.Revoked < want-1 || res.Revoked > want+1 {
				t.Errorf("%d revoked of %d; want about %d", res.Revoked, tt.n, want)
			}
			if res.RevokedCert == nil {
				t.Error("no revoked live certificate")
			}
			if tt.format == FormatLegacy {
				return
			}
			var segs quillv1.LedgerSegmentList
			if err := c.List(context.Background(), &segs, client.InNamespace("quill-system")); err != nil {
				t.Fatal(err)
			}
			revoked, seen := 0, map[string]bool{}
			for i := range segs.Items {
				seg := &segs.Items[i]
				if seg.Spec.Stage != quillv1.LedgerStageSealed || seg.Spec.Certificates != 0 {
					t.Errorf("segment %s: stage %s, %d certificates", seg.Name, seg.Spec.Stage, seg.Spec.Certificates)
				}
				if err := ledger.SegmentEntries(seg, func(e *ledger.Entry) error {
					if len(e.Certificate) > 0 {
						t.Errorf("entry %s keeps its DER", e.Serial)
					}
					if e.Revocation != nil {
						revoked++
					}
					seen[e.Serial] = true
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			for _, entries := range arc.segments {
				for _, e := range entries {
					seen[e.Serial] = true
				}
			}
			if revoked != res.RevokedLive || len(seen) != tt.n {
				t.Errorf("%d revoked in segments (result %d), %d distinct serials of %d", revoked, res.RevokedLive, len(seen), tt.n)
			}
		})
	}
}

// benchFiller is a filler of n entries with a CA of its own, issuing from
// now.
func benchFiller(b *testing.B, n int) *filler {
	b.Helper()
	ca, err := NewCA("ledgerfill bench CA", time.Now().Add(-time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	csrs, err := benchCSRs()
	if err != nil {
		b.Fatal(err)
	}
	return &filler{spec: Spec{Authority: ca.Authority, N: n, IssuedFrom: time.Now(), Lifetime: time.Hour}, csrs: csrs}
}

func BenchmarkSignEntry(b *testing.B) {
	f := benchFiller(b, b.N)
	for i := 0; b.Loop(); i++ {
		cert, at, origin, err := f.sign(i)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ledger.EntryOf(cert, at, origin); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeSegment(b *testing.B) {
	f := benchFiller(b, 2000)
	entries := make([]ledger.Entry, 0, 2000)
	for i := range 2000 {
		cert, at, origin, err := f.sign(i)
		if err != nil {
			b.Fatal(err)
		}
		e, err := ledger.EntryOf(cert, at, origin)
		if err != nil {
			b.Fatal(err)
		}
		e.Certificate = nil
		entries = append(entries, e)
	}
	var size int
	for b.Loop() {
		data, err := ledger.EncodeEntries(entries)
		if err != nil {
			b.Fatal(err)
		}
		size = len(data)
	}
	b.ReportMetric(float64(size)/2000, "B/entry")
}
