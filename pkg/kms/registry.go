package kms

import (
	"context"
	"crypto"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// Registry maps schemes to backends. Its methods are safe for concurrent
// use, and a nil *Registry means Default.
type Registry struct {
	mu       sync.RWMutex
	backends map[string]Backend
}

// Default is the registry backend packages register with in their init
// functions, and the one castore and quillctl use unless told otherwise.
// Tests build a Registry of their own instead of changing this one.
var Default = &Registry{}

// Register adds b to Default under scheme. See Registry.Register.
func Register(scheme string, b Backend) { Default.Register(scheme, b) }

// Register adds b under scheme (lower case, as in a URI). Registering a
// scheme twice is a programming error and panics, so that two backends can
// never silently compete for the same keys.
func (r *Registry) Register(scheme string, b Backend) {
	r = r.get()
	if scheme == "" || scheme != strings.ToLower(scheme) || b == nil {
		panic(fmt.Sprintf("kms: Register(%q, %T): the scheme must be non-empty lower case and the backend non-nil", scheme, b))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.backends[scheme]; dup {
		panic(fmt.Sprintf("kms: scheme %q registered twice", scheme))
	}
	if r.backends == nil {
		r.backends = map[string]Backend{}
	}
	r.backends[scheme] = b
}

// Schemes lists the registered schemes in order.
func (r *Registry) Schemes() []string {
	r = r.get()
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.backends))
}

// Backend returns the backend of scheme, or an error wrapping ErrNotAllowed
// when this binary has none.
func (r *Registry) Backend(scheme string) (Backend, error) {
	r = r.get()
	r.mu.RLock()
	b := r.backends[strings.ToLower(scheme)]
	r.mu.RUnlock()
	if b == nil {
		have := strings.Join(r.Schemes(), ", ")
		if have == "" {
			have = "none"
		}
		return nil, fmt.Errorf("%w: this program has no key backend for %q (it has: %s)", ErrNotAllowed, scheme, have)
	}
	return b, nil
}

// Parse turns a reference users type, "<scheme>:…", into a Ref through the
// scheme's RefParser. Errors wrap ErrInvalidRef, ErrNotAllowed (no backend
// for the scheme) or ErrUnsupported (a backend without a text form).
func (r *Registry) Parse(s string) (Ref, error) {
	scheme, _, ok := strings.Cut(s, ":")
	if !ok || scheme == "" {
		return nil, fmt.Errorf("%w: %q has no scheme", ErrInvalidRef, redactPINValue(s))
	}
	b, err := r.Backend(scheme)
	if err != nil {
		return nil, err
	}
	p, ok := b.(RefParser)
	if !ok {
		return nil, fmt.Errorf("%w: %s: keys are not named by text", ErrUnsupported, scheme)
	}
	return p.ParseRef(s)
}

// Check asks ref's backend to validate ref and opts; see Backend.Check.
func (r *Registry) Check(ref Ref, opts Options) error {
	b, err := r.Backend(ref.Scheme())
	if err != nil {
		return err
	}
	return b.Check(ref, opts)
}

// Open opens the key ref names through its backend. When opts.Expected is
// set it also checks the opened key's public key itself, so that no
// backend can hand out a key that is not the certificate's.
func (r *Registry) Open(ctx context.Context, ref Ref, opts Options) (Key, error) {
	b, err := r.Backend(ref.Scheme())
	if err != nil {
		return nil, err
	}
	k, err := b.Open(ctx, ref, opts)
	if err != nil {
		return nil, err
	}
	if err := checkExpected(ref, k, opts); err != nil {
		_ = k.Close()
		return nil, err
	}
	return k, nil
}

// CreateKey creates a key through ref's backend, or fails with
// ErrUnsupported when the backend cannot create keys; see KeyCreator.
func (r *Registry) CreateKey(ctx context.Context, ref Ref, alg string, opts Options) (Key, error) {
	b, err := r.Backend(ref.Scheme())
	if err != nil {
		return nil, err
	}
	c, ok := b.(KeyCreator)
	if !ok {
		return nil, fmt.Errorf("%w: %s keys cannot be created here", ErrUnsupported, ref.Scheme())
	}
	return c.CreateKey(ctx, ref, alg, opts)
}

// StoreCertificate stores a certificate beside ref's key, or fails with
// ErrUnsupported; see CertificateStore.
func (r *Registry) StoreCertificate(ctx context.Context, ref Ref, label string, der []byte, opts Options) error {
	cs, err := r.certificateStore(ref)
	if err != nil {
		return err
	}
	return cs.StoreCertificate(ctx, ref, label, der, opts)
}

// LoadCertificate reads a certificate kept in ref's store, or fails with
// ErrUnsupported; see CertificateStore.
func (r *Registry) LoadCertificate(ctx context.Context, ref Ref, label string, opts Options) ([]byte, error) {
	cs, err := r.certificateStore(ref)
	if err != nil {
		return nil, err
	}
	return cs.LoadCertificate(ctx, ref, label, opts)
}

func (r *Registry) certificateStore(ref Ref) (CertificateStore, error) {
	b, err := r.Backend(ref.Scheme())
	if err != nil {
		return nil, err
	}
	cs, ok := b.(CertificateStore)
	if !ok {
		return nil, fmt.Errorf("%w: %s keys have no certificate store", ErrUnsupported, ref.Scheme())
	}
	return cs, nil
}

func (r *Registry) get() *Registry {
	if r == nil {
		return Default
	}
	return r
}

// checkExpected refuses a key whose public key is not opts.Expected.
func checkExpected(ref Ref, k Key, opts Options) error {
	if opts.Expected == nil {
		return nil
	}
	pub, ok := k.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(opts.Expected) {
		return fmt.Errorf("%w: %s holds a different key", ErrKeyMismatch, ref)
	}
	return nil
}
