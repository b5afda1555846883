// Package openssl35 finds the OpenSSL 3.5 that hack/openssl35.sh provides,
// the outside verifier of ML-DSA certificates and hybrid ML-KEM handshakes
// in Quill's tests (the system's OpenSSL 3.0 reads neither). It is
// development tooling, not part of Quill: only tests import it.
package openssl35

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Env names the environment variable that points at an OpenSSL 3.5 (or
// later) binary; without it, bin/openssl35 in the repository (written by
// hack/openssl35.sh, which `make deps` runs) is used.
const Env = "QUILL_OPENSSL35"

// ErrNotFound says neither QUILL_OPENSSL35 nor bin/openssl35 gives a usable
// OpenSSL 3.5.
var ErrNotFound = errors.New("OpenSSL 3.5 not found: run hack/openssl35.sh (make deps does) or set " + Env)

// Find returns the path of an OpenSSL of version 3.5 or later, run once to
// check its version. Tests fail rather than skip when it errs: a run that
// left out the outside verifier would claim more than it checked.
func Find() (string, error) {
	path := os.Getenv(Env)
	if path == "" {
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			return "", ErrNotFound
		}
		path = filepath.Join(filepath.Dir(file), "..", "..", "bin", "openssl35")
	}
	out, err := exec.Command(path, "version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%w (%s: %v)", ErrNotFound, path, err)
	}
	var major, minor int
	if _, err := fmt.Sscanf(string(out), "OpenSSL %d.%d", &major, &minor); err != nil || major < 3 || (major == 3 && minor < 5) {
		return "", fmt.Errorf("%w (%s says %q)", ErrNotFound, path, strings.TrimSpace(string(out)))
	}
	return path, nil
}
