package castore

import (
	"encoding/hex"
	"errors"
	"fmt"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/kms"
)

// defaultPINKey is the Secret key of the PIN when pinSecretRef names none.
const defaultPINKey = "pin"

var errNoSource = errors.New("spec.ca names no CA source")

// source is an issuer's spec.ca turned into a kms reference and what castore
// needs beside it. sourceOf is the only code that reads spec.ca's fields;
// everything else (Load, Ensure, the cache, the Secret watches) works on a
// source, so a new kind of key backend changes sourceOf alone.
type source struct {
	// namespace is the issuer's, where the Secrets are read.
	namespace string
	// key names the CA key: kms.SecretKey for a key in the CA Secret,
	// another kms.Ref (without its PIN) for a key in a backend.
	key kms.Ref
	// secrets are the Secrets the source reads, in the issuer's
	// namespace, the CA Secret first.
	secrets []string
	// bootstrap is set for a CA Ensure creates when its Secret is missing.
	bootstrap *quillv1.BootstrapCA

	// The rest describes a key in a backend.

	// pin is the Secret key holding the backend's PIN; withPIN returns the
	// reference carrying it.
	pin     quillv1.SecretKeySelector
	withPIN func(pin string) kms.Ref
	// certSecret holds the CA certificate chain; when empty the
	// certificate labelled certLabel is read from the key's store, and
	// must be self-signed since a store holds no chain.
	certSecret string
	certLabel  string
	// issuedBy is set when a parent issuer signs the certificate (the
	// intermediate reconciler writes certSecret).
	issuedBy *quillv1.ParentIssuer
	// module and token label the backend's logins for metrics.
	module, token string
}

// sourceOf maps src, read in namespace, to a source. Its only error is an
// *Error with reason InvalidConfig: src names no source (the schema requires
// one, but objects written before the schema or by clients that skipped
// validation may not), or a reference the schema should have refused. Even
// then the source lists the Secrets src names.
func sourceOf(namespace string, src quillv1.CASource) (source, error) {
	var s source
	var err error
	switch {
	case src.SecretRef != nil:
		s = source{key: kms.SecretKey{Namespace: namespace, Name: src.SecretRef.Name}, secrets: []string{src.SecretRef.Name}}
	case src.Bootstrap != nil:
		s = source{key: kms.SecretKey{Namespace: namespace, Name: src.Bootstrap.SecretName}, secrets: []string{src.Bootstrap.SecretName}, bootstrap: src.Bootstrap}
	case src.PKCS11 != nil:
		s, err = pkcs11Source(src.PKCS11)
	default:
		s, err = source{secrets: []string{""}}, &Error{Reason: quillv1.ReasonInvalidConfig, Err: errNoSource}
	}
	s.namespace = namespace
	return s, err
}

// pkcs11Source maps spec.ca.pkcs11. The module stays a name: the library
// path is the controller's allow-list (Store.PKCS11Modules), never the
// issuer's to choose.
func pkcs11Source(p *quillv1.PKCS11CA) (source, error) {
	u := &kms.PKCS11URI{Token: p.TokenLabel, Serial: p.TokenSerial, Object: p.KeyLabel, ModuleName: p.Module}
	var err error
	if p.KeyID != "" {
		if u.ID, err = hex.DecodeString(p.KeyID); err != nil {
			err = &Error{Reason: quillv1.ReasonInvalidConfig, Err: fmt.Errorf("keyID: %w", err)}
		}
	}
	if err == nil {
		if verr := u.Validate(); verr != nil {
			err = &Error{Reason: quillv1.ReasonInvalidConfig, Err: verr}
		}
	}
	s := source{
		key: u,
		pin: p.PINSecretRef,
		withPIN: func(pin string) kms.Ref {
			withPIN := *u
			withPIN.PIN = pin
			return &withPIN
		},
		certLabel: p.CertificateLabel,
		issuedBy:  p.IssuedBy,
		module:    p.Module,
		token:     p.TokenLabel + p.TokenSerial,
	}
	if s.pin.Key == "" {
		s.pin.Key = defaultPINKey
	}
	if r := p.CertificateSecretRef; r != nil {
		s.certSecret = r.Name
		s.secrets = append(s.secrets, r.Name)
	}
	s.secrets = append(s.secrets, p.PINSecretRef.Name)
	return s, err
}

// inSecret says whether the CA key is the CA Secret's tls.key.
func (s source) inSecret() bool {
	_, ok := s.key.(kms.SecretKey)
	return ok
}

// id identifies the source in namespace for the cache: two issuers share a
// loaded CA exactly when everything that locates its key, credential and
// certificate is the same.
func (s source) id() string {
	if k, ok := s.key.(kms.SecretKey); ok {
		return "secret/" + k.Namespace + "/" + k.Name
	}
	cert := "store:" + s.certLabel
	if s.certSecret != "" {
		cert = "secret:" + s.certSecret
	}
	return fmt.Sprintf("%s/%s/%q/%q/%q", s.namespace, s.key, s.pin.Name, s.pin.Key, cert)
}
