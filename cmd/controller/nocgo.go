//go:build !cgo

package main

// cgoEnabled says whether this build can load PKCS#11 libraries.
const cgoEnabled = false
