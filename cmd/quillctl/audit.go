package main

import (
	"github.com/spf13/cobra"

	"github.com/quill-pki/quill/pkg/auditreport"
)

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
	audit.AddCommand(auditreport.Command{Out: a.stdout, Warn: func(m string) { a.warn(m) }, Now: a.now, UserAgent: "quillctl/" + versionString()}.Report())
	return audit
}
