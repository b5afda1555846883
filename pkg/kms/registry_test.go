package kms_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/quill-pki/quill/pkg/kms"
)

// testRef is a reference of the test backends.
type testRef string

func (r testRef) Scheme() string { return strings.SplitN(string(r), ":", 2)[0] }
func (r testRef) String() string { return string(r) }

// memKey is a kms.Key in memory.
type memKey struct {
	crypto.Signer
	closed *bool
}

func (k memKey) Probe(context.Context) error { return nil }
func (k memKey) Close() error                { *k.closed = true; return nil }

// plainBackend opens every reference as key, and has no capability.
type plainBackend struct {
	key    crypto.Signer
	closed *bool
}

func (b plainBackend) Check(kms.Ref, kms.Options) error { return nil }
func (b plainBackend) Open(context.Context, kms.Ref, kms.Options) (kms.Key, error) {
	return memKey{Signer: b.key, closed: b.closed}, nil
}

// fullBackend has every capability.
type fullBackend struct{ plainBackend }

func (fullBackend) ParseRef(s string) (kms.Ref, error) { return testRef(s), nil }
func (b fullBackend) CreateKey(ctx context.Context, ref kms.Ref, _ string, opts kms.Options) (kms.Key, error) {
	return b.Open(ctx, ref, opts)
}
func (fullBackend) StoreCertificate(context.Context, kms.Ref, string, []byte, kms.Options) error {
	return nil
}
func (fullBackend) LoadCertificate(context.Context, kms.Ref, string, kms.Options) ([]byte, error) {
	return []byte("der"), nil
}

func newKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	key, other := newKey(t), newKey(t)
	var closed bool
	r := &kms.Registry{}
	r.Register("full", fullBackend{plainBackend{key: key, closed: &closed}})
	r.Register("plain", plainBackend{key: key, closed: &closed})
	if got, want := r.Schemes(), []string{"full", "plain"}; !slices.Equal(got, want) {
		t.Fatalf("Schemes = %q, want %q", got, want)
	}
	ctx := context.Background()
	tests := []struct {
		name    string
		call    func() error
		wantErr error
	}{
		{name: "parse", call: func() error { _, err := r.Parse("full:key"); return err }},
		{name: "parse-scheme-in-upper-case", call: func() error { _, err := r.Parse("FULL:key"); return err }},
		{name: "parse-no-scheme", call: func() error { _, err := r.Parse("key.pem"); return err }, wantErr: kms.ErrInvalidRef},
		{name: "parse-unknown-scheme", call: func() error { _, err := r.Parse("tpm:key"); return err }, wantErr: kms.ErrNotAllowed},
		{name: "parse-without-parser", call: func() error { _, err := r.Parse("plain:key"); return err }, wantErr: kms.ErrUnsupported},
		{name: "open", call: func() error { _, err := r.Open(ctx, testRef("plain:k"), kms.Options{}); return err }},
		{name: "open-expected-key", call: func() error {
			_, err := r.Open(ctx, testRef("plain:k"), kms.Options{Expected: key.Public()})
			return err
		}},
		{name: "open-other-key", call: func() error {
			_, err := r.Open(ctx, testRef("plain:k"), kms.Options{Expected: other.Public()})
			return err
		}, wantErr: kms.ErrKeyMismatch},
		{name: "open-unknown-scheme", call: func() error { _, err := r.Open(ctx, testRef("tpm:k"), kms.Options{}); return err }, wantErr: kms.ErrNotAllowed},
		{name: "check-unknown-scheme", call: func() error { return r.Check(testRef("tpm:k"), kms.Options{}) }, wantErr: kms.ErrNotAllowed},
		{name: "create", call: func() error { _, err := r.CreateKey(ctx, testRef("full:k"), "ECDSA-P256", kms.Options{}); return err }},
		{name: "create-unsupported", call: func() error {
			_, err := r.CreateKey(ctx, testRef("plain:k"), "ECDSA-P256", kms.Options{})
			return err
		}, wantErr: kms.ErrUnsupported},
		{name: "store-certificate", call: func() error { return r.StoreCertificate(ctx, testRef("full:k"), "ca", nil, kms.Options{}) }},
		{name: "store-certificate-unsupported", call: func() error {
			return r.StoreCertificate(ctx, testRef("plain:k"), "ca", nil, kms.Options{})
		}, wantErr: kms.ErrUnsupported},
		{name: "load-certificate", call: func() error { _, err := r.LoadCertificate(ctx, testRef("full:k"), "ca", kms.Options{}); return err }},
		{name: "load-certificate-unsupported", call: func() error {
			_, err := r.LoadCertificate(ctx, testRef("plain:k"), "ca", kms.Options{})
			return err
		}, wantErr: kms.ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.call()
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestRegistryClosesRefusedKey: a key that is not the expected one is
// closed before Open refuses it.
func TestRegistryClosesRefusedKey(t *testing.T) {
	t.Parallel()
	var closed bool
	r := &kms.Registry{}
	r.Register("plain", plainBackend{key: newKey(t), closed: &closed})
	if _, err := r.Open(context.Background(), testRef("plain:k"), kms.Options{Expected: newKey(t).Public()}); !errors.Is(err, kms.ErrKeyMismatch) {
		t.Fatalf("Open: %v, want ErrKeyMismatch", err)
	}
	if !closed {
		t.Error("the refused key was left open")
	}
}

func TestRegisterRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		scheme string
	}{
		{name: "duplicate", scheme: "dup"},
		{name: "empty", scheme: ""},
		{name: "upper-case", scheme: "PKCS11"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &kms.Registry{}
			r.Register("dup", plainBackend{})
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", tt.scheme)
				}
			}()
			r.Register(tt.scheme, plainBackend{})
		})
	}
}

// TestNilRegistryIsDefault: the zero value of a *Registry field means the
// registry backends register with.
func TestNilRegistryIsDefault(t *testing.T) {
	t.Parallel()
	var r *kms.Registry
	if !slices.Equal(r.Schemes(), kms.Default.Schemes()) {
		t.Errorf("nil registry has schemes %q, Default %q", r.Schemes(), kms.Default.Schemes())
	}
}

func TestMark(t *testing.T) {
	t.Parallel()
	cause := errors.New("C_Login: CKR_PIN_INCORRECT")
	err := fmt.Errorf("open: %w", kms.Mark(cause, kms.ErrPINRefused))
	if !errors.Is(err, kms.ErrPINRefused) || !errors.Is(err, cause) {
		t.Errorf("%v does not unwrap to both its class and its cause", err)
	}
	if got, want := err.Error(), "open: C_Login: CKR_PIN_INCORRECT"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	if kms.Mark(nil, kms.ErrPINRefused) != nil {
		t.Error("Mark(nil) is not nil")
	}
}
