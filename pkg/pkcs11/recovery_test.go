//go:build cgo

package pkcs11

// The tests in this file re-initialise tokens or the library, or count its
// references. Each runs in a process of its own (isolate), where nothing
// but the test uses the library, so they run in parallel with the others.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	p11 "github.com/miekg/pkcs11"
)

// signOK signs a fresh digest and verifies it against want.
func signOK(t *testing.T, k *Key, want crypto.PublicKey) {
	t.Helper()
	digest := sha256.Sum256([]byte(t.Name() + time.Now().String()))
	sig, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	verifySignature(t, want, digest[:], sig, crypto.SHA256)
}

func signErr(k *Key) error {
	_, err := k.Sign(rand.Reader, make([]byte, 32), crypto.SHA256)
	return err
}

// signWhenAvailable signs once the Key's recovery backoff has passed.
func signWhenAvailable(t *testing.T, k *Key, want crypto.PublicKey) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := signErr(k)
		if err == nil {
			signOK(t, k, want)
			return
		}
		if !errors.Is(err, ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("Sign after the key was restored: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (k *Key) snapshot() (keyStats, time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stats, k.retryAt
}

// TestModuleRefcount checks that Keys on one library share one context and
// that the last Close finalizes it.
func TestModuleRefcount(t *testing.T) {
	t.Parallel()
	if isolate(t) {
		return
	}
	tok := takeToken(t)
	base := registry.refCount(softhsm.module)
	if base != 1 {
		t.Fatalf("%d references before the test, want TestMain's one", base)
	}
	a := generateKey(t, tok.config("a"), ECDSAP256)
	b := openKey(t, tok.config("a"))
	if a.mod != b.mod {
		t.Fatal("two Keys on one library got different contexts")
	}
	if n := registry.refCount(softhsm.module); n != base+2 {
		t.Fatalf("%d references with two Keys open, want %d", n, base+2)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if n := registry.refCount(softhsm.module); n != base+1 {
		t.Fatalf("%d references after closing one Key, want %d", n, base+1)
	}
	signOK(t, b, b.Public())

	// Drop TestMain's reference too: closing b must then finalize.
	if err := registry.release(softhsm.held); err != nil {
		t.Fatal(err)
	}
	old := b.mod
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := registry.refCount(softhsm.module); n != 0 {
		t.Fatalf("%d references after the last Close, want 0", n)
	}
	if err := old.read(func(*p11.Ctx, uint64) error { return nil }); !errors.Is(err, ErrModule) {
		t.Fatalf("library still usable after the last Close: %v", err)
	}
	// The library initialises again for the next user.
	held, err := registry.acquire(softhsm.module)
	if err != nil {
		t.Fatal(err)
	}
	softhsm.held = held
	if held == old {
		t.Fatal("a finalized context was reused")
	}
	signOK(t, openKey(t, tok.config("a")), a.Public())
}

// TestRecoveryAfterTokenReinit re-initialises a token under two open Keys,
// puts a different key under the same label and ID (both Keys must refuse
// it), then restores the original key (both must recover).
func TestRecoveryAfterTokenReinit(t *testing.T) {
	t.Parallel()
	if isolate(t) {
		return
	}
	tok := takeToken(t)
	ca, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id := []byte{0xca}
	tok.importKey(t, ca, "ca", id)

	withExpected := tok.config("ca")
	withExpected.Expected = ca.Public()
	a := openKey(t, withExpected)
	byID := tok.config("") // no Expected: compared with the key found at Open
	byID.KeyID = id
	b := openKey(t, byID)
	signOK(t, a, ca.Public())
	signOK(t, b, ca.Public())
	gen0 := a.mod.gen.Load()

	tok.reinitialise(t)
	tok.keypairgen(t, "EC:prime256v1", "ca", id)
	for name, k := range map[string]*Key{"with-expected": a, "by-id": b} {
		err := signErr(k)
		t.Logf("%s: first Sign after the token was re-initialised: %v", name, err)
		if !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("%s: Sign with a different key under the label: %v, want ErrKeyMismatch", name, err)
		}
		_, retryAt := k.snapshot()
		if wait := time.Until(retryAt); wait <= 0 || wait > minBackoff {
			t.Errorf("%s: next recovery in %v, want within (0, %v]", name, wait, minBackoff)
		}
		err = signErr(k)
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("%s: Sign during backoff: %v, want ErrUnavailable wrapping ErrKeyMismatch", name, err)
		}
	}
	if gen := a.mod.gen.Load(); gen != gen0+1 {
		t.Fatalf("library initialised %d times for two failing Keys, want once", gen-gen0)
	}

	tok.reinitialise(t)
	tok.importKey(t, ca, "ca", id)
	signWhenAvailable(t, a, ca.Public())
	signWhenAvailable(t, b, ca.Public())
	if gen := a.mod.gen.Load(); gen != gen0+2 {
		t.Fatalf("library initialised %d times in total, want 2", gen-gen0)
	}
	for name, k := range map[string]*Key{"with-expected": a, "by-id": b} {
		if !k.SignsWithSessionCopy() {
			t.Errorf("%s: recovered Key signs with the token object, want a new session copy", name)
		}
	}
}

// TestRecoveryRefusesChangedPIN re-initialises the token with a new PIN and
// the same key: the Key's recovery must try its PIN once, report
// ErrPINIncorrect, and never log in again.
func TestRecoveryRefusesChangedPIN(t *testing.T) {
	t.Parallel()
	if isolate(t) {
		return
	}
	tok := takeToken(t)
	ca, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tok.importKey(t, ca, "ca", []byte{1})
	var logins loginCounter
	cfg := tok.config("ca")
	cfg.Expected = ca.Public()
	cfg.hooks = logins.hooks()
	k := openKey(t, cfg)
	signOK(t, k, ca.Public())

	changed := tok
	changed.pin = "changed-" + tok.pin
	for _, args := range [][]string{
		{"--delete-token", "--token", tok.label},
		{"--init-token", "--free", "--label", tok.label, "--so-pin", testSOPIN, "--pin", changed.pin},
	} {
		if out, err := exec.Command("softhsm2-util", args...).CombinedOutput(); err != nil {
			t.Fatalf("softhsm2-util: %v\n%s", err, out)
		}
	}
	changed.importKey(t, ca, "ca", []byte{1})
	waitTokenCheck()

	if err := signErr(k); !errors.Is(err, ErrPINIncorrect) {
		t.Fatalf("Sign after the PIN changed: %v, want ErrPINIncorrect", err)
	} else if strings.Contains(err.Error(), tok.pin) {
		t.Fatalf("error contains the PIN: %v", err)
	}
	if n := logins.calls.Load(); n != 2 {
		t.Fatalf("%d C_Login calls, want 2 (Open and one recovery)", n)
	}
	time.Sleep(2 * minBackoff) // past any backoff: the Key must still not log in
	for range 3 {
		if err := signErr(k); !errors.Is(err, ErrPINIncorrect) {
			t.Fatalf("Sign: %v, want ErrPINIncorrect", err)
		}
	}
	if n := logins.calls.Load(); n != 2 {
		t.Fatalf("%d C_Login calls after the PIN was refused, want still 2", n)
	}
	cfg.PIN = changed.pin
	signOK(t, openKey(t, cfg), ca.Public())
}

// TestRecoveryUnderLoad breaks two busy Keys at once and checks that every
// signature still succeeds, that the library is re-initialised once, and
// that each Key recovers once however many goroutines hit the failure.
func TestRecoveryUnderLoad(t *testing.T) {
	t.Parallel()
	if isolate(t) {
		return
	}
	for _, tc := range []struct {
		name string
		// breakKeys makes the Keys' handles fail the way a device fault
		// would. first is a Key on the first token.
		breakKeys func(t *testing.T, first *Key)
	}{
		{"sessions-lost", func(t *testing.T, first *Key) {
			// Closing every session of one token makes that Key's next
			// calls fail with CKR_SESSION_HANDLE_INVALID; the other Key
			// only sees the re-initialisation.
			err := first.mod.read(func(ctx *p11.Ctx, _ uint64) error {
				first.mu.Lock()
				slot := first.st.slot
				first.mu.Unlock()
				return ctx.CloseAllSessions(slot)
			})
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"library-reset", func(t *testing.T, first *Key) {
			if err := first.mod.reinit(first.mod.gen.Load()); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys := []*Key{
				generateKey(t, takeToken(t).config("busy"), ECDSAP256),
				generateKey(t, takeToken(t).config("busy"), ECDSAP256),
			}
			gen0 := keys[0].mod.gen.Load()
			const perKey, rounds = 8, 40
			var wg, parked sync.WaitGroup
			errs := make(chan error, 2*perKey)
			broken := make(chan struct{})
			parked.Add(2 * perKey)
			for _, k := range keys {
				for g := range perKey {
					wg.Go(func() {
						for i := range rounds {
							// Every goroutine parks half-way, so the
							// break happens between calls (SoftHSM does
							// not guard C_CloseAllSessions against calls
							// in flight) and all of them meet the broken
							// handles at once.
							if i == rounds/2 {
								parked.Done()
								<-broken
							}
							digest := sha256.Sum256(fmt.Appendf(nil, "%d-%d", g, i))
							sig, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
							if err == nil && !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), digest[:], sig) {
								err = errors.New("signature does not verify")
							}
							if err != nil {
								errs <- err
								if i < rounds/2 {
									parked.Done()
								}
								return
							}
						}
					})
				}
			}
			parked.Wait()
			tc.breakKeys(t, keys[0])
			close(broken)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if gen := keys[0].mod.gen.Load(); gen != gen0+1 {
				t.Errorf("library initialised %d times, want once", gen-gen0)
			}
			for i, k := range keys {
				if stats, _ := k.snapshot(); stats.recoveries != 1 {
					t.Errorf("key %d recovered %d times, want once", i, stats.recoveries)
				}
			}
		})
	}
}

// TestOpenFindsTokenCreatedLater shows the SoftHSM behaviour behind
// tokenRescanAfter: a token created after the library was initialised
// stays invisible until the library is re-initialised, which Open does
// when the last initialisation is old enough, without breaking Keys
// already open.
func TestOpenFindsTokenCreatedLater(t *testing.T) {
	t.Parallel()
	if isolate(t) {
		return
	}
	busy := generateKey(t, takeToken(t).config("busy"), ECDSAP256)
	signOK(t, busy, busy.Public())

	late := testToken{label: "q-late", pin: "late-pin"}
	if out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", late.label,
		"--so-pin", testSOPIN, "--pin", late.pin).CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util: %v\n%s", err, out)
	}
	late.keypairgen(t, "EC:prime256v1", "k", []byte{1})

	cfg := late.config("k")
	cfg.hooks = neverRescan()
	if _, err := Open(cfg); !errors.Is(err, ErrTokenNotFound) {
		t.Fatalf("Open without re-initialising: %v, want ErrTokenNotFound (SoftHSM changed behaviour?)", err)
	}
	rescanNow := time.Duration(0)
	cfg.hooks = &hooks{rescanAfter: &rescanNow}
	k := openKey(t, cfg)
	signOK(t, k, k.Public())

	signOK(t, busy, busy.Public())
	if stats, _ := busy.snapshot(); stats.recoveries != 1 {
		t.Fatalf("open Key recovered %d times after the rescan, want once", stats.recoveries)
	}
}
