//go:build cgo

package pkcs11

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	p11 "github.com/miekg/pkcs11"
)

// tokenRescanAfter bounds how often a lookup that misses its token
// re-initialises the library to look again. Measured on SoftHSM 2.6.1: a
// token created by another process stays invisible until C_Finalize and
// C_Initialize (C_GetSlotList does not refresh the list); a token that
// another process is writing while C_Initialize runs is missed too (about
// one initialisation in twenty during pkcs11-tool key generation), and
// C_GetTokenInfo on it may answer CKR_GENERAL_ERROR meanwhile. Every
// re-initialisation costs the other Keys on the library one failed call
// and a recovery, so a misconfigured issuer retried in a loop must not
// cause one more often than this.
const tokenRescanAfter = 30 * time.Second

// registry is the table of PKCS#11 libraries this process has loaded. It is
// the package's one mutable package variable, and PKCS#11 forces it: a
// library accepts one C_Initialize per process (a second answers
// CKR_CRYPTOKI_ALREADY_INITIALIZED) and its login state is shared by every
// session of the process, so every caller that uses a library, whoever
// created it, must share one context and one view of who is logged in.
var registry = moduleRegistry{
	modules: make(map[string]*module),
	loaded:  make(map[string]*p11.Ctx),
}

type moduleRegistry struct {
	mu      sync.Mutex
	modules map[string]*module  // initialised libraries, by resolved path
	loaded  map[string]*p11.Ctx // every library ever loaded, by resolved path
}

// module is one initialised PKCS#11 library, shared by reference count.
type module struct {
	path string
	ctx  *p11.Ctx
	refs int // guarded by registry.mu

	// mu orders every call into ctx (readers) against C_Finalize and
	// C_Initialize (the writer): PKCS#11 leaves C_Finalize undefined while
	// other calls are running, and every session and object handle dies
	// with it.
	mu sync.RWMutex
	// gen counts initialisations; handles obtained under an older gen are
	// dead. Written with mu held for writing.
	gen atomic.Uint64
	// initErr is set, with mu held for writing, while the library is
	// finalized but failed to initialise again.
	initErr error
	initAt  time.Time // guarded by mu

	loginMu sync.Mutex
	logins  map[string]*loginRecord // guarded by loginMu; by token identity
	pinMAC  []byte                  // key of the PIN fingerprints in logins
}

// loginRecord remembers which PIN logged this process in to a token, as a
// keyed fingerprint, for as long as some caller relies on that login.
type loginRecord struct {
	fingerprint []byte
	refs        int
}

// acquire returns the shared context of the library at path, loading and
// initialising it on first use. Every successful acquire needs one release.
func (r *moduleRegistry) acquire(path string) (*module, error) {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrModule, err)
	}
	if fi, err := os.Stat(resolved); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrModule, path)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.modules[resolved]; m != nil {
		m.refs++
		return m, nil
	}
	ctx := r.loaded[resolved]
	if ctx == nil {
		if ctx = p11.New(resolved); ctx == nil {
			return nil, fmt.Errorf("%w: cannot load %s as a PKCS#11 library (dlopen failed or no C_GetFunctionList)", ErrModule, path)
		}
		r.loaded[resolved] = ctx
	}
	if err := ctx.Initialize(); err != nil {
		if isCode(err, p11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
			return nil, fmt.Errorf("%w: %s was initialised by other code in this process: %w", ErrModule, path, err)
		}
		return nil, fmt.Errorf("%w: initialise %s: %w", ErrModule, path, err)
	}
	pinMAC := make([]byte, 32)
	if _, err := rand.Read(pinMAC); err != nil {
		_ = ctx.Finalize()
		return nil, fmt.Errorf("%w: %w", ErrModule, err)
	}
	m := &module{
		path:   resolved,
		ctx:    ctx,
		refs:   1,
		initAt: time.Now(),
		logins: make(map[string]*loginRecord),
		pinMAC: pinMAC,
	}
	m.gen.Store(1)
	r.modules[resolved] = m
	return m, nil
}

// release drops one reference; the last one finalizes the library. The
// library stays mapped (and is initialised again by the next acquire):
// unloading gains nothing for a long-running controller and would run the
// library's teardown code in a case few libraries are tested for.
func (r *moduleRegistry) release(m *module) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	m.refs--
	if m.refs > 0 {
		return nil
	}
	delete(r.modules, m.path)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen.Add(1)
	m.initErr = fmt.Errorf("%w: %s was finalized", ErrModule, m.path)
	if err := m.ctx.Finalize(); err != nil && !isCode(err, p11.CKR_CRYPTOKI_NOT_INITIALIZED) {
		return fmt.Errorf("pkcs11: finalize %s: %w", m.path, err)
	}
	return nil
}

// refCount reports the references to the library at path, for tests.
func (r *moduleRegistry) refCount(path string) int {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.modules[resolved]; m != nil {
		return m.refs
	}
	return 0
}

// read runs fn with the library initialised and guaranteed to stay so until
// fn returns; gen is the generation the handles fn obtains belong to. fn
// must not call read again: a waiting re-initialisation would deadlock it.
func (m *module) read(fn func(ctx *p11.Ctx, gen uint64) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.initErr != nil {
		return m.initErr
	}
	return fn(m.ctx, m.gen.Load())
}

// reinit finalizes and initialises the library again, unless that already
// happened since generation seen (then the caller only needs to find its
// handles again). Only one goroutine re-initialises at a time; every
// PKCS#11 call in flight finishes first.
func (m *module) reinit(seen uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen.Load() != seen && m.initErr == nil {
		return nil
	}
	return m.reinitLocked()
}

// rescan re-initialises the library so that it sees tokens created since
// it was initialised, unless it was initialised less than after ago. It
// reports whether a new lookup can see anything the one made under
// generation seen could not.
func (m *module) rescan(seen uint64, after time.Duration) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen.Load() != seen {
		return m.initErr == nil
	}
	if time.Since(m.initAt) < after {
		return false
	}
	return m.reinitLocked() == nil
}

func (m *module) reinitLocked() error {
	// The library may already be finalized (CKR_CRYPTOKI_NOT_INITIALIZED)
	// or broken; either way the aim is a fresh C_Initialize, so a failing
	// C_Finalize is not a reason to stop.
	_ = m.ctx.Finalize()
	m.gen.Add(1)
	m.initAt = time.Now()
	if err := m.ctx.Initialize(); err != nil {
		m.initErr = fmt.Errorf("%w: initialise %s again: %w", ErrModule, m.path, err)
		return m.initErr
	}
	m.initErr = nil
	return nil
}

// login logs the process in to a token through session sh. token is the
// token's identity (tokenRef.id). It returns a release func to call once
// the caller no longer relies on the login.
//
// A PIN that differs from the one this process logged in with on the same
// token is refused without calling C_Login: once logged in, PKCS#11 answers
// CKR_USER_ALREADY_LOGGED_IN to any PIN, so a wrong PIN would otherwise be
// accepted whenever another Key holds the login. The check and C_Login run
// under one lock so two Opens with different PINs cannot both pass it.
func (m *module) login(ctx *p11.Ctx, sh p11.SessionHandle, token string, cfg *Config) (func(), error) {
	mac := hmac.New(sha256.New, m.pinMAC)
	mac.Write([]byte(cfg.PIN))
	fingerprint := mac.Sum(nil)

	m.loginMu.Lock()
	defer m.loginMu.Unlock()
	rec := m.logins[token]
	if rec != nil && !hmac.Equal(rec.fingerprint, fingerprint) {
		return nil, fmt.Errorf("%w: this process is logged in to the token with a different PIN", ErrPINIncorrect)
	}
	err := ctx.Login(sh, p11.CKU_USER, cfg.PIN)
	cfg.observeLogin(err)
	// CKR_USER_ALREADY_LOGGED_IN is the normal answer for every Key after
	// the first on a token: login belongs to the process, not the session.
	if err != nil && !isCode(err, p11.CKR_USER_ALREADY_LOGGED_IN) {
		if isPINError(err) {
			return nil, fmt.Errorf("%w: %w", ErrPINIncorrect, err)
		}
		return nil, fmt.Errorf("login: %w", err)
	}
	if rec == nil {
		rec = &loginRecord{fingerprint: fingerprint}
		m.logins[token] = rec
	}
	rec.refs++
	var once sync.Once
	return func() {
		once.Do(func() {
			m.loginMu.Lock()
			defer m.loginMu.Unlock()
			rec.refs--
			if rec.refs == 0 && m.logins[token] == rec {
				delete(m.logins, token)
			}
		})
	}, nil
}

// observeLogin reports the result of one C_Login to the Config's observers.
func (c *Config) observeLogin(err error) {
	if h := c.hooks; h != nil && h.login != nil {
		h.login(err)
	}
	if c.OnLogin == nil {
		return
	}
	switch {
	case err == nil || isCode(err, p11.CKR_USER_ALREADY_LOGGED_IN):
		c.OnLogin(LoginOK)
	case isPINError(err):
		c.OnLogin(LoginPINIncorrect)
	default:
		c.OnLogin(LoginFailed)
	}
}

// isCode reports whether err carries the PKCS#11 return value code.
func isCode(err error, code uint) bool {
	var e p11.Error
	return errors.As(err, &e) && uint(e) == code
}

// isPINError reports the return values that mean the PIN itself was
// refused. None of them is ever retried: HSMs count failures and lock.
func isPINError(err error) bool {
	var e p11.Error
	if !errors.As(err, &e) {
		return false
	}
	switch uint(e) {
	case p11.CKR_PIN_INCORRECT, p11.CKR_PIN_INVALID, p11.CKR_PIN_LEN_RANGE, p11.CKR_PIN_EXPIRED, p11.CKR_PIN_LOCKED:
		return true
	}
	return false
}

// needsRecovery reports the failures after which the Key's handles cannot
// be trusted and only re-initialising the library, logging in and finding
// the key again can help: lost sessions or handles (a restarted or
// re-initialised token), a device fault, a library that was finalized.
func needsRecovery(err error) bool {
	if errors.Is(err, errStale) {
		return true
	}
	var e p11.Error
	if !errors.As(err, &e) {
		return false
	}
	switch uint(e) {
	case p11.CKR_SESSION_HANDLE_INVALID, p11.CKR_SESSION_CLOSED,
		p11.CKR_OBJECT_HANDLE_INVALID, p11.CKR_KEY_HANDLE_INVALID,
		p11.CKR_DEVICE_ERROR, p11.CKR_DEVICE_REMOVED, p11.CKR_TOKEN_NOT_PRESENT,
		p11.CKR_GENERAL_ERROR, p11.CKR_CRYPTOKI_NOT_INITIALIZED,
		// Only a Key's own login session keeps the login, and a Key never
		// logs out, so losing the login means the token was reset.
		p11.CKR_USER_NOT_LOGGED_IN:
		return true
	}
	return false
}

// errStale marks handles from a library generation that no longer exists.
var errStale = errors.New("handles belong to a library context that was re-initialised")
