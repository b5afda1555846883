package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/quill-pki/quill/pkg/ceremony"
	"github.com/quill-pki/quill/pkg/kms"
)

// envPIN is where a PKCS#11 URI without pin-source or pin-value finds the
// token's user PIN.
const envPIN = "QUILL_PKCS11_PIN"

var errNoPIN = errors.New("no PIN for the token")

// keyResolver is the one place that decides which key stores quillctl can
// sign with: PEM files (plain paths and file: URIs, ceremony.FileKey) and
// every key backend registered in pkg/kms whose keys have a text form
// ("pkcs11:" URIs, RFC 7512). A build without cgo still parses the URIs
// and fails with a "needs cgo" error when the key is used.
func keyResolver(getenv func(string) (string, bool)) ceremony.KeyResolver {
	schemes := map[string]ceremony.KeyOpener{}
	for _, scheme := range kms.Default.Schemes() {
		if b, _ := kms.Default.Backend(scheme); !isParser(b) {
			continue
		}
		schemes[scheme] = func(ref string) (ceremony.KeySource, error) {
			r, err := parseKeyRef(ref, getenv)
			if err != nil {
				return nil, err
			}
			return &backendKey{ref: r}, nil
		}
	}
	return ceremony.KeyResolver{Schemes: schemes}
}

func isParser(b kms.Backend) bool {
	_, ok := b.(kms.RefParser)
	return ok
}

// parseKeyRef parses a key reference of a kms backend. A pkcs11: URI that
// gives no PIN takes it from QUILL_PKCS11_PIN, so that the PIN need not be
// typed on a command line.
func parseKeyRef(ref string, getenv func(string) (string, bool)) (kms.Ref, error) {
	r, err := kms.Default.Parse(ref)
	if err != nil {
		return nil, err
	}
	if u, ok := r.(*kms.PKCS11URI); ok && u.PIN == "" && u.PINSource == "" {
		pin, ok := getenv(envPIN)
		if !ok {
			return nil, fmt.Errorf("%w: add pin-source=file:… to the URI or set %s", errNoPIN, envPIN)
		}
		u.PIN = pin
	}
	return r, nil
}

// ceremonyKeys are the options of every key a ceremony uses: it signs once
// or twice, and the operator's URI names its library by path (no
// allow-list: the operator is the one running quillctl).
func ceremonyKeys() kms.Options { return kms.Options{FewSignatures: true} }

// backendKey is a ceremony.KeySource for a key in a kms backend; the key is
// opened when the ceremony first needs it.
type backendKey struct {
	ref kms.Ref
	key kms.Key
}

func (k *backendKey) Signer() (crypto.Signer, error) {
	if k.key == nil {
		key, err := kms.Default.Open(context.Background(), k.ref, ceremonyKeys())
		if err != nil {
			return nil, err
		}
		k.key = key
	}
	return k.key, nil
}

// String names the key by its reference, without a PIN.
func (k *backendKey) String() string { return k.ref.String() }

func (k *backendKey) Close() error {
	if k.key == nil {
		return nil
	}
	return k.key.Close()
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
			ref, err := parseKeyRef(keyRef, a.getenv)
			if err != nil {
				return err
			}
			key, err := kms.Default.CreateKey(cmd.Context(), ref, alg, ceremonyKeys())
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
			ref, err := parseKeyRef(keyRef, a.getenv)
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
			opts := ceremonyKeys()
			opts.Expected = cert.PublicKey
			key, err := kms.Default.Open(cmd.Context(), ref, opts)
			if err != nil {
				return err
			}
			_ = key.Close()
			return kms.Default.StoreCertificate(cmd.Context(), ref, label, block.Bytes, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyRef, "key", "", "pkcs11: URI of the certificate's key")
	f.StringVar(&certFile, "cert", "", "PEM certificate to store")
	f.StringVar(&label, "label", "", "CKA_LABEL of the certificate object")
	mustRequire(cmd, "key", "cert", "label")
	return cmd
}
