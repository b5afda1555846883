package kms_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quill-pki/quill/pkg/kms"
)

const lib = "/usr/lib/softhsm/libsofthsm2.so"

func TestParsePKCS11URI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want kms.PKCS11URI
		// wantErr is a fragment of the message; "" means success.
		wantErr string
	}{
		{name: "token-and-object", in: "pkcs11:token=root;object=root-key?module-path=" + lib + "&pin-value=1234",
			want: kms.PKCS11URI{Token: "root", Object: "root-key", ModulePath: lib, PIN: "1234"}},
		{name: "percent-encoded-values", in: "pkcs11:token=Root%20CA;object=a%3Bb;id=%01%CA?module-path=" + lib,
			want: kms.PKCS11URI{Token: "Root CA", Object: "a;b", ID: []byte{0x01, 0xca}, ModulePath: lib}},
		{name: "plus-is-not-space", in: "pkcs11:token=a+b;id=%01?module-name=hsm",
			want: kms.PKCS11URI{Token: "a+b", ID: []byte{1}, ModuleName: "hsm"}},
		{name: "serial-and-type-private", in: "pkcs11:serial=0a1b;object=k;type=private?module-name=hsm&pin-source=file:/run/pin",
			want: kms.PKCS11URI{Serial: "0a1b", Object: "k", ModuleName: "hsm", PINSource: "file:/run/pin"}},
		{name: "empty-attributes-skipped", in: "pkcs11:;token=t;;object=k?module-name=hsm",
			want: kms.PKCS11URI{Token: "t", Object: "k", ModuleName: "hsm"}},
		{name: "not-pkcs11", in: "file:/tmp/key.pem", wantErr: "does not start with pkcs11:"},
		{name: "no-token", in: "pkcs11:object=k?module-name=hsm", wantErr: "exactly one of token= or serial="},
		{name: "token-and-serial", in: "pkcs11:token=t;serial=1;object=k?module-name=hsm", wantErr: "exactly one of token= or serial="},
		{name: "token-label-too-long", in: "pkcs11:token=" + strings.Repeat("x", 33) + ";object=k?module-name=hsm", wantErr: "at most 32 bytes"},
		{name: "no-key", in: "pkcs11:token=t?module-name=hsm", wantErr: "object=, id= or both"},
		{name: "no-module", in: "pkcs11:token=t;object=k", wantErr: "PKCS#11 library"},
		{name: "two-modules", in: "pkcs11:token=t;object=k?module-name=a&module-path=" + lib, wantErr: "exactly one of module-path"},
		{name: "relative-module-path", in: "pkcs11:token=t;object=k?module-path=lib.so", wantErr: "absolute path"},
		{name: "type-cert", in: "pkcs11:token=t;object=k;type=cert?module-name=hsm", wantErr: "private key"},
		{name: "slot-id", in: "pkcs11:slot-id=1;object=k?module-name=hsm", wantErr: `"slot-id"`},
		{name: "vendor-query", in: "pkcs11:token=t;object=k?module-name=hsm&x-foo=1", wantErr: `"x-foo"`},
		{name: "repeated-attribute", in: "pkcs11:token=t;token=u;object=k?module-name=hsm", wantErr: "appears twice"},
		{name: "no-value", in: "pkcs11:token;object=k?module-name=hsm", wantErr: "has no value"},
		{name: "bad-escape", in: "pkcs11:token=%zz;object=k?module-name=hsm", wantErr: "token"},
		{name: "pin-source-not-file", in: "pkcs11:token=t;object=k?module-name=hsm&pin-source=env:PIN", wantErr: "file: URI"},
		{name: "pin-source-relative", in: "pkcs11:token=t;object=k?module-name=hsm&pin-source=file:pin", wantErr: "absolute path"},
		{name: "pin-value-and-source", in: "pkcs11:token=t;object=k?module-name=hsm&pin-value=1&pin-source=file:/p", wantErr: "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := kms.ParsePKCS11URI(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("parsed %v, want an error mentioning %q", got, tt.wantErr)
				}
				if !errors.Is(err, kms.ErrInvalidRef) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %q, want ErrInvalidRef mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Token != tt.want.Token || got.Serial != tt.want.Serial || got.Object != tt.want.Object ||
				!slices.Equal(got.ID, tt.want.ID) || got.ModuleName != tt.want.ModuleName ||
				got.ModulePath != tt.want.ModulePath || got.PINSource != tt.want.PINSource || got.PIN != tt.want.PIN {
				t.Fatalf("parsed %#v\nwant %#v (PIN %q, want %q)", got, tt.want, got.PIN, tt.want.PIN)
			}
			// String is a pkcs11: URI that parses back to the same key.
			again, err := kms.ParsePKCS11URI(strings.Replace(got.String(), "pin-value=REDACTED", "pin-value="+got.PIN, 1))
			if err != nil || again.String() != got.String() || again.PIN != got.PIN {
				t.Fatalf("String %q does not parse back: %v, %v", got.String(), again, err)
			}
		})
	}
}

// TestPINNeverShown: neither a parsed URI nor a parse error shows the PIN,
// whichever way it is formatted.
func TestPINNeverShown(t *testing.T) {
	t.Parallel()
	const pin = "s3cr3t-pin"
	tests := []struct {
		name string
		in   string
	}{
		{name: "valid", in: "pkcs11:token=t;object=k?module-path=" + lib + "&pin-value=" + pin},
		{name: "invalid-after-pin", in: "pkcs11:token=t?module-path=" + lib + "&pin-value=" + pin},
		{name: "unknown-attribute", in: "pkcs11:token=t;object=k?pin-value=" + pin + "&x=1"},
		{name: "pin-in-path", in: "pkcs11:token=t;pin-value=" + pin + ";object=k?module-name=hsm"},
		{name: "bad-escape-in-pin", in: "pkcs11:token=t;object=k?module-name=hsm&pin-value=" + pin + "%zz"},
		{name: "not-pkcs11", in: "pkcs12:token=t?pin-value=" + pin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, err := kms.ParsePKCS11URI(tt.in)
			var shown []string
			if err != nil {
				shown = append(shown, err.Error())
			} else {
				shown = append(shown, u.String(), fmt.Sprint(u), fmt.Sprintf("%v %+v %#v %s", u, u, u, *u))
				if !strings.Contains(u.String(), "pin-value=REDACTED") {
					t.Errorf("String %q does not say a PIN was given", u)
				}
			}
			for _, s := range shown {
				if strings.Contains(s, pin) {
					t.Errorf("the PIN shows in %q", s)
				}
			}
		})
	}
}

func TestReadPIN(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "pin")
	if err := os.WriteFile(file, []byte("4321\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		uri     kms.PKCS11URI
		want    string
		wantErr bool
	}{
		{name: "pin-value", uri: kms.PKCS11URI{PIN: "1234"}, want: "1234"},
		{name: "pin-source", uri: kms.PKCS11URI{PINSource: "file:" + file}, want: "4321"},
		{name: "pin-source-with-authority", uri: kms.PKCS11URI{PINSource: "file://" + file}, want: "4321"},
		{name: "no-pin", uri: kms.PKCS11URI{}, want: ""},
		{name: "missing-file", uri: kms.PKCS11URI{PINSource: "file:" + filepath.Join(dir, "absent")}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.uri.ReadPIN()
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ReadPIN = %q, %v; want %q (error: %t)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
