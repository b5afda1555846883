//go:build cgo

package main

// The key backends this build offers (pkg/kms), registered by importing
// them; the list is pkg/kms/backends.
import _ "github.com/quill-pki/quill/pkg/kms/backends"

// cgoEnabled says whether this build can load PKCS#11 libraries.
const cgoEnabled = true
