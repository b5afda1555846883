//go:build !cgo

package main

// The key backends this build offers (pkg/kms): each import registers one.
// Without cgo the PKCS#11 backend is registered all the same, so that an
// issuer naming a token is refused with "needs a cgo build" rather than an
// unknown scheme.
import _ "github.com/quill-pki/quill/pkg/kms/pkcs11kms"

// cgoEnabled says whether this build can load PKCS#11 libraries.
const cgoEnabled = false
