package main

import (
	"errors"
	"fmt"

	"github.com/quill-pki/quill/pkg/ceremony"
)

var errPKCS11 = errors.New("PKCS#11 keys are not supported by this quillctl yet")

// keyResolver is the one place that decides which key stores quillctl can
// sign with. Plain paths and file: URIs are PEM files (ceremony.FileKey).
//
// A hardware token plugs in here: a ceremony.KeyOpener for "pkcs11:" URIs
// (RFC 7512) returning a ceremony.KeySource whose Signer is the token's
// key, and which implements io.Closer to end its session. It belongs in a
// file behind a build tag (it needs cgo), with this stub kept for builds
// without it, so that a URI is refused with a clear message rather than
// mistaken for a file name.
func keyResolver() ceremony.KeyResolver {
	return ceremony.KeyResolver{Schemes: map[string]ceremony.KeyOpener{
		"pkcs11": func(ref string) (ceremony.KeySource, error) {
			return nil, fmt.Errorf("%w (key %q); use a PEM key file", errPKCS11, ref)
		},
	}}
}
