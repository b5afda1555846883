// Package pkcs11kms is the PKCS#11 backend of pkg/kms: it opens, creates
// and stores certificates beside keys named by kms.PKCS11URI, through
// pkg/pkcs11. Importing it registers the backend under the "pkcs11" scheme.
//
// In a build without cgo the backend is still registered, and every
// operation fails with an error wrapping kms.ErrNotAllowed and
// pkcs11.ErrNoCGO, whose message says the build needs cgo (pkg/pkcs11's
// stub): an issuer or a ceremony that names a token learns why it cannot
// be used, instead of being told that pkcs11: is an unknown scheme.
package pkcs11kms

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/kms"
	"github.com/quill-pki/quill/pkg/pkcs11"
)

func init() { kms.Register(kms.SchemePKCS11, Backend{}) }

// Backend implements kms.Backend, kms.RefParser, kms.KeyCreator and
// kms.CertificateStore for PKCS#11 tokens. It holds no state: pkg/pkcs11
// keeps one library context per module per process.
type Backend struct{}

// The capabilities the Backend promises.
var (
	_ kms.Backend          = Backend{}
	_ kms.RefParser        = Backend{}
	_ kms.KeyCreator       = Backend{}
	_ kms.CertificateStore = Backend{}
)

// algorithms maps Quill's key algorithm names (pkg/issuance, their one
// home) to what pkg/pkcs11 generates. ML-DSA is missing on purpose: PKCS#11
// defines it only from version 3.2, which no supported token offers yet.
var algorithms = map[issuance.KeyAlgorithm]pkcs11.Algorithm{
	issuance.ECDSAP256: pkcs11.ECDSAP256,
	issuance.ECDSAP384: pkcs11.ECDSAP384,
	issuance.ECDSAP521: pkcs11.ECDSAP521,
	issuance.RSA2048:   pkcs11.RSA2048,
	issuance.RSA3072:   pkcs11.RSA3072,
	issuance.RSA4096:   pkcs11.RSA4096,
	issuance.Ed25519:   pkcs11.Ed25519,
}

// Algorithms lists the issuance.KeyAlgorithm names CreateKey accepts, in
// the order help texts show them.
func Algorithms() []issuance.KeyAlgorithm {
	return slices.SortedFunc(maps.Keys(algorithms), func(a, b issuance.KeyAlgorithm) int { return strings.Compare(string(a), string(b)) })
}

// ParseRef parses a pkcs11: URI (kms.ParsePKCS11URI).
func (Backend) ParseRef(s string) (kms.Ref, error) {
	u, err := kms.ParsePKCS11URI(s)
	if err != nil {
		return nil, err
	}
	return u, nil
}

// Check validates the reference and resolves its library through
// opts.Modules without loading it.
func (Backend) Check(ref kms.Ref, opts kms.Options) error {
	u, err := uriOf(ref)
	if err != nil {
		return err
	}
	_, err = modulePath(u, opts)
	return err
}

// Open finds the key on its token and logs in. The key recovers by itself
// from a lost or re-initialised token (see pkg/pkcs11) and refuses, with
// kms.ErrKeyMismatch, a key that is not opts.Expected's.
func (Backend) Open(_ context.Context, ref kms.Ref, opts kms.Options) (kms.Key, error) {
	cfg, err := config(ref, opts)
	if err != nil {
		return nil, err
	}
	k, err := pkcs11.Open(cfg)
	if err != nil {
		return nil, classify(err)
	}
	return &key{k: k}, nil
}

// CreateKey generates a key pair of alg on the token, non-extractable and
// allowed only to sign, labelled with the URI's object and with its id (16
// random bytes when it has none).
func (Backend) CreateKey(_ context.Context, ref kms.Ref, alg string, opts kms.Options) (kms.Key, error) {
	cfg, err := config(ref, opts)
	if err != nil {
		return nil, err
	}
	a, ok := algorithms[issuance.KeyAlgorithm(alg)]
	if !ok {
		names := make([]string, 0, len(algorithms))
		for _, n := range Algorithms() {
			names = append(names, string(n))
		}
		return nil, fmt.Errorf("%w: a PKCS#11 token cannot create %q keys (use one of %s)", kms.ErrUnsupported, alg, strings.Join(names, ", "))
	}
	k, err := pkcs11.GenerateKey(cfg, a)
	if errors.Is(err, pkcs11.ErrKeyAmbiguous) {
		// Here it means the label or id is taken: the reference must name
		// a new place, waiting will not help.
		return nil, kms.Mark(err, kms.ErrInvalidRef)
	}
	if err != nil {
		return nil, classify(err)
	}
	return &key{k: k}, nil
}

// StoreCertificate stores der on the token as a public certificate object
// labelled label, with the URI's id so that it stays paired with its key.
func (Backend) StoreCertificate(_ context.Context, ref kms.Ref, label string, der []byte, opts kms.Options) error {
	cfg, err := config(ref, opts)
	if err != nil {
		return err
	}
	return classify(pkcs11.ImportCertificate(cfg, label, cfg.KeyID, der))
}

// LoadCertificate reads the certificate labelled label from the token.
func (Backend) LoadCertificate(_ context.Context, ref kms.Ref, label string, opts kms.Options) ([]byte, error) {
	cfg, err := config(ref, opts)
	if err != nil {
		return nil, err
	}
	der, err := pkcs11.FindCertificate(cfg, label)
	return der, classify(err)
}

func uriOf(ref kms.Ref) (*kms.PKCS11URI, error) {
	switch u := ref.(type) {
	case *kms.PKCS11URI:
		return u, u.Validate()
	case kms.PKCS11URI:
		return &u, u.Validate()
	}
	return nil, fmt.Errorf("%w: the pkcs11 backend cannot open a %T", kms.ErrInvalidRef, ref)
}

// modulePath is the library the reference may load: its module-name looked
// up in the allow-list, or its module-path when the caller has no
// allow-list or lists that path.
func modulePath(u *kms.PKCS11URI, opts kms.Options) (string, error) {
	allowed := func() string {
		names := strings.Join(slices.Sorted(maps.Keys(opts.Modules)), ", ")
		if names == "" {
			return "none configured"
		}
		return names
	}
	if u.ModuleName != "" {
		path, ok := opts.Modules[u.ModuleName]
		if !ok {
			return "", fmt.Errorf("%w: PKCS#11 module %q is not in the controller's allow-list (allowed: %s)", kms.ErrNotAllowed, u.ModuleName, allowed())
		}
		return path, nil
	}
	if opts.Modules != nil && !slices.Contains(slices.Collect(maps.Values(opts.Modules)), u.ModulePath) {
		return "", fmt.Errorf("%w: PKCS#11 library %s is not in the controller's allow-list (allowed: %s)", kms.ErrNotAllowed, u.ModulePath, allowed())
	}
	return u.ModulePath, nil
}

// config turns a reference and options into pkg/pkcs11's Config.
func config(ref kms.Ref, opts kms.Options) (pkcs11.Config, error) {
	u, err := uriOf(ref)
	if err != nil {
		return pkcs11.Config{}, err
	}
	path, err := modulePath(u, opts)
	if err != nil {
		return pkcs11.Config{}, err
	}
	pin, err := u.ReadPIN()
	if err != nil {
		return pkcs11.Config{}, err
	}
	cfg := pkcs11.Config{
		ModulePath:  path,
		TokenLabel:  u.Token,
		TokenSerial: u.Serial,
		KeyLabel:    u.Object,
		KeyID:       u.ID,
		PIN:         pin,
		Expected:    opts.Expected,
		Log:         opts.Log,
		// A ceremony signs once or twice: copying the key into a session
		// object (worth it for many signatures) would only add work inside
		// the HSM, and a log line when the HSM refuses it.
		DisableSessionCopy: opts.FewSignatures,
	}
	if report := opts.OnLogin; report != nil {
		cfg.OnLogin = func(r pkcs11.LoginResult) { report(loginResult(r)) }
	}
	return cfg, nil
}

func loginResult(r pkcs11.LoginResult) kms.LoginResult {
	switch r {
	case pkcs11.LoginOK:
		return kms.LoginOK
	case pkcs11.LoginPINIncorrect:
		return kms.LoginPINRefused
	}
	return kms.LoginFailed
}

// classes maps pkg/pkcs11's sentinels to kms's error set. Anything else
// (a CKR_ code, a closed key) stays unclassified: callers treat it as the
// store being unavailable.
var classes = []struct {
	kind error
	errs []error
}{
	{kms.ErrPINRefused, []error{pkcs11.ErrPINIncorrect}},
	{kms.ErrNotAllowed, []error{pkcs11.ErrNoCGO}},
	{kms.ErrKeyMismatch, []error{pkcs11.ErrKeyMismatch}},
	// The reference must name the token, key or certificate differently.
	{kms.ErrInvalidRef, []error{pkcs11.ErrInvalidConfig, pkcs11.ErrUnsupportedKey, pkcs11.ErrTokenAmbiguous, pkcs11.ErrCertificateAmbiguous}},
	// A key label two keys share is unavailable rather than invalid: it
	// is what an operator sees while replacing a key on the token, and it
	// resolves without a change to the issuer.
	{kms.ErrUnavailable, []error{pkcs11.ErrModule, pkcs11.ErrTokenNotFound, pkcs11.ErrKeyNotFound, pkcs11.ErrKeyAmbiguous,
		pkcs11.ErrCertificateNotFound, pkcs11.ErrUnavailable}},
	{kms.ErrUnsupported, []error{pkcs11.ErrUnsupportedOptions}},
}

// classify marks a pkg/pkcs11 error with its kms class.
func classify(err error) error {
	if err == nil {
		return nil
	}
	for _, c := range classes {
		for _, e := range c.errs {
			if errors.Is(err, e) {
				return kms.Mark(err, c.kind)
			}
		}
	}
	return err
}

// key is a kms.Key over a pkcs11.Key.
type key struct {
	k *pkcs11.Key
}

func (k *key) Public() crypto.PublicKey { return k.k.Public() }

func (k *key) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := k.k.Sign(r, digest, opts)
	return sig, classify(err)
}

// Probe signs a throwaway digest: finding the key proves little, a
// signature proves the token, the login and the key all work.
func (k *key) Probe(context.Context) error {
	msg := make([]byte, 32)
	_, _ = rand.Read(msg)
	var err error
	switch k.Public().(type) {
	case ed25519.PublicKey:
		_, err = k.Sign(rand.Reader, msg, crypto.Hash(0))
	default:
		digest := sha256.Sum256(msg)
		_, err = k.Sign(rand.Reader, digest[:], crypto.SHA256)
	}
	if err != nil {
		return fmt.Errorf("test signature: %w", err)
	}
	return nil
}

func (k *key) Close() error { return k.k.Close() }

// KeyID returns the key's CKA_ID, which CreateKey makes random when the URI
// has no id: a certificate stored for the key should carry it.
func (k *key) KeyID() []byte { return k.k.KeyID() }
