package integration

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/test/harness"
)

// listCounter counts the list requests the index makes and the page size
// each asked for.
type listCounter struct {
	client.WithWatch
	mu     sync.Mutex
	limits []int64
}

func (c *listCounter) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	o := &client.ListOptions{}
	o.ApplyOptions(opts)
	c.mu.Lock()
	c.limits = append(c.limits, o.AsListOptions().Limit)
	c.mu.Unlock()
	return c.WithWatch.List(ctx, list, opts...)
}

// TestLedgerIndexLoadsInPages checks that the ledger index reads the ledger
// page by page from the real API server, both its LedgerSegments and the
// IssuedCertificates of a ledger not migrated yet (so its start-up peak is
// one page, not the whole ledger decoded at once), skips a corrupt segment,
// is synced only once every page is in, and then follows revocations,
// migrations and deletions through its watches.
func TestLedgerIndexLoadsInPages(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ctx := t.Context()
	const n = 1203    // IssuedCertificates: three pages of 500
	const nSeg = 1800 // segment entries: 18 sealed segments of 100, two pages of 16
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: ns, Name: "paged"}

	now := time.Now()
	sign := leafSigner(t, "paged", now)
	origin := func(i int) ledger.Origin {
		return ledger.Origin{Kind: quillv1.OriginKindCertificateRequest, Namespace: ns, Name: fmt.Sprintf("r%d", i), UID: types.UID(fmt.Sprintf("uid-%d", i))}
	}
	entries := make([]*quillv1.IssuedCertificate, n)
	var wg sync.WaitGroup
	errs := make(chan error, n+nSeg)
	sem := make(chan struct{}, 16)
	create := func(o client.Object) {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := env.Client.Create(ctx, o); err != nil {
				errs <- err
			}
		})
	}
	for i := range n {
		e, err := ledger.NewEntry(k, ns, sign(), now, origin(i))
		if err != nil {
			t.Fatal(err)
		}
		entries[i] = e
		create(e)
	}
	segEntries := make([]ledger.Entry, nSeg)
	for i := range nSeg {
		var err error
		if segEntries[i], err = ledger.EntryOf(sign(), now, origin(n+i)); err != nil {
			t.Fatal(err)
		}
	}
	sealed := make([]*quillv1.LedgerSegment, 0, nSeg/100)
	for i := 0; i < nSeg; i += 100 {
		seg, err := ledger.NewSegment(k, ns, quillv1.LedgerStageSealed, now, segEntries[i:i+100])
		if err != nil {
			t.Fatal(err)
		}
		sealed = append(sealed, seg)
		create(seg)
	}
	corrupt, err := ledger.NewSegment(k, ns, quillv1.LedgerStageJournal, now, segEntries[:1])
	if err != nil {
		t.Fatal(err)
	}
	corrupt.Spec.Data = []byte("not gzip")
	create(corrupt)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	lc := &listCounter{WithWatch: mustWatchClient(t)}
	ix := ledger.NewIndex()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = ix.Run(runCtx, lc) }()
	t.Cleanup(func() { stop(); <-done })

	harness.Eventually(t, "the index to sync", time.Minute, func() (bool, error) { return ix.Synced(), nil })
	if got := ix.Count(k); got != n+nSeg {
		t.Fatalf("index holds %d records of the issuer after sync; want %d", got, n+nSeg)
	}
	if got := ix.CorruptSegments(); got != 1 {
		t.Fatalf("%d corrupt segments counted; want the one", got)
	}
	if got := len(ix.Segments(k)); got != len(sealed)+1 {
		t.Fatalf("%d segments described; want %d", got, len(sealed)+1)
	}
	lc.mu.Lock()
	limits := append([]int64(nil), lc.limits...)
	lc.mu.Unlock()
	if len(limits) < 3+2 {
		t.Fatalf("the index listed the ledger in %d requests %v; want pages of at most 500 (at least 3 for %d records, 2 for %d segments)", len(limits), limits, n, len(sealed)+1)
	}
	for _, l := range limits {
		if l <= 0 || l > 500 {
			t.Fatalf("list page sizes %v; want every page limited to 1..500", limits)
		}
	}

	// Changes after the list arrive through the watches: a legacy
	// revocation and deletion, a journal's revocation line, a record
	// migrated into a sealed segment (its IssuedCertificate deleted after),
	// and a sealed segment deleted with what it holds.
	revoked := entries[7].DeepCopy()
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(revoked), revoked); err != nil {
		t.Fatal(err)
	}
	revoked.Status.Revocation = &quillv1.RevocationRecord{Reason: quillv1.ReasonKeyCompromise, RevokedAt: metav1.Now(), By: "test"}
	if err := env.Client.Status().Update(ctx, revoked); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, entries[8]); err != nil {
		t.Fatal(err)
	}
	revokeLine := ledger.Entry{Serial: segEntries[5].Serial, NotAfter: segEntries[5].NotAfter,
		Revocation: &ledger.EntryRevocation{Reason: quillv1.ReasonSuperseded, At: now.Unix(), By: "test"}}
	journal, err := ledger.NewSegment(k, ns, quillv1.LedgerStageJournal, now, []ledger.Entry{revokeLine})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, journal); err != nil {
		t.Fatal(err)
	}
	migratedEntry, err := ledger.EntryOfLegacy(entries[9])
	if err != nil {
		t.Fatal(err)
	}
	migrated, err := ledger.NewSegment(k, ns, quillv1.LedgerStageSealed, now, []ledger.Entry{migratedEntry})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, migrated); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, entries[9]); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, sealed[len(sealed)-1]); err != nil {
		t.Fatal(err)
	}
	serial7, _ := ledgerSerial(entries[7])
	serial9, _ := ledgerSerial(entries[9])
	serial5, _ := segEntries[5].SerialInt()
	harness.Eventually(t, "the watches to deliver revocations, a migration and deletions", time.Minute, func() (bool, error) {
		r7, ok7 := ix.Lookup(k, serial7)
		r5, ok5 := ix.Lookup(k, serial5)
		return ok7 && r7.Revoked && ok5 && r5.Revoked && ix.Count(k) == n+nSeg-1-100, nil
	})
	if r, ok := ix.Lookup(k, serial9); !ok || r.Segment != migrated.Name || r.Legacy {
		t.Fatalf("the migrated record: found %v, in %s (legacy %v); want it in its sealed segment", ok, r.Segment, r.Legacy)
	}
}

func ledgerSerial(e *quillv1.IssuedCertificate) (*big.Int, bool) {
	return new(big.Int).SetString(e.Spec.SerialNumber, 16)
}

func mustWatchClient(t *testing.T) client.WithWatch {
	t.Helper()
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// createCounter counts the objects a client creates.
type createCounter struct {
	client.Client
	creates atomic.Int32
}

func (c *createCounter) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	c.creates.Add(1)
	return c.Client.Create(ctx, obj, opts...)
}

// TestLedgerJournal writes the ledger through the journal against the real
// API server: a hundred certificates recorded at once take far fewer
// segment creations than a hundred, every entry is in exactly one segment
// with its certificate, the one each caller was told; concurrent
// revocations of one serial write one line; and a segment the API server
// refuses writes nothing and says so (no unknown outcome).
func TestLedgerJournal(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ctx := t.Context()
	const n = 100
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: ns, Name: "journal"}

	now := time.Now()
	sign := leafSigner(t, "journal", now)
	entries := make([]ledger.Entry, n)
	for i := range n {
		var err error
		if entries[i], err = ledger.EntryOf(sign(), now, ledger.Origin{Kind: quillv1.OriginKindCertificateRequest,
			Namespace: ns, Name: fmt.Sprintf("r%d", i), UID: types.UID(fmt.Sprintf("uid-%d", i))}); err != nil {
			t.Fatal(err)
		}
	}

	cc := &createCounter{Client: env.Client}
	ix := ledger.NewIndex()
	if err := ix.Replace(nil, "1"); err != nil {
		t.Fatal(err)
	}
	j := ledger.NewJournal(cc, ix, clock.RealClock{})
	told := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			seg, err := j.Record(ctx, k, ns, entries[i])
			if err != nil {
				t.Errorf("Record %d: %v", i, err)
			}
			told[i] = seg
		})
	}
	wg.Wait()
	creates := cc.creates.Load()
	t.Logf("%d concurrent records took %d segment creations", n, creates)
	if creates > n/4 {
		t.Errorf("%d segment creations for %d concurrent records; want a group commit (at most %d)", creates, n, n/4)
	}
	var segs quillv1.LedgerSegmentList
	if err := env.Client.List(ctx, &segs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	where := map[string]string{}
	for i := range segs.Items {
		seg := &segs.Items[i]
		if seg.Spec.Stage != quillv1.LedgerStageJournal || seg.Spec.IssuerRef.ID() != k || len(seg.Spec.Data) > ledger.MaxSegmentBytes {
			t.Errorf("segment %s: stage %s, issuer %+v, %d bytes", seg.Name, seg.Spec.Stage, seg.Spec.IssuerRef, len(seg.Spec.Data))
		}
		if err := ledger.SegmentEntries(seg, func(e *ledger.Entry) error {
			if prev, dup := where[e.Serial]; dup {
				t.Errorf("serial %s is in segments %s and %s", e.Serial, prev, seg.Name)
			}
			where[e.Serial] = seg.Name
			if len(e.Certificate) == 0 {
				t.Errorf("journal entry %s keeps no certificate", e.Serial)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if len(where) != n {
		t.Fatalf("the segments hold %d entries; want %d", len(where), n)
	}
	for i, e := range entries {
		if where[e.Serial] != told[i] {
			t.Errorf("Record %d said segment %s; its entry is in %q", i, told[i], where[e.Serial])
		}
	}
	// Crash recall reads a certificate back from its segment.
	rec, ok := ix.ByRequest(k, "uid-42")
	if !ok {
		t.Fatal("the index does not know request uid-42")
	}
	if e, err := ledger.ReadEntry(ctx, env.Client, rec); err != nil || string(e.Certificate) != string(entries[42].Certificate) {
		t.Fatalf("ReadEntry of request uid-42: %v", err)
	}

	// Five revocations of one serial at once: one line.
	before := cc.creates.Load()
	var revokedNow atomic.Int32
	for i := range 5 {
		wg.Go(func() {
			rev := ledger.EntryRevocation{Reason: quillv1.ReasonKeyCompromise, At: now.Unix() + int64(i), By: "test"}
			if _, first, err := j.Revoke(ctx, k, ns, rec, rev); err != nil {
				t.Errorf("Revoke %d: %v", i, err)
			} else if first {
				revokedNow.Add(1)
			}
		})
	}
	wg.Wait()
	if err := env.Client.List(ctx, &segs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	lines := 0
	for i := range segs.Items {
		if err := ledger.SegmentEntries(&segs.Items[i], func(e *ledger.Entry) error {
			if e.IsRevocationLine() {
				lines++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if lines != 1 || revokedNow.Load() != 1 || cc.creates.Load()-before != 1 {
		t.Fatalf("five concurrent revocations: %d lines, %d callers revoked, %d creations; want 1, 1, 1", lines, revokedNow.Load(), cc.creates.Load()-before)
	}

	// A namespace that does not exist: the API server refuses the
	// segment, so every caller knows nothing was written.
	gone := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "no-such-namespace-" + ns, Name: "journal"}
	for i := range 3 {
		wg.Go(func() {
			e := entries[i]
			_, err := j.Record(ctx, gone, gone.Namespace, e)
			if err == nil || errors.Is(err, ledger.ErrOutcomeUnknown) || !apierrors.IsNotFound(err) {
				t.Errorf("Record into a missing namespace: %v; want NotFound, known outcome", err)
			}
		})
	}
	wg.Wait()
	if got := ix.Count(gone); got != 0 {
		t.Errorf("the index holds %d entries of a refused segment", got)
	}
}

// leaves signs n one-hour leaves for name.example.com with a CA of their
// own, at now.
func leaves(t *testing.T, name string, n int, now time.Time) []*x509.Certificate {
	t.Helper()
	sign := leafSigner(t, name, now)
	out := make([]*x509.Certificate, n)
	for i := range out {
		out[i] = sign()
	}
	return out
}

// leafSigner returns a function that signs a fresh one-hour leaf for
// name.example.com with a CA of its own, at now.
func leafSigner(t *testing.T, name string, now time.Time) func() *x509.Certificate {
	t.Helper()
	caPEM, keyPEM, err := issuance.NewSelfSignedRoot(pkix.Name{CommonName: name + " CA"}, issuance.ECDSAP256, 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := issuance.LoadAuthority(caPEM, keyPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := issuance.GenerateKey(issuance.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{DNSNames: []string{name + ".example.com"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	return func() *x509.Certificate {
		issued, err := auth.Sign(issuance.Request{CSR: csr, KeyUsage: x509.KeyUsageDigitalSignature}, issuance.Options{Now: now, DefaultDuration: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return issued.Certificate
	}
}
