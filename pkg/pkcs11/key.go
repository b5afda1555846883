//go:build cgo

package pkcs11

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	p11 "github.com/miekg/pkcs11"
)

// Backoff between failed recoveries of one Key: doubling from minBackoff to
// maxBackoff, each wait drawn from its upper half so that Keys that failed
// together do not retry together.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// tokenCheckInterval bounds how long a Key signing with a session copy can
// go on after its token object disappeared. Signing with the copy skips
// what used to notice that: SoftHSM2 keeps session objects in the memory
// of this process, so a copy still signs after the token was deleted or
// re-initialised by another process (measured on SoftHSM 2.6.1). A check
// is one C_GetAttributeValue on the token object, about as costly as the
// file checks one C_SignInit on it makes; one per interval is noise.
const tokenCheckInterval = 100 * time.Millisecond

// Key is a private key on a PKCS#11 token, usable as a crypto.Signer: the
// CA signer hands it to crypto/x509. It is safe for concurrent use; Sign
// calls run in parallel on up to Config.MaxSessions sessions.
//
// A Key recovers by itself when its sessions or handles stop working (see
// Sign); it stays usable until Close, except after the token refused its
// PIN during a recovery, after which every Sign fails with ErrPINIncorrect.
type Key struct {
	cfg  Config
	mod  *module
	pub  crypto.PublicKey // the key every recovery must find again
	id   []byte           // CKA_ID found at Open
	sem  chan struct{}    // one slot per signing session
	hook *hooks

	inflight  sync.WaitGroup // Sign calls Close waits for
	recoverMu sync.Mutex     // one recovery at a time

	mu       sync.Mutex
	closed   bool
	st       *keyState // nil after a failed recovery
	idle     []pooledSession
	stopped  error // set once the PIN was refused: no more logins
	failures int   // consecutive failed recoveries
	retryAt  time.Time
	lastErr  error
	lastGen  uint64 // library generation of the last failed recovery
	stats    keyStats

	copyRefusedLogged atomic.Bool  // the token refused a session copy; logged
	tokenChecks       atomic.Int64 // token object checks made, for tests
}

// keyState is what a Key found on the token under one library generation.
type keyState struct {
	gen   uint64
	slot  uint
	login p11.SessionHandle // holds the login; never logged out
	priv  p11.ObjectHandle  // the private key object on the token
	// sign is the object Sign uses: a session copy of priv made on the
	// login session (copied), or priv itself.
	sign   p11.ObjectHandle
	copied bool
	// checkAt is when the next Sign checks that priv still exists (Unix
	// nanoseconds), checkEvery the interval; used only with a session copy.
	checkAt    atomic.Int64
	checkEvery time.Duration
	release    func() // drops the Key's claim on the token's login record
}

// checkToken makes sure, at most once per tokenCheckInterval, that the
// token object behind a session copy still exists, so that a token deleted
// or re-initialised under the Key leads to a recovery as it does without
// the copy. One goroutine checks; the others sign meanwhile.
func (k *Key) checkToken(ctx *p11.Ctx, sh p11.SessionHandle, st *keyState) error {
	if !st.copied {
		return nil
	}
	now := time.Now()
	due := st.checkAt.Load()
	if now.UnixNano() < due || !st.checkAt.CompareAndSwap(due, now.Add(st.checkEvery).UnixNano()) {
		return nil
	}
	k.tokenChecks.Add(1)
	if _, err := ctx.GetAttributeValue(sh, st.priv, []*p11.Attribute{p11.NewAttribute(p11.CKA_CLASS, nil)}); err != nil {
		return fmt.Errorf("check the token key behind the session copy: %w", err)
	}
	return nil
}

type pooledSession struct {
	h   p11.SessionHandle
	gen uint64
}

// keyStats counts what tests need to see.
type keyStats struct {
	recoveries int // successful recoveries
	live       int // signing sessions open
	maxLive    int // most signing sessions open at once
}

// Open finds the private key cfg selects and returns a Key for it. The CA
// signer calls it when an issuer's HSM key is first needed, and quillctl
// for ceremonies.
//
// Open logs in once: a refused PIN fails with ErrPINIncorrect and is not
// tried again. It proves the key before returning it: the public key must
// equal cfg.Expected when set, and a test signature must verify with it
// (ErrKeyMismatch otherwise). A token that is not found may have been
// created after the library was loaded; Open then re-initialises the
// library (at most every 30 seconds) and looks once more.
func Open(cfg Config) (*Key, error) {
	if err := cfg.validate(true); err != nil {
		return nil, fmt.Errorf("pkcs11: open %s: %w", cfg, err)
	}
	cfg.KeyID = bytes.Clone(cfg.KeyID)
	m, err := registry.acquire(cfg.ModulePath)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: open %s: %w", cfg, err)
	}
	k := &Key{cfg: cfg, mod: m, sem: make(chan struct{}, cfg.maxSessions()), hook: cfg.hooks}
	st, found, gen, err := k.establish()
	if errors.Is(err, ErrTokenNotFound) && m.rescan(gen, cfg.rescanAfter()) {
		st, found, _, err = k.establish()
	}
	if err != nil {
		_ = registry.release(m)
		return nil, fmt.Errorf("pkcs11: open %s: %w", cfg, err)
	}
	k.st, k.pub, k.id = st, found.pub, found.id
	return k, nil
}

func (c Config) tokenCheckInterval() time.Duration {
	if c.hooks != nil && c.hooks.tokenCheck != nil {
		return *c.hooks.tokenCheck
	}
	return tokenCheckInterval
}

func (c Config) rescanAfter() time.Duration {
	if c.hooks != nil && c.hooks.rescanAfter != nil {
		return *c.hooks.rescanAfter
	}
	return tokenRescanAfter
}

// Public returns the key's public half: Config.Expected when it was set,
// the key found on the token otherwise. It never changes for a Key.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// KeyID returns the CKA_ID of the key (the one GenerateKey chose when the
// Config had none), for ceremonies to record. It may be empty for keys
// created by other tools.
func (k *Key) KeyID() []byte { return bytes.Clone(k.id) }

// Sign signs digest as crypto.Signer specifies; crypto/x509 calls it when
// the issuance package signs certificates and CRLs with an HSM-backed CA.
// rand is ignored: the token has its own.
//
//   - ECDSA (P-256, P-384, P-521): digest is the hash named by opts; the
//     signature is ASN.1 DER.
//   - RSA: PKCS#1 v1.5, or PSS when opts is *rsa.PSSOptions, with
//     SHA-256, SHA-384 or SHA-512. PSS uses a salt as long as the hash for
//     PSSSaltLengthEqualsHash and PSSSaltLengthAuto.
//   - Ed25519: digest is the whole message and opts.HashFunc() must be 0.
//
// Other options fail with ErrUnsupportedOptions before the token is used.
//
// When the token answers with a lost session or handle, a device error or
// an uninitialised library, or the token key behind the session copy is
// gone (checked at least every 100 ms while signing), Sign recovers: the
// library is finalized and initialised again (once, however many Keys
// share it; concurrent Sign calls wait), the Key logs in, finds its key,
// refuses it with ErrKeyMismatch unless it is the key found at Open,
// copies it again, and signs once more. After a failed recovery, Sign
// fails at once with ErrUnavailable until the backoff has passed, then
// tries again. A PIN refused during recovery (ErrPINIncorrect) stops the
// Key for good: only a new Open logs in again.
func (k *Key) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	op, err := newOperation(k.pub, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: sign with %s: %w", k.cfg.keyName(), err)
	}
	k.mu.Lock()
	switch {
	case k.closed:
		k.mu.Unlock()
		return nil, fmt.Errorf("pkcs11: sign with %s: %w", k.cfg.keyName(), ErrClosed)
	case k.stopped != nil:
		err := k.stopped
		k.mu.Unlock()
		return nil, fmt.Errorf("pkcs11: sign with %s: %w", k.cfg.keyName(), err)
	}
	k.inflight.Add(1)
	k.mu.Unlock()
	defer k.inflight.Done()

	k.sem <- struct{}{}
	defer func() { <-k.sem }()
	raw, err := k.signRecovering(op)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: sign with %s: %w", k.cfg.keyName(), err)
	}
	return op.encode(raw)
}

// signRecovering signs, recovering and retrying once when the failure is
// one that recovery can cure.
func (k *Key) signRecovering(op operation) ([]byte, error) {
	st, err := k.current()
	if err != nil {
		return nil, err
	}
	sig, err := k.signOnce(st, op)
	if err == nil || !needsRecovery(err) {
		return sig, err
	}
	if st, err = k.recover(st, err); err != nil {
		return nil, err
	}
	sig, err = k.signOnce(st, op)
	if err != nil && needsRecovery(err) {
		// Handles that fail right after a successful recovery count as a
		// failed recovery, so that the next Sign backs off instead of
		// re-initialising the shared library again at once.
		return nil, k.recoveryFailed(st.gen, err, err)
	}
	return sig, err
}

// current returns the Key's state, recovering first when the state was
// lost or belongs to an older library generation.
func (k *Key) current() (*keyState, error) {
	k.mu.Lock()
	st := k.st
	k.mu.Unlock()
	if st != nil && st.gen == k.mod.gen.Load() {
		return st, nil
	}
	return k.recover(st, errStale)
}

// signOnce runs one signature on a pool session. A session that returned
// an error is closed, never pooled again.
func (k *Key) signOnce(st *keyState, op operation) ([]byte, error) {
	var sig []byte
	err := k.mod.read(func(ctx *p11.Ctx, gen uint64) error {
		if st.gen != gen {
			return errStale
		}
		sh, err := k.takeSession(ctx, st)
		if err != nil {
			return err
		}
		if err = k.checkToken(ctx, sh, st); err == nil {
			if err = ctx.SignInit(sh, op.mech, st.sign); err == nil {
				sig, err = ctx.Sign(sh, op.data)
			}
		}
		if err != nil {
			k.closeSession(ctx, sh)
			return err
		}
		k.putSession(ctx, sh, gen)
		return nil
	})
	if errors.Is(err, ErrModule) {
		// The library is finalized after a failed re-initialisation;
		// recovery retries the initialisation.
		return nil, fmt.Errorf("%w: %w", errStale, err)
	}
	return sig, err
}

// takeSession returns an idle session of the current generation or opens
// a new one. Sessions of older generations died with their context.
func (k *Key) takeSession(ctx *p11.Ctx, st *keyState) (p11.SessionHandle, error) {
	k.mu.Lock()
	for len(k.idle) > 0 {
		p := k.idle[len(k.idle)-1]
		k.idle = k.idle[:len(k.idle)-1]
		if p.gen == st.gen {
			k.mu.Unlock()
			return p.h, nil
		}
		k.stats.live--
	}
	k.mu.Unlock()
	sh, err := ctx.OpenSession(st.slot, p11.CKF_SERIAL_SESSION)
	if err != nil {
		return 0, fmt.Errorf("open session: %w", err)
	}
	k.mu.Lock()
	k.stats.live++
	k.stats.maxLive = max(k.stats.maxLive, k.stats.live)
	k.mu.Unlock()
	return sh, nil
}

func (k *Key) putSession(ctx *p11.Ctx, sh p11.SessionHandle, gen uint64) {
	k.mu.Lock()
	if !k.closed {
		k.idle = append(k.idle, pooledSession{h: sh, gen: gen})
		k.mu.Unlock()
		return
	}
	k.mu.Unlock()
	k.closeSession(ctx, sh)
}

// closeSession closes a signing session. Never C_Logout: on a pool
// session it would log out every session of the process on the token.
func (k *Key) closeSession(ctx *p11.Ctx, sh p11.SessionHandle) {
	_ = ctx.CloseSession(sh) // the session is abandoned either way
	k.mu.Lock()
	k.stats.live--
	k.mu.Unlock()
}

// recover replaces the Key's state after failed (the state a Sign used;
// nil when a failed recovery left none) stopped working because of cause.
// Only one goroutine recovers a Key at a time; the others wait and use its
// result, or get ErrUnavailable when it failed.
func (k *Key) recover(failed *keyState, cause error) (*keyState, error) {
	k.recoverMu.Lock()
	defer k.recoverMu.Unlock()

	k.mu.Lock()
	if k.stopped != nil {
		err := k.stopped
		k.mu.Unlock()
		return nil, err
	}
	if k.st != nil && k.st != failed && k.st.gen == k.mod.gen.Load() {
		st := k.st // another goroutine recovered while this one waited
		k.mu.Unlock()
		return st, nil
	}
	if k.st == nil && time.Now().Before(k.retryAt) {
		err := fmt.Errorf("%w for another %s: %w", ErrUnavailable, time.Until(k.retryAt).Round(time.Millisecond), k.lastErr)
		k.mu.Unlock()
		return nil, err
	}
	seen := k.lastGen
	if k.st != nil {
		seen = k.st.gen
	}
	old, idle := k.st, k.idle
	k.st, k.idle = nil, nil
	k.stats.live -= len(idle)
	k.mu.Unlock()

	k.discard(old, idle)
	if err := k.mod.reinit(seen); err != nil {
		return nil, k.recoveryFailed(k.mod.gen.Load(), cause, err)
	}
	st, _, gen, err := k.establish() // establish compares the key with k.pub
	if err != nil {
		return nil, k.recoveryFailed(gen, cause, err)
	}

	k.mu.Lock()
	k.st = st
	k.failures, k.lastErr, k.retryAt = 0, nil, time.Time{}
	k.stats.recoveries++
	k.mu.Unlock()
	return st, nil
}

// recoveryFailed records a failed recovery and schedules the next one. A
// refused PIN stops the Key: trying it again could lock the token.
func (k *Key) recoveryFailed(gen uint64, cause, err error) error {
	if cause == err {
		err = fmt.Errorf("failed again right after recovering: %w", err)
	} else {
		err = fmt.Errorf("recovering from %v: %w", cause, err)
	}
	k.mu.Lock()
	var drop *keyState
	var idle []pooledSession
	if k.st != nil && k.st.gen == gen {
		// A fresh state that failed at once: drop it so that the next
		// Sign recovers (after the backoff) instead of using it.
		drop, idle = k.st, k.idle
		k.st, k.idle = nil, nil
		k.stats.live -= len(idle)
	}
	k.failures++
	k.lastGen = gen
	k.lastErr = err
	d := min(minBackoff<<min(k.failures-1, 20), maxBackoff)
	k.retryAt = time.Now().Add(d/2 + mathrand.N(d/2+1))
	if errors.Is(err, ErrPINIncorrect) {
		k.stopped = fmt.Errorf("%w; this key will not log in again, open it again with the right PIN", err)
		err = k.stopped
	}
	k.mu.Unlock()
	// After unlocking: discard takes the library's read lock, which must
	// never be awaited while holding k.mu (signers take k.mu under it).
	k.discard(drop, idle)
	return err
}

// discard closes what a state and its idle sessions hold, when they still
// belong to the current library generation (otherwise they died with the
// old context), and drops the state's claim on the login record.
func (k *Key) discard(st *keyState, idle []pooledSession) {
	if st == nil && len(idle) == 0 {
		return
	}
	_ = k.mod.read(func(ctx *p11.Ctx, gen uint64) error {
		for _, p := range idle {
			if p.gen == gen {
				_ = ctx.CloseSession(p.h)
			}
		}
		if st != nil && st.gen == gen {
			if st.copied {
				// Closing the login session would destroy the copy too;
				// destroying it first does not rely on the library for
				// that.
				_ = ctx.DestroyObject(st.login, st.sign)
			}
			_ = ctx.CloseSession(st.login)
		}
		return nil
	})
	if st != nil && st.release != nil {
		st.release()
	}
}

// establish finds the token, opens a session and logs in on it, finds the
// key, checks it is the expected one, proves it with a test signature and
// makes the session copy Sign uses (unless disabled or refused), all under
// one library generation (returned, also on failure). Nothing it opened
// stays open when it fails.
func (k *Key) establish() (*keyState, foundKey, uint64, error) {
	var (
		st    *keyState
		found foundKey
		used  uint64
	)
	err := k.mod.read(func(ctx *p11.Ctx, gen uint64) (err error) {
		used = gen
		tok, err := findToken(ctx, k.cfg)
		if err != nil {
			return err
		}
		sh, err := ctx.OpenSession(tok.slot, p11.CKF_SERIAL_SESSION)
		if err != nil {
			return fmt.Errorf("open session: %w", err)
		}
		release, err := k.mod.login(ctx, sh, tok.id, &k.cfg)
		if err != nil {
			_ = ctx.CloseSession(sh)
			return err
		}
		defer func() {
			if err != nil {
				_ = ctx.CloseSession(sh)
				release()
			}
		}()
		if found, err = findKey(ctx, sh, k.cfg); err != nil {
			return err
		}
		want := k.pub // set after Open: recoveries must find the same key
		if want == nil {
			want = k.cfg.Expected
		}
		switch {
		case found.pub == nil && want == nil:
			return fmt.Errorf("%w: %w", ErrKeyNotFound, errNoPublic)
		case found.pub == nil:
			if !publicMatchesType(want, found) {
				return fmt.Errorf("%w: the token key is not of the expected key's type", ErrKeyMismatch)
			}
			found.pub = want
		case want != nil && !samePublic(found.pub, want):
			return fmt.Errorf("%w: the public key of %s on %s is a different key", ErrKeyMismatch, k.cfg.keyName(), k.cfg.tokenName())
		}
		if err = selfTest(ctx, sh, found); err != nil {
			return err
		}
		st = &keyState{gen: gen, slot: tok.slot, login: sh, priv: found.handle, sign: found.handle, release: release}
		if !k.cfg.DisableSessionCopy {
			k.copyToSession(ctx, st, found)
		}
		return nil
	})
	return st, found, used, err
}

// copyTemplate makes a session object of a private key; every other
// attribute, CKA_SENSITIVE and CKA_EXTRACTABLE included, is the original's
// (SoftHSM 2.6.1 answers CKR_ATTRIBUTE_READ_ONLY to restating them).
var copyTemplate = []*p11.Attribute{p11.NewAttribute(p11.CKA_TOKEN, false)}

// copyToSession copies the token key found into a session object on the
// login session, checks that the copy is a session object at least as
// protected as the original, proves it with a test signature and makes st
// sign with it. Session objects are visible to every session of the
// process and live until the session that made them closes, which for the
// login session is when st is discarded. When the token refuses the copy
// (CKR_ACTION_PROHIBITED for a key with CKA_COPYABLE false,
// CKR_FUNCTION_NOT_SUPPORTED, or anything else) or the copy fails a check,
// st keeps signing with the token object, and the Key says so once in its
// log.
func (k *Key) copyToSession(ctx *p11.Ctx, st *keyState, found foundKey) {
	h, err := ctx.CopyObject(st.login, found.handle, copyTemplate)
	if err == nil {
		dup := found
		dup.handle = h
		if err = checkCopy(ctx, st.login, found.handle, h); err == nil {
			err = selfTest(ctx, st.login, dup)
		}
		if err != nil {
			_ = ctx.DestroyObject(st.login, h)
		}
	}
	if err != nil {
		if !k.copyRefusedLogged.Swap(true) {
			k.logger().Info("signing with the token key object itself, which is slower: no session copy of it",
				"key", k.cfg.keyName(), "token", k.cfg.tokenName(), "error", err.Error())
		}
		return
	}
	st.sign, st.copied, st.checkEvery = h, true, k.cfg.tokenCheckInterval()
	st.checkAt.Store(time.Now().Add(st.checkEvery).UnixNano())
}

// checkCopy makes sure that dup, a copy of orig, is a session object and
// is private, sensitive and unextractable wherever orig is.
func checkCopy(ctx *p11.Ctx, sh p11.SessionHandle, orig, dup p11.ObjectHandle) error {
	types := []uint{p11.CKA_TOKEN, p11.CKA_PRIVATE, p11.CKA_SENSITIVE, p11.CKA_EXTRACTABLE}
	read := func(obj p11.ObjectHandle) (map[uint]bool, error) {
		tmpl := make([]*p11.Attribute, len(types))
		for i, t := range types {
			tmpl[i] = p11.NewAttribute(t, nil)
		}
		attrs, err := ctx.GetAttributeValue(sh, obj, tmpl)
		if err != nil {
			return nil, fmt.Errorf("read the key's protection attributes: %w", err)
		}
		v := make(map[uint]bool, len(attrs))
		for _, a := range attrs {
			v[a.Type] = len(a.Value) == 1 && a.Value[0] != 0
		}
		return v, nil
	}
	o, err := read(orig)
	if err != nil {
		return err
	}
	d, err := read(dup)
	if err != nil {
		return err
	}
	switch {
	case d[p11.CKA_TOKEN]:
		return errCopyOnToken
	case o[p11.CKA_PRIVATE] && !d[p11.CKA_PRIVATE],
		o[p11.CKA_SENSITIVE] && !d[p11.CKA_SENSITIVE],
		!o[p11.CKA_EXTRACTABLE] && d[p11.CKA_EXTRACTABLE]:
		return errCopyWeaker
	}
	return nil
}

var (
	errCopyOnToken = errors.New("the session copy of the key is a token object")
	errCopyWeaker  = errors.New("the session copy of the key is less protected than the original")
)

func (k *Key) logger() logr.Logger {
	if k.cfg.Log.GetSink() == nil {
		return logr.FromSlogHandler(slog.Default().Handler()).WithName("pkcs11")
	}
	return k.cfg.Log
}

// SignsWithSessionCopy reports whether Sign currently uses a session copy
// of the token key (see Config.DisableSessionCopy): false when the copy is
// disabled, when the token refused it, and while the Key has no working
// state after a failed recovery. Benchmarks and diagnostics call it.
func (k *Key) SignsWithSessionCopy() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.st != nil && k.st.copied
}

// selfTest signs a random digest and verifies it with the public key. It
// catches what comparing public keys cannot: a private key object paired
// (by label or ID) with a public key that is not its own.
func selfTest(ctx *p11.Ctx, sh p11.SessionHandle, k foundKey) error {
	msg := make([]byte, 32)
	if _, err := rand.Read(msg); err != nil {
		return err
	}
	digest := sha256.Sum256(msg)
	var op operation
	var err error
	if _, ok := k.pub.(ed25519.PublicKey); ok {
		op, err = newOperation(k.pub, msg, crypto.Hash(0))
	} else {
		op, err = newOperation(k.pub, digest[:], crypto.SHA256)
	}
	if err != nil {
		return err
	}
	if err := ctx.SignInit(sh, op.mech, k.handle); err != nil {
		return fmt.Errorf("test signature: %w", err)
	}
	raw, err := ctx.Sign(sh, op.data)
	if err != nil {
		return fmt.Errorf("test signature: %w", err)
	}
	sig, err := op.encode(raw)
	if err != nil {
		return fmt.Errorf("%w: test signature: %w", ErrKeyMismatch, err)
	}
	ok := false
	switch pub := k.pub.(type) {
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(pub, digest[:], sig)
	case *rsa.PublicKey:
		ok = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) == nil
	case ed25519.PublicKey:
		ok = ed25519.Verify(pub, msg, sig)
	}
	if !ok {
		return fmt.Errorf("%w: the private key's test signature does not verify with the public key", ErrKeyMismatch)
	}
	return nil
}

// Close releases the Key: it waits for Sign calls in flight, closes its
// sessions (which ends the token login once no other Key holds one) and
// drops its reference to the library, the last of which finalizes it.
// Close is idempotent; Sign after Close fails with ErrClosed.
func (k *Key) Close() error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return nil
	}
	k.closed = true
	k.mu.Unlock()
	k.inflight.Wait()

	k.mu.Lock()
	st, idle := k.st, k.idle
	k.st, k.idle = nil, nil
	k.stats.live -= len(idle)
	k.mu.Unlock()
	k.discard(st, idle)
	return registry.release(k.mod)
}
