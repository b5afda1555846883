//go:build cgo

package pkcs11

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// neverRescan keeps a lookup that misses its token from re-initialising
// the library under the test's other Keys and parallel subtests.
func neverRescan() *hooks {
	d := 24 * time.Hour
	return &hooks{rescanAfter: &d}
}

// TestOpenErrors checks each way Open can refuse, and that each is the
// sentinel callers act on. Its subtests only read and run in parallel,
// after the test wrote its keys (see sequentialWrites).
func TestOpenErrors(t *testing.T) {
	t.Parallel()
	if isolate(t) {
		return
	}
	tok := takeToken(t)
	generateKey(t, tok.config("present"), ECDSAP256)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	tok.keypairgen(t, "EC:prime256v1", "twice", []byte{0xd1})
	tok.keypairgen(t, "EC:prime256v1", "twice", []byte{0xd2})

	// A private key stored without its public key object.
	lone, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tok.importPrivate(t, lone, "lone", []byte{0xe1})

	// A private key paired (same CKA_ID) with someone else's public key:
	// comparing public keys alone would accept it.
	swapped, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tok.importPrivate(t, swapped, "swapped", []byte{0xe2})
	tok.importPublic(t, other.Public(), "swapped", []byte{0xe2})

	for _, tc := range []struct {
		name   string
		modify func(*Config)
		want   error
	}{
		{"unknown-token", func(c *Config) { c.TokenLabel = "no-such-token"; c.hooks = neverRescan() }, ErrTokenNotFound},
		{"unknown-serial", func(c *Config) { c.TokenLabel, c.TokenSerial = "", "0000000000000000"; c.hooks = neverRescan() }, ErrTokenNotFound},
		{"ambiguous-token", func(c *Config) { c.TokenLabel = softhsm.dupLabel }, ErrTokenAmbiguous},
		{"missing-key", func(c *Config) { c.KeyLabel = "absent" }, ErrKeyNotFound},
		{"missing-key-id", func(c *Config) { c.KeyID = []byte{0x99} }, ErrKeyNotFound},
		{"ambiguous-key", func(c *Config) { c.KeyLabel = "twice" }, ErrKeyAmbiguous},
		{"expected-mismatch", func(c *Config) { c.Expected = other.Public() }, ErrKeyMismatch},
		{"no-public-object", func(c *Config) { c.KeyLabel = "lone" }, ErrKeyNotFound},
		{"wrong-public-object", func(c *Config) { c.KeyLabel = "swapped" }, ErrKeyMismatch},
		{"relative-module", func(c *Config) { c.ModulePath = "libsofthsm2.so" }, ErrInvalidConfig},
		{"missing-module", func(c *Config) { c.ModulePath = "/nonexistent/libpkcs11.so" }, ErrModule},
		{"not-a-pkcs11-module", func(c *Config) { c.ModulePath = "/usr/lib/x86_64-linux-gnu/libz.so.1" }, ErrModule},
		{"unsupported-expected", func(c *Config) { c.Expected = "a string" }, ErrUnsupportedKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tok.config("present")
			tc.modify(&cfg)
			k, err := Open(cfg)
			if err == nil {
				k.Close()
				t.Fatalf("Open succeeded, want %v", tc.want)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
			if strings.Contains(err.Error(), tok.pin) {
				t.Fatalf("error message contains the PIN: %v", err)
			}
		})
	}

	t.Run("public-key-from-expected", func(t *testing.T) {
		t.Parallel()
		cfg := tok.config("lone")
		cfg.Expected = lone.Public()
		signAndVerify(t, openKey(t, cfg))
	})
	t.Run("select-by-serial", func(t *testing.T) {
		t.Parallel()
		cfg := tok.config("present")
		cfg.TokenLabel, cfg.TokenSerial = "", tok.serial
		signAndVerify(t, openKey(t, cfg))
	})
}

// TestWrongPIN checks that a refused PIN is reported as ErrPINIncorrect
// after exactly one C_Login, and that the package does not try again.
func TestWrongPIN(t *testing.T) {
	t.Parallel()
	if isolate(t) {
		return
	}
	tok := takeToken(t)
	var logins loginCounter
	cfg := tok.config("k")
	cfg.PIN = "not-" + tok.pin
	cfg.hooks = logins.hooks()
	_, err := Open(cfg)
	if !errors.Is(err, ErrPINIncorrect) {
		t.Fatalf("Open: %v, want ErrPINIncorrect", err)
	}
	if strings.Contains(err.Error(), cfg.PIN) {
		t.Fatalf("error message contains the PIN: %v", err)
	}
	if n := logins.calls.Load(); n != 1 {
		t.Fatalf("%d C_Login calls, want exactly 1", n)
	}
	if last := logins.last.Load(); !strings.Contains(fmt.Sprint(last), "CKR_PIN_INCORRECT") {
		t.Fatalf("C_Login answered %v, want CKR_PIN_INCORRECT", last)
	}
}

// TestWrongPINWhileLoggedIn checks that a wrong PIN is refused even while
// another Key keeps the process logged in to the token, where PKCS#11
// itself would answer CKR_USER_ALREADY_LOGGED_IN and let it through, and
// that Config.OnLogin reports exactly the PINs the token saw.
func TestWrongPINWhileLoggedIn(t *testing.T) {
	t.Parallel()
	if isolate(t) {
		return
	}
	tok := takeToken(t)
	holder, err := GenerateKey(tok.config("k"), ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var reported []LoginResult
	onLogin := func(r LoginResult) {
		mu.Lock()
		defer mu.Unlock()
		reported = append(reported, r)
	}
	results := func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprint(reported)
	}

	var same loginCounter
	cfg := tok.config("k")
	cfg.hooks, cfg.OnLogin = same.hooks(), onLogin
	second := openKey(t, cfg)
	signAndVerify(t, second)
	if n, last := same.calls.Load(), same.last.Load(); n != 1 || !strings.Contains(fmt.Sprint(last), "CKR_USER_ALREADY_LOGGED_IN") {
		t.Fatalf("second Key with the right PIN: %d C_Login calls, last %v; want one answering CKR_USER_ALREADY_LOGGED_IN", n, last)
	}

	var wrong loginCounter
	cfg.PIN, cfg.hooks = "not-"+tok.pin, wrong.hooks()
	if _, err := Open(cfg); !errors.Is(err, ErrPINIncorrect) {
		t.Fatalf("Open with a wrong PIN while logged in: %v, want ErrPINIncorrect", err)
	}
	if n := wrong.calls.Load(); n != 0 {
		t.Fatalf("%d C_Login calls for a PIN refused by the login record, want 0", n)
	}
	if got := results(); got != "[ok]" {
		t.Fatalf("OnLogin reported %s, want [ok]: a PIN the token never saw is not a login", got)
	}
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	// With nobody logged in, the token itself refuses the PIN.
	if _, err := Open(cfg); !errors.Is(err, ErrPINIncorrect) {
		t.Fatalf("Open with a wrong PIN: %v, want ErrPINIncorrect", err)
	}
	if n, last := wrong.calls.Load(), wrong.last.Load(); n != 1 || !strings.Contains(fmt.Sprint(last), "CKR_PIN_INCORRECT") {
		t.Fatalf("%d C_Login calls, last %v; want one answering CKR_PIN_INCORRECT", n, last)
	}
	if got := results(); got != "[ok pin_incorrect]" {
		t.Fatalf("OnLogin reported %s, want [ok pin_incorrect]", got)
	}
}

// TestGenerateKeyErrors checks what GenerateKey refuses, before creating
// anything.
func TestGenerateKeyErrors(t *testing.T) {
	t.Parallel()
	if isolate(t) {
		return
	}
	tok := takeToken(t)
	generateKey(t, tok.config("taken"), ECDSAP256)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tc := range []struct {
		name string
		cfg  func() Config
		alg  Algorithm
		want error
	}{
		{"unknown-algorithm", func() Config { return tok.config("x") }, "DSA-1024", ErrUnsupportedKey},
		{"label-taken", func() Config { return tok.config("taken") }, ECDSAP256, ErrKeyAmbiguous},
		{"no-label", func() Config { c := tok.config(""); c.KeyID = []byte{1}; return c }, ECDSAP256, ErrInvalidConfig},
		{"expected-set", func() Config { c := tok.config("y"); c.Expected = other.Public(); return c }, ECDSAP256, ErrInvalidConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, err := GenerateKey(tc.cfg(), tc.alg)
			if err == nil {
				k.Close()
				t.Fatalf("GenerateKey succeeded, want %v", tc.want)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("GenerateKey: %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("id-taken", func(t *testing.T) {
		t.Parallel()
		cfg := tok.config("id-owner")
		cfg.KeyID = []byte{0x42}
		generateKey(t, cfg, ECDSAP256)
		cfg.KeyLabel = "id-thief"
		if _, err := GenerateKey(cfg, ECDSAP256); !errors.Is(err, ErrKeyAmbiguous) {
			t.Fatalf("GenerateKey with a used ID: %v, want ErrKeyAmbiguous", err)
		}
	})
}
