// Package softhsm gives a process a SoftHSM2 of its own, for Quill's
// PKCS#11 tests and benchmarks: a configuration and token folder in a
// directory of the caller's, and tokens created before the library is
// first loaded. SoftHSM reads SOFTHSM2_CONF once, in C_Initialize, and does
// not see tokens another process creates afterwards, so Setup must run
// before anything in the process loads the library; child processes
// (quill-controller, quillctl) inherit the configuration. Configure instead
// leaves the process alone, for tests that give each child its own tokens.
package softhsm

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Module is where Debian's softhsm2 package puts the library.
const Module = "/usr/lib/softhsm/libsofthsm2.so"

// ErrMissing says SoftHSM2 is not installed; its message names the Debian
// packages to install.
var ErrMissing = errors.New("SoftHSM2 is not installed: install the Debian packages softhsm2 and opensc (make deps does)")

// Token is a token Setup creates.
type Token struct {
	Label string
	PIN   string // the user PIN
	SOPIN string // the security officer PIN
}

// Setup gives this process and its children the SoftHSM2 that Configure
// writes in dir: it points SOFTHSM2_CONF at it. Errors wrap ErrMissing when
// the library or softhsm2-util is missing.
func Setup(dir string, tokens ...Token) error {
	conf, err := Configure(dir, tokens...)
	if err != nil {
		return err
	}
	return os.Setenv(EnvConf, conf)
}

// EnvConf is the environment variable that tells the library which
// configuration to read.
const EnvConf = "SOFTHSM2_CONF"

// Configure writes a SoftHSM2 configuration whose token folder is inside
// dir, creates tokens in it, and returns the configuration's path, leaving
// this process's environment alone: a test that gives each child process
// (quill-controller, quillctl) its own token folder passes
// EnvConf+"="+conf to each. Errors wrap ErrMissing when the library or
// softhsm2-util is missing.
func Configure(dir string, tokens ...Token) (conf string, err error) {
	if _, err := os.Stat(Module); err != nil {
		return "", fmt.Errorf("%w (%w)", ErrMissing, err)
	}
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		return "", fmt.Errorf("%w (%w)", ErrMissing, err)
	}
	tokenDir := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokenDir, 0o700); err != nil {
		return "", err
	}
	conf = filepath.Join(dir, "softhsm2.conf")
	// The file object store is what Debian's build offers (it has no db
	// backend).
	body := "directories.tokendir = " + tokenDir + "\nobjectstore.backend = file\nlog.level = ERROR\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return "", err
	}
	for _, t := range tokens {
		cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", t.Label,
			"--so-pin", t.SOPIN, "--pin", t.PIN)
		cmd.Env = append(os.Environ(), EnvConf+"="+conf)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("softhsm2-util --init-token --label %s: %w: %s", t.Label, err, out)
		}
	}
	return conf, nil
}
