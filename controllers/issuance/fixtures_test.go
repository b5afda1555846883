package issuance

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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	issuerapi "github.com/cert-manager/issuer-lib/api/v1alpha1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/issuers"
	"github.com/quill-pki/quill/pkg/castore"
)

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
			IssuerRef: cmmeta.IssuerReference{Name: "issuer", Kind: quillv1.IssuerKind, Group: quillv1.GroupVersion.Group},
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
		FieldOwner:               issuers.FieldOwner + "/ca-status",
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
