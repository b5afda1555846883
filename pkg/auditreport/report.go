// Package auditreport writes an issuer's audit report from its issuance
// ledger: one row per certificate the issuer signed, with who asked for it,
// where from, under which template, when it was issued and expires, and its
// revocation. quillctl audit report is its command line.
//
// The report reads the issuer's ledger in its home namespace (the
// issuer's own namespace for a QuillIssuer, the cluster resource namespace
// for a QuillClusterIssuer): the LedgerSegments, listed a few at a time and
// decoded one at a time, the IssuedCertificates of a ledger the controller
// has not migrated yet, and, when given, the archive the controller moves
// expired entries to. The lines are merged by serial (one row per
// certificate, with its revocation wherever that was recorded) and the
// rows written in serial number order. Memory grows with the ledger by a
// few hundred bytes per certificate (the compressed segments are never
// held all at once); `quillctl ledger` reads through the same functions.
package auditreport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
)

// Errors a report can fail with. The message wrapping each says which
// object or flag is at fault.
var (
	// ErrInvalid is a bad option: unknown kind or format, unreadable
	// --since.
	ErrInvalid = errors.New("invalid report options")
	// ErrIssuerNotFound: the issuer does not exist and its ledger holds no
	// records either.
	ErrIssuerNotFound = errors.New("issuer not found")
	// ErrNoAccess: the API server refused to show the issuer or its ledger
	// to the user (the quill-auditor role grants both).
	ErrNoAccess = errors.New("no access")
	// ErrExpired: the listing took longer than the API server keeps a
	// continuation; nothing was written.
	ErrExpired = errors.New("ledger listing expired")
)

// DefaultChunkSize is how many legacy records one list request asks for
// (see SegmentChunkSize for segments).
const DefaultChunkSize = 500

// Options select the issuer and the records of a report.
type Options struct {
	// Issuer names the issuer: Kind QuillIssuer (with Namespace) or
	// QuillClusterIssuer.
	Issuer quillv1.IssuerID
	// ClusterResourceNamespace holds the ledger of cluster issuers, as the
	// controller's --cluster-resource-namespace.
	ClusterResourceNamespace string
	// Since, when not zero, keeps only certificates issued or revoked at
	// or after it.
	Since time.Time
	// ChunkSize is the page size of the list requests; 0 means
	// DefaultChunkSize. Segments are listed at most SegmentChunkSize at a
	// time.
	ChunkSize int64
	// ArchiveDir, when set, is the ledger archive's directory (the
	// controller's --ledger-archive-dir, or a copy of it): the entries
	// past the issuer's retention are read from it too.
	ArchiveDir string
	// Warn receives warnings, such as an issuer that no longer exists but
	// left records; nil drops them.
	Warn func(string)
}

// chunk is the page size of list requests.
func (o Options) chunk() int64 {
	if o.ChunkSize == 0 {
		return DefaultChunkSize
	}
	return o.ChunkSize
}

// homeNamespace is where the issuer's ledger records live.
func (o Options) homeNamespace() string {
	if o.Issuer.Kind == quillv1.ClusterIssuerKind {
		return o.ClusterResourceNamespace
	}
	return o.Issuer.Namespace
}

func (o Options) validate() error {
	switch o.Issuer.Kind {
	case quillv1.ClusterIssuerKind:
		if o.ClusterResourceNamespace == "" {
			return fmt.Errorf("%w: a QuillClusterIssuer's ledger needs the cluster resource namespace", ErrInvalid)
		}
		if o.Issuer.Namespace != "" {
			return fmt.Errorf("%w: a QuillClusterIssuer has no namespace (its ledger is in the cluster resource namespace %s)", ErrInvalid, o.ClusterResourceNamespace)
		}
	case quillv1.IssuerKind:
		if o.Issuer.Namespace == "" {
			return fmt.Errorf("%w: a QuillIssuer needs its namespace", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: issuer kind %q: use QuillIssuer or QuillClusterIssuer", ErrInvalid, o.Issuer.Kind)
	}
	if o.Issuer.Name == "" {
		return fmt.Errorf("%w: no issuer name", ErrInvalid)
	}
	if o.ChunkSize < 0 {
		return fmt.Errorf("%w: chunk size %d is negative", ErrInvalid, o.ChunkSize)
	}
	return nil
}

// Write writes the report of opts.Issuer to w as format and returns how
// many rows it wrote. The whole ledger is read (Walk) and merged by serial
// (Merger) before the first row is written, so nothing is written when the
// issuer or its ledger cannot be read or the options are wrong. A ledger
// with undecodable segments is reported without them, with a warning for
// each, and Write then returns an error wrapping ledger.ErrCorruptSegment:
// the report is incomplete.
func Write(ctx context.Context, c client.Reader, opts Options, format Format, w io.Writer) (int, error) {
	if err := opts.validate(); err != nil {
		return 0, err
	}
	enc, err := newEncoder(format, w)
	if err != nil {
		return 0, err
	}
	if err := checkIssuer(ctx, c, opts); err != nil {
		return 0, err
	}
	var m Merger
	walkErr := Walk(ctx, c, opts, m.Add)
	if walkErr != nil && !errors.Is(walkErr, ledger.ErrCorruptSegment) {
		return 0, walkErr
	}
	if unmatched := m.Unmatched(); len(unmatched) > 0 && opts.Warn != nil {
		hint := ""
		if opts.ArchiveDir == "" {
			hint = " (archived? pass --archive-dir)"
		}
		opts.Warn(fmt.Sprintf("%d revoked serials have no entry in the ledger%s: %s", len(unmatched), hint, strings.Join(unmatched[:min(len(unmatched), 10)], " ")))
	}
	if err := enc.begin(); err != nil {
		return 0, err
	}
	rows := 0
	entries := m.Entries()
	for i := range entries {
		e := entries[i].Entry
		if !inPeriod(e, opts.Since) {
			continue
		}
		if err := enc.row(RowOf(e)); err != nil {
			return rows, err
		}
		rows++
		if i%1000 == 999 {
			if err := enc.flush(); err != nil {
				return rows, err
			}
		}
	}
	if err := enc.end(); err != nil {
		return rows, err
	}
	return rows, walkErr
}

// errFound ends a walk at the first line found.
var errFound = errors.New("found")

// checkIssuer reads the issuer so that a misspelt name or a missing right
// fails before anything is written. An issuer deleted after issuing still
// has an audit trail: its ledger is reported with a warning.
func checkIssuer(ctx context.Context, c client.Reader, opts Options) error {
	k := opts.Issuer
	var obj client.Object = &quillv1.QuillClusterIssuer{}
	what := "QuillClusterIssuer " + k.Name
	if k.Kind == quillv1.IssuerKind {
		obj, what = &quillv1.QuillIssuer{}, "QuillIssuer "+k.Namespace+"/"+k.Name
	}
	err := c.Get(ctx, types.NamespacedName{Namespace: k.Namespace, Name: k.Name}, obj)
	switch {
	case err == nil:
		return nil
	case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
		return fmt.Errorf("%w: reading %s: %s", ErrNoAccess, what, err.Error())
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("reading %s: %w", what, err)
	}
	// Gone, or never there: look for a line it left, in the segments,
	// the legacy records or the archive.
	quiet := opts
	quiet.Warn = nil
	err = Walk(ctx, c, quiet, func(*ledger.Entry, Place) error { return errFound })
	switch {
	case errors.Is(err, errFound):
		if opts.Warn != nil {
			opts.Warn(what + " no longer exists; reporting the ledger it left")
		}
		return nil
	case err != nil && !errors.Is(err, ledger.ErrCorruptSegment):
		return err
	}
	return fmt.Errorf("%w: %s does not exist and has no ledger in namespace %s", ErrIssuerNotFound, what, opts.homeNamespace())
}

// inPeriod reports whether e was issued or revoked at or after since.
func inPeriod(e *ledger.Entry, since time.Time) bool {
	if since.IsZero() || e.IssuedAt >= since.UnixMicro() {
		return true
	}
	return e.Revocation != nil && e.Revocation.At >= since.Unix()
}

// ParseSince reads a --since value: an RFC 3339 time, or a duration before
// now ("24h", "90m", or whole days such as "30d").
func ParseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, serr := fmt.Sscanf(days, "%d", &n); serr != nil || fmt.Sprint(n) != days || n <= 0 || n > 100_000 {
			err = errors.New("bad day count")
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
		if err == nil && d <= 0 {
			err = errors.New("not positive")
		}
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: --since %q: give an RFC 3339 time (2026-01-31T00:00:00Z) or a positive duration (24h, 30d)", ErrInvalid, s)
	}
	return now.Add(-d), nil
}
