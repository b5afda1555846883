package ceremony

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/mldsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/quill-pki/quill/pkg/issuance"
)

// KeySource is where a CA ceremony gets a private key from: a PEM file
// (FileKey), a key generated in memory (SoftwareKey), or a key in a pkg/kms
// backend such as a PKCS#11 token, which quillctl registers under its URI
// scheme in a KeyResolver. No operation in this package knows which.
//
// An implementation may also implement io.Closer (a token session, say);
// the operations close every KeySource they are handed once they are done
// with it.
type KeySource interface {
	// Signer returns the private key. Operations call it once, after
	// their other inputs have been checked, so that a slow or interactive
	// source (a PIN prompt) is only asked when it is needed. An error
	// means the key cannot be used at all: missing or unreadable file,
	// unsupported key type, token refused.
	Signer() (crypto.Signer, error)
	// String names the key in messages: a path or a URI, never a secret.
	String() string
}

// KeyOpener opens the key a reference of one URI scheme names, such as
// "pkcs11:token=root-ca;object=root". It should check the reference's
// syntax but may defer contacting the device until Signer is called.
type KeyOpener func(ref string) (KeySource, error)

// KeyResolver turns the key references users type (--key, --ca-key) into
// KeySources. A reference is a file path, a "file:" URI, or a URI whose
// scheme is registered in Schemes. The zero value knows files only.
type KeyResolver struct {
	// Schemes maps a lower-case URI scheme to the opener of its keys. The
	// caller fills it in one place (quillctl's command wiring), so that
	// which key stores a build supports is visible there.
	Schemes map[string]KeyOpener
}

// uriScheme matches a URI scheme of two characters or more, so that a
// single drive-like letter is never mistaken for one.
var uriScheme = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]+):`)

var (
	errKeyRef         = errors.New("unusable key reference")
	errUnsupportedKey = errors.New("unsupported key")
	errKeyFile        = errors.New("cannot read private key")
)

// Open resolves ref. A reference that looks like a URI but whose scheme is
// not registered is refused, unless a file of exactly that name exists.
func (r KeyResolver) Open(ref string) (KeySource, error) {
	path, ok, err := r.FilePath(ref)
	if err != nil {
		return nil, err
	}
	if ok {
		return FileKey{Path: path}, nil
	}
	scheme := strings.ToLower(uriScheme.FindStringSubmatch(ref)[1])
	open := r.Schemes[scheme]
	if open == nil {
		return nil, fmt.Errorf("%w: %q: no opener for scheme %q", errKeyRef, ref, scheme)
	}
	return open(ref)
}

// FilePath reports whether ref names a file, and which. Operations that
// write a key they generate use it: only a software key can be written out,
// a token keeps its keys.
func (r KeyResolver) FilePath(ref string) (path string, ok bool, err error) {
	if ref == "" {
		return "", false, fmt.Errorf("%w: empty key reference", errKeyRef)
	}
	m := uriScheme.FindStringSubmatch(ref)
	if m == nil {
		return ref, true, nil
	}
	scheme := strings.ToLower(m[1])
	if scheme == "file" {
		p := strings.TrimPrefix(ref[len(m[0]):], "//")
		if p == "" {
			return "", false, fmt.Errorf("%w: %q names no file", errKeyRef, ref)
		}
		return p, true, nil
	}
	if _, registered := r.Schemes[scheme]; registered {
		return "", false, nil
	}
	if _, err := os.Lstat(ref); err == nil {
		return ref, true, nil
	}
	return "", false, fmt.Errorf("%w: %q: keys of scheme %q are not supported by this build (supported: %s)",
		errKeyRef, ref, scheme, strings.Join(r.supported(), ", "))
}

func (r KeyResolver) supported() []string {
	names := []string{"file paths", "file: URIs"}
	for _, s := range slices.Sorted(maps.Keys(r.Schemes)) {
		names = append(names, s+": URIs")
	}
	return names
}

// FileKey is a private key in a PEM file: PKCS#8 ("PRIVATE KEY"), PKCS#1
// ("RSA PRIVATE KEY") or SEC1 ("EC PRIVATE KEY"), unencrypted.
type FileKey struct {
	Path string
}

// Signer reads and parses the file on every call.
func (k FileKey) Signer() (crypto.Signer, error) {
	data, err := os.ReadFile(k.Path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errKeyFile, err)
	}
	s, err := ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", errKeyFile, k.Path, err)
	}
	return s, nil
}

func (k FileKey) String() string { return k.Path }

// SoftwareKey is a private key held in memory, typically one GenerateKey
// just made and that the operation will write out.
type SoftwareKey struct {
	Key crypto.Signer
}

// Signer returns k.Key.
func (k SoftwareKey) Signer() (crypto.Signer, error) {
	if k.Key == nil {
		return nil, fmt.Errorf("%w: no key", errKeyRef)
	}
	return k.Key, nil
}

func (k SoftwareKey) String() string { return "generated key" }

// KeyAlgorithms lists the algorithms GenerateKey accepts, in the order
// help texts show them.
func KeyAlgorithms() []issuance.KeyAlgorithm {
	return []issuance.KeyAlgorithm{
		issuance.ECDSAP256, issuance.ECDSAP384, issuance.ECDSAP521,
		issuance.RSA2048, issuance.RSA3072, issuance.RSA4096,
		issuance.Ed25519, issuance.MLDSA44, issuance.MLDSA65, issuance.MLDSA87,
	}
}

// ParseKeyAlgorithm accepts the names KeyAlgorithms returns, in any letter
// case.
func ParseKeyAlgorithm(s string) (issuance.KeyAlgorithm, error) {
	for _, a := range KeyAlgorithms() {
		if strings.EqualFold(s, string(a)) {
			return a, nil
		}
	}
	return "", fmt.Errorf("%w: key algorithm %q; use one of %s", errUnsupportedKey, s, algorithmNames())
}

func algorithmNames() string {
	algs := KeyAlgorithms()
	names := make([]string, len(algs))
	for i, a := range algs {
		names[i] = string(a)
	}
	return strings.Join(names, ", ")
}

// checkAlgorithm says why GenerateKey cannot make alg, or nothing.
func checkAlgorithm(alg issuance.KeyAlgorithm) error {
	if alg == "" {
		return fmt.Errorf("%w: no algorithm given for the new key; use one of %s", errUnsupportedKey, algorithmNames())
	}
	if !slices.Contains(KeyAlgorithms(), alg) {
		return fmt.Errorf("%w: key algorithm %q; use one of %s", errUnsupportedKey, alg, algorithmNames())
	}
	return nil
}

// GenerateKey makes a new software key of alg from crypto/rand.
func GenerateKey(alg issuance.KeyAlgorithm) (crypto.Signer, error) {
	switch alg {
	case issuance.ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case issuance.ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case issuance.ECDSAP521:
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case issuance.RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case issuance.RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case issuance.RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	case issuance.Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case issuance.MLDSA44:
		return mldsa.GenerateKey(mldsa.MLDSA44())
	case issuance.MLDSA65:
		return mldsa.GenerateKey(mldsa.MLDSA65())
	case issuance.MLDSA87:
		return mldsa.GenerateKey(mldsa.MLDSA87())
	}
	return nil, checkAlgorithm(alg)
}

// MarshalPrivateKeyPEM encodes key as a PEM "PRIVATE KEY" (PKCS#8) block,
// the form Quill's Secrets hold. ML-DSA keys are written seed-only.
func MarshalPrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: encode %T as PKCS#8: %w", errUnsupportedKey, key, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKeyPEM reads the one unencrypted private key of a PEM file.
// An "EC PARAMETERS" block, as `openssl ecparam -genkey` writes first, is
// skipped; anything else besides the key is refused.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	blocks, err := decodePEM(data)
	if err != nil {
		return nil, err
	}
	var keys []*pem.Block
	for _, b := range blocks {
		if b.Type != "EC PARAMETERS" {
			keys = append(keys, b)
		}
	}
	if len(keys) != 1 {
		return nil, fmt.Errorf("%w: want exactly one private key, found %d PEM blocks", errBadPEM, len(keys))
	}
	b := keys[0]
	var key any
	switch b.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		if len(b.Headers) != 0 {
			return nil, fmt.Errorf("%w: the key is encrypted; decrypt it first (openssl pkey -in KEY -out PLAIN)", errUnsupportedKey)
		}
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		if len(b.Headers) != 0 {
			return nil, fmt.Errorf("%w: the key is encrypted; decrypt it first (openssl pkey -in KEY -out PLAIN)", errUnsupportedKey)
		}
		key, err = x509.ParseECPrivateKey(b.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("%w: the key is encrypted; decrypt it first (openssl pkey -in KEY -out PLAIN)", errUnsupportedKey)
	default:
		return nil, fmt.Errorf("%w: PEM block %q is not a private key", errBadPEM, b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadPEM, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: a %T cannot sign", errUnsupportedKey, key)
	}
	if _, err := keyAlgorithmOf(s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}

// keyAlgorithmOf names pub and refuses the keys Quill's issuers refuse
// (issuance.KeyAlgorithmOf), so that a ceremony never makes a CA an issuer
// would not load.
func keyAlgorithmOf(pub crypto.PublicKey) (issuance.KeyAlgorithm, error) {
	alg, err := issuance.KeyAlgorithmOf(pub)
	if err != nil {
		return "", fmt.Errorf("%w: %w", errUnsupportedKey, err)
	}
	return alg, nil
}

// signatureAlgorithm picks the algorithm a key signs certificates and CSRs
// with: the choice pkg/issuance makes (PKCS#1 v1.5 for RSA), so a hand-made
// root and the certificates Quill issues under it look alike.
func signatureAlgorithm(pub crypto.PublicKey) (x509.SignatureAlgorithm, error) {
	if _, err := keyAlgorithmOf(pub); err != nil {
		return x509.UnknownSignatureAlgorithm, err
	}
	return issuance.SignatureAlgorithmFor(pub, false)
}

// publicKeysEqual compares public keys of any standard library type.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// openSigner asks src for its key and checks that the key is of a type
// Quill accepts. The caller closes src (closeKey) when it has signed.
func openSigner(src KeySource) (crypto.Signer, error) {
	if src == nil {
		return nil, fmt.Errorf("%w: no key given", errKeyRef)
	}
	s, err := src.Signer()
	if err != nil {
		return nil, err
	}
	if _, err := keyAlgorithmOf(s.Public()); err != nil {
		return nil, fmt.Errorf("key %s: %w", src, err)
	}
	return s, nil
}

// closeKey ends src's use, for sources that hold a session open.
func closeKey(src KeySource) {
	if c, ok := src.(io.Closer); ok {
		// A failed close cannot undo a signature already made; there is
		// nothing to report that would change what the user does next.
		_ = c.Close()
	}
}

// keyChoice is the key part of a ceremony's options: an existing key, or the
// algorithm of a key to generate and the file it goes to.
type keyChoice struct {
	Key       KeySource
	Algorithm issuance.KeyAlgorithm
	OutKey    string
}

// signerFor checks the choice and the output files (outs, plus OutKey for a
// generated key; none may be one of an existing key's files), then returns
// the signer, the PEM of a generated key (nil for an existing one), and a
// function that releases an existing key once the ceremony is done.
func (k keyChoice) signerFor(replace bool, outs ...string) (crypto.Signer, []byte, func(), error) {
	switch {
	case k.Key == nil && k.OutKey == "":
		return nil, nil, nil, fmt.Errorf("%w: no file for the new key", errOptions)
	case k.Key == nil:
		if err := checkAlgorithm(k.Algorithm); err != nil {
			return nil, nil, nil, err
		}
		outs = append(outs, k.OutKey)
	case k.OutKey != "" || k.Algorithm != "":
		return nil, nil, nil, fmt.Errorf("%w: an existing key is used, so no key is generated or written", errOptions)
	}
	if err := checkOutputs(replace, keyPaths(k.Key), outs...); err != nil {
		return nil, nil, nil, err
	}
	if k.Key == nil {
		signer, err := GenerateKey(k.Algorithm)
		if err != nil {
			return nil, nil, nil, err
		}
		keyPEM, err := MarshalPrivateKeyPEM(signer)
		if err != nil {
			return nil, nil, nil, err
		}
		return signer, keyPEM, func() {}, nil
	}
	signer, err := openSigner(k.Key)
	if err != nil {
		closeKey(k.Key)
		return nil, nil, nil, err
	}
	return signer, nil, func() { closeKey(k.Key) }, nil
}
