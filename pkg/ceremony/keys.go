package ceremony

import (
	"crypto"
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
	s, err := issuance.ParsePrivateKeyPEM(data)
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
		signer, err := issuance.GenerateKey(k.Algorithm)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w: %w", errUnsupportedKey, err)
		}
		keyPEM, err := issuance.MarshalPrivateKeyPEM(signer)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w: %w", errUnsupportedKey, err)
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
