//go:build !cgo

package pkcs11

import (
	"crypto"
	"fmt"
	"io"
)

// Key is a private key on a PKCS#11 token. In a binary built without cgo no
// Key can exist; every constructor returns ErrNoCGO.
type Key struct{}

// Open always fails with ErrNoCGO in a build without cgo.
func Open(cfg Config) (*Key, error) {
	return nil, fmt.Errorf("pkcs11: open %s: %w", cfg, ErrNoCGO)
}

// GenerateKey always fails with ErrNoCGO in a build without cgo.
func GenerateKey(cfg Config, alg Algorithm) (*Key, error) {
	return nil, fmt.Errorf("pkcs11: generate %s on %s: %w", alg, cfg, ErrNoCGO)
}

// ImportCertificate always fails with ErrNoCGO in a build without cgo.
func ImportCertificate(cfg Config, label string, id []byte, der []byte) error {
	return fmt.Errorf("pkcs11: import certificate %q: %w", label, ErrNoCGO)
}

// FindCertificate always fails with ErrNoCGO in a build without cgo.
func FindCertificate(cfg Config, label string) ([]byte, error) {
	return nil, fmt.Errorf("pkcs11: find certificate %q: %w", label, ErrNoCGO)
}

// Public returns nil: no Key exists without cgo.
func (k *Key) Public() crypto.PublicKey { return nil }

// Sign always fails with ErrNoCGO in a build without cgo.
func (k *Key) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, fmt.Errorf("pkcs11: sign: %w", ErrNoCGO)
}

// KeyID returns nil: no Key exists without cgo.
func (k *Key) KeyID() []byte { return nil }

// SignsWithSessionCopy returns false: no Key exists without cgo.
func (k *Key) SignsWithSessionCopy() bool { return false }

// Close does nothing: no Key exists without cgo.
func (k *Key) Close() error { return nil }
