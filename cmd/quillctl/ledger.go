package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/auditreport"
	"github.com/quill-pki/quill/pkg/ledger"
)

// Errors of the ledger commands.
var (
	// errNotInLedger: the serial or Certificate has no entry in the
	// issuer's ledger.
	errNotInLedger = errors.New("not in the ledger")
	// errLedgerArgs: a serial or Certificate name that does not parse.
	errLedgerArgs = errors.New("invalid ledger query")
)

// Output format of quillctl ledger get.
const formatText = "text"

// ledgerCommand is `quillctl ledger`: look up what an issuer's ledger
// says, where `kubectl get issuedcertificates` used to show it when every
// certificate had an object of its own.
func (a *app) ledgerCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ledger",
		Short: "Look up a serial, a Certificate's history or the segments of an issuer's ledger",
		Long: `Look up what an issuer's issuance ledger records. The ledger is kept as
LedgerSegments, each holding thousands of compressed entries, so kubectl
shows segments (kubectl get ledgersegments) but not the certificates in
them; these commands decode them.

  quillctl ledger get SERIAL           one certificate: every recorded field,
                                       its revocation, where its entry lives
                                       and its PEM while the ledger keeps it
  quillctl ledger history --certificate NAMESPACE/NAME
                                       every certificate issued for a
                                       cert-manager Certificate, oldest first
  quillctl ledger list                 the issuer's segments and their counts

` + ledgerFlagsHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.ledgerGetCommand(), a.ledgerHistoryCommand(), a.ledgerListCommand())
	return cmd
}

func (a *app) ledgerGetCommand() *cobra.Command {
	var (
		lf     ledgerFlags
		format string
	)
	cmd := &cobra.Command{
		Use:   "get SERIAL",
		Short: "Show one certificate of an issuer's ledger by serial number",
		Long: `Show the ledger entry of one certificate: its names, validity,
algorithms, the request it was signed for, its revocation (merged from
wherever it was recorded), every place a line about it was read (a Journal
or Sealed LedgerSegment, a legacy IssuedCertificate, the archive), and its
PEM certificate while one of those still keeps it: a journal keeps every
certificate; sealing drops it once its request no longer needs it back.

SERIAL is hexadecimal, as OpenSSL prints it ("serial=..."), with or without
colons, a 0x prefix or leading zeros.`,
		Example: `  quillctl ledger get --issuer platform-ca 3c:9a:1f:...
  quillctl ledger get --kind QuillIssuer -n team-a --issuer team-a-ca "$(openssl x509 -in tls.crt -noout -serial | cut -d= -f2)"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != formatText && format != formatJSON {
				return fmt.Errorf("%w: --format %q: use text or json", errFlags, format)
			}
			serial, err := parseSerial(args[0])
			if err != nil {
				return err
			}
			if err := lf.check(cmd); err != nil {
				return err
			}
			opts, c, err := a.ledgerOptions(&lf)
			if err != nil {
				return err
			}
			view, err := ledgerGet(cmd.Context(), c, opts, serial)
			if err != nil {
				return err
			}
			if format == formatJSON {
				return writeJSON(a.stdout, view)
			}
			return writeEntryText(a.stdout, view)
		},
	}
	lf.register(cmd)
	cmd.Flags().StringVar(&format, "format", formatText, "output format: text or json")
	return cmd
}

func (a *app) ledgerHistoryCommand() *cobra.Command {
	var (
		lf                  ledgerFlags
		certificate, format string
	)
	cmd := &cobra.Command{
		Use:   "history --certificate NAMESPACE/NAME",
		Short: "List every certificate an issuer issued for a cert-manager Certificate, oldest first",
		Long: `List every certificate the issuer issued for one cert-manager
Certificate, oldest first, with its serial, validity, request and
revocation, and where its entry lives. The Certificate may be long gone:
the ledger keeps what was issued for it.`,
		Example: `  quillctl ledger history --issuer platform-ca --certificate shop/checkout
  quillctl ledger history --issuer platform-ca --certificate shop/checkout --format json | jq -r '.[].serial'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != formatTable && format != formatJSON {
				return fmt.Errorf("%w: --format %q: use table or json", errFlags, format)
			}
			ns, name, ok := strings.Cut(certificate, "/")
			if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
				return fmt.Errorf("%w: --certificate %q: give NAMESPACE/NAME", errLedgerArgs, certificate)
			}
			if err := lf.check(cmd); err != nil {
				return err
			}
			opts, c, err := a.ledgerOptions(&lf)
			if err != nil {
				return err
			}
			views, err := ledgerHistory(cmd.Context(), c, opts, ns, name)
			if err != nil {
				return err
			}
			if format == formatJSON {
				return writeJSON(a.stdout, views)
			}
			return writeHistoryTable(a.stdout, views)
		},
	}
	lf.register(cmd)
	cmd.Flags().StringVar(&certificate, "certificate", "", "the cert-manager Certificate, NAMESPACE/NAME")
	cmd.Flags().StringVar(&format, "format", formatTable, "output format: table or json")
	mustRequire(cmd, "certificate")
	return cmd
}

func (a *app) ledgerListCommand() *cobra.Command {
	var (
		lf     ledgerFlags
		format string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List an issuer's ledger segments with their counts",
		Long: `List the issuer's LedgerSegments, oldest first within each stage, with
how many certificates, revocations and kept certificates (DER) each
holds, the span of signing times, and when its last certificate expires;
then the legacy IssuedCertificates not migrated yet and, with
--archive-dir, what the archive holds; then the totals. The counts are
the segments' own (spec), so only the archive is decoded.`,
		Example: `  quillctl ledger list --issuer platform-ca`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != formatTable && format != formatJSON {
				return fmt.Errorf("%w: --format %q: use table or json", errFlags, format)
			}
			if err := lf.check(cmd); err != nil {
				return err
			}
			opts, c, err := a.ledgerOptions(&lf)
			if err != nil {
				return err
			}
			sum, err := ledgerList(cmd.Context(), c, opts)
			if err != nil {
				return err
			}
			if format == formatJSON {
				return writeJSON(a.stdout, sum)
			}
			return writeSegmentTable(a.stdout, sum)
		},
	}
	lf.register(cmd)
	cmd.Flags().StringVar(&format, "format", formatTable, "output format: table or json")
	return cmd
}

// parseSerial reads a serial number in hex as people paste it.
func parseSerial(s string) (string, error) {
	h := strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0x"), "0X"))
	h = strings.NewReplacer(":", "", " ", "").Replace(h)
	n, ok := new(big.Int).SetString(h, 16)
	if h == "" || !ok || n.Sign() < 0 || len(h) > 64 {
		return "", fmt.Errorf("%w: serial %q: give it in hexadecimal (colons allowed)", errLedgerArgs, s)
	}
	return ledger.SerialHex(n), nil
}

// entryView is what the ledger commands show of one certificate; its JSON
// form is their --format json output.
type entryView struct {
	Issuer                string              `json:"issuer"`
	Serial                string              `json:"serial"`
	Fingerprint           string              `json:"sha256Fingerprint"`
	Subject               string              `json:"subject"`
	SANs                  []string            `json:"sans"`
	Issued                string              `json:"issued"`
	NotBefore             string              `json:"notBefore"`
	NotAfter              string              `json:"notAfter"`
	KeyAlgorithm          string              `json:"keyAlgorithm"`
	SignatureAlgorithm    string              `json:"signatureAlgorithm"`
	IsCA                  bool                `json:"isCA,omitempty"`
	NoRevocationAvailable bool                `json:"noRevocationAvailable,omitempty"`
	Origin                *ledger.EntryOrigin `json:"origin,omitempty"`
	Requester             string              `json:"requester"`
	Template              string              `json:"template,omitempty"`
	Revocation            *revocationView     `json:"revocation,omitempty"`
	Places                []auditreport.Place `json:"places"`
	// Certificate is the PEM certificate, while the ledger keeps it.
	Certificate string `json:"certificate,omitempty"`
}

type revocationView struct {
	Reason string `json:"reason"`
	At     string `json:"revokedAt"`
	By     string `json:"by,omitempty"`
}

func viewOf(k quillv1.IssuerID, m auditreport.Merged) entryView {
	e := m.Entry
	row := auditreport.RowOf(e)
	v := entryView{
		Issuer: k.String(), Serial: e.Serial, Fingerprint: e.Fingerprint, Subject: e.Subject, SANs: row.SANs,
		Issued: row.Issued, NotBefore: time.Unix(e.NotBefore, 0).UTC().Format(time.RFC3339), NotAfter: row.Expires,
		KeyAlgorithm: e.KeyAlgorithm, SignatureAlgorithm: e.SignatureAlgorithm, IsCA: e.IsCA, NoRevocationAvailable: e.NoRevAvail,
		Origin: e.Origin, Requester: e.Requester, Template: e.Template, Places: m.Places,
	}
	if e.Revocation != nil {
		v.Revocation = &revocationView{Reason: row.RevocationReason, At: row.RevokedAt, By: row.RevokedBy}
	}
	if len(e.Certificate) > 0 {
		v.Certificate = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.Certificate}))
	}
	return v
}

// ledgerGet reads opts.Issuer's ledger for serial (canonical hex).
func ledgerGet(ctx context.Context, c client.Reader, opts auditreport.Options, serial string) (entryView, error) {
	m := auditreport.Merger{KeepPlaces: true, KeepCertificates: true}
	err := auditreport.Walk(ctx, c, opts, func(e *ledger.Entry, p auditreport.Place) error {
		if e.Serial != serial {
			return nil
		}
		return m.Add(e, p)
	})
	if err != nil && !errors.Is(err, ledger.ErrCorruptSegment) {
		return entryView{}, err
	}
	entries := m.Entries()
	if len(entries) == 0 {
		hint := ""
		if len(m.Unmatched()) > 0 {
			hint = " (only its revocation is recorded"
			if opts.ArchiveDir == "" {
				hint += "; its entry may be archived: pass --archive-dir"
			}
			hint += ")"
		} else if opts.ArchiveDir == "" {
			hint = " (an entry past the issuer's retention is in the archive: pass --archive-dir)"
		}
		return entryView{}, errors.Join(fmt.Errorf("%w: serial %s in the ledger of %s%s", errNotInLedger, serial, opts.Issuer, hint), err)
	}
	return viewOf(opts.Issuer, entries[0]), err
}

// ledgerHistory reads every certificate opts.Issuer issued for the
// cert-manager Certificate ns/name, oldest first.
func ledgerHistory(ctx context.Context, c client.Reader, opts auditreport.Options, ns, name string) ([]entryView, error) {
	m := auditreport.Merger{KeepPlaces: true}
	err := auditreport.Walk(ctx, c, opts, func(e *ledger.Entry, p auditreport.Place) error {
		// Revocation lines carry the serial alone: all are merged, and
		// those of other certificates never become entries.
		if e.IsRevocationLine() || e.Origin != nil && e.Origin.Namespace == ns && e.Origin.Certificate == name {
			return m.Add(e, p)
		}
		return nil
	})
	if err != nil && !errors.Is(err, ledger.ErrCorruptSegment) {
		return nil, err
	}
	entries := m.Entries()
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].Entry.IssuedAt < entries[j].Entry.IssuedAt })
	views := make([]entryView, 0, len(entries))
	for _, me := range entries {
		views = append(views, viewOf(opts.Issuer, me))
	}
	if len(views) == 0 {
		return nil, errors.Join(fmt.Errorf("%w: no certificate issued for Certificate %s/%s in the ledger of %s", errNotInLedger, ns, name, opts.Issuer), err)
	}
	return views, err
}

// segmentView is one line of quillctl ledger list.
type segmentView struct {
	Name          string `json:"name"`
	Stage         string `json:"stage"`
	Entries       int32  `json:"entries"`
	Revocations   int32  `json:"revocations"`
	Certificates  int32  `json:"certificates"`
	FirstIssuedAt string `json:"firstIssuedAt,omitempty"`
	LastIssuedAt  string `json:"lastIssuedAt,omitempty"`
	ExpiresAfter  string `json:"expiresAfter"`
	Bytes         int    `json:"bytes"`
}

// ledgerSummary is quillctl ledger list's output.
type ledgerSummary struct {
	Issuer    string        `json:"issuer"`
	Namespace string        `json:"namespace"`
	Segments  []segmentView `json:"segments"`
	// LegacyRecords counts IssuedCertificates not migrated yet.
	LegacyRecords int `json:"legacyRecords"`
	// Archive is set with --archive-dir.
	Archive *archiveSummary `json:"archive,omitempty"`
	Totals  struct {
		Segments, Entries, Revocations, Certificates, Bytes int
	} `json:"totals"`
}

type archiveSummary struct {
	Dir string `json:"dir"`
	// Entries and Revocations count lines, so an entry archived twice (a
	// crash between writing and deleting) counts twice.
	Entries     int `json:"entries"`
	Revocations int `json:"revocations"`
}

func ledgerList(ctx context.Context, c client.Reader, opts auditreport.Options) (*ledgerSummary, error) {
	sum := &ledgerSummary{Issuer: opts.Issuer.String(), Namespace: opts.Issuer.HomeNamespace(opts.ClusterResourceNamespace), Segments: []segmentView{}}
	micro := func(t *metav1.MicroTime) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	err := auditreport.ListSegments(ctx, c, opts, func(seg *quillv1.LedgerSegment) error {
		s := seg.Spec
		sum.Segments = append(sum.Segments, segmentView{
			Name: seg.Name, Stage: s.Stage, Entries: s.Entries, Revocations: s.Revocations, Certificates: s.Certificates,
			FirstIssuedAt: micro(s.FirstIssuedAt), LastIssuedAt: micro(s.LastIssuedAt),
			ExpiresAfter: s.ExpiresAfter.UTC().Format(time.RFC3339), Bytes: len(s.Data),
		})
		t := &sum.Totals
		t.Segments++
		t.Entries += int(s.Entries)
		t.Revocations += int(s.Revocations)
		t.Certificates += int(s.Certificates)
		t.Bytes += len(s.Data)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Segment names sort by issuer, stage letter (journal before sealed),
	// then creation time: journals first, each stage oldest first.
	sort.SliceStable(sum.Segments, func(i, j int) bool { return sum.Segments[i].Name < sum.Segments[j].Name })
	err = auditreport.ListLegacy(ctx, c, opts, func(*quillv1.IssuedCertificate) error {
		sum.LegacyRecords++
		return nil
	})
	if err != nil {
		return nil, err
	}
	if opts.ArchiveDir != "" {
		a := &archiveSummary{Dir: opts.ArchiveDir}
		err := ledger.ReadArchive(opts.ArchiveDir, opts.Issuer, func(e *ledger.Entry) error {
			if e.IsRevocationLine() {
				a.Revocations++
				return nil
			}
			a.Entries++
			if e.Revocation != nil {
				a.Revocations++
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading the ledger archive in %s: %w", opts.ArchiveDir, err)
		}
		sum.Archive = a
	}
	return sum, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeEntryText(w io.Writer, v entryView) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(k, val string) { fmt.Fprintf(tw, "%s:\t%s\n", k, val) }
	line("Issuer", v.Issuer)
	line("Serial", v.Serial)
	line("SHA-256", v.Fingerprint)
	line("Subject", v.Subject)
	line("SANs", strings.Join(v.SANs, " "))
	line("Issued", v.Issued)
	line("Not before", v.NotBefore)
	line("Not after", v.NotAfter)
	line("Key", v.KeyAlgorithm)
	line("Signature", v.SignatureAlgorithm)
	if v.IsCA {
		line("CA", "true")
	}
	if v.NoRevocationAvailable {
		line("Revocation", "not available (short-lived, RFC 9608 noRevAvail)")
	}
	if o := v.Origin; o != nil {
		req := o.Kind + " " + o.Name
		if o.Namespace != "" {
			req = o.Kind + " " + o.Namespace + "/" + o.Name
		}
		line("Request", req)
		if o.Certificate != "" {
			line("Certificate", o.Namespace+"/"+o.Certificate)
		}
	}
	line("Requester", v.Requester)
	if v.Template != "" {
		line("Template", v.Template)
	}
	if r := v.Revocation; r != nil {
		line("Revoked", r.Reason+" at "+r.At+" by "+r.By)
	} else if !v.NoRevocationAvailable {
		line("Revoked", "no")
	}
	for i, p := range v.Places {
		k := "Recorded in"
		if i > 0 {
			k = ""
		}
		line(k, p.String())
	}
	if v.Certificate == "" {
		line("PEM", "no longer kept (dropped when its entry was sealed or archived)")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, v.Certificate)
	return err
}

func writeHistoryTable(w io.Writer, views []entryView) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIAL\tISSUED\tNOT AFTER\tREQUEST\tREVOKED\tRECORDED IN")
	for _, v := range views {
		req := ""
		if v.Origin != nil {
			req = v.Origin.Name
		}
		rev := "-"
		if r := v.Revocation; r != nil {
			rev = r.Reason + " " + r.At
		}
		var where []string
		for _, p := range v.Places {
			if p.RevocationOnly {
				continue
			}
			s := p.Kind
			if p.Kind == auditreport.PlaceSegment {
				s = p.Stage + " " + p.Name
			}
			where = append(where, s)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Serial, v.Issued, v.NotAfter, req, rev, strings.Join(where, ", "))
	}
	return tw.Flush()
}

func writeSegmentTable(w io.Writer, s *ledgerSummary) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEGMENT\tSTAGE\tENTRIES\tREVOCATIONS\tCERTIFICATES\tFIRST ISSUED\tLAST ISSUED\tEXPIRES AFTER\tBYTES")
	for _, g := range s.Segments {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%d\n", g.Name, g.Stage, g.Entries, g.Revocations, g.Certificates,
			orDash(g.FirstIssuedAt), orDash(g.LastIssuedAt), g.ExpiresAfter, g.Bytes)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	t := s.Totals
	fmt.Fprintf(w, "\n%s in namespace %s: %d segments, %d entries, %d revocations, %d certificates kept, %d bytes\n",
		s.Issuer, s.Namespace, t.Segments, t.Entries, t.Revocations, t.Certificates, t.Bytes)
	if s.LegacyRecords > 0 {
		fmt.Fprintf(w, "legacy IssuedCertificates not migrated yet: %d\n", s.LegacyRecords)
	}
	if a := s.Archive; a != nil {
		fmt.Fprintf(w, "archive %s: %d entries, %d revocations\n", a.Dir, a.Entries, a.Revocations)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
