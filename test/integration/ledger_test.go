package integration

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
// page by page from the real API server (so its start-up peak is one page,
// not the whole ledger decoded at once), is synced only once every page is
// in, and then follows revocations and deletions through its watch.
func TestLedgerIndexLoadsInPages(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ctx := t.Context()
	const n = 1203 // three pages of 500
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: ns, Name: "paged"}

	caPEM, keyPEM, err := issuance.NewSelfSignedRoot(pkix.Name{CommonName: "paged CA"}, issuance.ECDSAP256, 24*time.Hour, time.Now())
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
	der, err := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{DNSNames: []string{"paged.example.com"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	entries := make([]*quillv1.IssuedCertificate, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	now := time.Now()
	for i := range n {
		issued, err := auth.Sign(issuance.Request{CSR: csr, KeyUsage: x509.KeyUsageDigitalSignature}, issuance.Options{Now: now, DefaultDuration: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		e, err := ledger.NewEntry(k, ns, issued.Certificate, now, ledger.Origin{Kind: quillv1.OriginKindCertificateRequest,
			Namespace: ns, Name: fmt.Sprintf("r%d", i), UID: types.UID(fmt.Sprintf("uid-%d", i))})
		if err != nil {
			t.Fatal(err)
		}
		entries[i] = e
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := env.Client.Create(ctx, e); err != nil {
				errs <- err
			}
		})
	}
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
	if got := ix.Count(k); got != n {
		t.Fatalf("index holds %d records of the issuer after sync; want %d", got, n)
	}
	lc.mu.Lock()
	limits := append([]int64(nil), lc.limits...)
	lc.mu.Unlock()
	if len(limits) < 3 {
		t.Fatalf("the index listed the ledger in %d requests %v; want pages of at most 500 (at least 3 for %d records)", len(limits), limits, n)
	}
	for _, l := range limits {
		if l <= 0 || l > 500 {
			t.Fatalf("list page sizes %v; want every page limited to 1..500", limits)
		}
	}

	// Changes after the list arrive through the watch.
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
	serial7, _ := ledgerSerial(entries[7])
	harness.Eventually(t, "the watch to deliver a revocation and a deletion", time.Minute, func() (bool, error) {
		r, ok := ix.Lookup(k, serial7)
		return ok && r.Revoked && ix.Count(k) == n-1, nil
	})
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
