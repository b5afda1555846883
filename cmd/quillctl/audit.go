package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/auditreport"
)

// errOutputExists: --out names an existing file and --force was not given.
var errOutputExists = errors.New("output file exists")

// auditCommand groups the commands that read what Quill did from the
// cluster.
func (a *app) auditCommand() *cobra.Command {
	audit := &cobra.Command{
		Use:   "audit",
		Short: "Report what an issuer issued and revoked, from its ledger in the cluster",
		// Runnable, so that cobra checks its arguments (see "ca").
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	audit.AddCommand(a.auditReportCommand())
	return audit
}

// auditReportCommand is `quillctl audit report`: the flags and the output
// file are the command line's; the report itself is pkg/auditreport's.
func (a *app) auditReportCommand() *cobra.Command {
	var (
		lf                 ledgerFlags
		since, format, out string
		force              bool
	)
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Write an issuer's audit report (every certificate it issued, and revocations) from the ledger",
		Long: `Write an issuer's audit report from its issuance ledger: one row per
certificate the issuer signed, in serial number order.

Columns, always in this order:
  serial             serial number, lowercase hex
  subject            subject distinguished name
  sans               subject alternative names, "DNS:", "IP:", "URI:" or
                     "email:" each, separated by spaces (CSV) or as an array (JSON)
  requester          the user who created the request
  namespace          the namespace the request came from
  request_kind       CertificateRequest or CertificateSigningRequest
  request            the request's name
  certificate        the cert-manager Certificate behind the request
  template           the certificate template the request selected
  issued             when Quill signed it (RFC 3339 UTC, microseconds)
  expires            its notAfter (RFC 3339 UTC)
  revocation_reason  RFC 5280 reason, empty when not revoked
  revoked_at         when it was revoked (RFC 3339 UTC)
  revoked_by         the QuillRevocation or automatic rule that revoked it

--format csv is RFC 4180 CSV (header line, CRLF line ends); --format json
is one JSON array of objects keyed by the column names, one object per
line. --since keeps certificates issued or revoked at or after a time.

` + ledgerFlagsHelp + `

The whole ledger is read and merged before the first row is written, so a
report that fails writes nothing. An issuer that was deleted is still
reported from the ledger it left, with a warning. A segment that cannot be
decoded is skipped with a warning, and the command then fails after
writing the rest (with --out, no file is left).`,
		Example: `  quillctl audit report --issuer platform-ca --since 720h --format csv --out platform-ca-audit.csv
  quillctl audit report --kind QuillIssuer --namespace team-a --issuer team-a-ca --format json | jq '.[] | select(.revocation_reason != "")'
  kubectl exec -n quill-system deploy/quill -- /quillctl audit report --issuer platform-ca --archive-dir /var/lib/quill/ledger-archive`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !slices.Contains(auditreport.Formats(), auditreport.Format(format)) {
				return fmt.Errorf("%w: --format %q: use csv or json", auditreport.ErrInvalid, format)
			}
			if err := lf.check(cmd); err != nil {
				return err
			}
			var sinceT time.Time
			if since != "" {
				t, err := auditreport.ParseSince(since, a.now())
				if err != nil {
					return err
				}
				sinceT = t
			}
			if out != "" && !force {
				if _, err := os.Lstat(out); err == nil {
					return fmt.Errorf("%w: %s (pass --force to replace it)", errOutputExists, out)
				} else if !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
			opts, cl, err := a.ledgerOptions(&lf)
			if err != nil {
				return err
			}
			opts.Since = sinceT
			if out == "" {
				_, err := auditreport.Write(cmd.Context(), cl, opts, auditreport.Format(format), a.stdout)
				return err
			}
			n, err := writeReportFile(cmd, cl, opts, auditreport.Format(format), out)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "wrote: %s (%d certificates)\n", out, n)
			return err
		},
	}
	f := cmd.Flags()
	lf.register(cmd)
	f.StringVar(&since, "since", "", `only certificates issued or revoked since then: an RFC 3339 time ("2026-01-31T00:00:00Z") or a duration back from now ("24h", "30d")`)
	f.StringVar(&format, "format", string(auditreport.FormatCSV), "csv or json")
	f.StringVar(&out, "out", "", "write the report to this file (mode 0600; written whole or not at all) instead of standard output")
	f.BoolVar(&force, "force", false, "overwrite an existing --out file")
	return cmd
}

// ledgerFlagsHelp says, in every command that reads a ledger, where the
// ledger is and what reading it needs.
const ledgerFlagsHelp = `The ledger of a QuillIssuer is in its namespace (--namespace, default the
kubeconfig context's); that of a QuillClusterIssuer in the controller's
cluster resource namespace (--cluster-resource-namespace). It is the
issuer's LedgerSegments there, plus the IssuedCertificates of a ledger the
controller has not migrated yet; reading it needs get on the issuer and
list on ledgersegments and issuedcertificates: the quill-auditor role.
Segments are listed a few at a time (at most --chunk-size) and decoded one
at a time. Entries whose certificates expired longer ago than the issuer's
spec.ledger.retainExpiredFor are moved to the controller's archive
(--ledger-archive-dir): pass --archive-dir to read them too, for instance
by running quillctl inside the controller's pod, which ships it as
/quillctl.`

// ledgerFlags are the flags of every command that reads an issuer's
// ledger: audit report and the ledger commands.
type ledgerFlags struct {
	issuer, kind, namespace, clusterNS, archiveDir string
	kubeconfig, kubeContext                        string
	chunk                                          int64
}

func (lf *ledgerFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&lf.issuer, "issuer", "", "name of the issuer")
	f.StringVar(&lf.kind, "kind", quillv1.ClusterIssuerKind, "kind of the issuer: QuillIssuer or QuillClusterIssuer")
	f.StringVarP(&lf.namespace, "namespace", "n", "", "namespace of a QuillIssuer; default the kubeconfig context's")
	f.StringVar(&lf.clusterNS, "cluster-resource-namespace", "quill-system", "namespace holding QuillClusterIssuers' ledgers: the controller's --cluster-resource-namespace")
	f.StringVar(&lf.archiveDir, "archive-dir", "", "the controller's ledger archive directory (its --ledger-archive-dir, or a copy): read the archived entries too")
	f.Int64Var(&lf.chunk, "chunk-size", auditreport.DefaultChunkSize, "ledger objects read per API request (segments: at most 8)")
	f.StringVar(&lf.kubeconfig, "kubeconfig", "", "kubeconfig file; default $KUBECONFIG or ~/.kube/config, then the in-cluster service account")
	f.StringVar(&lf.kubeContext, "context", "", "kubeconfig context to use; default its current context")
	mustRequire(cmd, "issuer")
}

// check refuses bad flags before anything reads the kubeconfig.
func (lf *ledgerFlags) check(cmd *cobra.Command) error {
	if lf.chunk <= 0 {
		return fmt.Errorf("%w: --chunk-size must be positive", auditreport.ErrInvalid)
	}
	switch lf.kind {
	case quillv1.ClusterIssuerKind:
		if cmd.Flags().Changed("namespace") {
			return fmt.Errorf("%w: --namespace applies to --kind QuillIssuer; a QuillClusterIssuer's ledger is in --cluster-resource-namespace", auditreport.ErrInvalid)
		}
	case quillv1.IssuerKind:
	default:
		return fmt.Errorf("%w: --kind %q: use QuillIssuer or QuillClusterIssuer", auditreport.ErrInvalid, lf.kind)
	}
	if lf.archiveDir != "" {
		if st, err := os.Stat(lf.archiveDir); err != nil {
			return fmt.Errorf("%w: --archive-dir: %w", auditreport.ErrInvalid, err)
		} else if !st.IsDir() {
			return fmt.Errorf("%w: --archive-dir %s is not a directory", auditreport.ErrInvalid, lf.archiveDir)
		}
	}
	return nil
}

// ledgerOptions connects to the cluster and names the issuer, its
// namespace defaulting to the kubeconfig context's.
func (a *app) ledgerOptions(lf *ledgerFlags) (auditreport.Options, client.Reader, error) {
	opts := auditreport.Options{ClusterResourceNamespace: lf.clusterNS, ChunkSize: lf.chunk, ArchiveDir: lf.archiveDir,
		Warn: func(m string) { a.warn(m) }}
	dial := a.connect
	if dial == nil {
		dial = connect
	}
	cc, cl, err := dial(lf.kubeconfig, lf.kubeContext)
	if err != nil {
		return opts, nil, err
	}
	opts.Issuer = quillv1.IssuerID{Kind: lf.kind, Name: lf.issuer}
	if lf.kind == quillv1.IssuerKind {
		ns := lf.namespace
		if ns == "" {
			if ns, _, err = cc.Namespace(); err != nil {
				return opts, nil, fmt.Errorf("reading the kubeconfig: %w", err)
			}
		}
		opts.Issuer.Namespace = ns
	}
	return opts, cl, nil
}

// writeReportFile writes the report to a temporary file beside path and
// renames it into place once complete, so a failed report leaves no file.
// The file has mode 0600, as os.CreateTemp makes it: an audit report says
// who holds which certificate.
func writeReportFile(cmd *cobra.Command, cl client.Reader, opts auditreport.Options, format auditreport.Format, path string) (int, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	n, err := auditreport.Write(cmd.Context(), cl, opts, format, tmp)
	if err == nil {
		err = tmp.Sync() // on disk before it takes the report's name
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	return n, os.Rename(tmp.Name(), path)
}
