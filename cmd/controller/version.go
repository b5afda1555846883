package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is stamped at build time by hack/image-binary.sh (the container
// image build): -ldflags "-X main.version=v0.3.0".
var version string

// versionString is the stamped version, else the module version Go
// recorded, else "devel".
func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// printVersion writes the line --version prints: the version, the Go
// release and the platform, and whether PKCS#11 support (cgo) is built in.
func printVersion(w io.Writer) error {
	_, err := fmt.Fprintf(w, "quill-controller %s (%s %s/%s, pkcs11=%v)\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH, cgoEnabled)
	return err
}
