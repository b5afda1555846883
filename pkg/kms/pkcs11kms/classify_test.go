package pkcs11kms

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/kms"
	"github.com/quill-pki/quill/pkg/pkcs11"
)

// TestClassify: every pkg/pkcs11 sentinel becomes exactly the kms class its
// caller reacts to, keeps its message, and stays reachable with errors.Is.
func TestClassify(t *testing.T) {
	t.Parallel()
	kinds := []error{kms.ErrUnavailable, kms.ErrPINRefused, kms.ErrKeyMismatch, kms.ErrNotAllowed, kms.ErrInvalidRef, kms.ErrUnsupported}
	tests := []struct {
		name string
		err  error
		want error // nil: no class
	}{
		{name: "pin-incorrect", err: pkcs11.ErrPINIncorrect, want: kms.ErrPINRefused},
		{name: "no-cgo", err: pkcs11.ErrNoCGO, want: kms.ErrNotAllowed},
		{name: "key-mismatch", err: pkcs11.ErrKeyMismatch, want: kms.ErrKeyMismatch},
		{name: "invalid-config", err: pkcs11.ErrInvalidConfig, want: kms.ErrInvalidRef},
		{name: "unsupported-key", err: pkcs11.ErrUnsupportedKey, want: kms.ErrInvalidRef},
		{name: "token-ambiguous", err: pkcs11.ErrTokenAmbiguous, want: kms.ErrInvalidRef},
		{name: "certificate-ambiguous", err: pkcs11.ErrCertificateAmbiguous, want: kms.ErrInvalidRef},
		{name: "module", err: pkcs11.ErrModule, want: kms.ErrUnavailable},
		{name: "token-not-found", err: pkcs11.ErrTokenNotFound, want: kms.ErrUnavailable},
		{name: "key-not-found", err: pkcs11.ErrKeyNotFound, want: kms.ErrUnavailable},
		{name: "key-ambiguous", err: pkcs11.ErrKeyAmbiguous, want: kms.ErrUnavailable},
		{name: "certificate-not-found", err: pkcs11.ErrCertificateNotFound, want: kms.ErrUnavailable},
		{name: "unavailable", err: pkcs11.ErrUnavailable, want: kms.ErrUnavailable},
		{name: "unsupported-options", err: pkcs11.ErrUnsupportedOptions, want: kms.ErrUnsupported},
		{name: "closed", err: pkcs11.ErrClosed},
		{name: "ckr-code", err: errors.New("C_Sign: CKR_DEVICE_ERROR")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := fmt.Errorf("pkcs11: open: %w", tt.err)
			got := classify(in)
			if got.Error() != in.Error() || !errors.Is(got, tt.err) {
				t.Fatalf("classify changed %q into %q", in, got)
			}
			for _, k := range kinds {
				if errors.Is(got, k) != (k == tt.want) {
					t.Errorf("errors.Is(%q, %v) = %t", got, k, !(k == tt.want))
				}
			}
		})
	}
	if classify(nil) != nil {
		t.Error("classify(nil) is not nil")
	}
}

func TestModuleAllowList(t *testing.T) {
	t.Parallel()
	const lib = "/opt/vendor/libhsm.so"
	allow := map[string]string{"hsm": lib}
	tests := []struct {
		name    string
		uri     kms.PKCS11URI
		modules map[string]string
		wantErr error
	}{
		{name: "listed-name", uri: kms.PKCS11URI{ModuleName: "hsm"}, modules: allow},
		{name: "unlisted-name", uri: kms.PKCS11URI{ModuleName: "other"}, modules: allow, wantErr: kms.ErrNotAllowed},
		{name: "name-without-allow-list", uri: kms.PKCS11URI{ModuleName: "hsm"}, wantErr: kms.ErrNotAllowed},
		{name: "name-with-empty-allow-list", uri: kms.PKCS11URI{ModuleName: "hsm"}, modules: map[string]string{}, wantErr: kms.ErrNotAllowed},
		{name: "path-without-allow-list", uri: kms.PKCS11URI{ModulePath: "/any/lib.so"}},
		{name: "listed-path", uri: kms.PKCS11URI{ModulePath: lib}, modules: allow},
		{name: "unlisted-path", uri: kms.PKCS11URI{ModulePath: "/any/lib.so"}, modules: allow, wantErr: kms.ErrNotAllowed},
		{name: "path-with-empty-allow-list", uri: kms.PKCS11URI{ModulePath: lib}, modules: map[string]string{}, wantErr: kms.ErrNotAllowed},
		{name: "invalid-reference", uri: kms.PKCS11URI{ModuleName: "hsm", Serial: "1"}, modules: allow, wantErr: kms.ErrInvalidRef},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := tt.uri
			if u.Serial == "" {
				u.Token, u.Object = "t", "k"
			}
			err := Backend{}.Check(&u, kms.Options{Modules: tt.modules})
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Check: %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestAlgorithms: the backend creates every issuance key algorithm a
// PKCS#11 2.40 token can hold, and refuses the others before contacting
// the token.
func TestAlgorithms(t *testing.T) {
	t.Parallel()
	want := []issuance.KeyAlgorithm{issuance.ECDSAP256, issuance.ECDSAP384, issuance.ECDSAP521,
		issuance.Ed25519, issuance.RSA2048, issuance.RSA3072, issuance.RSA4096}
	got := Algorithms()
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Algorithms = %q, want %q", got, want)
	}
	for _, alg := range []string{string(issuance.MLDSA65), "RSA-1024", "ecdsa-p256"} {
		ref := &kms.PKCS11URI{Token: "t", Object: "k", ModulePath: "/nonexistent/lib.so"}
		if _, err := (Backend{}).CreateKey(context.Background(), ref, alg, kms.Options{}); !errors.Is(err, kms.ErrUnsupported) {
			t.Errorf("CreateKey(%s): %v, want ErrUnsupported", alg, err)
		}
	}
}
