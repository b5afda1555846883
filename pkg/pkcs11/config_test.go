package pkcs11

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestConfigFormattingOmitsPIN(t *testing.T) {
	t.Parallel()
	cfg := Config{ModulePath: "/lib/p11.so", TokenLabel: "ca", KeyLabel: "root", PIN: "s3cr3t-pin"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, cfg); strings.Contains(s, cfg.PIN) {
			t.Errorf("%s prints the PIN: %s", verb, s)
		}
		if s := fmt.Sprintf(verb, &cfg); strings.Contains(s, cfg.PIN) {
			t.Errorf("%s of a pointer prints the PIN: %s", verb, s)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	valid := func() Config {
		return Config{ModulePath: "/usr/lib/p11.so", TokenLabel: "ca", KeyLabel: "root", PIN: "1234"}
	}
	for _, tc := range []struct {
		name    string
		modify  func(*Config)
		needKey bool
		want    error
	}{
		{"valid", func(*Config) {}, true, nil},
		{"valid-by-serial-and-id", func(c *Config) { c.TokenLabel, c.TokenSerial, c.KeyLabel, c.KeyID = "", "abc", "", []byte{1} }, true, nil},
		{"valid-with-expected", func(c *Config) { c.Expected = ec.Public() }, true, nil},
		{"no-key-for-certificates", func(c *Config) { c.KeyLabel = "" }, false, nil},
		{"empty-module", func(c *Config) { c.ModulePath = "" }, true, ErrInvalidConfig},
		{"relative-module", func(c *Config) { c.ModulePath = "lib/p11.so" }, true, ErrInvalidConfig},
		{"no-token", func(c *Config) { c.TokenLabel = "" }, true, ErrInvalidConfig},
		{"both-token-selectors", func(c *Config) { c.TokenSerial = "abc" }, true, ErrInvalidConfig},
		{"token-label-too-long", func(c *Config) { c.TokenLabel = strings.Repeat("x", 33) }, true, ErrInvalidConfig},
		{"no-key", func(c *Config) { c.KeyLabel = "" }, true, ErrInvalidConfig},
		{"negative-sessions", func(c *Config) { c.MaxSessions = -1 }, true, ErrInvalidConfig},
		{"expected-private-key", func(c *Config) { c.Expected = ec }, true, ErrUnsupportedKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid()
			tc.modify(&cfg)
			err := cfg.validate(tc.needKey)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("validate: %v, want %v", err, tc.want)
			}
		})
	}
}
