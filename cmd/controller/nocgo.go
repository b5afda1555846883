//go:build !cgo

package main

// The key backends this build offers (pkg/kms), registered by importing
// them; the list is pkg/kms/backends. Without cgo the PKCS#11 backend is
// registered all the same, so that an issuer naming a token is refused
// with "needs a cgo build" rather than an unknown scheme.
import _ "github.com/quill-pki/quill/pkg/kms/backends"

// cgoEnabled says whether this build can load PKCS#11 libraries.
const cgoEnabled = false
