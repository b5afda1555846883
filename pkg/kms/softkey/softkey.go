// Package softkey is the pkg/kms backend of software CA keys held in
// Kubernetes Secrets (kms.SecretKey). Importing it registers the backend
// under the "secret" scheme.
//
// The backend reads nothing itself: the caller (castore) reads the Secret
// and hands over its tls.key in SecretKey.PEM, so that no backend ever
// holds an API client. Parsing is pkg/issuance's (SigningKeyFromPEM), which
// also gives ML-DSA keys the faster signing engine; the opened Key hands
// that signer back through Unwrap, so that issuance's self-check keeps
// using the engine's unpacked public key.
package softkey

import (
	"context"
	"crypto"
	"fmt"

	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/kms"
)

func init() { kms.Register(kms.SchemeSecret, Backend{}) }

// Backend implements kms.Backend for kms.SecretKey references. It has no
// optional capability: Secret-held keys are made by whoever writes the
// Secret (castore's bootstrap, cert-manager, an operator), and are never
// named by text.
type Backend struct{}

var _ kms.Backend = Backend{}

// Check accepts a kms.SecretKey with a Secret name; errors wrap
// kms.ErrInvalidRef. Options do not matter to software keys.
func (Backend) Check(ref kms.Ref, _ kms.Options) error {
	_, err := secretKey(ref)
	return err
}

// Open parses ref.PEM. A key that does not parse, or a reference without
// PEM bytes, fails with an error wrapping kms.ErrInvalidRef and
// issuance.ErrMalformedCA (its message names tls.key, as LoadAuthority's
// does). opts.Expected is checked by kms.Registry.Open.
func (Backend) Open(_ context.Context, ref kms.Ref, _ kms.Options) (kms.Key, error) {
	k, err := secretKey(ref)
	if err != nil {
		return nil, err
	}
	if len(k.PEM) == 0 {
		return nil, kms.Mark(fmt.Errorf("%w: %s: tls.key is empty", issuance.ErrMalformedCA, k), kms.ErrInvalidRef)
	}
	signer, err := issuance.SigningKeyFromPEM(k.PEM)
	if err != nil {
		return nil, kms.Mark(fmt.Errorf("%w: tls.key: %w", issuance.ErrMalformedCA, err), kms.ErrInvalidRef)
	}
	return key{signer}, nil
}

func secretKey(ref kms.Ref) (kms.SecretKey, error) {
	k, ok := ref.(kms.SecretKey)
	if !ok {
		return kms.SecretKey{}, fmt.Errorf("%w: %s is not a Secret-held key (%T)", kms.ErrInvalidRef, ref, ref)
	}
	if k.Name == "" {
		return kms.SecretKey{}, fmt.Errorf("%w: %s names no Secret", kms.ErrInvalidRef, k)
	}
	return k, nil
}

// key is a software key in memory.
type key struct {
	crypto.Signer
}

// Probe has nothing to prove: a key in memory can always sign, and a
// throwaway signature would only cost a CA's health check time.
func (key) Probe(context.Context) error { return nil }

// Close has nothing to release; the key is garbage once unreferenced.
func (key) Close() error { return nil }

// Unwrap returns the signer issuance made, for issuance's ML-DSA
// self-check (which looks for its own engine behind a wrapper).
func (k key) Unwrap() crypto.Signer { return k.Signer }
