package main

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"

	"github.com/quill-pki/quill/pkg/pkcs11"
	"github.com/quill-pki/quill/test/softhsm"
)

const (
	// softHSMModule is where Debian's softhsm2 package puts the library.
	softHSMModule = softhsm.Module
	// hsmModuleName is the library's name in quill-controller's
	// --pkcs11-module allow-list, which issuers refer to.
	hsmModuleName = "softhsm"
	hsmTokenLabel = "quill-bench-issuance"
	hsmKeyLabel   = "bench-ca-key"
	hsmCertSecret = "bench-hsm-ca"
	hsmPINSecret  = "bench-hsm-pin"
)

// hsmCA is the CA of the Quill (PKCS#11) phases: an ECDSA P-256 key
// generated on a SoftHSM2 token of the benchmark's own, in a temporary
// directory that no other SoftHSM user sees, and a self-signed certificate
// for it. The key cannot leave the token, so these phases sign with a CA
// of their own rather than the software phases' CA; it has the same
// algorithm, so each signature is the same work.
type hsmCA struct {
	dir     string
	pin     string
	certPEM []byte
}

// newHSMCA creates the token and the CA. It must run before anything loads
// the library, in this process or in quill-controller: SoftHSM reads
// SOFTHSM2_CONF in C_Initialize and does not see tokens created after it
// was initialised. quill-controller, started later, inherits SOFTHSM2_CONF
// from this process's environment (the harness does not set one of its
// own).
func newHSMCA() (*hsmCA, error) {
	dir, err := os.MkdirTemp("", "quill-bench-issuance-softhsm-")
	if err != nil {
		return nil, err
	}
	h := &hsmCA{dir: dir, pin: rand.Text()}
	err = softhsm.Setup(dir, softhsm.Token{Label: hsmTokenLabel, PIN: h.pin, SOPIN: rand.Text()})
	if errors.Is(err, softhsm.ErrMissing) {
		err = fmt.Errorf("%w; or run with -pkcs11=false to leave out the Quill (PKCS#11) phases", err)
	}
	if err == nil {
		err = h.generate()
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return h, nil
}

// generate creates the key on the token and self-signs the CA certificate
// with it, then closes the key: that finalizes the library in this process,
// so that during the run only quill-controller uses the token.
func (h *hsmCA) generate() (err error) {
	key, err := pkcs11.GenerateKey(pkcs11.Config{ModulePath: softHSMModule, TokenLabel: hsmTokenLabel, KeyLabel: hsmKeyLabel, PIN: h.pin},
		pkcs11.ECDSAP256)
	if err != nil {
		return fmt.Errorf("generating the PKCS#11 CA key: %w", err)
	}
	defer func() {
		if closeErr := key.Close(); closeErr != nil && err == nil {
			err = closeErr
		}
	}()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	// A serial number must be positive (RFC 5280, 4.1.2.2).
	serial.Add(serial, big.NewInt(1))
	// Backdated for clock skew and valid for a year, as
	// issuance.NewSelfSignedRoot makes the software phases' CA.
	now := time.Now().UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Quill benchmark CA (SoftHSM2)", Organization: []string{"Quill"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("self-signing the PKCS#11 CA certificate with the token key: %w", err)
	}
	h.certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return nil
}

// remove deletes the token directory. Call it after quill-controller has
// stopped.
func (h *hsmCA) remove() error {
	if err := os.RemoveAll(h.dir); err != nil {
		return fmt.Errorf("removing the SoftHSM2 token directory: %w", err)
	}
	return nil
}
