package castore_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/owned"
)

// testNow is the fixed clock of every test; nothing here reads the real one.
var testNow = time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)

const testNamespace = "team-a"

// --- CA fixtures ---

type caConfig struct {
	subject  pkix.Name
	alg      issuance.KeyAlgorithm
	validity time.Duration
	now      time.Time
}

type caOption func(*caConfig)

func withCACommonName(cn string) caOption {
	return func(c *caConfig) { c.subject = pkix.Name{CommonName: cn} }
}

// testCA is a root CA in the PEM form a Secret holds.
type testCA struct {
	certPEM, keyPEM []byte
	cert            *x509.Certificate
}

// newCA builds a self-signed ECDSA P-256 root, "Test Root CA", valid for a
// year from testNow.
func newCA(t testing.TB, opts ...caOption) testCA {
	t.Helper()
	c := &caConfig{
		subject:  pkix.Name{CommonName: "Test Root CA"},
		alg:      issuance.ECDSAP256,
		validity: 365 * 24 * time.Hour,
		now:      testNow,
	}
	for _, o := range opts {
		o(c)
	}
	certPEM, keyPEM, err := issuance.NewSelfSignedRoot(c.subject, c.alg, c.validity, c.now)
	if err != nil {
		t.Fatalf("create test CA: %v", err)
	}
	return testCA{certPEM: certPEM, keyPEM: keyPEM, cert: parseCert(t, certPEM)}
}

func parseCert(t testing.TB, certPEM []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatalf("no PEM block in %q", certPEM)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	return cert
}

// --- Secret fixtures ---

type secretOption func(*corev1.Secret)

// withCA stores ca in tls.crt, tls.key and ca.crt.
func withCA(ca testCA) secretOption {
	return func(s *corev1.Secret) {
		s.Data[castore.KeyTLSCrt] = ca.certPEM
		s.Data[castore.KeyTLSKey] = ca.keyPEM
		s.Data[castore.KeyCACrt] = ca.certPEM
	}
}

func withData(key string, value []byte) secretOption {
	return func(s *corev1.Secret) { s.Data[key] = value }
}

func withoutKey(key string) secretOption {
	return func(s *corev1.Secret) { delete(s.Data, key) }
}

// markedBy puts the ownership mark naming owner on the Secret, as Quill
// creates its own Secrets.
func markedBy(owner string) secretOption {
	return func(s *corev1.Secret) { owned.Mark(s, owner) }
}

// bootstrappedBy sets only the annotation a Quill from before the ownership
// mark wrote on its bootstrap Secrets.
func bootstrappedBy(owner string) secretOption {
	return func(s *corev1.Secret) {
		s.Annotations = map[string]string{castore.AnnotationBootstrappedBy: owner}
	}
}

func inNamespace(ns string) secretOption {
	return func(s *corev1.Secret) { s.Namespace = ns }
}

// newSecret builds an empty TLS Secret testNamespace/name; options fill it.
func newSecret(name string, opts ...secretOption) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// --- CA sources ---

func secretRef(name string) quillv1.CASource {
	return quillv1.CASource{SecretRef: &quillv1.SecretReference{Name: name}}
}

type bootstrapOption func(*quillv1.BootstrapCA)

func withBootstrapSubject(s quillv1.Subject) bootstrapOption {
	return func(b *quillv1.BootstrapCA) { b.Subject = s }
}

func withBootstrapAlgorithm(alg string) bootstrapOption {
	return func(b *quillv1.BootstrapCA) { b.KeyAlgorithm = quillv1.KeyAlgorithm(alg) }
}

func withBootstrapValidity(d time.Duration) bootstrapOption {
	return func(b *quillv1.BootstrapCA) { b.Validity = &metav1.Duration{Duration: d} }
}

// bootstrap is a bootstrap source for Secret name with subject CN
// "Bootstrap Root" and no algorithm or validity, so defaults apply.
func bootstrap(name string, opts ...bootstrapOption) quillv1.CASource {
	b := &quillv1.BootstrapCA{SecretName: name, Subject: quillv1.Subject{CommonName: "Bootstrap Root"}}
	for _, o := range opts {
		o(b)
	}
	return quillv1.CASource{Bootstrap: b}
}

// --- Store fixture ---

// calls counts the API requests a Store made.
type calls struct {
	secretGets, metadataGets, creates, writes atomic.Int32
}

type storeConfig struct {
	objects    []client.Object
	getErr     error
	createHook func(ctx context.Context, c client.WithWatch, obj client.Object) error
	noMetadata bool
}

type storeOption func(*storeConfig)

func withObjects(objs ...client.Object) storeOption {
	return func(c *storeConfig) { c.objects = append(c.objects, objs...) }
}

// withGetError makes every full Secret read fail with err.
func withGetError(err error) storeOption {
	return func(c *storeConfig) { c.getErr = err }
}

// withCreate replaces the Writer's Create; the hook gets the unwrapped
// fake client to act on.
func withCreate(hook func(ctx context.Context, c client.WithWatch, obj client.Object) error) storeOption {
	return func(c *storeConfig) { c.createHook = hook }
}

func withoutMetadata() storeOption {
	return func(c *storeConfig) { c.noMetadata = true }
}

type storeFixture struct {
	store *castore.Store
	// api is the fake API server behind the Store, uncounted.
	api   client.WithWatch
	calls *calls
}

func testScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := quillv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// newStore builds a Store whose Reader, Metadata and Writer share one fake
// API server, each wrapped to count what it is asked to do.
func newStore(t testing.TB, opts ...storeOption) *storeFixture {
	t.Helper()
	cfg := &storeConfig{}
	for _, o := range opts {
		o(cfg)
	}
	// The fake client writes to the objects it is given; parallel tests
	// share fixtures, so it gets copies.
	objs := make([]client.Object, len(cfg.objects))
	for i, o := range cfg.objects {
		objs[i] = o.DeepCopyObject().(client.Object)
	}
	api := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(objs...).Build()
	n := &calls{}
	reader := interceptor.NewClient(api, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*corev1.Secret); ok {
				n.secretGets.Add(1)
			}
			if cfg.getErr != nil {
				return cfg.getErr
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	metadata := interceptor.NewClient(api, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*metav1.PartialObjectMetadata); !ok {
				t.Errorf("Metadata.Get was asked for a %T; it must only read metadata", obj)
			}
			n.metadataGets.Add(1)
			return c.Get(ctx, key, obj, opts...)
		},
	})
	countWrite := func() { n.writes.Add(1) }
	writer := interceptor.NewClient(api, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			n.creates.Add(1)
			if cfg.createHook != nil {
				return cfg.createHook(ctx, c, obj)
			}
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			countWrite()
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			countWrite()
			return c.Patch(ctx, obj, patch, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			countWrite()
			return c.Delete(ctx, obj, opts...)
		},
	})
	s := &castore.Store{
		Reader: reader,
		Writer: writer,
		Clock:  clocktesting.NewFakeClock(testNow),
	}
	if !cfg.noMetadata {
		s.Metadata = metadata
	}
	return &storeFixture{store: s, api: api, calls: n}
}
