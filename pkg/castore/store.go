// Package castore turns an issuer's spec.ca into an issuance.Authority: it
// reads the CA Secret, creates the bootstrap root once, and keeps parsed
// authorities so that signing does not cost an API request per certificate.
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
const AnnotationBootstrappedBy = "quill.dev/bootstrapped-by"

// Error is a CA that cannot be used, with the issuer Ready reason (one of
// the Reason constants in api/v1alpha1) that explains why. The CA must be
// fixed (or the Secret created) before the issuer can sign.
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
	// cache, to tell whether a parsed authority is still current without an
	// API request. Nil means every Load reads the Secret.
	Metadata client.Reader
	// Writer creates bootstrap Secrets.
	Writer client.Writer
	// Clock dates bootstrap roots.
	Clock clock.PassiveClock

	mu      sync.Mutex
	entries map[types.NamespacedName]entry
}

type entry struct {
	resourceVersion string
	authority       *issuance.Authority
}

// Load returns the authority that src describes, reading Secrets in
// namespace. It never creates anything: a missing bootstrap Secret is an
// *Error with reason SecretNotFound until Ensure has run. Errors are *Error
// when the CA material is at fault, and plain (retry) when the API failed.
func (s *Store) Load(ctx context.Context, namespace string, src quillv1.CASource) (*issuance.Authority, error) {
	key, err := secretKey(namespace, src)
	if err != nil {
		return nil, err
	}
	if a := s.current(ctx, key); a != nil {
		return a, nil
	}
	var secret corev1.Secret
	if err := s.Reader.Get(ctx, key, &secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &Error{Reason: quillv1.ReasonSecretNotFound, Err: fmt.Errorf("%w: %s", errSecretNotFound, key)}
		}
		return nil, fmt.Errorf("reading CA secret %s: %w", key, err)
	}
	return s.parse(key, &secret)
}

// Ensure is Load for the issuer health check: for a bootstrap source whose
// Secret does not exist yet it generates the root CA and creates the Secret.
// Creation is atomic on the API server, so concurrent controllers cannot
// produce two keys: the loser of the race reads the winner's Secret. An
// existing Secret is never replaced, even when it is unusable.
func (s *Store) Ensure(ctx context.Context, namespace string, src quillv1.CASource, owner string) (*issuance.Authority, error) {
	a, err := s.Load(ctx, namespace, src)
	var caErr *Error
	if src.Bootstrap == nil || !errors.As(err, &caErr) || caErr.Reason != quillv1.ReasonSecretNotFound {
		return a, err
	}
	b := src.Bootstrap
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
	if err := s.Writer.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating bootstrap CA secret %s/%s: %w", namespace, b.SecretName, err)
	}
	// Read back rather than trusting what we generated: on AlreadyExists the
	// Secret that won is someone else's.
	s.forget(types.NamespacedName{Namespace: namespace, Name: b.SecretName})
	return s.Load(ctx, namespace, src)
}

// current returns the cached authority for key if the Secret's metadata
// says it has not changed since it was parsed.
func (s *Store) current(ctx context.Context, key types.NamespacedName) *issuance.Authority {
	if s.Metadata == nil {
		return nil
	}
	s.mu.Lock()
	e, ok := s.entries[key]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := s.Metadata.Get(ctx, key, meta); err != nil || meta.ResourceVersion != e.resourceVersion {
		return nil
	}
	return e.authority
}

func (s *Store) parse(key types.NamespacedName, secret *corev1.Secret) (*issuance.Authority, error) {
	crt, keyPEM := secret.Data[KeyTLSCrt], secret.Data[KeyTLSKey]
	if len(crt) == 0 || len(keyPEM) == 0 {
		return nil, &Error{Reason: quillv1.ReasonSecretInvalid, Err: fmt.Errorf("%w: secret %s needs %s and %s", errMissingKey, key, KeyTLSCrt, KeyTLSKey)}
	}
	a, err := issuance.LoadAuthority(crt, keyPEM, secret.Data[KeyCACrt])
	if err != nil {
		reason := quillv1.ReasonSecretInvalid
		if errors.Is(err, issuance.ErrKeyMismatch) {
			reason = quillv1.ReasonKeyMismatch
		}
		return nil, &Error{Reason: reason, Err: fmt.Errorf("secret %s: %w", key, err)}
	}
	s.mu.Lock()
	if s.entries == nil {
		s.entries = map[types.NamespacedName]entry{}
	}
	s.entries[key] = entry{resourceVersion: secret.ResourceVersion, authority: a}
	s.mu.Unlock()
	return a, nil
}

func (s *Store) forget(key types.NamespacedName) {
	s.mu.Lock()
	delete(s.entries, key)
	s.mu.Unlock()
}

// secretKey is the Secret src names, in namespace.
func secretKey(namespace string, src quillv1.CASource) (types.NamespacedName, error) {
	switch {
	case src.SecretRef != nil:
		return types.NamespacedName{Namespace: namespace, Name: src.SecretRef.Name}, nil
	case src.Bootstrap != nil:
		return types.NamespacedName{Namespace: namespace, Name: src.Bootstrap.SecretName}, nil
	}
	// The schema requires exactly one source; this guards objects written
	// before the schema or by a client that skipped validation.
	return types.NamespacedName{}, &Error{Reason: quillv1.ReasonSecretInvalid, Err: errors.New("spec.ca names no CA source")}
}

// SecretName returns the name of the Secret src refers to, for watches
// that map Secret events back to issuers.
func SecretName(src quillv1.CASource) string {
	key, _ := secretKey("", src)
	return key.Name
}
