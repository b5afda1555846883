package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/quill-pki/quill/pkg/ceremony"
	"github.com/quill-pki/quill/pkg/issuance"
)

// version is set at build time: -ldflags "-X main.version=v0.3.0".
var version string

var (
	errFlags    = errors.New("invalid flags")
	errPassword = errors.New("no PFX password")
)

func (a *app) command() *cobra.Command {
	root := &cobra.Command{
		Use:   "quillctl",
		Short: "CA ceremonies for Quill: offline roots, subordinate CAs, CA Secrets",
		Long: `quillctl prepares the CA a Quill issuer signs with.

  quillctl ca init     create a self-signed root CA and its key
  quillctl ca csr      request a subordinate CA certificate for a key
  quillctl ca sign     sign a subordinate CA's request with a CA (the offline root)
  quillctl ca import   check CA material (PFX, or PEM certificate and key) and
                       print the Secret for spec.ca.secretRef
  quillctl csr         request a server or client certificate for a key
                       (ML-DSA keys, which cert-manager cannot generate)
  quillctl hsm keygen  generate a CA key pair on a PKCS#11 token
  quillctl hsm store-cert
                       store a CA certificate on the token beside its key
  quillctl audit report
                       write an issuer's audit report (CSV or JSON) from
                       its ledger in the cluster
  quillctl ledger get|history|list
                       look up a serial, a Certificate's history or the
                       segments of an issuer's ledger
  quillctl inventory   list every issuer's CA algorithms and unexpired
                       certificates by algorithm, quantum-vulnerable share

Keys are PEM files (PKCS#8, PKCS#1 or SEC1) or pkcs11: URIs (RFC 7512);
generated software keys are written as PKCS#8 with mode 0600. Outputs are
never overwritten without --force, and a failed command writes nothing.`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.CompletionOptions.DisableDefaultCmd = true

	ca := &cobra.Command{
		Use:   "ca",
		Short: "Create, sign and import CA certificates",
		// Runnable, so that cobra checks its arguments: a command group
		// without RunE prints help for a mistyped subcommand and exits 0.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	ca.AddCommand(a.initCommand(), a.csrCommand(), a.signCommand(), a.importCommand())
	root.AddCommand(ca, a.hsmCommand(), a.versionCommand())
	root.AddCommand(a.leafCSRCommand())
	root.AddCommand(a.auditCommand(), a.ledgerCommand())
	root.AddCommand(a.inventoryCommand())
	return root
}

// constraintFlags are the CA constraints init and sign share.
type constraintFlags struct {
	pathLen                   int
	permittedDNS, excludedDNS []string
}

func (c *constraintFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.IntVar(&c.pathLen, "path-len", 0, "pathLenConstraint: how many CA levels may follow below this CA (0: only leaf certificates); left out when not given")
	f.StringSliceVar(&c.permittedDNS, "permitted-dns", nil, `name constraints: DNS domains the CA may issue for, comma-separated ("example.com" includes its subdomains, ".example.com" only them)`)
	f.StringSliceVar(&c.excludedDNS, "excluded-dns", nil, "name constraints: DNS domains the CA may not issue for, comma-separated")
}

func (c *constraintFlags) constraints(cmd *cobra.Command) ceremony.Constraints {
	out := ceremony.Constraints{PermittedDNS: c.permittedDNS, ExcludedDNS: c.excludedDNS}
	if cmd.Flags().Changed("path-len") {
		n := c.pathLen
		out.PathLen = &n
	}
	return out
}

func mustRequire(cmd *cobra.Command, names ...string) {
	for _, n := range names {
		if err := cmd.MarkFlagRequired(n); err != nil {
			// Only a misspelt flag name gets here, which no user can cause.
			panic(err)
		}
	}
}

func (a *app) initCommand() *cobra.Command {
	var (
		subject, keyAlg, validity, keyRef, outCert, outKey string
		force                                              bool
		cf                                                 constraintFlags
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a self-signed root CA and its key",
		Example: `  quillctl ca init --subject "CN=Example Root CA,O=Example" --key-algorithm ECDSA-P384 \
    --validity 87600h --path-len 1 --permitted-dns example.com --out-cert root.crt --out-key root.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := ceremony.ParseValidity(validity)
			if err != nil {
				return err
			}
			opts := ceremony.InitOptions{
				Subject:     subject,
				Validity:    v,
				Constraints: cf.constraints(cmd),
				OutCert:     outCert,
				Replace:     force,
				Now:         a.now(),
			}
			if keyRef != "" {
				if opts.Key, err = a.keys.Open(keyRef); err != nil {
					return err
				}
			} else {
				if opts.KeyAlgorithm, err = issuance.ParseKeyAlgorithm(keyAlg); err != nil {
					return err
				}
				opts.OutKey = outKey
			}
			res, err := ceremony.Init(opts)
			if err != nil {
				return withHint(err)
			}
			a.report(res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&subject, "subject", "", `the root's name, RFC 4514 style, most specific first: "CN=Example Root CA,O=Example,C=DE"`)
	f.StringVar(&keyAlg, "key-algorithm", string(issuance.ECDSAP384), "algorithm of the generated key: "+algorithms())
	f.StringVar(&validity, "validity", "87600h", `how long the root is valid: a duration ("87600h") or days ("3650d")`)
	f.StringVar(&outCert, "out-cert", "", "file for the root certificate (PEM)")
	f.StringVar(&outKey, "out-key", "", "file for the generated private key (PKCS#8 PEM, mode 0600)")
	f.StringVar(&keyRef, "key", "", "use this existing key (a PEM file) instead of generating one")
	f.BoolVar(&force, "force", false, "overwrite existing output files")
	cf.register(cmd)
	mustRequire(cmd, "subject", "out-cert")
	cmd.MarkFlagsOneRequired("out-key", "key")
	cmd.MarkFlagsMutuallyExclusive("out-key", "key")
	cmd.MarkFlagsMutuallyExclusive("key-algorithm", "key")
	return cmd
}

func (a *app) csrCommand() *cobra.Command {
	var (
		subject, keyRef, generate, out string
		force                          bool
	)
	cmd := &cobra.Command{
		Use:   "csr",
		Short: "Write a certificate signing request for a subordinate CA key",
		Example: `  quillctl ca csr --key sub.key --generate-key ECDSA-P256 --subject "CN=Example Issuing CA,O=Example" --out sub.csr
  quillctl ca csr --key existing.key --subject "CN=Example Issuing CA,O=Example" --out sub.csr`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := ceremony.CSROptions{Subject: subject, OutCSR: out, Replace: force}
			var err error
			if opts.Key, opts.KeyAlgorithm, opts.OutKey, err = a.requestKey(keyRef, generate); err != nil {
				return err
			}
			res, err := ceremony.NewCSR(opts)
			if err != nil {
				return withHint(err)
			}
			a.report(res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyRef, "key", "", "the subordinate's key (a PEM file); with --generate-key, the file the new key is written to")
	f.StringVar(&generate, "generate-key", "", "generate a new key of this algorithm and write it to --key: "+algorithms())
	f.StringVar(&subject, "subject", "", `the subordinate's name, RFC 4514 style: "CN=Example Issuing CA,O=Example"`)
	f.StringVar(&out, "out", "", "file for the request (PEM)")
	f.BoolVar(&force, "force", false, "overwrite existing output files")
	mustRequire(cmd, "key", "subject", "out")
	return cmd
}

func (a *app) signCommand() *cobra.Command {
	var (
		caCert, caKey, csr, validity, out string
		chain, force                      bool
		cf                                constraintFlags
	)
	cmd := &cobra.Command{
		Use:   "sign",
		Short: "Sign a subordinate CA's request with a CA certificate and key",
		Long: `Sign a subordinate CA's request with a CA certificate and key.

The subordinate takes the request's subject and public key; everything else
(basic constraints, key usage, name constraints, validity) is set here. Its
validity ends at the latest with the issuing chain's, with a warning. The
issuing certificate must be a CA allowed to sign certificates, valid now,
and match the key.`,
		Example: `  quillctl ca sign --ca-cert root.crt --ca-key root.key --csr sub.csr --validity 43800h \
    --path-len 0 --permitted-dns example.com --out sub.crt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := ceremony.ParseValidity(validity)
			if err != nil {
				return err
			}
			key, err := a.keys.Open(caKey)
			if err != nil {
				return err
			}
			res, err := ceremony.Sign(ceremony.SignOptions{
				CACert:      caCert,
				CAKey:       key,
				CSR:         csr,
				Validity:    v,
				Constraints: cf.constraints(cmd),
				Chain:       chain,
				Out:         out,
				Replace:     force,
				Now:         a.now(),
			})
			if err != nil {
				return withHint(err)
			}
			a.report(res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&caCert, "ca-cert", "", "the issuing CA's certificate (PEM), optionally followed by the CAs above it")
	f.StringVar(&caKey, "ca-key", "", "the issuing CA's key (a PEM file)")
	f.StringVar(&csr, "csr", "", "the subordinate's request (PEM)")
	f.StringVar(&validity, "validity", "43800h", `how long the subordinate is valid: a duration ("43800h") or days ("1825d")`)
	f.StringVar(&out, "out", "", "file for the subordinate's certificate (PEM)")
	f.BoolVar(&chain, "chain", false, "append the --ca-cert certificates to the output, making it a ready tls.crt bundle")
	f.BoolVar(&force, "force", false, "overwrite an existing output file")
	cf.register(cmd)
	mustRequire(cmd, "ca-cert", "ca-key", "csr", "out")
	return cmd
}

func (a *app) importCommand() *cobra.Command {
	var (
		pfx, passwordFile, passwordEnv, cert, key, caFile, name, namespace, output string
	)
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Check CA material and print it as the Secret a Quill issuer reads",
		Long: `Check CA material and print it as the Secret a Quill issuer reads.

The input is a PFX (PKCS#12: the modern AES encryption OpenSSL 3 writes by
default, or legacy 3DES/RC2) or a PEM certificate and key. Before anything
is printed, quillctl checks that the key matches the certificate, that the
certificate is a CA allowed to sign certificates and valid now, and that the
chain up to a self-signed root is complete, each certificate signed by the
next. The root comes from the PFX or from --ca.

The Secret is of type kubernetes.io/tls: tls.crt is the CA and the
intermediates above it, tls.key its PKCS#8 key, ca.crt the root. It holds
the CA's private key: apply it straight away rather than storing it.

The PFX password is read from --password-file (its first line), from the
environment variable named by --password-env, or asked on the terminal.`,
		Example: `  quillctl ca import --pfx ca.pfx --password-file pass.txt --name quill-issuing-ca | kubectl apply -f -
  quillctl ca import --cert sub.crt --key sub.key --ca root.crt --name quill-issuing-ca --namespace quill-system -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != ceremony.FormatYAML && output != ceremony.FormatJSON {
				return fmt.Errorf("%w: --output %q: use yaml or json", errFlags, output)
			}
			opts := ceremony.ImportOptions{
				PFX:       pfx,
				Cert:      cert,
				Key:       key,
				CA:        caFile,
				Name:      name,
				Namespace: namespace,
				Now:       a.now(),
			}
			if pfx == "" && (passwordFile != "" || passwordEnv != "") {
				return fmt.Errorf("%w: --password-file and --password-env apply to --pfx only", errFlags)
			}
			if pfx != "" {
				pw, err := a.pfxPassword(pfx, passwordFile, passwordEnv)
				if err != nil {
					return err
				}
				opts.Password = pw
			}
			imported, err := ceremony.Import(opts)
			if err != nil {
				return err
			}
			manifest, err := ceremony.EncodeSecret(imported.Secret, output)
			if err != nil {
				return err
			}
			a.warn(imported.Warnings...)
			_, err = a.stdout.Write(manifest)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&pfx, "pfx", "", "PKCS#12 file with the CA's key, certificate and, usually, its chain")
	f.StringVar(&passwordFile, "password-file", "", "file whose first line is the PFX password")
	f.StringVar(&passwordEnv, "password-env", "", "environment variable holding the PFX password")
	f.StringVar(&cert, "cert", "", "the CA certificate (PEM), optionally followed by the CAs above it")
	f.StringVar(&key, "key", "", "the CA's private key (PEM, unencrypted)")
	f.StringVar(&caFile, "ca", "", "the root CA (PEM), with any intermediates the other input lacks")
	f.StringVar(&name, "name", "", "name of the Secret, as spec.ca.secretRef.name will give it")
	f.StringVar(&namespace, "namespace", "quill-system", "namespace of the Secret: the issuer's, or the controller's --cluster-resource-namespace for a QuillClusterIssuer")
	f.StringVarP(&output, "output", "o", ceremony.FormatYAML, "manifest format: yaml or json")
	mustRequire(cmd, "name")
	cmd.MarkFlagsOneRequired("pfx", "cert")
	cmd.MarkFlagsMutuallyExclusive("pfx", "cert")
	cmd.MarkFlagsMutuallyExclusive("pfx", "key")
	cmd.MarkFlagsRequiredTogether("cert", "key")
	cmd.MarkFlagsMutuallyExclusive("password-file", "password-env")
	return cmd
}

// pfxPassword finds the password for the PFX at path: from a file, from an
// environment variable, or typed on the terminal without echo.
func (a *app) pfxPassword(path, file, env string) (string, error) {
	switch {
	case file != "":
		return ceremony.ReadPasswordFile(file)
	case env != "":
		pw, ok := a.getenv(env)
		if !ok {
			return "", fmt.Errorf("%w: the environment variable %s (--password-env) is not set", errPassword, env)
		}
		return pw, nil
	}
	fd := int(a.stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", fmt.Errorf("%w for %s: pass --password-file or --password-env, or run quillctl on a terminal to be asked", errPassword, path)
	}
	fmt.Fprintf(a.stderr, "Password for %s: ", path)
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(a.stderr)
	if err != nil {
		return "", fmt.Errorf("%w: reading it from the terminal: %w", errPassword, err)
	}
	return string(pw), nil
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print quillctl's version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintf(a.stdout, "quillctl %s (%s %s/%s)\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}

// versionString is the version set at build time, else the module version
// of a `go install`, else the source revision, else "devel".
func versionString() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "devel-" + s.Value[:12]
		}
	}
	return "devel"
}

// report prints what an operation made, warnings first (on stderr).
func (a *app) report(res *ceremony.Result) {
	a.warn(res.Warnings...)
	if c := res.Certificate; c != nil {
		s := (&issuance.Authority{Certificate: c}).Summary()
		fmt.Fprintf(a.stdout, "subject:     %s\n", s.Subject)
		fmt.Fprintf(a.stdout, "issuer:      %s\n", c.Issuer)
		fmt.Fprintf(a.stdout, "serial:      %s\n", serialHex(c))
		fmt.Fprintf(a.stdout, "valid:       %s to %s\n", s.NotBefore.UTC().Format("2006-01-02T15:04:05Z"), s.NotAfter.UTC().Format("2006-01-02T15:04:05Z"))
		fmt.Fprintf(a.stdout, "key:         %s\n", s.KeyAlgorithm)
		fmt.Fprintf(a.stdout, "sha256:      %s\n", s.SHA256Fingerprint)
	}
	if r := res.Request; r != nil {
		fmt.Fprintf(a.stdout, "subject:     %s\n", r.Subject)
		fmt.Fprintf(a.stdout, "signature:   %s\n", r.SignatureAlgorithm)
	}
	fmt.Fprintf(a.stdout, "wrote:       %s\n", strings.Join(res.Files, ", "))
}

func serialHex(c *x509.Certificate) string {
	return fmt.Sprintf("%X", c.SerialNumber)
}

// withHint adds what to do to errors the user can fix with a flag.
func withHint(err error) error {
	if errors.Is(err, ceremony.ErrOutputExists) {
		return fmt.Errorf("%w (pass --force to replace it)", err)
	}
	return err
}

func algorithms() string {
	algs := issuance.KeyAlgorithms()
	names := make([]string, len(algs))
	for i, a := range algs {
		names[i] = string(a)
	}
	return strings.Join(names, ", ")
}

// requestKey resolves --key and --generate-key for the commands that write
// a CSR: an existing key to open, or the algorithm of a new software key
// and the file it goes to.
func (a *app) requestKey(keyRef, generate string) (ceremony.KeySource, issuance.KeyAlgorithm, string, error) {
	if generate == "" {
		src, err := a.keys.Open(keyRef)
		return src, "", "", err
	}
	alg, err := issuance.ParseKeyAlgorithm(generate)
	if err != nil {
		return nil, "", "", err
	}
	path, isFile, err := a.keys.FilePath(keyRef)
	if err != nil {
		return nil, "", "", err
	}
	if !isFile {
		return nil, "", "", fmt.Errorf("%w: --generate-key writes a software key to a file, and %q is not one; create a token's key with the token's tools and pass it without --generate-key", errFlags, keyRef)
	}
	return nil, alg, path, nil
}
