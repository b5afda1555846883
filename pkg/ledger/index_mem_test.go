package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"runtime"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// memRecords is the ledger's design size per issuer.
const memRecords = 100_000

// memEntry is the i-th entry of a realistic ledger of issuerA: 20-byte
// serials, UUID request UIDs, cert-manager request names, 30,000
// Certificates in 20 namespaces, 3% revoked.
func memEntry(i int) Entry {
	sum := sha256.Sum256([]byte(fmt.Sprint("serial", i)))
	sum[0] &= 0x7f
	uid := hex.EncodeToString(sum[20:])
	uid = uid[:8] + "-" + uid[8:12] + "-" + uid[12:16] + "-" + uid[16:20] + "-" + hex.EncodeToString(sum[8:14])
	cert := fmt.Sprintf("app-%d", i%30_000)
	issued := t0.Add(time.Duration(i) * time.Second)
	e := Entry{
		Serial: SerialHex(new(big.Int).SetBytes(sum[:20])), Fingerprint: hex.EncodeToString(sum[:]),
		IssuedAt: issued.UnixMicro(), NotBefore: issued.Unix(), NotAfter: issued.Add(90 * 24 * time.Hour).Unix(),
		KeyAlgorithm: "ECDSA-P256", SignatureAlgorithm: "ECDSA-SHA256",
		Origin: &EntryOrigin{
			Kind: quillv1.OriginKindCertificateRequest, Namespace: fmt.Sprintf("team-%d", i%20),
			Name: fmt.Sprintf("%s-%d", cert, i/30_000+1), UID: uid, Certificate: cert,
		},
	}
	if i%33 == 0 {
		e.Revocation = &EntryRevocation{Reason: quillv1.ReasonSuperseded, At: issued.Add(time.Hour).Unix()}
	}
	return e
}

// heapBytesPerRecord runs load, which must leave n records in ix, and
// reports the heap it retains per record after garbage collection.
func heapBytesPerRecord(b *testing.B, n int, load func() *Index) {
	b.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ix := load()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if got := ix.Count(issuerA); got != n {
		b.Fatalf("index holds %d records, want %d", got, n)
	}
	for b.Loop() { // the load is measured once, not per iteration
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "heap-bytes/record")
	b.ReportMetric(0, "ns/op")
	runtime.KeepAlive(ix)
}

// BenchmarkIndexMemory measures what the index retains per record at the
// design size, loaded as Run loads it: sealed segments of 2000 entries,
// each decoded, applied and dropped; and a ledger not migrated yet, one
// IssuedCertificate per record.
//
//	go test -run '^$' -bench IndexMemory -benchtime 1x ./pkg/ledger/
func BenchmarkIndexMemory(b *testing.B) {
	b.Run("segments", func(b *testing.B) {
		heapBytesPerRecord(b, memRecords, func() *Index { return loadSegments(b) })
	})
	b.Run("issued-certificates", func(b *testing.B) {
		heapBytesPerRecord(b, memRecords, func() *Index {
			ix := NewIndex()
			const page = 500
			list := make([]any, 0, page)
			fresh := newStore()
			for i := range memRecords {
				list = append(list, legacyOf(issuerA, memEntry(i)))
				if len(list) == page || i == memRecords-1 {
					for _, o := range list {
						_ = fresh.load(o, logr.Discard())
					}
					list = list[:0]
				}
			}
			ix.replace(fresh, "1", "1")
			return ix
		})
	})
}

// loadSegments loads memRecords entries as Run does: sealed segments of
// 2000, each decoded, applied and dropped.
func loadSegments(b *testing.B) *Index {
	ix, fresh := NewIndex(), newStore()
	for start := 0; start < memRecords; start += 2000 {
		entries := make([]Entry, 0, 2000)
		for i := start; i < start+2000; i++ {
			entries = append(entries, memEntry(i))
		}
		seg, err := NewSegment(issuerA, "home", quillv1.LedgerStageSealed, t0, entries)
		if err != nil {
			b.Fatal(err)
		}
		if err := fresh.load(seg, logr.Discard()); err != nil {
			b.Fatal(err)
		}
	}
	ix.replace(fresh, "1", "1")
	return ix
}

// BenchmarkIndexLookup is OCSP's and a retried request's question at the
// design size: a serial's record, and a request's.
//
//	go test -run '^$' -bench IndexLookup ./pkg/ledger/
func BenchmarkIndexLookup(b *testing.B) {
	ix := loadSegments(b)
	e := memEntry(memRecords / 2)
	serial, _ := e.SerialInt()
	uid := types.UID(e.Origin.UID)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := ix.Lookup(issuerA, serial); !ok {
				b.Fatal("not found")
			}
		}
	})
	b.Run("request", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := ix.ByRequest(issuerA, uid); !ok {
				b.Fatal("not found")
			}
		}
	})
}

// legacyOf is the IssuedCertificate an older Quill wrote for e.
func legacyOf(k quillv1.IssuerID, e Entry) *quillv1.IssuedCertificate {
	serial, _ := e.SerialInt()
	ic := &quillv1.IssuedCertificate{
		ObjectMeta: metav1.ObjectMeta{Name: EntryName(k, serial), Namespace: "home"},
		Spec: quillv1.IssuedCertificateSpec{
			IssuerRef: k.Ref(), SerialNumber: e.Serial, SHA256Fingerprint: e.Fingerprint,
			IssuedAt: metav1.NewMicroTime(time.UnixMicro(e.IssuedAt)), NotBefore: metav1.NewTime(time.Unix(e.NotBefore, 0)),
			NotAfter: metav1.NewTime(time.Unix(e.NotAfter, 0)), KeyAlgorithm: e.KeyAlgorithm, SignatureAlgorithm: e.SignatureAlgorithm,
			Origin: quillv1.LedgerOrigin{Kind: e.Origin.Kind, Namespace: e.Origin.Namespace, Name: e.Origin.Name, UID: e.Origin.UID, Certificate: e.Origin.Certificate},
		},
	}
	if r := e.Revocation; r != nil {
		ic.Status.Revocation = &quillv1.RevocationRecord{Reason: r.Reason, RevokedAt: metav1.NewTime(time.Unix(r.At, 0)), By: "test"}
	}
	return ic
}
