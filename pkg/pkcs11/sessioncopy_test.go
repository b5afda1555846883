//go:build cgo

package pkcs11

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	p11 "github.com/miekg/pkcs11"
)

// state returns the Key's current state, failing the test when it has none.
func (k *Key) state(t *testing.T) *keyState {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.st == nil {
		t.Fatal("the Key has no state")
	}
	return k.st
}

// objectAttributes reads boolean attributes of obj through k's login
// session; a missing value is reported as the error.
func (k *Key) objectAttributes(obj p11.ObjectHandle, types ...uint) (map[uint]bool, error) {
	k.mu.Lock()
	st := k.st
	k.mu.Unlock()
	v := map[uint]bool{}
	err := k.mod.read(func(ctx *p11.Ctx, _ uint64) error {
		var tmpl []*p11.Attribute
		for _, typ := range types {
			tmpl = append(tmpl, p11.NewAttribute(typ, nil))
		}
		attrs, err := ctx.GetAttributeValue(st.login, obj, tmpl)
		for _, a := range attrs {
			v[a.Type] = len(a.Value) == 1 && a.Value[0] != 0
		}
		return err
	})
	return v, err
}

// TestSessionCopy checks what a Key signs with: a session copy that is as
// protected as the token key, one per Key, invisible to key lookups, gone
// after Close; or the token key itself when the copy is disabled.
func TestSessionCopy(t *testing.T) {
	t.Parallel()
	if isolate(t) {
		return
	}
	tok := takeToken(t)
	a := generateKey(t, tok.config("ca"), ECDSAP256)
	if !a.SignsWithSessionCopy() {
		t.Fatal("SignsWithSessionCopy() = false for a key SoftHSM can copy")
	}
	st := a.state(t)
	if st.sign == st.priv {
		t.Fatal("the Key signs with the token object although it reports a session copy")
	}
	attrs, err := a.objectAttributes(st.sign, p11.CKA_TOKEN, p11.CKA_PRIVATE, p11.CKA_SENSITIVE, p11.CKA_EXTRACTABLE, p11.CKA_SIGN)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint]bool{p11.CKA_TOKEN: false, p11.CKA_PRIVATE: true, p11.CKA_SENSITIVE: true, p11.CKA_EXTRACTABLE: false, p11.CKA_SIGN: true}
	for typ, w := range want {
		if attrs[typ] != w {
			t.Errorf("attribute %#x of the copy = %v, want %v", typ, attrs[typ], w)
		}
	}
	if _, err := a.objectAttributes(st.sign, p11.CKA_VALUE); !isCode(err, p11.CKR_ATTRIBUTE_SENSITIVE) {
		t.Errorf("reading the copy's private value: %v, want CKR_ATTRIBUTE_SENSITIVE", err)
	}
	signAndVerify(t, a)

	// A second Key on the same key finds the token object once (not the
	// first Key's copy, which every session of the process sees) and
	// makes a copy of its own.
	b := openKey(t, tok.config("ca"))
	stB := b.state(t)
	if stB.priv != st.priv || stB.sign == st.sign || !b.SignsWithSessionCopy() {
		t.Fatalf("second Key: token object %d, copy %d; first Key: %d, %d", stB.priv, stB.sign, st.priv, st.sign)
	}
	signAndVerify(t, b)

	noCopy := tok.config("ca")
	noCopy.DisableSessionCopy = true
	c := openKey(t, noCopy)
	if stC := c.state(t); c.SignsWithSessionCopy() || stC.sign != stC.priv {
		t.Fatalf("with DisableSessionCopy: SignsWithSessionCopy() = %v, signs with %d, token object %d", c.SignsWithSessionCopy(), stC.sign, stC.priv)
	}
	signAndVerify(t, c)

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.objectAttributes(st.sign, p11.CKA_TOKEN); !isCode(err, p11.CKR_OBJECT_HANDLE_INVALID) {
		t.Fatalf("the closed Key's copy: %v, want CKR_OBJECT_HANDLE_INVALID", err)
	}
	if _, err := b.objectAttributes(st.priv, p11.CKA_TOKEN); err != nil {
		t.Fatalf("the token object after Close: %v", err)
	}
	signAndVerify(t, b)
}

// generateUncopyable creates a P-256 key pair whose private key has
// CKA_COPYABLE false, which PKCS#11 tokens refuse to copy.
func generateUncopyable(t *testing.T, cfg Config) {
	t.Helper()
	err := withSession(cfg, true, func(ctx *p11.Ctx, sh p11.SessionHandle) error {
		common := func(class uint) []*p11.Attribute {
			return []*p11.Attribute{
				p11.NewAttribute(p11.CKA_CLASS, class),
				p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_EC),
				p11.NewAttribute(p11.CKA_TOKEN, true),
				p11.NewAttribute(p11.CKA_LABEL, cfg.KeyLabel),
				p11.NewAttribute(p11.CKA_ID, []byte{0xc0}),
			}
		}
		pub := append(common(p11.CKO_PUBLIC_KEY),
			p11.NewAttribute(p11.CKA_VERIFY, true),
			p11.NewAttribute(p11.CKA_EC_PARAMS, mustOID(oidP256)))
		priv := append(common(p11.CKO_PRIVATE_KEY),
			p11.NewAttribute(p11.CKA_PRIVATE, true),
			p11.NewAttribute(p11.CKA_SENSITIVE, true),
			p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
			p11.NewAttribute(p11.CKA_SIGN, true),
			p11.NewAttribute(p11.CKA_COPYABLE, false))
		_, _, err := ctx.GenerateKeyPair(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_EC_KEY_PAIR_GEN, nil)}, pub, priv)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// logLines collects what a Key logs.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, prefix+" "+args)
	}, funcr.Options{})
}

func (l *logLines) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// TestSessionCopyRefused signs with a key the token refuses to copy: the
// Key logs that once, signs with the token object, and keeps doing both
// across a recovery.
func TestSessionCopyRefused(t *testing.T) {
	t.Parallel()
	if isolate(t) {
		return
	}
	tok := takeToken(t)
	cfg := tok.config("uncopyable")
	generateUncopyable(t, cfg)
	var logs logLines
	cfg.Log = logs.logger()
	k := openKey(t, cfg)
	if k.SignsWithSessionCopy() {
		t.Fatal("SignsWithSessionCopy() = true for a key with CKA_COPYABLE false")
	}
	if st := k.state(t); st.sign != st.priv {
		t.Fatalf("signs with object %d, want the token object %d", st.sign, st.priv)
	}
	signOK(t, k, k.Public())
	lines := logs.get()
	// miekg/pkcs11 v1.1.2 has no name for CKR_ACTION_PROHIBITED (0x1B).
	if len(lines) != 1 || !strings.Contains(lines[0], "0x1B") {
		t.Fatalf("log = %q, want one line with CKR_ACTION_PROHIBITED (0x1B)", lines)
	}

	if err := k.mod.reinit(k.mod.gen.Load()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if err := signErr(k); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	signOK(t, k, k.Public())
	if stats, _ := k.snapshot(); stats.recoveries != 1 {
		t.Errorf("%d recoveries, want 1", stats.recoveries)
	}
	if k.SignsWithSessionCopy() {
		t.Error("the recovered Key copied a key with CKA_COPYABLE false")
	}
	if lines := logs.get(); len(lines) != 1 {
		t.Errorf("log after the recovery = %q, want still the one line", lines)
	}
}

// TestSessionCopyRecovery checks that every recovery makes a new copy:
// after the library was reset, and after the token was re-initialised,
// which the Key notices through its token object although SoftHSM keeps
// the old copy usable.
func TestSessionCopyRecovery(t *testing.T) {
	t.Parallel()
	if isolate(t) {
		return
	}
	tok := takeToken(t)
	ca, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id := []byte{0xca}
	tok.importKey(t, ca, "ca", id)
	cfg := tok.config("ca")
	cfg.Expected = ca.Public()
	k := openKey(t, cfg)
	signOK(t, k, ca.Public())
	first := k.state(t)

	if err := k.mod.reinit(k.mod.gen.Load()); err != nil {
		t.Fatal(err)
	}
	signOK(t, k, ca.Public())
	second := k.state(t)
	if second == first || !second.copied || second.gen == first.gen {
		t.Fatalf("after a library reset: state %p (copied %v, generation %d), before %p (generation %d)", second, second.copied, second.gen, first, first.gen)
	}

	tok.reinitialise(t) // an empty token: the key is gone
	if err := signErr(k); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("Sign after the token was emptied: %v, want ErrKeyNotFound", err)
	}
	tok.importKey(t, ca, "ca", id)
	signWhenAvailable(t, k, ca.Public())
	third := k.state(t)
	if !third.copied || third.gen == second.gen {
		t.Fatalf("after the key was restored: copied %v, generation %d (before %d)", third.copied, third.gen, second.gen)
	}
	if stats, _ := k.snapshot(); stats.recoveries != 2 {
		t.Errorf("%d recoveries, want 2", stats.recoveries)
	}
}
