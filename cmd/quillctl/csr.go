package main

import (
	"github.com/spf13/cobra"

	"github.com/quill-pki/quill/pkg/ceremony"
)

// leafCSRCommand is `quillctl csr`: a key and a request for an end-entity
// certificate, for keys cert-manager cannot generate (ML-DSA). The request
// goes to a Quill issuer as a CertificateRequest's spec.request.
func (a *app) leafCSRCommand() *cobra.Command {
	var (
		subject, keyRef, generate, out string
		dns, ips, uris, emails         []string
		force                          bool
	)
	cmd := &cobra.Command{
		Use:   "csr",
		Short: "Write a certificate signing request for a server or client key (e.g. ML-DSA)",
		Long: `Write a certificate signing request for an end-entity key: a server or
client certificate, not a CA (use "quillctl ca csr" for those).

cert-manager Certificates cannot generate ML-DSA keys yet; with this command
the key is made here and the request is submitted to a Quill issuer as a
cert-manager CertificateRequest, whose spec.request is the base64 of the
file written to --out.`,
		Example: `  quillctl csr --generate-key ML-DSA-65 --key app.key --subject "CN=app" --dns app.example.com --out app.csr
  quillctl csr --key existing.key --dns app.example.com --ip 10.0.0.7 --out app.csr`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := ceremony.LeafCSROptions{
				Subject: subject, DNSNames: dns, IPAddresses: ips, URIs: uris, EmailAddresses: emails,
				OutCSR: out, Replace: force,
			}
			var err error
			if opts.Key, opts.KeyAlgorithm, opts.OutKey, err = a.requestKey(keyRef, generate); err != nil {
				return err
			}
			res, err := ceremony.NewLeafCSR(opts)
			if err != nil {
				return withHint(err)
			}
			a.report(res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyRef, "key", "", "the key (a PEM file or a pkcs11: URI); with --generate-key, the file the new key is written to")
	f.StringVar(&generate, "generate-key", "", "generate a new key of this algorithm and write it to --key: "+algorithms())
	f.StringVar(&subject, "subject", "", `the subject, RFC 4514 style: "CN=app,O=Example" (may be left out when names are given)`)
	f.StringSliceVar(&dns, "dns", nil, "DNS names, comma-separated or repeated")
	f.StringSliceVar(&ips, "ip", nil, "IP addresses, comma-separated or repeated")
	f.StringSliceVar(&uris, "uri", nil, "URIs (e.g. SPIFFE IDs), comma-separated or repeated")
	f.StringSliceVar(&emails, "email", nil, "email addresses, comma-separated or repeated")
	f.StringVar(&out, "out", "", "file for the request (PEM)")
	f.BoolVar(&force, "force", false, "overwrite existing output files")
	mustRequire(cmd, "key", "out")
	return cmd
}
