package openssl35

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An OpenSSL older than 3.5 (the system's 3.0) cannot read ML-DSA;
// pointing the tests at one must fail them, not let them pass on a verifier
// that cannot check.
func TestFindRefusesOlderOpenSSL(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "openssl")
	if err := os.WriteFile(old, []byte("#!/bin/sh\necho 'OpenSSL 3.0.17 1 Jul 2025 (Library: OpenSSL 3.0.17 1 Jul 2025)'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(Env, old)
	if _, err := Find(); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "OpenSSL 3.0.17") {
		t.Errorf("Find with an OpenSSL 3.0: %v", err)
	}
	t.Setenv(Env, filepath.Join(dir, "missing"))
	if _, err := Find(); !errors.Is(err, ErrNotFound) {
		t.Errorf("Find with a missing binary: %v", err)
	}
}
