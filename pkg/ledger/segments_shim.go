package ledger

// TEMPORARY SHIM — the lead deletes this whole file when helper "index"'s
// branch lands with the real (*Index).Segments, (*Index).PutSegment and
// SegmentInfo (LEDGER-SPEC.md). It exists only so that the compactor
// (compact.go, controllers/ledger) builds and is tested before then. It
// remembers the segments handed to PutSegment in a side table keyed by the
// index, and never learns of deletions: the compactor already tolerates a
// stale list (a segment that is gone is skipped), as it must with the
// watch-fed real index.

import (
	"math/big"
	"sort"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// SegmentInfo describes one segment without its data (shim; see the file
// comment).
type SegmentInfo struct {
	Name, Namespace, Stage string
	ExpiresAfter           time.Time
	Entries, Revocations   int32
	Created                time.Time
}

type shimSegment struct {
	issuer quillv1.IssuerID
	info   SegmentInfo
}

var shimSegments = struct {
	sync.Mutex
	byIndex map[*Index]map[string]shimSegment
}{byIndex: map[*Index]map[string]shimSegment{}}

// Segments lists the segments of k that were put into ix (shim).
func (ix *Index) Segments(k quillv1.IssuerID) []SegmentInfo {
	shimSegments.Lock()
	defer shimSegments.Unlock()
	var out []SegmentInfo
	for _, s := range shimSegments.byIndex[ix] {
		if s.issuer == k {
			out = append(out, s.info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// PutSegment records seg and applies its entries to ix (shim): an issued
// entry's record points at the segment unless a Sealed segment already
// holds it; a revocation line revokes a record already present.
func (ix *Index) PutSegment(seg *quillv1.LedgerSegment, entries []Entry) {
	k := seg.Spec.IssuerRef.ID()
	shimSegments.Lock()
	m := shimSegments.byIndex[ix]
	if m == nil {
		m = map[string]shimSegment{}
		shimSegments.byIndex[ix] = m
	}
	created := seg.CreationTimestamp.Time
	if created.IsZero() {
		created = time.Now()
	}
	m[seg.Namespace+"/"+seg.Name] = shimSegment{issuer: k, info: SegmentInfo{
		Name: seg.Name, Namespace: seg.Namespace, Stage: seg.Spec.Stage, ExpiresAfter: seg.Spec.ExpiresAfter.Time,
		Entries: seg.Spec.Entries, Revocations: seg.Spec.Revocations, Created: created,
	}}
	shimSegments.Unlock()

	sealed := seg.Spec.Stage == quillv1.LedgerStageSealed
	for i := range entries {
		e := &entries[i]
		serial, ok := e.SerialInt()
		if !ok {
			continue
		}
		prev, had := ix.Lookup(k, serial)
		if e.IsRevocationLine() {
			if had && e.Revocation != nil && (!prev.Revoked || e.Revocation.Wins(shimRevocation(prev))) {
				prev.Revoked, prev.RevokedAt = true, time.Unix(e.Revocation.At, 0)
				prev.Reason = quillv1.RevocationReasonCodes[e.Revocation.Reason]
				ix.Put(prev)
			}
			continue
		}
		if had && !prev.Legacy && isSealedSegmentName(prev.Segment) && !sealed {
			continue // a Sealed segment wins over a Journal
		}
		r := shimRecordOf(k, seg, e, serial)
		if had && prev.Revoked && !r.Revoked {
			r.Revoked, r.RevokedAt, r.Reason = true, prev.RevokedAt, prev.Reason
		}
		ix.Put(r)
	}
}

func shimRevocation(r Record) *EntryRevocation {
	return &EntryRevocation{Reason: reasonOfCode(r.Reason), At: r.RevokedAt.Unix()}
}

func shimRecordOf(k quillv1.IssuerID, seg *quillv1.LedgerSegment, e *Entry, serial *big.Int) Record {
	r := Record{
		Segment: seg.Name, Namespace: seg.Namespace, HasCertificate: len(e.Certificate) > 0,
		Issuer: k, Serial: serial, IssuedAt: time.UnixMicro(e.IssuedAt), NotBefore: time.Unix(e.NotBefore, 0),
		NotAfter: time.Unix(e.NotAfter, 0), KeyAlgorithm: e.KeyAlgorithm, Template: e.Template,
		NoRevocationAvailable: e.NoRevAvail, SignatureAlgorithm: e.SignatureAlgorithm,
	}
	if o := e.Origin; o != nil {
		r.RequestUID, r.OriginKind, r.RequestName = types.UID(o.UID), o.Kind, o.Name
		r.OriginNamespace, r.Certificate = o.Namespace, o.Certificate
	}
	if rv := e.Revocation; rv != nil {
		r.Revoked, r.RevokedAt, r.Reason = true, time.Unix(rv.At, 0), quillv1.RevocationReasonCodes[rv.Reason]
	}
	return r
}
