//go:build cgo

package pkcs11

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// scheme is one way of calling Sign.
type scheme struct {
	name string
	opts crypto.SignerOpts
}

var (
	ecdsaSchemes = map[string][]scheme{
		"P-256": {{"sha256", crypto.SHA256}},
		"P-384": {{"sha384", crypto.SHA384}, {"sha256", crypto.SHA256}},
		"P-521": {{"sha512", crypto.SHA512}},
	}
	rsaSchemes = []scheme{
		{"pkcs1v15-sha256", crypto.SHA256},
		{"pkcs1v15-sha384", crypto.SHA384},
		{"pkcs1v15-sha512", crypto.SHA512},
		{"pss-sha256-equals-hash", &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash}},
		{"pss-sha384-auto", &rsa.PSSOptions{Hash: crypto.SHA384, SaltLength: rsa.PSSSaltLengthAuto}},
		{"pss-sha512-salt-20", &rsa.PSSOptions{Hash: crypto.SHA512, SaltLength: 20}},
	}
	ed25519Schemes = []scheme{{"pure", crypto.Hash(0)}, {"options", &ed25519.Options{}}}
)

func schemesFor(t *testing.T, pub crypto.PublicKey) []scheme {
	t.Helper()
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		return ecdsaSchemes[pub.Curve.Params().Name]
	case *rsa.PublicKey:
		return rsaSchemes
	case ed25519.PublicKey:
		return ed25519Schemes
	}
	t.Fatalf("public key of type %T", pub)
	return nil
}

// signAndVerify signs a fresh message with every scheme the key supports
// and verifies each signature with Go's crypto.
func signAndVerify(t *testing.T, k *Key) {
	t.Helper()
	if k.SignsWithSessionCopy() == k.cfg.DisableSessionCopy {
		t.Fatalf("SignsWithSessionCopy() = %v with DisableSessionCopy %v: SoftHSM copies every key it can sign with", k.SignsWithSessionCopy(), k.cfg.DisableSessionCopy)
	}
	for _, s := range schemesFor(t, k.Public()) {
		msg := []byte("quill test message " + s.name)
		digest := msg
		if h := s.opts.HashFunc(); h != 0 {
			hh := h.New()
			hh.Write(msg)
			digest = hh.Sum(nil)
		}
		sig, err := k.Sign(rand.Reader, digest, s.opts)
		if err != nil {
			t.Fatalf("%s: Sign: %v", s.name, err)
		}
		verifySignature(t, k.Public(), digest, sig, s.opts)
		// A signature of other data must not verify: the check above
		// could otherwise pass for a verifier that accepts anything.
		other := append([]byte(nil), digest...)
		other[0] ^= 1
		if verifies(k.Public(), other, sig, s.opts) {
			t.Fatalf("%s: signature verifies for different data", s.name)
		}
	}
}

func verifies(pub crypto.PublicKey, digest, sig []byte, opts crypto.SignerOpts) bool {
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(pub, digest, sig)
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			return rsa.VerifyPSS(pub, pss.Hash, digest, sig, nil) == nil
		}
		return rsa.VerifyPKCS1v15(pub, opts.HashFunc(), digest, sig) == nil
	case ed25519.PublicKey:
		return ed25519.Verify(pub, digest, sig)
	}
	return false
}

// TestSignGeneratedKeys signs with keys this package generated.
func TestSignGeneratedKeys(t *testing.T) {
	t.Parallel()
	if isolate(t) {
		return
	}
	tok := takeToken(t)
	for _, alg := range []Algorithm{ECDSAP256, ECDSAP384, ECDSAP521, RSA2048, RSA3072, Ed25519} {
		t.Run(strings.ToLower(string(alg)), func(t *testing.T) {
			k := generateKey(t, tok.config("gen-"+string(alg)), alg)
			if len(k.KeyID()) != 16 {
				t.Errorf("KeyID() = %x, want 16 random bytes", k.KeyID())
			}
			signAndVerify(t, k)
		})
	}
}

// TestSignToolKeys signs with keys pkcs11-tool generated on the token, to
// prove the package reads keys made by other tools (OpenSC writes Ed25519
// parameters as the string "edwards25519", not the OID). The subtests write
// with pkcs11-tool, so they run in turn (see sequentialWrites).
func TestSignToolKeys(t *testing.T) {
	t.Parallel()
	if isolate(t) {
		return
	}
	tok := takeToken(t)
	for i, keyType := range []string{"EC:prime256v1", "EC:secp384r1", "rsa:2048", "EC:edwards25519"} {
		t.Run(strings.ToLower(strings.ReplaceAll(keyType, ":", "-")), func(t *testing.T) {
			label := "tool-" + keyType
			tok.keypairgen(t, keyType, label, []byte{0x70, byte(i)})
			signAndVerify(t, openKey(t, tok.config(label)))
		})
	}
}

// TestSignImportedKeys signs with software keys written to the token with
// pkcs11-tool, checked against the software public key. The subtests write
// with pkcs11-tool, so they run in turn (see sequentialWrites).
func TestSignImportedKeys(t *testing.T) {
	t.Parallel()
	if isolate(t) {
		return
	}
	tok := takeToken(t)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	for i, tc := range []struct {
		name string
		key  crypto.Signer
	}{
		{"ecdsa-p256", p256},
		{"ecdsa-p384", p384},
		{"rsa-2048", rsa2048},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := []byte{0x1a, byte(i)}
			tok.importKey(t, tc.key, "imported-"+tc.name, id)
			cfg := tok.config("")
			cfg.KeyID = id // select by CKA_ID alone
			cfg.Expected = tc.key.Public()
			k := openKey(t, cfg)
			if !samePublic(k.Public(), tc.key.Public()) {
				t.Fatalf("Public() is not the imported key")
			}
			signAndVerify(t, k)
		})
	}
}

// TestSignOptionsRefused checks that Sign refuses, before touching the
// token, what a verifier could not check as asked.
func TestSignOptionsRefused(t *testing.T) {
	t.Parallel()
	if isolate(t) {
		return
	}
	tok := takeToken(t)
	ec := generateKey(t, tok.config("ec"), ECDSAP256)
	rs := generateKey(t, tok.config("rsa"), RSA2048)
	ed := generateKey(t, tok.config("ed"), Ed25519)
	d32, d48 := make([]byte, 32), make([]byte, 48)
	for _, tc := range []struct {
		name   string
		key    *Key
		digest []byte
		opts   crypto.SignerOpts
	}{
		{"ecdsa-without-hash", ec, d32, crypto.Hash(0)},
		{"ecdsa-digest-length", ec, d48, crypto.SHA256},
		{"rsa-sha1", rs, make([]byte, 20), crypto.SHA1},
		{"rsa-digest-length", rs, d32, crypto.SHA384},
		{"rsa-without-hash", rs, d32, crypto.Hash(0)},
		{"pss-salt-too-long", rs, d32, &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: 300}},
		{"ed25519ph", ed, make([]byte, 64), crypto.SHA512},
		{"ed25519-context", ed, []byte("msg"), &ed25519.Options{Context: "ctx"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := tc.key.Sign(rand.Reader, tc.digest, tc.opts)
			if !errors.Is(err, ErrUnsupportedOptions) {
				t.Fatalf("Sign: %v, want ErrUnsupportedOptions", err)
			}
		})
	}
}

// TestConcurrentSign signs from many goroutines at once on a small session
// pool, with the session copy (checking the token object on every Sign, so
// that the check races with signing) and with the token object; run it
// with -race.
func TestConcurrentSign(t *testing.T) {
	t.Parallel()
	if isolate(t) {
		return
	}
	const goroutines, perGoroutine, sessions = 16, 50, 3
	checkEverySign := time.Duration(0)
	for _, tc := range []struct {
		name    string
		noCopy  bool
		checked bool // Signs checked the token object
	}{
		{name: "session-copy", checked: true},
		{name: "token-object", noCopy: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok := takeToken(t)
			cfg := tok.config("concurrent")
			cfg.MaxSessions = sessions
			cfg.DisableSessionCopy = tc.noCopy
			cfg.hooks = &hooks{tokenCheck: &checkEverySign}
			k := generateKey(t, cfg, ECDSAP256)
			if k.SignsWithSessionCopy() == tc.noCopy {
				t.Fatalf("SignsWithSessionCopy() = %v with DisableSessionCopy %v", k.SignsWithSessionCopy(), tc.noCopy)
			}
			errs := make(chan error, goroutines)
			for g := range goroutines {
				go func() {
					for i := range perGoroutine {
						digest := make([]byte, 32)
						copy(digest, fmt.Sprintf("g%d-%d", g, i))
						sig, err := k.Sign(rand.Reader, digest, crypto.SHA256)
						if err == nil && !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), digest, sig) {
							err = fmt.Errorf("goroutine %d signature %d does not verify", g, i)
						}
						if err != nil {
							errs <- err
							return
						}
					}
					errs <- nil
				}()
			}
			for range goroutines {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			k.mu.Lock()
			stats := k.stats
			k.mu.Unlock()
			if stats.maxLive > sessions || stats.maxLive == 0 {
				t.Errorf("signing sessions open at once peaked at %d, want 1..%d", stats.maxLive, sessions)
			}
			if stats.recoveries != 0 {
				t.Errorf("%d recoveries during a quiet run", stats.recoveries)
			}
			if got := k.tokenChecks.Load(); tc.checked != (got > 0) {
				t.Errorf("%d token object checks during %d signatures", got, goroutines*perGoroutine)
			}
		})
	}
}

// TestSignAfterClose checks ErrClosed and that Close is idempotent.
func TestSignAfterClose(t *testing.T) {
	t.Parallel()
	if isolate(t) {
		return
	}
	tok := takeToken(t)
	k, err := GenerateKey(tok.config("closed"), ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := k.Sign(rand.Reader, make([]byte, 32), crypto.SHA256); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sign after Close: %v, want ErrClosed", err)
	}
}
