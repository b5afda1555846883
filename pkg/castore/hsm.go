package castore

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/pkcs11"
)

// HSMKey is an open PKCS#11 key: a crypto.Signer that must be closed.
type HSMKey interface {
	crypto.Signer
	Close() error
}

// HSMOpener opens the key cfg locates. Its errors wrap pkg/pkcs11's
// sentinels.
type HSMOpener func(cfg pkcs11.Config) (HSMKey, error)

// defaultPINKey is the Secret key of the PIN when pinSecretRef names none.
const defaultPINKey = "pin"

var (
	errModuleNotAllowed = errors.New("PKCS#11 module is not in the controller's allow-list")
	errTokenCertificate = errors.New("a certificate read from the token must be self-signed")
	errAwaiting         = errors.New("awaiting the CA certificate")
)

// loadPKCS11 opens the CA key on its token and pairs it with the CA
// certificate. A refused PIN is remembered until the PIN Secret changes, so
// that the token is not asked again with the same wrong PIN: real HSMs lock
// the PIN after a few failures.
func (s *Store) loadPKCS11(ctx context.Context, id, namespace string, p *quillv1.PKCS11CA) (*issuance.Authority, error) {
	cfg, deps, err := s.hsmConfig(ctx, namespace, p)
	if err != nil {
		return nil, err
	}
	var chainPEM, caPEM []byte
	certSource := "token certificate " + p.CertificateLabel
	if r := p.CertificateSecretRef; r != nil {
		certKey := types.NamespacedName{Namespace: namespace, Name: r.Name}
		cs, err := s.readSecret(ctx, certKey)
		var caErr *Error
		if p.IssuedBy != nil && errors.As(err, &caErr) && caErr.Reason == quillv1.ReasonSecretNotFound {
			return nil, &Error{Reason: quillv1.ReasonAwaitingCertificate, Err: fmt.Errorf(
				"%w: %s %s has not signed the HSM key's CA certificate yet; it will be kept in secret %s",
				errAwaiting, p.IssuedBy.Kind, p.IssuedBy.Name, certKey)}
		}
		if err != nil {
			return nil, err
		}
		deps[certKey] = cs.ResourceVersion
		chainPEM, caPEM = cs.Data[KeyTLSCrt], cs.Data[KeyCACrt]
		if len(chainPEM) == 0 {
			return nil, &Error{Reason: quillv1.ReasonSecretInvalid, Err: fmt.Errorf("%w: secret %s needs %s", errMissingKey, certKey, KeyTLSCrt)}
		}
		certSource = "secret " + certKey.String()
	} else {
		der, err := pkcs11.FindCertificate(cfg, p.CertificateLabel)
		if err != nil {
			return nil, s.hsmFailure(id, deps, err)
		}
		chainPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	block, _ := pem.Decode(chainPEM)
	if block == nil {
		return nil, &Error{Reason: quillv1.ReasonSecretInvalid, Err: fmt.Errorf("%s: no PEM certificate", certSource)}
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, &Error{Reason: quillv1.ReasonSecretInvalid, Err: fmt.Errorf("%s: %w", certSource, err)}
	}
	if p.CertificateSecretRef == nil && cert.CheckSignatureFrom(cert) != nil {
		return nil, &Error{Reason: quillv1.ReasonInvalidConfig, Err: fmt.Errorf("%w: %q is issued by %q; use certificateSecretRef for a subordinate CA", errTokenCertificate, cert.Subject, cert.Issuer)}
	}
	// The token must hold the key of this certificate, now and after every
	// recovery: a re-initialised token may carry another key under the
	// same label.
	cfg.Expected = cert.PublicKey

	key, err := s.opener()(cfg)
	if err != nil {
		return nil, s.hsmFailure(id, deps, err)
	}
	a, err := issuance.NewAuthority(chainPEM, caPEM, key)
	if err != nil {
		_ = key.Close()
		return nil, authorityError(types.NamespacedName{Namespace: namespace, Name: certSource}, err)
	}
	s.remember(id, &entry{deps: deps, authority: a, closer: func() { _ = key.Close() }})
	return a, nil
}

// OpenHSMKey opens the private key p names, with the PIN from its Secret,
// without a certificate to compare it with: for building the CSR of an
// HSM key whose certificate is still to be issued (spec.ca.pkcs11.issuedBy).
// The caller closes the key. Errors are classified as Load's, and a refused
// PIN is remembered as Load remembers it: neither presents it again until
// the PIN Secret changes.
func (s *Store) OpenHSMKey(ctx context.Context, namespace string, p *quillv1.PKCS11CA) (HSMKey, error) {
	id, err := cacheID(namespace, quillv1.CASource{PKCS11: p})
	if err != nil {
		return nil, err
	}
	defer s.lock(id)()
	if e := s.current(ctx, id); e != nil && e.err != nil {
		return nil, e.err
	}
	cfg, deps, err := s.hsmConfig(ctx, namespace, p)
	if err != nil {
		return nil, err
	}
	key, err := s.opener()(cfg)
	if err != nil {
		return nil, s.hsmFailure(id, deps, err)
	}
	return key, nil
}

// hsmConfig resolves the module through the allow-list and reads the PIN;
// deps records the PIN Secret's version.
func (s *Store) hsmConfig(ctx context.Context, namespace string, p *quillv1.PKCS11CA) (pkcs11.Config, map[types.NamespacedName]string, error) {
	var cfg pkcs11.Config
	path, ok := s.PKCS11Modules[p.Module]
	if !ok {
		allowed := strings.Join(slices.Sorted(maps.Keys(s.PKCS11Modules)), ", ")
		if allowed == "" {
			allowed = "none configured"
		}
		return cfg, nil, &Error{Reason: quillv1.ReasonModuleNotAllowed, Err: fmt.Errorf("%w: %q (allowed: %s)", errModuleNotAllowed, p.Module, allowed)}
	}
	pinKey := types.NamespacedName{Namespace: namespace, Name: p.PINSecretRef.Name}
	pinSecret, err := s.readSecret(ctx, pinKey)
	if err != nil {
		return cfg, nil, err
	}
	deps := map[types.NamespacedName]string{pinKey: pinSecret.ResourceVersion}
	field := p.PINSecretRef.Key
	if field == "" {
		field = defaultPINKey
	}
	// A PIN written with `echo` or from a file often ends in a newline that
	// is not part of it.
	pin := strings.TrimRight(string(pinSecret.Data[field]), "\r\n")
	if pin == "" {
		return cfg, nil, &Error{Reason: quillv1.ReasonSecretInvalid, Err: fmt.Errorf("%w: secret %s has no %q", errMissingKey, pinKey, field)}
	}
	cfg = pkcs11.Config{
		ModulePath:  path,
		TokenLabel:  p.TokenLabel,
		TokenSerial: p.TokenSerial,
		KeyLabel:    p.KeyLabel,
		PIN:         pin,
		// The key's rare events (a token refusing the in-HSM session copy
		// of the key) go to the controller's log; the PIN never does.
		Log: logf.Log.WithName("pkcs11").WithValues("module", p.Module, "token", p.TokenLabel+p.TokenSerial, "key", p.KeyLabel+p.KeyID),
	}
	if report := s.PKCS11Login; report != nil {
		cfg.OnLogin = func(r pkcs11.LoginResult) { report(p.Module, p.TokenLabel+p.TokenSerial, r) }
	}
	if p.KeyID != "" {
		if cfg.KeyID, err = hex.DecodeString(p.KeyID); err != nil {
			return cfg, nil, &Error{Reason: quillv1.ReasonInvalidConfig, Err: fmt.Errorf("keyID: %w", err)}
		}
	}
	return cfg, deps, nil
}

func (s *Store) opener() HSMOpener {
	if s.HSM != nil {
		return s.HSM
	}
	return func(cfg pkcs11.Config) (HSMKey, error) { return pkcs11.Open(cfg) }
}

// hsmFailure classifies an error from opening a PKCS#11 key, and remembers
// a refused PIN so that it is not tried again before one of deps changes.
// An error HSMFault does not know is still the HSM's: the issuer is
// HSMUnavailable and tries again with backoff.
func (s *Store) hsmFailure(id string, deps map[types.NamespacedName]string, err error) error {
	hf := HSMFault(err)
	if hf == nil {
		hf = &Error{Reason: quillv1.ReasonHSMUnavailable, Err: err}
	}
	if errors.Is(err, pkcs11.ErrPINIncorrect) {
		s.remember(id, &entry{deps: deps, err: hf})
	}
	return hf
}

// HSMFault classifies an error from a PKCS#11 key, from opening it or from
// signing with it: an *Error with the issuer reason when the HSM is at fault
// (the issuer must turn not Ready and requests wait), nil otherwise.
func HSMFault(err error) error {
	var caErr *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &caErr):
		return caErr
	case errors.Is(err, pkcs11.ErrPINIncorrect):
		return &Error{Reason: quillv1.ReasonPINIncorrect, Err: fmt.Errorf("%w; Quill will not try again until the PIN Secret changes", err)}
	case errors.Is(err, pkcs11.ErrNoCGO):
		return &Error{Reason: quillv1.ReasonModuleNotAllowed, Err: err}
	case errors.Is(err, pkcs11.ErrKeyMismatch):
		return &Error{Reason: quillv1.ReasonKeyMismatch, Err: err}
	case errors.Is(err, pkcs11.ErrUnsupportedKey), errors.Is(err, pkcs11.ErrInvalidConfig),
		errors.Is(err, pkcs11.ErrTokenAmbiguous), errors.Is(err, pkcs11.ErrCertificateAmbiguous):
		// The spec must name the token, key or certificate differently.
		return &Error{Reason: quillv1.ReasonInvalidConfig, Err: err}
	case errors.Is(err, pkcs11.ErrModule), errors.Is(err, pkcs11.ErrTokenNotFound), errors.Is(err, pkcs11.ErrKeyNotFound),
		errors.Is(err, pkcs11.ErrKeyAmbiguous), errors.Is(err, pkcs11.ErrCertificateNotFound), errors.Is(err, pkcs11.ErrUnavailable):
		return &Error{Reason: quillv1.ReasonHSMUnavailable, Err: err}
	}
	return nil
}

// probe signs a throwaway digest, so that the health check proves an HSM
// key works rather than only that it was found.
func probe(a *issuance.Authority) error {
	msg := make([]byte, 32)
	_, _ = rand.Read(msg)
	var err error
	switch a.Signer.Public().(type) {
	case ed25519.PublicKey:
		_, err = a.Signer.Sign(rand.Reader, msg, crypto.Hash(0))
	default:
		digest := sha256.Sum256(msg)
		_, err = a.Signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	}
	if err == nil {
		return nil
	}
	if hf := HSMFault(err); hf != nil {
		return hf
	}
	return &Error{Reason: quillv1.ReasonHSMUnavailable, Err: fmt.Errorf("test signature: %w", err)}
}
