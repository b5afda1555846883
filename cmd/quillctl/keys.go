package main

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/quill-pki/quill/pkg/ceremony"
	"github.com/quill-pki/quill/pkg/pkcs11"
)

// envPIN is where a PKCS#11 URI without pin-source or pin-value finds the
// token's user PIN.
const envPIN = "QUILL_PKCS11_PIN"

var (
	errPKCS11URI = errors.New("bad pkcs11: key URI")
	errNoPIN     = errors.New("no PIN for the token")
)

// keyResolver is the one place that decides which key stores quillctl can
// sign with: PEM files (plain paths and file: URIs, ceremony.FileKey) and
// keys on PKCS#11 tokens ("pkcs11:" URIs, RFC 7512). A build without cgo
// still parses the URIs and fails with pkcs11.ErrNoCGO when the key is
// used.
func keyResolver() ceremony.KeyResolver {
	return ceremony.KeyResolver{Schemes: map[string]ceremony.KeyOpener{
		"pkcs11": func(ref string) (ceremony.KeySource, error) {
			cfg, err := parsePKCS11URI(ref, os.LookupEnv)
			if err != nil {
				return nil, err
			}
			return &tokenKey{ref: ref, cfg: cfg}, nil
		},
	}}
}

// tokenKey is a ceremony.KeySource for a key on a PKCS#11 token; the
// session is opened when the ceremony first needs the key.
type tokenKey struct {
	ref string
	cfg pkcs11.Config
	key *pkcs11.Key
}

func (k *tokenKey) Signer() (crypto.Signer, error) {
	if k.key == nil {
		key, err := pkcs11.Open(k.cfg)
		if err != nil {
			return nil, err
		}
		k.key = key
	}
	return k.key, nil
}

// String names the key by its URI with any PIN value removed.
func (k *tokenKey) String() string { return redactPIN(k.ref) }

func (k *tokenKey) Close() error {
	if k.key == nil {
		return nil
	}
	return k.key.Close()
}

// parsePKCS11URI reads the subset of RFC 7512 quillctl needs:
//
//	pkcs11:token=Root%20CA;object=root-key;id=%01%02?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin
//
// Path attributes: token (label) or serial, object (key label) and/or id.
// Query attributes: module-path (required), and the PIN from pin-source
// (file:), pin-value, or else the QUILL_PKCS11_PIN environment variable.
func parsePKCS11URI(ref string, getenv func(string) (string, bool)) (pkcs11.Config, error) {
	var cfg pkcs11.Config
	rest, ok := strings.CutPrefix(ref, "pkcs11:")
	if !ok {
		return cfg, fmt.Errorf("%w: %q does not start with pkcs11:", errPKCS11URI, redactPIN(ref))
	}
	path, query, _ := strings.Cut(rest, "?")
	for _, attr := range strings.Split(path, ";") {
		if attr == "" {
			continue
		}
		name, raw, ok := strings.Cut(attr, "=")
		if !ok {
			return cfg, fmt.Errorf("%w: attribute %q has no value", errPKCS11URI, attr)
		}
		value, err := url.PathUnescape(raw)
		if err != nil {
			return cfg, fmt.Errorf("%w: attribute %s: %w", errPKCS11URI, name, err)
		}
		switch name {
		case "token":
			cfg.TokenLabel = value
		case "serial":
			cfg.TokenSerial = value
		case "object":
			cfg.KeyLabel = value
		case "id":
			cfg.KeyID = []byte(value)
		case "type":
			if value != "private" {
				return cfg, fmt.Errorf("%w: type=%s: quillctl signs with private keys", errPKCS11URI, value)
			}
		default:
			return cfg, fmt.Errorf("%w: unsupported attribute %q (use token, serial, object, id)", errPKCS11URI, name)
		}
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return cfg, fmt.Errorf("%w: query: %w", errPKCS11URI, err)
	}
	cfg.ModulePath = q.Get("module-path")
	if cfg.ModulePath == "" || !filepath.IsAbs(cfg.ModulePath) {
		return cfg, fmt.Errorf("%w: module-path must name the PKCS#11 library by absolute path", errPKCS11URI)
	}
	switch {
	case q.Has("pin-value"):
		cfg.PIN = q.Get("pin-value")
	case q.Has("pin-source"):
		file, ok := strings.CutPrefix(q.Get("pin-source"), "file:")
		if !ok {
			return cfg, fmt.Errorf("%w: pin-source must be a file: URI", errPKCS11URI)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return cfg, fmt.Errorf("reading the PIN: %w", err)
		}
		cfg.PIN = strings.TrimRight(string(b), "\r\n")
	default:
		pin, ok := getenv(envPIN)
		if !ok {
			return cfg, fmt.Errorf("%w: add pin-source=file:… to the URI or set %s", errNoPIN, envPIN)
		}
		cfg.PIN = pin
	}
	if (cfg.TokenLabel == "") == (cfg.TokenSerial == "") {
		return cfg, fmt.Errorf("%w: name the token by exactly one of token= or serial=", errPKCS11URI)
	}
	if cfg.KeyLabel == "" && len(cfg.KeyID) == 0 {
		return cfg, fmt.Errorf("%w: name the key by object=, id= or both", errPKCS11URI)
	}
	// A ceremony signs once or twice: copying the key into a session
	// object (the controller's speed-up for many signatures) would only
	// add work inside the HSM, and a log line when the HSM refuses it.
	cfg.DisableSessionCopy = true
	return cfg, nil
}

// redactPIN hides a pin-value in a URI shown in messages.
func redactPIN(ref string) string {
	path, query, ok := strings.Cut(ref, "?")
	if !ok {
		return ref
	}
	parts := strings.Split(query, "&")
	for i, p := range parts {
		if strings.HasPrefix(p, "pin-value=") {
			parts[i] = "pin-value=REDACTED"
		}
	}
	return path + "?" + strings.Join(parts, "&")
}

// hsmCommand groups the token operations a ceremony needs before ca init,
// ca csr or ca sign can use a token key.
func (a *app) hsmCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hsm",
		Short: "Prepare CA keys on a PKCS#11 token",
	}
	cmd.AddCommand(a.hsmKeygenCommand(), a.hsmStoreCertCommand())
	return cmd
}

func (a *app) hsmKeygenCommand() *cobra.Command {
	var keyRef, alg string
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Generate a non-extractable signing key pair on a token",
		Example: `  QUILL_PKCS11_PIN=… quillctl hsm keygen --key-algorithm ECDSA-P384 \
    --key 'pkcs11:token=Root%20CA;object=root-key?module-path=/usr/lib/softhsm/libsofthsm2.so'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := parsePKCS11URI(keyRef, a.getenv)
			if err != nil {
				return err
			}
			key, err := pkcs11.GenerateKey(cfg, pkcs11.Algorithm(alg))
			if err != nil {
				return err
			}
			defer key.Close()
			der, err := x509.MarshalPKIXPublicKey(key.Public())
			if err != nil {
				return err
			}
			_, err = a.stdout.Write(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyRef, "key", "", "pkcs11: URI of the key to create (token, object and/or id, module-path, PIN)")
	f.StringVar(&alg, "key-algorithm", "ECDSA-P384", "ECDSA-P256, ECDSA-P384, ECDSA-P521, RSA-2048, RSA-3072, RSA-4096 or Ed25519")
	mustRequire(cmd, "key")
	return cmd
}

func (a *app) hsmStoreCertCommand() *cobra.Command {
	var keyRef, certFile, label string
	cmd := &cobra.Command{
		Use:   "store-cert",
		Short: "Store a CA certificate on the token beside its key (for spec.ca.pkcs11.certificateLabel)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := parsePKCS11URI(keyRef, a.getenv)
			if err != nil {
				return err
			}
			b, err := os.ReadFile(certFile)
			if err != nil {
				return err
			}
			block, _ := pem.Decode(b)
			if block == nil || block.Type != "CERTIFICATE" {
				return fmt.Errorf("%s: no PEM certificate", certFile)
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return fmt.Errorf("%s: %w", certFile, err)
			}
			// Refuse a certificate that is not the token key's: an issuer
			// would never become Ready with it.
			cfg.Expected = cert.PublicKey
			key, err := pkcs11.Open(cfg)
			if err != nil {
				return err
			}
			_ = key.Close()
			return pkcs11.ImportCertificate(cfg, label, cfg.KeyID, block.Bytes)
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyRef, "key", "", "pkcs11: URI of the certificate's key")
	f.StringVar(&certFile, "cert", "", "PEM certificate to store")
	f.StringVar(&label, "label", "", "CKA_LABEL of the certificate object")
	mustRequire(cmd, "key", "cert", "label")
	return cmd
}
