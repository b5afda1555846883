package controllers

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	cmapplyconfigurations "github.com/cert-manager/cert-manager/pkg/client/applyconfigurations"
	issuerapi "github.com/cert-manager/issuer-lib/api/v1alpha1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/managedfields"
	clientgoapplyconfigurations "k8s.io/client-go/applyconfigurations"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/issuance"
)

// testNow is the fixed clock of every test; nothing here reads the real one.
var testNow = time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)

const (
	testNamespace            = "team-a"
	clusterResourceNamespace = "quill-system"
	day                      = 24 * time.Hour
)

func testScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, cmapi.AddToScheme, quillv1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// newAPI is a fake API server holding copies of objs (the fake client
// writes to the objects it is given, and parallel tests share fixtures).
// CertificateRequests get cert-manager's own server-side apply schema, so
// that conditions merge by type as they do on a real API server; Quill's
// CRDs fall back to a deduced schema.
func newAPI(t testing.TB, objs ...client.Object) client.WithWatch {
	t.Helper()
	s := testScheme(t)
	copies := make([]client.Object, len(objs))
	for i, o := range objs {
		copies[i] = o.DeepCopyObject().(client.Object)
	}
	return fake.NewClientBuilder().
		WithScheme(s).
		WithTypeConverters(
			clientgoapplyconfigurations.NewTypeConverter(clientgoscheme.Scheme),
			cmapplyconfigurations.NewTypeConverter(s),
			managedfields.NewDeducedTypeConverter(),
		).
		WithStatusSubresource(&quillv1.QuillIssuer{}, &quillv1.QuillClusterIssuer{}, &cmapi.CertificateRequest{}).
		WithObjects(copies...).
		Build()
}

// --- CA fixtures ---

type caConfig struct {
	cn        string
	notBefore time.Time // the root's "now"; NewSelfSignedRoot backdates by an hour
	validity  time.Duration
	leaf      bool // not a CA at all
	keyUsage  x509.KeyUsage
	parent    *testCA
}

type caOption func(*caConfig)

func withCN(cn string) caOption { return func(c *caConfig) { c.cn = cn } }

// withValidity makes the CA valid for d from start.
func withValidity(start time.Time, d time.Duration) caOption {
	return func(c *caConfig) { c.notBefore, c.validity = start, d }
}

// asLeaf makes the "CA" an end-entity certificate (basicConstraints cA=FALSE).
func asLeaf() caOption { return func(c *caConfig) { c.leaf = true } }

// withCAKeyUsage makes a CA certificate with exactly these key usages.
func withCAKeyUsage(ku x509.KeyUsage) caOption { return func(c *caConfig) { c.keyUsage = ku } }

// issuedBy makes an intermediate CA signed by parent.
func issuedBy(parent testCA) caOption { return func(c *caConfig) { c.parent = &parent } }

// testCA is a CA certificate and key in the PEM form a Secret holds; root is
// the PEM of the trust anchor (the certificate itself for a root).
type testCA struct {
	certPEM, keyPEM, rootPEM []byte
	cert                     *x509.Certificate
	key                      crypto.Signer
}

// newCA builds "Test Root CA", an ECDSA P-256 root valid for a year from
// testNow, by issuance.NewSelfSignedRoot; options that need a certificate
// NewSelfSignedRoot cannot make (a leaf, odd key usages, an intermediate)
// build it with crypto/x509.
func newCA(t testing.TB, opts ...caOption) testCA {
	t.Helper()
	c := &caConfig{cn: "Test Root CA", notBefore: testNow, validity: 365 * day}
	for _, o := range opts {
		o(c)
	}
	if !c.leaf && c.keyUsage == 0 && c.parent == nil {
		certPEM, keyPEM, err := issuance.NewSelfSignedRoot(pkix.Name{CommonName: c.cn}, issuance.ECDSAP256, c.validity, c.notBefore)
		if err != nil {
			t.Fatalf("create test CA: %v", err)
		}
		key, err := parseKey(keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return testCA{certPEM: certPEM, keyPEM: keyPEM, rootPEM: certPEM, cert: parseCert(t, certPEM), key: key}
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: c.cn},
		NotBefore:             c.notBefore.Add(-time.Hour),
		NotAfter:              c.notBefore.Add(c.validity),
		BasicConstraintsValid: true,
		IsCA:                  !c.leaf,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		SubjectKeyId:          []byte(c.cn),
	}
	if c.leaf {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	if c.keyUsage != 0 {
		tmpl.KeyUsage = c.keyUsage
	}
	parent, signer, rootPEM := tmpl, crypto.Signer(key), []byte(nil)
	if c.parent != nil {
		parent, signer, rootPEM = c.parent.cert, c.parent.key, c.parent.rootPEM
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		t.Fatalf("create test CA: %v", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if rootPEM == nil {
		rootPEM = certPEM
	}
	return testCA{
		certPEM: certPEM,
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		rootPEM: rootPEM,
		cert:    parseCert(t, certPEM),
		key:     key,
	}
}

func parseKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	return k.(crypto.Signer), nil
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

func parseChain(t testing.TB, chainPEM []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for rest := chainPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("parse chain: %v", err)
		}
		out = append(out, cert)
	}
	if len(out) == 0 {
		t.Fatalf("no certificate in chain %q", chainPEM)
	}
	return out
}

// caSecret stores ca in namespace/name in cert-manager's layout.
func caSecret(namespace, name string, ca testCA) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Type:       corev1.SecretTypeTLS,
		Data: map[string][]byte{
			castore.KeyTLSCrt: ca.certPEM,
			castore.KeyTLSKey: ca.keyPEM,
			castore.KeyCACrt:  ca.rootPEM,
		},
	}
}

// --- issuer fixtures ---

type issuerOption func(*quillv1.IssuerSpec)

func withSecretRef(name string) issuerOption {
	return func(s *quillv1.IssuerSpec) { s.CA = quillv1.CASource{SecretRef: &quillv1.SecretReference{Name: name}} }
}

func withBootstrap(secretName, cn string) issuerOption {
	return func(s *quillv1.IssuerSpec) {
		s.CA = quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{SecretName: secretName, Subject: quillv1.Subject{CommonName: cn}}}
	}
}

func withMaxDuration(d time.Duration) issuerOption {
	return func(s *quillv1.IssuerSpec) { s.Issuance.MaxDuration = &metav1.Duration{Duration: d} }
}

func withDefaultDuration(d time.Duration) issuerOption {
	return func(s *quillv1.IssuerSpec) { s.Issuance.DefaultDuration = &metav1.Duration{Duration: d} }
}

func withCRL(urls ...string) issuerOption {
	return func(s *quillv1.IssuerSpec) { s.CRLDistributionPoints = urls }
}

// newIssuer is QuillIssuer testNamespace/issuer reading Secret "ca".
func newIssuer(opts ...issuerOption) *quillv1.QuillIssuer {
	iss := &quillv1.QuillIssuer{ObjectMeta: metav1.ObjectMeta{Name: "issuer", Namespace: testNamespace, Generation: 1}}
	withSecretRef("ca")(&iss.Spec)
	for _, o := range opts {
		o(&iss.Spec)
	}
	return iss
}

// newClusterIssuer is QuillClusterIssuer "cluster-issuer" reading Secret "ca".
func newClusterIssuer(opts ...issuerOption) *quillv1.QuillClusterIssuer {
	iss := &quillv1.QuillClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "cluster-issuer", Generation: 1}}
	withSecretRef("ca")(&iss.Spec)
	for _, o := range opts {
		o(&iss.Spec)
	}
	return iss
}

// foreignIssuer is an issuer kind Quill does not know.
type foreignIssuer struct {
	issuerapi.Issuer // only issuer-lib's view: not a quillv1.GenericIssuer
}

// --- request fixtures ---

// requestKey is the key of every test CSR; one ECDSA key is enough.
var requestKey = sync.OnceValue(func() crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
})

// newCSR is a PEM CSR for "app.example.test" (CN and DNS SAN).
func newCSR(t testing.TB) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: "app.example.test"},
		DNSNames: []string{"app.example.test"},
	}, requestKey())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

type crOption func(*cmapi.CertificateRequest)

func withDuration(d time.Duration) crOption {
	return func(cr *cmapi.CertificateRequest) { cr.Spec.Duration = &metav1.Duration{Duration: d} }
}

func withUsages(u ...cmapi.KeyUsage) crOption {
	return func(cr *cmapi.CertificateRequest) { cr.Spec.Usages = u }
}

func withRequest(csrPEM []byte) crOption {
	return func(cr *cmapi.CertificateRequest) { cr.Spec.Request = csrPEM }
}

func withIssuerGroup(group string) crOption {
	return func(cr *cmapi.CertificateRequest) { cr.Spec.IssuerRef.Group = group }
}

func withCondition(typ cmapi.CertificateRequestConditionType, status cmmeta.ConditionStatus, reason, message string) crOption {
	return func(cr *cmapi.CertificateRequest) {
		lt := metav1.NewTime(testNow.Add(-time.Minute))
		cr.Status.Conditions = append(cr.Status.Conditions, cmapi.CertificateRequestCondition{
			Type: typ, Status: status, Reason: reason, Message: message, LastTransitionTime: &lt,
		})
	}
}

// newCertificateRequest is CertificateRequest testNamespace/name for
// QuillIssuer "issuer", carrying a valid CSR and no duration.
func newCertificateRequest(t testing.TB, name string, opts ...crOption) *cmapi.CertificateRequest {
	t.Helper()
	cr := &cmapi.CertificateRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace},
		Spec: cmapi.CertificateRequestSpec{
			Request:   newCSR(t),
			IssuerRef: cmmeta.IssuerReference{Name: "issuer", Kind: "QuillIssuer", Group: quillv1.GroupVersion.Group},
		},
	}
	for _, o := range opts {
		o(cr)
	}
	return cr
}

type kubeCSROption func(*certificatesv1.CertificateSigningRequest)

func withExpirationSeconds(s int32) kubeCSROption {
	return func(csr *certificatesv1.CertificateSigningRequest) { csr.Spec.ExpirationSeconds = &s }
}

func withAnnotation(k, v string) kubeCSROption {
	return func(csr *certificatesv1.CertificateSigningRequest) {
		if csr.Annotations == nil {
			csr.Annotations = map[string]string{}
		}
		csr.Annotations[k] = v
	}
}

// newKubeCSR is a Kubernetes CertificateSigningRequest for QuillIssuer
// testNamespace/issuer with a valid CSR and no expirationSeconds.
func newKubeCSR(t testing.TB, opts ...kubeCSROption) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	csr := &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-csr"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    newCSR(t),
			SignerName: "quillissuers.quill.dev/" + testNamespace + ".issuer",
			Usages:     []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth},
		},
	}
	for _, o := range opts {
		o(csr)
	}
	return csr
}

// --- Signer fixture ---

// patchCall is one status patch a controller sent.
type patchCall struct {
	subResource string
	kind        string
	key         types.NamespacedName
	patchType   types.PatchType
	body        map[string]any
	opts        client.SubResourcePatchOptions
}

// patchLog records status patches; it is safe for concurrent use.
type patchLog struct {
	mu    sync.Mutex
	calls []patchCall
}

func (l *patchLog) all() []patchCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]patchCall(nil), l.calls...)
}

// recordPatches is a SubResourcePatch interceptor that logs each patch and
// then returns failWith, or forwards the patch when failWith is nil.
func recordPatches(t testing.TB, log *patchLog, failWith error) func(context.Context, client.Client, string, client.Object, client.Patch, ...client.SubResourcePatchOption) error {
	return func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
		data, err := patch.Data(obj)
		if err != nil {
			t.Errorf("patch data: %v", err)
		}
		var body map[string]any
		if err := json.Unmarshal(data, &body); err != nil {
			t.Errorf("patch body is not JSON: %v (%s)", err, data)
		}
		gvk, _ := c.GroupVersionKindFor(obj)
		call := patchCall{subResource: sub, kind: gvk.Kind, key: client.ObjectKeyFromObject(obj), patchType: patch.Type(), body: body}
		call.opts.ApplyOptions(opts)
		log.mu.Lock()
		log.calls = append(log.calls, call)
		log.mu.Unlock()
		if failWith != nil {
			return failWith
		}
		return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
	}
}

type signerConfig struct {
	objects        []client.Object
	now            time.Time
	secretGetErr   error
	statusPatchErr error
	clusterNS      string
}

type signerOption func(*signerConfig)

func withObjects(objs ...client.Object) signerOption {
	return func(c *signerConfig) { c.objects = append(c.objects, objs...) }
}

func withNow(now time.Time) signerOption { return func(c *signerConfig) { c.now = now } }

// withSecretGetError makes every full Secret read fail with err.
func withSecretGetError(err error) signerOption {
	return func(c *signerConfig) { c.secretGetErr = err }
}

func withStatusPatchError(err error) signerOption {
	return func(c *signerConfig) { c.statusPatchErr = err }
}

func withClusterResourceNamespace(ns string) signerOption {
	return func(c *signerConfig) { c.clusterNS = ns }
}

type signerFixture struct {
	signer   *Signer
	api      client.WithWatch
	recorder *events.FakeRecorder
	patches  *patchLog
	creates  *atomic.Int32
	clock    *clocktesting.FakeClock
}

// newSigner builds a Signer on a fake API server holding the objects, with
// ClusterResourceNamespace quill-system and a clock at testNow.
func newSigner(t testing.TB, opts ...signerOption) *signerFixture {
	t.Helper()
	cfg := &signerConfig{now: testNow, clusterNS: clusterResourceNamespace}
	for _, o := range opts {
		o(cfg)
	}
	api := newAPI(t, cfg.objects...)
	f := &signerFixture{api: api, recorder: events.NewFakeRecorder(100), patches: &patchLog{}, creates: &atomic.Int32{}}
	reader := interceptor.NewClient(api, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*corev1.Secret); ok && cfg.secretGetErr != nil {
				return cfg.secretGetErr
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	writer := interceptor.NewClient(api, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			f.creates.Add(1)
			return c.Create(ctx, obj, opts...)
		},
		SubResourcePatch: recordPatches(t, f.patches, cfg.statusPatchErr),
	})
	clk := clocktesting.NewFakeClock(cfg.now)
	f.clock = clk
	f.signer = &Signer{
		Store:                    &castore.Store{Reader: reader, Metadata: api, Writer: writer, Clock: clk},
		StatusWriter:             writer,
		ClusterResourceNamespace: cfg.clusterNS,
		FieldOwner:               FieldOwner + "/ca-status",
		Clock:                    clk,
		Recorder:                 f.recorder,
	}
	return f
}

// drainEvents returns the events recorded so far.
func drainEvents(r *events.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-r.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}
