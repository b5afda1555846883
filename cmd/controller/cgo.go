//go:build cgo

package main

// The key backends this build offers (pkg/kms): each import registers one.
// A new backend is one more import here and in nocgo.go.
import _ "github.com/quill-pki/quill/pkg/kms/pkcs11kms"

// cgoEnabled says whether this build can load PKCS#11 libraries.
const cgoEnabled = true
