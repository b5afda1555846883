package main

import (
	"crypto/rand"
	"fmt"
	"os"

	"github.com/quill-pki/quill/pkg/pkcs11"
	"github.com/quill-pki/quill/test/softhsm"
)

const tokenLabel = "quill-bench-signing"

// token is the benchmark's own SoftHSM2 token, in a temporary directory
// that no other SoftHSM user sees.
type token struct {
	module string
	dir    string
	pin    string
	soPIN  string
}

// newToken creates the token. It must run before anything loads the
// library (see test/softhsm).
func newToken(module string) (*token, error) {
	dir, err := os.MkdirTemp("", "quill-bench-signing-")
	if err != nil {
		return nil, err
	}
	t := &token{module: module, dir: dir, pin: rand.Text(), soPIN: rand.Text()}
	if err := softhsm.Setup(dir, softhsm.Token{Label: tokenLabel, PIN: t.pin, SOPIN: t.soPIN}); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if _, err := os.Stat(module); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("-module %s: %w", module, err)
	}
	return t, nil
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
