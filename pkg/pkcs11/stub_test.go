//go:build !cgo

package pkcs11

import (
	"crypto"
	"errors"
	"strings"
	"testing"
)

// TestStubReportsNoCGO runs in CGO_ENABLED=0 builds: every entry point
// must fail clearly instead of pretending to work.
func TestStubReportsNoCGO(t *testing.T) {
	t.Parallel()
	cfg := Config{ModulePath: "/usr/lib/softhsm/libsofthsm2.so", TokenLabel: "ca", KeyLabel: "root", PIN: "secret-pin"}
	k, err := Open(cfg)
	errs := map[string]error{"Open": err}
	_, errs["GenerateKey"] = GenerateKey(cfg, ECDSAP256)
	errs["ImportCertificate"] = ImportCertificate(cfg, "ca", nil, nil)
	_, errs["FindCertificate"] = FindCertificate(cfg, "ca")
	_, errs["Sign"] = (&Key{}).Sign(nil, make([]byte, 32), crypto.SHA256)
	if k != nil {
		t.Error("Open returned a Key without cgo")
	}
	for name, err := range errs {
		if !errors.Is(err, ErrNoCGO) {
			t.Errorf("%s: %v, want ErrNoCGO", name, err)
			continue
		}
		if !strings.Contains(err.Error(), "CGO_ENABLED=1") || strings.Contains(err.Error(), cfg.PIN) {
			t.Errorf("%s: message %q should say how to fix it and not show the PIN", name, err)
		}
	}
}
