// Package ledgerfill writes an issuer's ledger for benchmarks and scale
// tests (hack/bench/ledgerscale, test/startup): N entries made from real
// certificates signed by the issuer's CA with pkg/issuance (ECDSA P-256 and
// RSA-2048 leaves), a few percent revoked, stored the way the controller
// stores them.
//
// Two storages can be written, so that one run can compare them:
//
//   - FormatSegments: sealed LedgerSegments of SegmentEntries entries, as
//     the compactor leaves them (ledger.EntryOf, revocations folded into
//     their entries, the DER certificate dropped), created through the API;
//     entries meant for the archive are appended to it instead, as
//     retention does.
//   - FormatLegacy: one IssuedCertificate per certificate (ledger.NewEntry),
//     revoked through the status subresource, as the controller recorded
//     them before LedgerSegments.
//
// The package only writes; what is measured is the caller's business.
package ledgerfill

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/ledger"
)

// Format is the storage a Fill writes.
type Format string

// The storages Fill writes.
const (
	FormatSegments Format = "segments"
	FormatLegacy   Format = "legacy"
)

// ParseFormat checks a -format flag's value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatSegments, FormatLegacy:
		return f, nil
	}
	return "", fmt.Errorf("%w: %q (want %q or %q)", errFormat, s, FormatSegments, FormatLegacy)
}

var (
	errFormat    = errors.New("unknown ledger format")
	errNoRevoked = errors.New("no entry was revoked: raise the revoked share or N")
	errTooLarge  = errors.New("segment larger than ledger.MaxSegmentBytes")
)

// DefaultSegmentEntries is how many entries the compactor puts in a sealed
// segment at most.
const DefaultSegmentEntries = 2000

// Spec says what to write.
type Spec struct {
	Issuer quillv1.IssuerID
	// Home is the issuer's home namespace (the cluster resource namespace
	// for a QuillClusterIssuer).
	Home      string
	Authority *issuance.Authority
	Format    Format

	// N entries are written, entry i signed at IssuedFrom + i·IssuedSpan/N
	// (IssuedFrom zero: now) for Lifetime (0: 90 days).
	N          int
	IssuedFrom time.Time
	IssuedSpan time.Duration
	Lifetime   time.Duration
	// FirstIndex numbers the entries' requests and Certificates from here,
	// so that successive fills (the estate's days) name distinct requests.
	FirstIndex int
	// Pods, when positive, names the Certificates app-<i mod Pods>, so that
	// renewals of one pod's certificate share a Certificate.
	Pods int

	// RevokedPercent of the entries are revoked (evenly spread).
	RevokedPercent float64
	// SegmentEntries bounds a sealed segment (0: DefaultSegmentEntries).
	SegmentEntries int
	// Concurrency is how many goroutines sign and write (0: 8).
	Concurrency int
	// SignPool, when positive, signs only that many real certificates and
	// makes every entry from one of them re-stamped with its own serial
	// (pkg/issuance's generator), fingerprint (random), signing time,
	// validity and request: entries the size and entropy of real ones at a
	// fraction of the signing cost, for runs of millions of entries (the
	// estate) that measure storage, not signing. FormatSegments only.
	SignPool int

	// Archive, when set, receives the first ArchiveN entries instead of
	// the API (FormatSegments only): the part of a ledger that retention
	// has already moved out.
	Archive  Appender
	ArchiveN int

	// Created, when set, is told of every segment created in the API with
	// its entries, as the journal and the compactor tell the index of their
	// own writes (ledger.Index.PutSegment).
	Created func(seg *quillv1.LedgerSegment, entries []ledger.Entry)

	// Progress, when set, is called with the number of entries written so
	// far, every few thousand entries.
	Progress func(done int)
}

// Appender is what Fill needs of the ledger archive: ledger.Archive's
// Append.
type Appender interface {
	Append(k quillv1.IssuerID, segment string, entries []ledger.Entry) error
}

// Result is what Fill wrote.
type Result struct {
	// Live and Archived count the entries written to the API and to the
	// archive; Revoked and RevokedLive the revoked ones, in total and
	// among the live entries.
	Live, Archived, Revoked, RevokedLive int
	// RevokedCert is one revoked certificate among the live entries, for
	// OCSP requests; nil when none is live.
	RevokedCert *x509.Certificate
	// Objects counts the objects created; ObjectBytes is the JSON size of
	// all of them as sent, DataBytes the encoded entries alone (segments).
	Objects                int
	ObjectBytes, DataBytes int64
}

// BytesPerEntry is the JSON size of the live ledger per entry.
func (r Result) BytesPerEntry() float64 {
	if r.Live == 0 {
		return 0
	}
	return float64(r.ObjectBytes) / float64(r.Live)
}

// Fill signs and writes s.N entries. It fails on the first error.
func Fill(ctx context.Context, c client.Client, s Spec) (Result, error) {
	if s.Lifetime == 0 {
		s.Lifetime = 90 * 24 * time.Hour
	}
	if s.SegmentEntries <= 0 {
		s.SegmentEntries = DefaultSegmentEntries
	}
	if s.Concurrency <= 0 {
		s.Concurrency = 8
	}
	if s.IssuedFrom.IsZero() {
		s.IssuedFrom = time.Now()
	}
	if s.Format == FormatLegacy && s.ArchiveN > 0 {
		return Result{}, fmt.Errorf("%w: the legacy ledger has no archive", errFormat)
	}
	if s.Archive == nil {
		s.ArchiveN = 0
	}
	csrs, err := benchCSRs()
	if err != nil {
		return Result{}, err
	}
	f := &filler{spec: s, csrs: csrs, c: c}
	if s.SignPool > 0 {
		if s.Format == FormatLegacy {
			return Result{}, fmt.Errorf("%w: a legacy record carries its certificate; sign every one", errFormat)
		}
		for i := range s.SignPool {
			cert, at, origin, err := f.sign(i)
			if err != nil {
				return Result{}, err
			}
			e, err := ledger.EntryOf(cert, at, origin)
			if err != nil {
				return Result{}, err
			}
			e.Certificate = nil
			f.pool = append(f.pool, e)
		}
	}
	if s.RevokedPercent > 0 {
		f.every = int(100 / s.RevokedPercent)
	}
	// Work is handed out in batches: a segment's entries for segments (a
	// segment is wholly archived or wholly live), a hundred certificates
	// for the legacy ledger.
	size := s.SegmentEntries
	if s.Format == FormatLegacy {
		size = 100
	}
	var batches [][2]int
	for from := 0; from < s.N; {
		to := min(from+size, s.N)
		if from < s.ArchiveN {
			to = min(to, s.ArchiveN)
		}
		batches = append(batches, [2]int{from, to})
		from = to
	}
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range s.Concurrency {
		wg.Go(func() {
			for {
				b := int(next.Add(1) - 1)
				if b >= len(batches) || ctx.Err() != nil {
					return
				}
				from, to := batches[b][0], batches[b][1]
				var err error
				if s.Format == FormatLegacy {
					err = f.legacy(ctx, from, to)
				} else {
					err = f.segment(ctx, from, to)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return Result{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.every > 0 && f.res.Revoked == 0 {
		return f.res, errNoRevoked
	}
	return f.res, nil
}

type filler struct {
	spec  Spec
	csrs  [][]byte
	c     client.Client
	every int
	pool  []ledger.Entry

	done atomic.Int64
	mu   sync.Mutex
	res  Result
}

// issuedAt is when entry i was signed.
func (f *filler) issuedAt(i int) time.Time {
	if f.spec.N == 0 {
		return f.spec.IssuedFrom
	}
	return f.spec.IssuedFrom.Add(time.Duration(float64(f.spec.IssuedSpan) * float64(i) / float64(f.spec.N)))
}

func (f *filler) revoked(i int) bool { return f.every > 0 && i%f.every == f.every/2 }

// sign signs certificate i as the controller would for a CertificateRequest.
func (f *filler) sign(i int) (*x509.Certificate, time.Time, ledger.Origin, error) {
	at := f.issuedAt(i)
	issued, err := f.spec.Authority.Sign(issuance.Request{CSR: f.csrs[i%len(f.csrs)], KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, Duration: f.spec.Lifetime},
		issuance.Options{Now: at, CRLDistributionPoints: []string{"http://quill.invalid/crl"}, OCSPServers: []string{"http://quill.invalid/ocsp"}})
	if err != nil {
		return nil, at, ledger.Origin{}, fmt.Errorf("signing entry %d: %w", i, err)
	}
	n := f.spec.FirstIndex + i
	cert := n
	if f.spec.Pods > 0 {
		cert = n % f.spec.Pods
	}
	origin := ledger.Origin{
		Kind: quillv1.OriginKindCertificateRequest, Namespace: "apps", Name: fmt.Sprintf("app-%d-%d", cert, n),
		UID: types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", n)), Certificate: fmt.Sprintf("app-%d", cert),
		Requester: "system:serviceaccount:cert-manager:cert-manager",
	}
	return issued.Certificate, at, origin, nil
}

// restamp makes entry i from the pool (see Spec.SignPool).
func (f *filler) restamp(i int) (ledger.Entry, time.Time, error) {
	e := f.pool[i%len(f.pool)]
	at := f.issuedAt(i)
	serial, err := issuance.NewSerialNumber(rand.Reader)
	if err != nil {
		return e, at, err
	}
	var sum [32]byte
	if _, err := rand.Read(sum[:]); err != nil {
		return e, at, err
	}
	n := f.spec.FirstIndex + i
	cert := n
	if f.spec.Pods > 0 {
		cert = n % f.spec.Pods
	}
	e.Serial, e.Fingerprint = ledger.SerialHex(serial), hex.EncodeToString(sum[:])
	notBefore := at.Truncate(time.Second)
	e.IssuedAt, e.NotBefore, e.NotAfter = at.UnixMicro(), notBefore.Unix(), notBefore.Add(f.spec.Lifetime).Unix()
	o := *e.Origin
	o.Name, o.UID, o.Certificate = fmt.Sprintf("app-%d-%d", cert, n), fmt.Sprintf("00000000-0000-0000-0000-%012d", n), fmt.Sprintf("app-%d", cert)
	e.Origin = &o
	return e, at, nil
}

// segment signs entries [from, to) into one sealed segment and writes it to
// the API, or to the archive when the entries are meant for it.
func (f *filler) segment(ctx context.Context, from, to int) error {
	s := &f.spec
	entries := make([]ledger.Entry, 0, to-from)
	var revokedCert *x509.Certificate
	revoked := 0
	for i := from; i < to; i++ {
		var (
			e    ledger.Entry
			cert *x509.Certificate
			at   time.Time
			err  error
		)
		if f.pool != nil {
			e, at, err = f.restamp(i)
		} else {
			var origin ledger.Origin
			if cert, at, origin, err = f.sign(i); err == nil {
				e, err = ledger.EntryOf(cert, at, origin)
			}
			// Sealing drops the certificate once no request can need it
			// back.
			e.Certificate = nil
		}
		if err != nil {
			return err
		}
		if f.revoked(i) {
			e.Revocation = &ledger.EntryRevocation{Reason: quillv1.ReasonKeyCompromise, At: at.Add(time.Minute).Unix(), By: "ledgerfill"}
			revoked++
			if revokedCert == nil {
				revokedCert = cert
			}
		}
		entries = append(entries, e)
	}
	// The compactor seals a while after the last entry was signed.
	sealedAt := f.issuedAt(to - 1).Add(time.Minute)
	seg, err := ledger.NewSegment(s.Issuer, s.Home, quillv1.LedgerStageSealed, sealedAt, entries)
	if err != nil {
		return err
	}
	if len(seg.Spec.Data) > ledger.MaxSegmentBytes {
		return fmt.Errorf("%w: %d entries encode to %d bytes", errTooLarge, len(entries), len(seg.Spec.Data))
	}
	archived := from < s.ArchiveN
	if archived {
		if err := s.Archive.Append(s.Issuer, seg.Name, entries); err != nil {
			return fmt.Errorf("archiving %s: %w", seg.Name, err)
		}
	} else {
		if err := f.c.Create(ctx, seg); err != nil {
			return fmt.Errorf("creating segment %s: %w", seg.Name, err)
		}
		if s.Created != nil {
			s.Created(seg, entries)
		}
	}
	size := 0
	if !archived {
		b, err := json.Marshal(seg)
		if err != nil {
			return err
		}
		size = len(b)
	}
	f.mu.Lock()
	f.res.Revoked += revoked
	if archived {
		f.res.Archived += len(entries)
	} else {
		f.res.Live += len(entries)
		f.res.RevokedLive += revoked
		f.res.Objects++
		f.res.ObjectBytes += int64(size)
		f.res.DataBytes += int64(len(seg.Spec.Data))
		if f.res.RevokedCert == nil {
			f.res.RevokedCert = revokedCert
		}
	}
	f.mu.Unlock()
	f.progress(len(entries))
	return nil
}

// legacy signs and records entries [from, to) as IssuedCertificates.
func (f *filler) legacy(ctx context.Context, from, to int) error {
	s := &f.spec
	for i := from; i < to; i++ {
		cert, at, origin, err := f.sign(i)
		if err != nil {
			return err
		}
		e, err := ledger.NewEntry(s.Issuer, s.Home, cert, at, origin)
		if err != nil {
			return err
		}
		if err := f.c.Create(ctx, e); err != nil {
			return fmt.Errorf("recording %s: %w", e.Name, err)
		}
		revoked := f.revoked(i)
		if revoked {
			e.Status.Revocation = &quillv1.RevocationRecord{Reason: quillv1.ReasonKeyCompromise,
				RevokedAt: metav1.NewTime(at.Add(time.Minute)), By: "ledgerfill"}
			if err := f.c.Status().Update(ctx, e); err != nil {
				return fmt.Errorf("revoking %s: %w", e.Name, err)
			}
		}
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.res.Live++
		f.res.Objects++
		f.res.ObjectBytes += int64(len(b))
		if revoked {
			f.res.Revoked++
			f.res.RevokedLive++
			if f.res.RevokedCert == nil {
				f.res.RevokedCert = cert
			}
		}
		f.mu.Unlock()
		f.progress(1)
	}
	return nil
}

func (f *filler) progress(n int) {
	if f.spec.Progress == nil {
		return
	}
	const every = 10000
	d := f.done.Add(int64(n))
	if d/every != (d-int64(n))/every {
		f.spec.Progress(int(d))
	}
}

// benchCSRs returns CSRs for a few distinct names and both key types; the
// certificates signed from them differ in serial, validity and signature,
// as every real entry does.
func benchCSRs() ([][]byte, error) {
	var out [][]byte
	for i := range 8 {
		alg := issuance.ECDSAP256
		if i%2 == 1 {
			alg = issuance.RSA2048
		}
		key, err := issuance.GenerateKey(alg)
		if err != nil {
			return nil, err
		}
		der, err := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{
			DNSNames: []string{fmt.Sprintf("app-%d.apps.svc.cluster.local", i), fmt.Sprintf("app-%d.apps.svc", i)},
		}, key)
		if err != nil {
			return nil, err
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	}
	return out, nil
}

// CA is a benchmark issuer's CA: an ECDSA P-256 root valid from notBefore
// for two years, so that entries can be signed with past timestamps.
type CA struct {
	Authority *issuance.Authority
	Cert      *x509.Certificate
	CertPEM   []byte
	KeyPEM    []byte
}

// NewCA makes a CA named cn.
func NewCA(cn string, notBefore time.Time) (*CA, error) {
	certPEM, keyPEM, err := issuance.NewSelfSignedRoot(pkix.Name{CommonName: cn}, issuance.ECDSAP256, 2*365*24*time.Hour, notBefore)
	if err != nil {
		return nil, err
	}
	auth, err := issuance.LoadAuthority(certPEM, keyPEM, nil)
	if err != nil {
		return nil, err
	}
	return &CA{Authority: auth, Cert: auth.Certificate, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}
