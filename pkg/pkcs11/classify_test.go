//go:build cgo

package pkcs11

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/asn1"
	"errors"
	"fmt"
	"testing"

	p11 "github.com/miekg/pkcs11"
)

// TestErrorClassification pins which PKCS#11 return values trigger a
// recovery and which are a refused PIN; the two sets must not overlap, or
// a wrong PIN would be retried by recovery.
func TestErrorClassification(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		err     error
		recover bool
		pin     bool
	}{
		{"session-handle-invalid", p11.Error(p11.CKR_SESSION_HANDLE_INVALID), true, false},
		{"session-closed", p11.Error(p11.CKR_SESSION_CLOSED), true, false},
		{"object-handle-invalid", p11.Error(p11.CKR_OBJECT_HANDLE_INVALID), true, false},
		{"key-handle-invalid", p11.Error(p11.CKR_KEY_HANDLE_INVALID), true, false},
		{"device-error", p11.Error(p11.CKR_DEVICE_ERROR), true, false},
		{"device-removed", p11.Error(p11.CKR_DEVICE_REMOVED), true, false},
		{"token-not-present", p11.Error(p11.CKR_TOKEN_NOT_PRESENT), true, false},
		{"general-error", p11.Error(p11.CKR_GENERAL_ERROR), true, false},
		{"not-initialized", p11.Error(p11.CKR_CRYPTOKI_NOT_INITIALIZED), true, false},
		{"user-not-logged-in", p11.Error(p11.CKR_USER_NOT_LOGGED_IN), true, false},
		{"wrapped", fmt.Errorf("sign: %w", p11.Error(p11.CKR_DEVICE_ERROR)), true, false},
		{"stale", fmt.Errorf("%w: %w", errStale, ErrModule), true, false},
		{"pin-incorrect", p11.Error(p11.CKR_PIN_INCORRECT), false, true},
		{"pin-locked", p11.Error(p11.CKR_PIN_LOCKED), false, true},
		{"pin-invalid", p11.Error(p11.CKR_PIN_INVALID), false, true},
		{"pin-expired", p11.Error(p11.CKR_PIN_EXPIRED), false, true},
		{"data-len-range", p11.Error(p11.CKR_DATA_LEN_RANGE), false, false},
		{"mechanism-invalid", p11.Error(p11.CKR_MECHANISM_INVALID), false, false},
		{"key-function-not-permitted", p11.Error(p11.CKR_KEY_FUNCTION_NOT_PERMITTED), false, false},
		{"plain", errors.New("something else"), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := needsRecovery(tc.err); got != tc.recover {
				t.Errorf("needsRecovery = %v, want %v", got, tc.recover)
			}
			if got := isPINError(tc.err); got != tc.pin {
				t.Errorf("isPINError = %v, want %v", got, tc.pin)
			}
		})
	}
}

// TestPublicKeyDecoding covers the encodings libraries use for EC keys
// beyond what SoftHSM produces: a bare CKA_EC_POINT and both spellings of
// the Ed25519 parameters.
func TestPublicKeyDecoding(t *testing.T) {
	t.Parallel()
	ec, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	point, _ := ec.PublicKey.Bytes()
	wrapped, _ := asn1.Marshal(point)
	ed, _, _ := ed25519.GenerateKey(rand.Reader)
	edWrapped, _ := asn1.Marshal([]byte(ed))
	edName, _ := asn1.MarshalWithParams("edwards25519", "printable")
	p384, _ := asn1.Marshal(oidP384)
	ed25519OID, _ := asn1.Marshal(oidEd25519)
	secp256k1, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 3, 132, 0, 10})

	for _, tc := range []struct {
		name    string
		keyType uint
		params  []byte
		point   []byte
		want    any // the public key, or the error
	}{
		{"p384-wrapped", p11.CKK_EC, p384, wrapped, &ec.PublicKey},
		{"p384-bare", p11.CKK_EC, p384, point, &ec.PublicKey},
		{"ed25519-oid-wrapped", ckkECEdwards, ed25519OID, edWrapped, ed},
		{"ed25519-name-bare", ckkECEdwards, edName, ed, ed},
		{"secp256k1", p11.CKK_EC, secp256k1, wrapped, ErrUnsupportedKey},
		{"edwards-params-on-ec-key", p11.CKK_EC, edName, wrapped, ErrUnsupportedKey},
		{"truncated-point", p11.CKK_EC, p384, wrapped[:len(wrapped)-1], ErrUnsupportedKey},
		{"point-off-curve", p11.CKK_EC, p384, append([]byte{4}, make([]byte, 96)...), ErrUnsupportedKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			curve, err := curveOf(tc.keyType, tc.params)
			var pub any
			if err == nil {
				pub, err = ecPublic(curve, tc.point)
			}
			if want, ok := tc.want.(error); ok {
				if !errors.Is(err, want) {
					t.Fatalf("got %v, %v; want %v", pub, err, want)
				}
				return
			}
			if err != nil || !samePublic(pub, tc.want) {
				t.Fatalf("got %v, %v; want %v", pub, err, tc.want)
			}
		})
	}
}
