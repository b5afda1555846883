package castore

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/types"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/kms"
)

var (
	errStoreCertificate = errors.New("a certificate read from the key store must be self-signed")
	errAwaiting         = errors.New("awaiting the CA certificate")
)

// loadBackendKey opens the CA key held in a backend and pairs it with the
// CA certificate. A PIN the token refused is not presented to that token
// again, by any issuer or process, until the PIN Secret holds another PIN
// (refusal.go): real HSMs lock the PIN after a few failures.
func (s *Store) loadBackendKey(ctx context.Context, id string, so source) (*issuance.Authority, error) {
	ref, opts, deps, p, err := s.credentials(ctx, so)
	if err != nil {
		return nil, err
	}
	defer s.lock(p.tp.lockID())()
	var chainPEM, caPEM []byte
	certSource := "certificate " + so.certLabel + " in the key store"
	if so.certSecret != "" {
		certKey := types.NamespacedName{Namespace: so.namespace, Name: so.certSecret}
		cs, err := s.readSecret(ctx, certKey)
		var caErr *Error
		if so.issuedBy != nil && errors.As(err, &caErr) && caErr.Reason == quillv1.ReasonSecretNotFound {
			return nil, &Error{Reason: quillv1.ReasonAwaitingCertificate, Err: fmt.Errorf(
				"%w: %s %s has not signed the HSM key's CA certificate yet; it will be kept in secret %s",
				errAwaiting, so.issuedBy.Kind, so.issuedBy.Name, certKey)}
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
		if err := s.mayPresent(ctx, id, deps, p); err != nil {
			return nil, err
		}
		der, err := s.Keys.LoadCertificate(ctx, ref, so.certLabel, opts)
		if err == nil || p.acceptedBy.Load() {
			s.accepted(ctx, p)
		}
		if err != nil {
			return nil, s.keyFailure(ctx, id, deps, p, err)
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
	if so.certSecret == "" && cert.CheckSignatureFrom(cert) != nil {
		return nil, &Error{Reason: quillv1.ReasonInvalidConfig, Err: fmt.Errorf("%w: %q is issued by %q; use certificateSecretRef for a subordinate CA", errStoreCertificate, cert.Subject, cert.Issuer)}
	}
	// The store must hold the key of this certificate, now and after every
	// recovery: a re-initialised token may carry another key under the
	// same label.
	opts.Expected = cert.PublicKey

	key, err := s.open(ctx, id, deps, p, ref, opts)
	if err != nil {
		return nil, err
	}
	a, err := issuance.NewAuthority(chainPEM, caPEM, key)
	if err != nil {
		_ = key.Close()
		return nil, authorityError(types.NamespacedName{Namespace: so.namespace, Name: certSource}, err)
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
func (s *Store) OpenHSMKey(ctx context.Context, namespace string, p *quillv1.PKCS11CA) (kms.Key, error) {
	so, err := sourceOf(namespace, quillv1.CASource{PKCS11: p})
	if err != nil {
		return nil, err
	}
	id := so.id()
	defer s.lock(id)()
	if e := s.current(ctx, id); e != nil && e.err != nil {
		return nil, e.err
	}
	ref, opts, deps, pin, err := s.credentials(ctx, so)
	if err != nil {
		return nil, err
	}
	defer s.lock(pin.tp.lockID())()
	return s.open(ctx, id, deps, pin, ref, opts)
}

// open opens the key ref names unless the token refused PIN p before. The
// caller holds p's token lock, so that no other load presents the PIN
// while this one learns whether the token takes it.
func (s *Store) open(ctx context.Context, id string, deps map[types.NamespacedName]string, p presented, ref kms.Ref, opts kms.Options) (kms.Key, error) {
	if err := s.mayPresent(ctx, id, deps, p); err != nil {
		return nil, err
	}
	key, err := s.Keys.Open(ctx, ref, opts)
	if err == nil || p.acceptedBy.Load() {
		s.accepted(ctx, p)
	}
	if err != nil {
		return nil, s.keyFailure(ctx, id, deps, p, err)
	}
	return key, nil
}

// mayPresent returns nil when PIN p may be presented to its token, the
// PINIncorrect *Error when the token refused it before (remembered for
// the CA source id like a refusal met now), or a plain error (retry) when
// the refusals could not be read.
func (s *Store) mayPresent(ctx context.Context, id string, deps map[types.NamespacedName]string, p presented) error {
	err := s.refusedBefore(ctx, p)
	if err != nil && errors.Is(err, kms.ErrPINRefused) {
		return s.keyFailure(ctx, id, deps, p, err)
	}
	return err
}

// credentials checks so's reference against the controller's allow-list,
// then reads the PIN; deps records the PIN Secret's version, and p says
// which PIN of which token it is. The check comes first so that a module
// outside the allow-list is reported as such even when its PIN Secret is
// missing too.
func (s *Store) credentials(ctx context.Context, so source) (_ kms.Ref, _ kms.Options, _ map[types.NamespacedName]string, p presented, _ error) {
	opts := kms.Options{
		Modules: s.PKCS11Modules,
		// The key's rare events (a token refusing the in-HSM session copy
		// of the key) go to the controller's log; the PIN never does.
		Log: logf.Log.WithName("pkcs11").WithValues("module", so.module, "token", so.token, "key", so.key.String()),
	}
	if opts.Modules == nil {
		// Nil would let a reference name any library by path.
		opts.Modules = map[string]string{}
	}
	// The token's own answer to the login tells whether it took the PIN,
	// even when opening the key fails afterwards (a key mismatch).
	p.acceptedBy = new(atomic.Bool)
	report := s.PKCS11Login
	opts.OnLogin = func(r kms.LoginResult) {
		if r == kms.LoginOK {
			p.acceptedBy.Store(true)
		}
		if report != nil {
			report(so.module, so.token, r)
		}
	}
	if err := s.Keys.Check(so.key, opts); err != nil {
		return nil, opts, nil, p, HSMFault(err)
	}
	tp, ok := so.tokenPIN()
	if !ok {
		return nil, opts, nil, p, &Error{Reason: quillv1.ReasonInvalidConfig, Err: fmt.Errorf("%w: %s has no token", kms.ErrInvalidRef, so.key)}
	}
	pinKey := types.NamespacedName{Namespace: so.namespace, Name: so.pin.Name}
	pinSecret, err := s.readSecret(ctx, pinKey)
	if err != nil {
		return nil, opts, nil, p, err
	}
	deps := map[types.NamespacedName]string{pinKey: pinSecret.ResourceVersion}
	// A PIN written with `echo` or from a file often ends in a newline that
	// is not part of it.
	pin := strings.TrimRight(string(pinSecret.Data[so.pin.Key]), "\r\n")
	if pin == "" {
		return nil, opts, nil, p, &Error{Reason: quillv1.ReasonSecretInvalid, Err: fmt.Errorf("%w: secret %s has no %q", errMissingKey, pinKey, so.pin.Key)}
	}
	p.tp, p.uid, p.rv, p.mac = tp, pinSecret.UID, pinSecret.ResourceVersion, s.refused.mac(pin)
	return so.withPIN(pin), opts, deps, p, nil
}

// keyFailure classifies an error from opening a key. A PIN the token
// refused is remembered by token and PIN (refuse), and the failure is
// also kept for this CA source until one of deps changes, so that loads
// of the source answer from memory. An error HSMFault does not know is
// still the key store's: the issuer is HSMUnavailable and tries again
// with backoff.
func (s *Store) keyFailure(ctx context.Context, id string, deps map[types.NamespacedName]string, p presented, err error) error {
	hf := HSMFault(err)
	if hf == nil {
		hf = &Error{Reason: quillv1.ReasonHSMUnavailable, Err: err}
	}
	var caErr *Error
	refusedNow := errors.Is(err, kms.ErrPINRefused) && !errors.As(err, &caErr)
	if refusedNow {
		hf = s.refuse(ctx, p, hf)
	}
	if errors.Is(err, kms.ErrPINRefused) {
		s.remember(id, &entry{deps: deps, err: hf})
	}
	return hf
}

// HSMFault classifies an error from a key held in a backend (pkg/kms),
// from opening it or from signing with it: an *Error with the issuer reason
// when the key store is at fault (the issuer must turn not Ready and
// requests wait), nil otherwise.
func HSMFault(err error) error {
	var caErr *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &caErr):
		return caErr
	case errors.Is(err, kms.ErrPINRefused):
		return &Error{Reason: quillv1.ReasonPINIncorrect, Err: fmt.Errorf("%w; Quill will not present it to this token again until the PIN Secret holds another PIN", err)}
	case errors.Is(err, kms.ErrNotAllowed):
		return &Error{Reason: quillv1.ReasonModuleNotAllowed, Err: err}
	case errors.Is(err, kms.ErrKeyMismatch):
		return &Error{Reason: quillv1.ReasonKeyMismatch, Err: err}
	case errors.Is(err, kms.ErrInvalidRef):
		// The spec must name the token, key or certificate differently.
		return &Error{Reason: quillv1.ReasonInvalidConfig, Err: err}
	case errors.Is(err, kms.ErrUnavailable):
		return &Error{Reason: quillv1.ReasonHSMUnavailable, Err: err}
	}
	return nil
}

// probeFault classifies a failed health probe: any failure of a key that
// was just opened is the key store's.
func probeFault(err error) error {
	if err == nil {
		return nil
	}
	if hf := HSMFault(err); hf != nil {
		return hf
	}
	return &Error{Reason: quillv1.ReasonHSMUnavailable, Err: err}
}
