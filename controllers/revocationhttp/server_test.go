package revocationhttp

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/pkg/ocspserver"
)

// TestRevocationServerUnknownIssuers: CRL and OCSP requests that name
// issuers which do not exist get 404 and leave nothing behind, however
// many names a client makes up.
func TestRevocationServerUnknownIssuers(t *testing.T) {
	t.Parallel()
	s := New(Config{
		Cached:                   newAPI(t),
		Index:                    ledger.NewIndex(),
		ClusterResourceNamespace: "quill-system",
		Clock:                    clocktesting.NewFakePassiveClock(testNow),
	})
	for i := range 200 {
		for _, req := range []*http.Request{
			httptest.NewRequest(http.MethodGet, fmt.Sprintf("/crl/clusterissuer/made-up-%d.crl", i), nil),
			httptest.NewRequest(http.MethodGet, fmt.Sprintf("/crl/issuer/ns/made-up-%d.crl", i), nil),
			httptest.NewRequest(http.MethodPost, fmt.Sprintf("/ocsp/clusterissuer/made-up-%d", i), strings.NewReader("x")),
			httptest.NewRequest(http.MethodGet, fmt.Sprintf("/ocsp/issuer/ns/made-up-%d/MEMwQTA", i), nil),
			httptest.NewRequest(http.MethodGet, "/ocsp/issuer/only-namespace", nil),
			httptest.NewRequest(http.MethodGet, "/elsewhere", nil),
		} {
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != http.StatusNotFound {
				t.Fatalf("%s %s: HTTP %d, want 404", req.Method, req.URL.Path, rec.Code)
			}
		}
	}
	if len(s.responders) != 0 || len(s.crlServers) != 0 {
		t.Errorf("made-up issuers left %d responders and %d CRL handlers", len(s.responders), len(s.crlServers))
	}
}

// TestResponderFollowsSpec: a new OCSP response validity reaches the
// running responder at its next refresh, and while the CA cannot be read
// the last good responder keeps answering without an API read per
// request.
func TestResponderFollowsSpec(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	iss := newIssuer()
	api := newAPI(t, iss, caSecret(testNamespace, "ca", newCA(t)))
	var secretReads atomic.Int32
	reader := interceptor.NewClient(api, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*corev1.Secret); ok {
				secretReads.Add(1)
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	clk := clocktesting.NewFakePassiveClock(testNow)
	s := New(Config{
		Cached: api, Reader: reader, Index: ledger.NewIndex(), Clock: clk,
		Store: &castore.Store{Reader: reader, Clock: clk},
	})
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: testNamespace, Name: "issuer"}
	first, err := s.responder(ctx, k)
	if err != nil {
		t.Fatal(err)
	}

	if err := api.Get(ctx, client.ObjectKeyFromObject(iss), iss); err != nil {
		t.Fatal(err)
	}
	iss.Spec.Revocation.OCSP.ResponseValidity = &metav1.Duration{Duration: 10 * time.Minute}
	if err := api.Update(ctx, iss); err != nil {
		t.Fatal(err)
	}
	clk.SetTime(testNow.Add(responderRefresh + time.Second))
	second, err := s.responder(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if second == first {
		t.Fatal("a new response validity did not reach the responder")
	}

	// The CA Secret goes: the last responder answers, and is looked at
	// again only after the refresh period.
	if err := api.Delete(ctx, caSecret(testNamespace, "ca", testCA{})); err != nil {
		t.Fatal(err)
	}
	clk.SetTime(testNow.Add(2 * (responderRefresh + time.Second)))
	before := secretReads.Load()
	for range 50 {
		if r, err := s.responder(ctx, k); err != nil || r != second {
			t.Fatalf("without its CA: %v, %v; want the last responder", r, err)
		}
	}
	if n := secretReads.Load() - before; n != 1 {
		t.Fatalf("%d Secret reads for 50 requests while the CA is missing, want 1", n)
	}
}

// TestRouteOCSPGet: a GET request reaches the issuer's responder with its
// base64 request intact, also when the client percent-encodes a segment
// of the issuer's path or the request's "/" and "+".
func TestRouteOCSPGet(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	api := newAPI(t, newIssuer(), caSecret(testNamespace, "ca", ca))
	clk := clocktesting.NewFakePassiveClock(testNow)
	index := ledger.NewIndex()
	if err := index.Replace(nil, "1"); err != nil { // an empty ledger, read
		t.Fatal(err)
	}
	s := New(Config{
		Cached: api, Reader: api, Index: index, Clock: clk,
		Store: &castore.Store{Reader: api, Clock: clk},
	})
	// Serial 0xfbff... makes base64 with "+" and "/" likely; any works.
	der, err := ocsp.CreateRequest(&x509.Certificate{SerialNumber: new(big.Int).SetBytes([]byte{0xfb, 0xff, 0xbf, 0x3e, 0xff})}, ca.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(der)
	for _, path := range []string{
		"/ocsp/issuer/" + testNamespace + "/issuer/" + b64,
		"/ocsp/%69ssuer/" + testNamespace + "/issuer/" + url.PathEscape(b64),
		"/ocsp/issuer/" + testNamespace + "/%69ssuer/" + strings.NewReplacer("+", "%2B", "/", "%2F").Replace(b64),
	} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: HTTP %d %s", path, rec.Code, rec.Body)
		}
		resp, err := ocsp.ParseResponse(rec.Body.Bytes(), ca.Cert)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		if resp.Status != ocsp.Unknown {
			t.Fatalf("GET %s: status %d for a serial never issued, want unknown", path, resp.Status)
		}
	}
	// POST goes to the URL certificates carry, with or without a slash.
	for _, path := range []string{"/ocsp/issuer/" + testNamespace + "/issuer", "/ocsp/issuer/" + testNamespace + "/issuer/"} {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(der))
		req.Header.Set("Content-Type", ocspserver.ContentTypeOCSPRequest)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("POST %s: HTTP %d %s", path, rec.Code, rec.Body)
		}
		if _, err := ocsp.ParseResponse(rec.Body.Bytes(), ca.Cert); err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
	}
}
