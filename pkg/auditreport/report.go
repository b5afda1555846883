// Package auditreport writes an issuer's audit report from its issuance
// ledger: one row per certificate the issuer signed, with who asked for it,
// where from, under which template, when it was issued and expires, and its
// revocation. quillctl audit report is its command line.
//
// The report reads the IssuedCertificate objects in the issuer's home
// namespace (the issuer's own namespace for a QuillIssuer, the cluster
// resource namespace for a QuillClusterIssuer) a page at a time, and writes
// each page before it asks for the next, so its memory does not grow with
// the ledger. Rows come in the API server's list order, which is the
// records' name order: by serial number.
package auditreport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
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
	// continuation; the output written so far is incomplete.
	ErrExpired = errors.New("ledger listing expired")
)

// DefaultChunkSize is how many records one list request asks for.
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
	// DefaultChunkSize.
	ChunkSize int64
	// Warn receives warnings, such as an issuer that no longer exists but
	// left records; nil drops them.
	Warn func(string)
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
// many rows it wrote. Nothing is written when the issuer cannot be read or
// the options are wrong; an error after the first page leaves w holding an
// incomplete report.
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
	chunk := opts.ChunkSize
	if chunk == 0 {
		chunk = DefaultChunkSize
	}
	list := listOptions(opts, chunk)
	rows := 0
	for first := true; ; first = false {
		var page quillv1.IssuedCertificateList
		if err := c.List(ctx, &page, list...); err != nil {
			return rows, listError(err, opts)
		}
		if first {
			// Only now: a ledger the user may not list leaves no header.
			if err := enc.begin(); err != nil {
				return 0, err
			}
		}
		for i := range page.Items {
			e := &page.Items[i]
			if !belongs(e, opts.Issuer) || !inPeriod(e, opts.Since) {
				continue
			}
			if err := enc.row(RowOf(e)); err != nil {
				return rows, err
			}
			rows++
		}
		if err := enc.flush(); err != nil {
			return rows, err
		}
		if page.Continue == "" {
			break
		}
		list = append(listOptions(opts, chunk), client.Continue(page.Continue))
	}
	return rows, enc.end()
}

// checkIssuer reads the issuer so that a misspelt name or a missing right
// fails before anything is written. An issuer deleted after issuing still
// has an audit trail: its records are reported with a warning.
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
	// Gone, or never there: look for records it left. One page is enough
	// to tell; records of other issuers with the same labels (a long name
	// not in the label) are skipped.
	list := listOptions(opts, DefaultChunkSize)
	for {
		var page quillv1.IssuedCertificateList
		if err := c.List(ctx, &page, list...); err != nil {
			return listError(err, opts)
		}
		for i := range page.Items {
			if belongs(&page.Items[i], k) {
				if opts.Warn != nil {
					opts.Warn(what + " no longer exists; reporting the records it left in its ledger")
				}
				return nil
			}
		}
		if page.Continue == "" {
			return fmt.Errorf("%w: %s does not exist and has no ledger records in namespace %s", ErrIssuerNotFound, what, opts.homeNamespace())
		}
		list = append(listOptions(opts, DefaultChunkSize), client.Continue(page.Continue))
	}
}

// listOptions select the issuer's records by the labels Quill sets on
// them. The name label is missing for names longer than a label value may
// be; belongs then tells the issuer's records apart.
func listOptions(opts Options, chunk int64) []client.ListOption {
	sel := labels.Set{ledger.LabelIssuerKind: opts.Issuer.Kind}
	if len(opts.Issuer.Name) <= 63 {
		sel[ledger.LabelIssuerName] = opts.Issuer.Name
	}
	return []client.ListOption{
		client.InNamespace(opts.homeNamespace()),
		client.MatchingLabels(sel),
		client.Limit(chunk),
	}
}

func listError(err error, opts Options) error {
	switch {
	case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
		return fmt.Errorf("%w: listing issuedcertificates in namespace %s: %s", ErrNoAccess, opts.homeNamespace(), err.Error())
	case apierrors.IsResourceExpired(err) || apierrors.IsGone(err):
		return fmt.Errorf("%w: %s (run the report again, with a larger --chunk-size if it keeps happening)", ErrExpired, err.Error())
	}
	return fmt.Errorf("listing issuedcertificates in namespace %s: %w", opts.homeNamespace(), err)
}

// belongs reports whether e is a record of issuer k.
func belongs(e *quillv1.IssuedCertificate, k quillv1.IssuerID) bool {
	return e.Spec.IssuerRef.ID() == k
}

// inPeriod reports whether e was issued or revoked at or after since.
func inPeriod(e *quillv1.IssuedCertificate, since time.Time) bool {
	if since.IsZero() || !e.Spec.IssuedAt.Time.Before(since) {
		return true
	}
	rev := e.Status.Revocation
	return rev != nil && !rev.RevokedAt.Time.Before(since)
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
