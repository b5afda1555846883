// Package castore turns an issuer's spec.ca into an issuance.Authority: it
// maps spec.ca to a key reference once (sourceOf), reads the CA Secret,
// creates the bootstrap root once, opens every CA key through pkg/kms (the
// Secret's tls.key through pkg/kms/softkey, a key on an HSM through its
// backend), and keeps parsed authorities so that signing does not cost an
// API request per certificate.
package castore

import (
	"context"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/kms"
	"github.com/quill-pki/quill/pkg/owned"
	// castore opens the CA Secret's key through pkg/kms like any other
	// key, and cannot load a Secret-held CA without this backend.
	_ "github.com/quill-pki/quill/pkg/kms/softkey"
)

// Secret keys of cert-manager's TLS Secret layout, which Quill reads and the
// bootstrap root is written in.
const (
	KeyTLSCrt = corev1.TLSCertKey
	KeyTLSKey = corev1.TLSPrivateKeyKey
	KeyCACrt  = "ca.crt"
)

// AnnotationBootstrappedBy marks a Secret Quill created for a bootstrap CA,
// naming the issuer ("QuillClusterIssuer/name" or "QuillIssuer/ns/name").
// Quill from before the ownership mark wrote only this annotation, so it
// is also how such a Secret is recognised as Quill's (LegacyBootstrap).
const AnnotationBootstrappedBy = "quill.dev/bootstrapped-by"

// LegacyBootstrap recognises a bootstrap CA Secret that a Quill from before
// the ownership mark created for owner: it names owner in
// AnnotationBootstrappedBy, which no other writer sets.
func LegacyBootstrap(obj client.Object, owner string) bool {
	return obj.GetAnnotations()[AnnotationBootstrappedBy] == owner
}

// quillBootstrapped reports whether a bootstrap Secret was created by Quill
// for some issuer: marked, or carrying the annotation an earlier Quill
// wrote. Load cannot tell which issuer asks, so it asks only this much;
// Ensure, which knows, requires the issuer's own mark.
func quillBootstrapped(obj client.Object) bool {
	return obj.GetLabels()[quillv1.LabelManagedBy] == quillv1.ManagedByQuill && obj.GetAnnotations()[quillv1.AnnotationOwner] != "" ||
		obj.GetAnnotations()[AnnotationBootstrappedBy] != ""
}

// Error is a CA that cannot be used, with the reason (one of the Reason
// constants in api/v1alpha1) that explains why. The CA, its Secrets or the
// issuer must be fixed before the issuer can sign.
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

var (
	errSecretNotFound = errors.New("secret not found")
	errMissingKey     = errors.New("secret lacks a required key")
)

// Store resolves CA sources. It is safe for concurrent use; one Store serves
// every issuer of a controller.
type Store struct {
	// Reader reads full Secrets; it should bypass any cache so that Secrets
	// are not all held in memory (controller-runtime's APIReader).
	Reader client.Reader
	// Metadata reads Secret metadata, normally from a metadata-only informer
	// cache, to tell whether a loaded authority is still current without an
	// API request. Nil means every Load reads the Secrets.
	Metadata client.Reader
	// Writer creates bootstrap Secrets.
	Writer client.Writer
	// Clock dates bootstrap roots.
	Clock clock.PassiveClock
	// PKCS11Modules is the allow-list of PKCS#11 libraries: the name an
	// issuer's spec.ca.pkcs11.module gives, mapped to the library path
	// (kms.Options.Modules).
	PKCS11Modules map[string]string
	// Keys opens every CA key; nil means kms.Default, filled by the
	// backend packages the binary imports (castore itself imports
	// pkg/kms/softkey, for the Secret's tls.key). Tests give a Registry of
	// their own to count or refuse openings; it needs softkey.Backend
	// registered for Secret-held keys.
	Keys *kms.Registry
	// PKCS11Login, when set, is told of every C_Login made for an issuer's
	// key: the module's allow-list name, the token's label or serial, and
	// the result. quill-controller counts them in quill_pkcs11_logins_total.
	PKCS11Login func(module, token string, result kms.LoginResult)
	// Refusals keeps the PINs HSM tokens refused where every controller
	// process finds them (refusal.go); nil keeps them in this process's
	// memory only.
	Refusals *RefusalLog

	refused refusalMemory
	mu      sync.Mutex
	entries map[string]*entry
	loading map[string]*loadLock
}

// loadLock serialises the loads of one CA source. Reconcilers of several
// kinds load the same CA at once when an issuer appears or its Secret
// changes; without it each would log in to the HSM, and a wrong PIN would
// reach the token once per reconciler instead of once.
type loadLock struct {
	mu   sync.Mutex
	refs int // holders and waiters; the lock is dropped at zero
}

// lock takes the load lock of id and returns its release.
func (s *Store) lock(id string) (unlock func()) {
	s.mu.Lock()
	if s.loading == nil {
		s.loading = map[string]*loadLock{}
	}
	l := s.loading[id]
	if l == nil {
		l = &loadLock{}
		s.loading[id] = l
	}
	l.refs++
	s.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		s.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(s.loading, id)
		}
		s.mu.Unlock()
	}
}

// entry is a loaded CA (or a sticky failure) and the Secret versions it was
// loaded from; it stays valid while none of those Secrets changes.
type entry struct {
	deps      map[types.NamespacedName]string // Secret -> resourceVersion
	authority *issuance.Authority
	err       error  // a failure not to repeat until a dependency changes
	closer    func() // releases an HSM key when the entry is replaced
}

// Load returns the authority that src describes, reading Secrets in
// namespace. It never creates anything: a missing bootstrap Secret is an
// *Error with reason SecretNotFound until Ensure has run, and a bootstrap
// Secret that Quill did not create (no ownership mark, nor an earlier
// Quill's bootstrapped-by annotation) one with reason NameCollision. Errors are *Error
// when the CA material or its configuration is at fault, and plain (retry)
// when the API server failed.
func (s *Store) Load(ctx context.Context, namespace string, src quillv1.CASource) (*issuance.Authority, error) {
	so, err := sourceOf(namespace, src)
	if err != nil {
		return nil, err
	}
	return s.load(ctx, so)
}

func (s *Store) load(ctx context.Context, so source) (*issuance.Authority, error) {
	id := so.id()
	seen := s.cached(id)
	if e := s.current(ctx, id); e != nil {
		return e.authority, e.err
	}
	// Load once for every caller that missed the cache together: the ones
	// that waited find what the first remembered.
	defer s.lock(id)()
	if s.cached(id) != seen {
		if e := s.current(ctx, id); e != nil {
			return e.authority, e.err
		}
	}
	if !so.inSecret() {
		return s.loadBackendKey(ctx, id, so)
	}
	key := types.NamespacedName{Namespace: so.namespace, Name: so.secrets[0]}
	secret, err := s.readSecret(ctx, key)
	if err != nil {
		return nil, err
	}
	if so.bootstrap != nil && !quillBootstrapped(secret) {
		// spec.ca.bootstrap names a Secret for Quill to create; one that
		// exists and was not created by Quill is someone else's (an app's
		// TLS Secret, say) and is neither used nor labelled.
		return nil, &Error{Reason: quillv1.ReasonNameCollision, Err: fmt.Errorf("%w: Secret %s named by spec.ca.bootstrap.secretName exists and was not created by Quill; "+
			"rename spec.ca.bootstrap.secretName, or use spec.ca.secretRef to sign with a CA Secret of your own", owned.ErrCollision, key)}
	}
	a, err := s.parseSecret(ctx, so.key.(kms.SecretKey), secret)
	if err != nil {
		return nil, err
	}
	s.remember(id, &entry{deps: map[types.NamespacedName]string{key: secret.ResourceVersion}, authority: a})
	return a, nil
}

// Ensure is Load for the issuer health check: for a bootstrap source whose
// Secret does not exist yet it generates the root CA and creates the Secret,
// with the ownership mark naming owner (IssuerID.String()). Creation is
// atomic on the API server, so concurrent controllers cannot produce two
// keys: the loser of the race reads the winner's Secret. An existing Secret
// is never replaced, even when it is unusable. For a key held in a backend
// (an HSM) it also proves the key can sign.
//
// A Secret that Quill writes for this issuer (the bootstrap Secret, the
// certificate Secret of an HSM key issuedBy a parent) must be the issuer's
// own: one that exists without the issuer's mark is an *Error with reason
// NameCollision, so the issuer reports the collision and nothing writes to
// or labels that Secret.
func (s *Store) Ensure(ctx context.Context, namespace string, src quillv1.CASource, owner string) (*issuance.Authority, error) {
	so, err := sourceOf(namespace, src)
	if err != nil {
		return nil, err
	}
	a, err := s.load(ctx, so)
	if cerr := s.checkOwned(ctx, so, owner, err); cerr != nil {
		return nil, cerr
	}
	if err == nil {
		if key, ok := a.Signer.(kms.Key); ok {
			return a, probeFault(key.Probe(ctx))
		}
	}
	var caErr *Error
	if so.bootstrap == nil || !errors.As(err, &caErr) || caErr.Reason != quillv1.ReasonSecretNotFound {
		return a, err
	}
	b := so.bootstrap
	validity := 10 * 365 * 24 * time.Hour
	if b.Validity != nil {
		validity = b.Validity.Duration
	}
	alg := b.KeyAlgorithm
	if alg == "" {
		alg = "ECDSA-P256"
	}
	subject := pkix.Name{
		CommonName:         b.Subject.CommonName,
		Organization:       b.Subject.Organizations,
		OrganizationalUnit: b.Subject.OrganizationalUnits,
		Country:            b.Subject.Countries,
	}
	certPEM, keyPEM, err := issuance.NewSelfSignedRoot(subject, issuance.KeyAlgorithm(alg), validity, s.Clock.Now())
	if err != nil {
		return nil, fmt.Errorf("generating bootstrap root CA: %w", err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:        b.SecretName,
			Namespace:   namespace,
			Annotations: map[string]string{AnnotationBootstrappedBy: owner},
		},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{KeyTLSCrt: certPEM, KeyTLSKey: keyPEM, KeyCACrt: certPEM},
	}
	if err := owned.Create(ctx, s.Writer, secret, owner); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating bootstrap CA secret %s/%s: %w", namespace, b.SecretName, err)
	}
	// Read back rather than trusting what we generated: on AlreadyExists the
	// Secret that won is someone else's, and must be checked like any other.
	s.forget(so.id())
	a, err = s.load(ctx, so)
	if cerr := s.checkOwned(ctx, so, owner, err); cerr != nil {
		return nil, cerr
	}
	return a, err
}

// checkOwned requires the Secret Quill writes for so (its bootstrap Secret,
// or the certificate Secret an HSM intermediate's parent fills) to carry
// owner's mark when it exists. loadErr is what loading so returned: a
// certificate Secret without the mark is adopted when it loaded, since it
// then holds a certificate for the issuer's own HSM key (what a Quill from
// before the mark wrote there); the intermediate controller marks it on its
// next write. It returns nil or an *Error with reason NameCollision, or a
// plain error when the API server failed.
func (s *Store) checkOwned(ctx context.Context, so source, owner string, loadErr error) error {
	var name string
	var legacy owned.Legacy
	switch {
	case so.bootstrap != nil:
		name, legacy = so.secrets[0], LegacyBootstrap
	case so.issuedBy != nil && so.certSecret != "":
		name = so.certSecret
		legacy = func(client.Object, string) bool { return loadErr == nil }
	default:
		return nil // the Secrets are the user's; Quill only reads them
	}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := s.Reader.Get(ctx, types.NamespacedName{Namespace: so.namespace, Name: name}, meta); err != nil {
		if apierrors.IsNotFound(err) {
			return nil // Quill creates it
		}
		return fmt.Errorf("reading secret %s/%s: %w", so.namespace, name, err)
	}
	if err := owned.Check("Secret", meta, owner, legacy); err != nil {
		return &Error{Reason: quillv1.ReasonNameCollision, Err: err}
	}
	return nil
}

// current returns the cached entry for id if the metadata of every Secret
// it was loaded from says none has changed since.
func (s *Store) current(ctx context.Context, id string) *entry {
	// Without a metadata cache the versions are asked of the API server,
	// which costs a request but still keeps a refused PIN from being tried
	// again.
	reader := s.Metadata
	if reader == nil {
		reader = s.Reader
	}
	s.mu.Lock()
	e, ok := s.entries[id]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	for key, rv := range e.deps {
		meta := &metav1.PartialObjectMetadata{}
		meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		if err := reader.Get(ctx, key, meta); err != nil || meta.ResourceVersion != rv {
			return nil
		}
	}
	return e
}

// cached is the entry remembered for id, current or not.
func (s *Store) cached(id string) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entries[id]
}

func (s *Store) remember(id string, e *entry) {
	s.mu.Lock()
	if s.entries == nil {
		s.entries = map[string]*entry{}
	}
	old := s.entries[id]
	s.entries[id] = e
	s.mu.Unlock()
	if old != nil && old.closer != nil {
		old.closer()
	}
}

func (s *Store) forget(id string) {
	s.mu.Lock()
	old := s.entries[id]
	delete(s.entries, id)
	s.mu.Unlock()
	if old != nil && old.closer != nil {
		old.closer()
	}
}

func (s *Store) readSecret(ctx context.Context, key types.NamespacedName) (*corev1.Secret, error) {
	var secret corev1.Secret
	if err := s.Reader.Get(ctx, key, &secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &Error{Reason: quillv1.ReasonSecretNotFound, Err: fmt.Errorf("%w: %s", errSecretNotFound, key)}
		}
		return nil, fmt.Errorf("reading secret %s: %w", key, err)
	}
	return &secret, nil
}

// parseSecret opens the CA Secret's key through its backend (ref's scheme,
// pkg/kms/softkey) and loads the authority around it.
func (s *Store) parseSecret(ctx context.Context, ref kms.SecretKey, secret *corev1.Secret) (*issuance.Authority, error) {
	key := types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
	crt, keyPEM := secret.Data[KeyTLSCrt], secret.Data[KeyTLSKey]
	if len(crt) == 0 || len(keyPEM) == 0 {
		return nil, &Error{Reason: quillv1.ReasonSecretInvalid, Err: fmt.Errorf("%w: secret %s needs %s and %s", errMissingKey, key, KeyTLSCrt, KeyTLSKey)}
	}
	ref.PEM = keyPEM
	signer, err := s.Keys.Open(ctx, ref, kms.Options{})
	if err != nil {
		return nil, authorityError(key, err)
	}
	a, err := issuance.NewAuthority(crt, secret.Data[KeyCACrt], signer)
	if err != nil {
		return nil, authorityError(key, err)
	}
	return a, nil
}

// authorityError classifies an error opening a Secret-held key or loading
// the authority around it (issuance.NewAuthority).
func authorityError(key types.NamespacedName, err error) error {
	reason := quillv1.ReasonSecretInvalid
	if errors.Is(err, kms.ErrKeyMismatch) {
		reason = quillv1.ReasonKeyMismatch
	}
	return &Error{Reason: reason, Err: fmt.Errorf("secret %s: %w", key, err)}
}

// SecretNames lists the Secrets src reads, in its issuer's namespace, for
// watches that map Secret events back to issuers. The CA Secret comes first.
func SecretNames(src quillv1.CASource) []string {
	so, _ := sourceOf("", src)
	return so.secrets
}

// SecretName returns the name of the CA Secret src refers to (the PIN
// Secret for an HSM key whose certificate lives on the token).
func SecretName(src quillv1.CASource) string {
	return SecretNames(src)[0]
}
