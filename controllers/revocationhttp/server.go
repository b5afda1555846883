// Package revocationhttp serves Quill's CRLs and OCSP answers over HTTP on
// every replica, through one router: /crl/<issuer>.crl and
// /ocsp/<issuer>[/<request>], where <issuer> is clusterissuer/<name> or
// issuer/<namespace>/<name>. CRLs come from the ConfigMaps the leader
// publishes, served only for issuers that exist, from ConfigMaps carrying
// Quill's ownership mark for the issuer and holding a CRL its CA signed
// (a tenant can create a labelled ConfigMap, not a CRL under the CA).
// OCSP answers come from the ledger index, signed by the issuer's CA key
// or delegated responder (pkg/ocspserver does the protocol), and are
// tryLater until the index has read the whole ledger.
package revocationhttp

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/revocationdata"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/pkg/ocspserver"
	"github.com/quill-pki/quill/pkg/owned"
)

// responderRefresh is how often a replica checks whether an issuer's CA or
// delegated responder changed; between checks OCSP answers come from
// memory.
const responderRefresh = 5 * time.Second

// Config is what the server needs; controllers.Setup fills it, and the OCSP
// benchmark (hack/bench/ocsp) fills it with a fake API server.
type Config struct {
	// Addr is the listen address; TLSConfig, when set, serves HTTPS.
	Addr      string
	TLSConfig *tls.Config
	// Reader reads responder Secrets uncached; Cached reads issuers.
	Reader client.Reader
	Cached client.Reader
	// Watcher lists and watches the CRL ConfigMaps; nil serves no CRLs.
	Watcher client.WithWatch
	// Store loads issuers' CAs; Index answers which serials exist and
	// which are revoked.
	Store                    *castore.Store
	Index                    *ledger.Index
	ClusterResourceNamespace string
	Clock                    clock.PassiveClock
	// NonceSignaturesPerSecond is this replica's ceiling on fresh OCSP
	// nonce signatures, all issuers together, above each issuer's own
	// spec.revocation.ocsp.maxNonceSignaturesPerSecond; zero or less
	// means none.
	NonceSignaturesPerSecond float64
}

// Server answers CRL and OCSP requests for every issuer, on every replica.
// CRLs come from the ConfigMaps the leader publishes (watched by label);
// OCSP answers come from the ledger index, signed here by the issuer's CA
// key or delegated responder, and cached until they change.
type Server struct {
	addr             string
	tlsConfig        *tls.Config
	reader           client.Reader // uncached: responder Secrets
	cached           client.Reader // issuers
	watcher          client.WithWatch
	store            *castore.Store
	index            *ledger.Index
	clusterNamespace string
	clock            clock.PassiveClock
	nonceBudget      *ocspserver.NonceBudget

	crls       *listedStore
	mu         sync.Mutex
	responders map[quillv1.IssuerID]*issuerResponder
	crlServers map[quillv1.IssuerID]*crlSource
}

type issuerResponder struct {
	mu        sync.Mutex
	resp      *ocspserver.Responder
	authority *issuance.Authority
	signerRV  string // responder Secret resourceVersion, "" when signing as the CA
	validity  time.Duration
	alg       x509.SignatureAlgorithm
	nonceRate float64
	checkedAt time.Time
}

// New returns a server for cfg; it follows the ledger index from now on.
// Handler serves at once; Start also follows the CRL ConfigMaps and
// listens on cfg.Addr.
func New(cfg Config) *Server {
	s := &Server{
		addr: cfg.Addr, tlsConfig: cfg.TLSConfig, reader: cfg.Reader, cached: cfg.Cached, watcher: cfg.Watcher,
		store: cfg.Store, index: cfg.Index, clusterNamespace: cfg.ClusterResourceNamespace, clock: cfg.Clock,
		nonceBudget: ocspserver.NewNonceBudget(cfg.NonceSignaturesPerSecond),
		responders:  map[quillv1.IssuerID]*issuerResponder{},
		crlServers:  map[quillv1.IssuerID]*crlSource{},
		crls:        &listedStore{Store: cache.NewStore(cache.MetaNamespaceKeyFunc)},
	}
	s.index.Subscribe(s.invalidate)
	return s
}

// Handler is the one router of Quill's revocation endpoints, as production
// serves it.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.route) }

// Start follows the CRL ConfigMaps and serves Handler on the configured
// address until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	if s.watcher != nil {
		s.followCRLs(ctx)
	}
	srv := ocspserver.NewServer(s.addr, s.Handler())
	srv.TLSConfig = s.tlsConfig
	srv.BaseContext = func(net.Listener) context.Context { return ctx }
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("CRL/OCSP server: %w", err)
	}
	errc := make(chan error, 1)
	go func() {
		if s.tlsConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	logf.FromContext(ctx).Info("serving CRL and OCSP", "address", ln.Addr().String(), "tls", s.tlsConfig != nil)
	select {
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	case err := <-errc:
		return err
	}
}

// followCRLs keeps s.crls in step with the CRL ConfigMaps (by label)
// until ctx ends.
func (s *Server) followCRLs(ctx context.Context) {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.LabelSelector = revocationdata.ConfigMapLabel + "=true"
			list := &corev1.ConfigMapList{}
			err := s.watcher.List(ctx, list, &client.ListOptions{Raw: &opts})
			return list, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.LabelSelector = revocationdata.ConfigMapLabel + "=true"
			return s.watcher.Watch(ctx, &corev1.ConfigMapList{}, &client.ListOptions{Raw: &opts})
		},
	}
	go cache.NewReflectorWithOptions(lw, &corev1.ConfigMap{}, s.crls, cache.ReflectorOptions{Name: "quill-crls"}).RunWithContext(ctx)
}

// listedStore is the reflector's store of CRL ConfigMaps, which knows
// whether the first list has been read.
type listedStore struct {
	cache.Store
	listed atomic.Bool
}

// Replace implements cache.ReflectorStore; the reflector calls it with
// every ConfigMap after each (re)list.
func (l *listedStore) Replace(list []any, resourceVersion string) error {
	err := l.Store.Replace(list, resourceVersion)
	if err == nil {
		l.listed.Store(true)
	}
	return err
}

// NeedLeaderElection is false: every replica serves.
func (s *Server) NeedLeaderElection() bool { return false }

// invalidate drops cached OCSP answers whose certificate's state changed.
func (s *Server) invalidate(c ledger.Change) {
	s.mu.Lock()
	ir := s.responders[c.Issuer]
	s.mu.Unlock()
	if ir == nil {
		return
	}
	ir.mu.Lock()
	resp := ir.resp
	ir.mu.Unlock()
	if resp == nil {
		return
	}
	if c.Serial == nil {
		resp.InvalidateAll()
	} else {
		resp.Invalidate(c.Serial)
	}
}

// route dispatches /crl/<issuer>.crl and /ocsp/<issuer>[/<request>], where
// <issuer> is clusterissuer/<name> or issuer/<namespace>/<name>.
func (s *Server) route(w http.ResponseWriter, req *http.Request) {
	path := req.URL.Path
	raw := req.URL.EscapedPath()
	switch {
	case strings.HasPrefix(path, "/crl/") && strings.HasSuffix(path, ".crl"):
		k, _, rest, ok := revocationdata.ParseIssuerPath(strings.TrimSuffix(strings.TrimPrefix(path, "/crl/"), ".crl"))
		if !ok || rest != "" {
			http.NotFound(w, req)
			return
		}
		// Only an existing issuer has a CRL: a labelled ConfigMap anyone
		// may create in a namespace must not make one up.
		spec, err := s.issuerSpec(req.Context(), k)
		if err != nil {
			var nf *notServed
			if errors.As(err, &nf) {
				http.NotFound(w, req)
				return
			}
			logf.FromContext(req.Context()).Error(err, "CRL unavailable", "issuer", k.String())
			w.Header().Set("Retry-After", "5")
			http.Error(w, "CRL unavailable", http.StatusServiceUnavailable)
			return
		}
		if s.watcher != nil && !s.crls.listed.Load() {
			// The CRL ConfigMaps are not read yet: a 404 now would be a
			// wrong answer for an issuer that has published one.
			w.Header().Set("Retry-After", "1")
			http.Error(w, "CRL not loaded yet", http.StatusServiceUnavailable)
			return
		}
		src := s.crlSource(k)
		if src == nil {
			http.NotFound(w, req)
			return
		}
		src.refresh(req.Context(), spec)
		src.handler.ServeHTTP(w, req)
	case strings.HasPrefix(path, "/ocsp/"):
		k, segments, _, ok := revocationdata.ParseIssuerPath(strings.TrimPrefix(path, "/ocsp/"))
		if !ok {
			http.NotFound(w, req)
			return
		}
		resp, err := s.responder(req.Context(), k)
		if err != nil {
			var nf *notServed
			if errors.As(err, &nf) {
				http.NotFound(w, req)
				return
			}
			logf.FromContext(req.Context()).Error(err, "OCSP responder unavailable", "issuer", k.String())
			w.Header().Set("Retry-After", "5")
			http.Error(w, "OCSP responder unavailable", http.StatusServiceUnavailable)
			return
		}
		// Hand the responder the part after the issuer, cut from the
		// escaped path by segments (base64 in a GET request may contain
		// "/" and "+", and a client may percent-encode any segment).
		segments++ // with "ocsp": parts[segments] is the issuer's last segment
		rest := "/"
		if parts := strings.SplitN(raw, "/", segments+2); len(parts) == segments+2 {
			rest += parts[segments+1]
		}
		unescaped, err := url.PathUnescape(rest)
		if err != nil {
			http.Error(w, "malformed request path", http.StatusBadRequest)
			return
		}
		r2 := req.Clone(req.Context())
		r2.URL.RawPath, r2.URL.Path = rest, unescaped
		resp.ServeHTTP(w, r2)
	default:
		http.NotFound(w, req)
	}
}

func (s *Server) home(k quillv1.IssuerID) string {
	return k.HomeNamespace(s.clusterNamespace)
}

// crlSource is one issuer's CRL as served: the last version read from its
// ConfigMaps that passed revocationdata.ServableCRL.
type crlSource struct {
	s       *Server
	k       quillv1.IssuerID
	handler http.Handler

	mu         sync.Mutex
	lastRV     string            // main ConfigMap version der was read from
	lastCA     *x509.Certificate // CA it was verified under
	checkedAt  time.Time         // when the CA was last compared
	der        []byte
	this, next time.Time
}

// crlSource is k's, or nil while k has published no ConfigMap Quill owns.
// Sources are kept only for existing issuers that published a CRL, so
// requests naming made-up issuers cost no memory.
func (s *Server) crlSource(k quillv1.IssuerID) *crlSource {
	s.mu.Lock()
	defer s.mu.Unlock()
	if src, ok := s.crlServers[k]; ok {
		return src
	}
	if cm, ok := s.crlConfigMap(k); !ok || !owned.Marked(cm, k.String()) {
		return nil
	}
	src := &crlSource{s: s, k: k}
	src.handler = ocspserver.CRLHandler(src.current, s.clock.Now)
	s.crlServers[k] = src
	return src
}

// crlConfigMap is k's main CRL ConfigMap from the watch's store.
func (s *Server) crlConfigMap(k quillv1.IssuerID) (*corev1.ConfigMap, bool) {
	obj, ok, _ := s.crls.GetByKey(s.home(k) + "/" + revocationdata.CRLConfigMapName(k.Name))
	if !ok {
		return nil, false
	}
	return obj.(*corev1.ConfigMap), true
}

// current is the CRLGetter of the source's handler.
func (c *crlSource) current() ([]byte, time.Time, time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.der, c.this, c.next, c.der != nil
}

// refresh reads a new CRL version when the ConfigMap or the CA changed,
// checking it with revocationdata.ServableCRL. While the new version does
// not pass (its parts are still being written, or the CA was just
// replaced and the leader has not re-signed yet), the last good one stays
// served; one that never passed is a 503.
func (c *crlSource) refresh(ctx context.Context, spec *quillv1.IssuerSpec) {
	s := c.s
	cm, ok := s.crlConfigMap(c.k)
	if !ok {
		return
	}
	now := s.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if cm.ResourceVersion == c.lastRV && now.Sub(c.checkedAt) < responderRefresh {
		return // the CA is looked at as often as OCSP looks at it, not per request
	}
	a, err := s.store.Load(ctx, s.home(c.k), spec.CA)
	if err != nil {
		return // the issuer's status says why; the last good CRL stays served
	}
	c.checkedAt = now
	if cm.ResourceVersion == c.lastRV && a.Certificate == c.lastCA {
		return
	}
	home := s.home(c.k)
	der, err := revocationdata.ServableCRL(c.k, a.Certificate, cm, func(name string) (*corev1.ConfigMap, bool) {
		o, ok, _ := s.crls.GetByKey(home + "/" + name)
		if !ok {
			return nil, false
		}
		return o.(*corev1.ConfigMap), true
	})
	if err != nil {
		if !errors.Is(err, revocationdata.ErrCRLIncomplete) {
			logf.FromContext(ctx).Info("CRL ConfigMap not served", "issuer", c.k.String(), "configMap", home+"/"+cm.Name, "reason", err.Error())
		}
		return
	}
	c.der, c.lastRV, c.lastCA = der, cm.ResourceVersion, a.Certificate
	c.this, _ = time.Parse(time.RFC3339, cm.Annotations[revocationdata.AnnCRLThisUpdate])
	c.next, _ = time.Parse(time.RFC3339, cm.Annotations[revocationdata.AnnCRLNextUpdate])
}

// notServed is an issuer that does not exist.
type notServed struct{ k quillv1.IssuerID }

func (e *notServed) Error() string { return e.k.String() + " not found" }

// ledgerSource answers the responder's lookups from the index.
type ledgerSource struct {
	index *ledger.Index
	k     quillv1.IssuerID
}

func (l ledgerSource) Lookup(serial *big.Int) (ocspserver.Status, bool) {
	r, ok := l.index.Lookup(l.k, serial)
	if !ok {
		return ocspserver.Status{}, false
	}
	return ocspserver.Status{
		Revoked: r.Revoked, RevokedAt: r.RevokedAt, Reason: r.Reason, NotAfter: r.NotAfter,
		NoRevocationAvailable: r.NoRevocationAvailable,
	}, true
}

// responder returns k's OCSP responder, rebuilding it when the CA or the
// delegated responder changed since the last check.
//
// Only existing issuers get an entry, and a deleted issuer's entry goes at
// its next check, so requests naming made-up issuers cost no memory.
func (s *Server) responder(ctx context.Context, k quillv1.IssuerID) (*ocspserver.Responder, error) {
	s.mu.Lock()
	ir := s.responders[k]
	s.mu.Unlock()
	if ir == nil {
		if _, err := s.issuerSpec(ctx, k); err != nil {
			return nil, err
		}
		s.mu.Lock()
		if ir = s.responders[k]; ir == nil {
			ir = &issuerResponder{}
			s.responders[k] = ir
		}
		s.mu.Unlock()
	}
	now := s.clock.Now()
	ir.mu.Lock()
	defer ir.mu.Unlock()
	if ir.resp != nil && now.Sub(ir.checkedAt) < responderRefresh {
		return ir.resp, nil
	}
	spec, err := s.issuerSpec(ctx, k)
	if err != nil {
		var nf *notServed
		if errors.As(err, &nf) {
			s.mu.Lock()
			delete(s.responders, k)
			s.mu.Unlock()
		}
		return nil, err
	}
	// While the CA or the responder Secret cannot be read, the last good
	// responder keeps answering (the issuer's status tells what is wrong),
	// and the next look is a refresh period away, not one API read per
	// OCSP request.
	keepLast := func(err error) (*ocspserver.Responder, error) {
		if ir.resp == nil {
			return nil, err
		}
		ir.checkedAt = now
		return ir.resp, nil
	}
	a, err := s.store.Load(ctx, s.home(k), spec.CA)
	if err != nil {
		return keepLast(err)
	}
	key, cert, rv, err := s.signingIdentity(ctx, k, spec, a)
	if err != nil {
		return keepLast(err)
	}
	validity := revocationdata.DefaultOCSPValidity
	if d := spec.Revocation.OCSP.ResponseValidity; d != nil {
		validity = d.Duration
	}
	var nonceRate float64 // zero: ocspserver's default
	if n := spec.Revocation.OCSP.MaxNonceSignaturesPerSecond; n != nil {
		nonceRate = float64(*n)
	}
	var alg x509.SignatureAlgorithm
	if cert == nil {
		if alg, err = issuance.SignatureAlgorithmFor(a.Certificate.PublicKey, spec.Issuance.RSASignatureScheme == quillv1.RSASignatureSchemePSS); err != nil {
			return nil, err
		}
	}
	switch {
	case ir.resp == nil || ir.authority != a || ir.validity != validity || ir.alg != alg || ir.nonceRate != nonceRate:
		resp, err := ocspserver.New(ocspserver.Config{
			Issuer: a.Certificate, Source: ledgerSource{index: s.index, k: k}, Key: key, ResponderCert: cert,
			SignatureAlgorithm: alg, Validity: validity, Now: s.clock.Now, NonceSignaturesPerSecond: nonceRate,
			SharedNonceBudget: s.nonceBudget,
			// Until the index has read the whole ledger, a serial it lacks
			// may be one revoked long ago: tryLater, not "unknown".
			Ready:   s.index.Synced,
			OnError: func(err error) { logf.FromContext(ctx).Error(err, "OCSP", "issuer", k.String()) },
		})
		if err != nil {
			return nil, fmt.Errorf("OCSP responder for %s: %w", k, err)
		}
		ir.resp, ir.authority, ir.signerRV, ir.validity, ir.alg, ir.nonceRate = resp, a, rv, validity, alg, nonceRate
	case ir.signerRV != rv:
		if err := ir.resp.SetSigner(key, cert, alg); err != nil {
			return nil, fmt.Errorf("OCSP responder for %s: %w", k, err)
		}
		ir.signerRV = rv
	}
	ir.checkedAt = now
	return ir.resp, nil
}

func (s *Server) issuerSpec(ctx context.Context, k quillv1.IssuerID) (*quillv1.IssuerSpec, error) {
	iss := k.NewObject()
	err := s.cached.Get(ctx, k.NamespacedName(), iss)
	if err == nil {
		return iss.GetSpec(), nil
	}
	if apierrors.IsNotFound(err) {
		return nil, &notServed{k}
	}
	return nil, err
}

// signingIdentity is the key (and delegated certificate, nil for the CA)
// that signs k's OCSP answers; rv identifies the responder Secret's
// version. Until the leader has issued a usable delegated responder,
// answers are signed by the CA.
func (s *Server) signingIdentity(ctx context.Context, k quillv1.IssuerID, spec *quillv1.IssuerSpec, a *issuance.Authority) (crypto.Signer, *x509.Certificate, string, error) {
	if revocationdata.ResponderKind(spec) != quillv1.OCSPResponderDelegated {
		return a.Signer, nil, "", nil
	}
	var sec corev1.Secret
	err := s.reader.Get(ctx, types.NamespacedName{Namespace: s.home(k), Name: revocationdata.OCSPResponderSecretName(k.Name)}, &sec)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return a.Signer, nil, "", nil
		}
		return nil, nil, "", err
	}
	cert, key, err := revocationdata.ParseResponderSecret(&sec, a, s.clock.Now())
	if err != nil {
		logf.FromContext(ctx).Info("delegated OCSP responder unusable; signing as the CA", "issuer", k.String(), "reason", err.Error())
		return a.Signer, nil, "", nil
	}
	return key, cert, sec.ResourceVersion, nil
}
