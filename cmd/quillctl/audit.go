package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

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
		issuer, kind, namespace, clusterNS, since, format, out string
		kubeconfig, kubeContext                                string
		chunk                                                  int64
		force                                                  bool
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

The ledger of a QuillIssuer is in its namespace (--namespace, default the
kubeconfig context's); that of a QuillClusterIssuer in the controller's
cluster resource namespace (--cluster-resource-namespace). Reading it needs
get on the issuer and list on issuedcertificates there: the quill-auditor
role. The ledger is read --chunk-size records at a time and each page is
written before the next is read. An issuer that was deleted is still
reported from the records it left, with a warning.`,
		Example: `  quillctl audit report --issuer platform-ca --since 720h --format csv --out platform-ca-audit.csv
  quillctl audit report --kind QuillIssuer --namespace team-a --issuer team-a-ca --format json | jq '.[] | select(.revocation_reason != "")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := auditreport.Options{ClusterResourceNamespace: clusterNS, ChunkSize: chunk, Warn: func(m string) { a.warn(m) }}
			if !slices.Contains(auditreport.Formats(), auditreport.Format(format)) {
				return fmt.Errorf("%w: --format %q: use csv or json", auditreport.ErrInvalid, format)
			}
			if chunk <= 0 {
				return fmt.Errorf("%w: --chunk-size must be positive", auditreport.ErrInvalid)
			}
			switch kind {
			case quillv1.ClusterIssuerKind:
				if cmd.Flags().Changed("namespace") {
					return fmt.Errorf("%w: --namespace applies to --kind QuillIssuer; a QuillClusterIssuer's ledger is in --cluster-resource-namespace", auditreport.ErrInvalid)
				}
			case quillv1.IssuerKind:
			default:
				return fmt.Errorf("%w: --kind %q: use QuillIssuer or QuillClusterIssuer", auditreport.ErrInvalid, kind)
			}
			if since != "" {
				t, err := auditreport.ParseSince(since, a.now())
				if err != nil {
					return err
				}
				opts.Since = t
			}
			if out != "" && !force {
				if _, err := os.Lstat(out); err == nil {
					return fmt.Errorf("%w: %s (pass --force to replace it)", errOutputExists, out)
				} else if !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
			cc, cl, err := connect(kubeconfig, kubeContext)
			if err != nil {
				return err
			}
			if kind == quillv1.IssuerKind && namespace == "" {
				ns, _, err := cc.Namespace()
				if err != nil {
					return fmt.Errorf("reading the kubeconfig: %w", err)
				}
				namespace = ns
			}
			opts.Issuer = quillv1.IssuerID{Kind: kind, Name: issuer}
			if kind == quillv1.IssuerKind {
				opts.Issuer.Namespace = namespace
			}
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
	f.StringVar(&issuer, "issuer", "", "name of the issuer")
	f.StringVar(&kind, "kind", quillv1.ClusterIssuerKind, "kind of the issuer: QuillIssuer or QuillClusterIssuer")
	f.StringVarP(&namespace, "namespace", "n", "", "namespace of a QuillIssuer; default the kubeconfig context's")
	f.StringVar(&clusterNS, "cluster-resource-namespace", "quill-system", "namespace holding QuillClusterIssuers' ledgers: the controller's --cluster-resource-namespace")
	f.StringVar(&since, "since", "", `only certificates issued or revoked since then: an RFC 3339 time ("2026-01-31T00:00:00Z") or a duration back from now ("24h", "30d")`)
	f.StringVar(&format, "format", string(auditreport.FormatCSV), "csv or json")
	f.StringVar(&out, "out", "", "write the report to this file (mode 0600; written whole or not at all) instead of standard output")
	f.BoolVar(&force, "force", false, "overwrite an existing --out file")
	f.Int64Var(&chunk, "chunk-size", auditreport.DefaultChunkSize, "ledger records read per API request")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file; default $KUBECONFIG or ~/.kube/config, then the in-cluster service account")
	f.StringVar(&kubeContext, "context", "", "kubeconfig context to use; default its current context")
	mustRequire(cmd, "issuer")
	return cmd
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
