package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/quill-pki/quill/pkg/pkcs11"
)

const tokenLabel = "quill-bench-signing"

var errNoSoftHSM = errors.New("SoftHSM2 is not installed")

// token is the benchmark's own SoftHSM2 token, in a temporary directory
// that no other SoftHSM user sees.
type token struct {
	module string
	dir    string
	pin    string
	soPIN  string
}

// newToken creates the token. It must run before anything loads the
// library: SoftHSM reads SOFTHSM2_CONF in C_Initialize, and SoftHSM 2.6.1
// does not see tokens created after it was initialised.
func newToken(module string) (*token, error) {
	if _, err := os.Stat(module); err != nil {
		return nil, fmt.Errorf("%w: %s is missing (%w); install the Debian packages softhsm2 and opensc "+
			"(apt-get install softhsm2 opensc), or point -module at a SoftHSM2 library", errNoSoftHSM, module, err)
	}
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		return nil, fmt.Errorf("%w: softhsm2-util is not on PATH; install the Debian packages softhsm2 and opensc "+
			"(apt-get install softhsm2 opensc)", errNoSoftHSM)
	}
	dir, err := os.MkdirTemp("", "quill-bench-signing-")
	if err != nil {
		return nil, err
	}
	t := &token{module: module, dir: dir, pin: rand.Text(), soPIN: rand.Text()}
	if err := t.init(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return t, nil
}

func (t *token) init() error {
	tokens := filepath.Join(t.dir, "tokens")
	conf := filepath.Join(t.dir, "softhsm2.conf")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		return err
	}
	// Seen by softhsm2-util below and, through cgo's setenv, by the
	// library loaded later in this process.
	if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
		return err
	}
	out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", tokenLabel,
		"--so-pin", t.soPIN, "--pin", t.pin).CombinedOutput()
	if err != nil {
		return fmt.Errorf("softhsm2-util --init-token: %w\n%s", err, out)
	}
	return nil
}

// config selects the key labelled label on the token.
func (t *token) config(label string, sessions int) pkcs11.Config {
	return pkcs11.Config{
		ModulePath:  t.module,
		TokenLabel:  tokenLabel,
		KeyLabel:    label,
		PIN:         t.pin,
		MaxSessions: sessions,
	}
}

// remove deletes the token directory. Call it after every Key is closed.
func (t *token) remove() error {
	if err := os.RemoveAll(t.dir); err != nil {
		return fmt.Errorf("remove the SoftHSM2 token directory: %w", err)
	}
	return nil
}
