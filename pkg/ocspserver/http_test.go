package ocspserver

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/quill-pki/quill/pkg/issuance"
)

const testPrefix = "/ocsp/QuillIssuer/team-a/issuing/"

// httpFixture serves one CA's responder and CRL on loopback, each under its
// prefix as the controller's router mounts them.
type httpFixture struct {
	ca     *testCA
	r      *Responder
	srv    *httptest.Server
	crl    atomic.Pointer[[]byte]
	client *http.Client
}

func newHTTPFixture(t *testing.T) *httpFixture {
	t.Helper()
	f := &httpFixture{ca: newTestCA(t, issuance.ECDSAP256, 0)}
	f.r = f.ca.responder(t)
	crlGetter := func() ([]byte, time.Time, time.Time, bool) {
		p := f.crl.Load()
		if p == nil {
			return nil, time.Time{}, time.Time{}, false
		}
		return *p, testNow, testNow.Add(2 * time.Hour), true
	}
	const crlPrefix = "/crl/QuillIssuer/team-a/issuing/"
	ocspHandler := stripped(testPrefix, f.r)
	crlHandler := stripped(crlPrefix, CRLHandler(crlGetter, func() time.Time { return testNow.Add(30 * time.Minute) }))
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, crlPrefix) {
			crlHandler.ServeHTTP(w, r)
			return
		}
		ocspHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	f.client = f.srv.Client()
	return f
}

func (f *httpFixture) do(t *testing.T, method, path string, body []byte, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body = nil
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func ocspPost() http.Header {
	return http.Header{"Content-Type": {ContentTypeOCSPRequest}}
}

// awkwardRequest finds a request (varying the serial) whose base64 has '+'
// and "//": clients that do not escape the path send both as they are.
func awkwardRequest(t *testing.T, ca *testCA) ([]byte, string) {
	t.Helper()
	spec := specFor(t, ca, ca.leaves["good"], crypto.SHA1)
	for i := range 100000 {
		spec.serial = big.NewInt(int64(1_000_000 + i))
		der := buildRequest(t, spec)
		enc := base64.StdEncoding.EncodeToString(der)
		if strings.Contains(enc, "+") && strings.Contains(enc, "//") {
			return der, enc
		}
	}
	t.Fatal("no request with '+' and '//' in its base64")
	return nil, ""
}

func TestHTTPGetForms(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	good := goRequest(t, f.ca.leaves["good"], f.ca.cert, crypto.SHA1)
	awkward, awkwardEnc := awkwardRequest(t, f.ca)
	tests := []struct {
		name string
		path string
		der  []byte
	}{
		{name: "escaped", path: url.PathEscape(base64.StdEncoding.EncodeToString(good)), der: good},
		{name: "escaped-awkward", path: url.PathEscape(awkwardEnc), der: awkward},
		{name: "unescaped-awkward", path: awkwardEnc, der: awkward},
		{name: "url-alphabet", path: base64.URLEncoding.EncodeToString(awkward), der: awkward},
		{name: "no-padding", path: strings.TrimRight(url.PathEscape(awkwardEnc), "="), der: awkward},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := f.do(t, http.MethodGet, testPrefix+tt.path, nil, nil)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ContentTypeOCSPResponse {
				t.Fatalf("status %d, type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			want, err := ParseRequest(tt.der)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ocsp.ParseResponse(body, f.ca.cert)
			if err != nil || got.SerialNumber.Cmp(want.Serial) != 0 {
				t.Fatalf("response %+v, %v; want serial %s", got, err, want.Serial)
			}
		})
	}
}

func TestHTTPCachingHeaders(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	der := goRequest(t, f.ca.leaves["revoked"], f.ca.cert, crypto.SHA256)
	path := testPrefix + url.PathEscape(base64.StdEncoding.EncodeToString(der))

	resp, body := f.do(t, http.MethodGet, path, nil, nil)
	h := resp.Header
	want := map[string]string{
		"Cache-Control": "max-age=3600, public, no-transform, must-revalidate",
		"Last-Modified": testNow.Format(http.TimeFormat),
		"Expires":       testNow.Add(time.Hour).Format(http.TimeFormat),
	}
	for k, v := range want {
		if h.Get(k) != v {
			t.Errorf("%s: %q, want %q", k, h.Get(k), v)
		}
	}
	etag := h.Get("ETag")
	if len(etag) != 66 || etag[0] != '"' {
		t.Errorf("ETag %q is not a quoted SHA-256", etag)
	}
	if got, err := ocsp.ParseResponse(body, f.ca.cert); err != nil || got.Status != ocsp.Revoked {
		t.Fatalf("GET answer: %+v %v", got, err)
	}

	resp, body = f.do(t, http.MethodGet, path, nil, http.Header{"If-None-Match": {`"other", ` + etag}})
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("If-None-Match: status %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, body = f.do(t, http.MethodHead, path, nil, nil)
	if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.Header.Get("ETag") != etag {
		t.Errorf("HEAD: status %d, %d bytes, etag %q", resp.StatusCode, len(body), resp.Header.Get("ETag"))
	}

	// POST answers are the same bytes but not for shared caches.
	resp, body = f.do(t, http.MethodPost, testPrefix, der, ocspPost())
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("ETag") != "" {
		t.Errorf("POST: status %d, Cache-Control %q, ETag %q", resp.StatusCode, resp.Header.Get("Cache-Control"), resp.Header.Get("ETag"))
	}
	if got, err := ocsp.ParseResponse(body, f.ca.cert); err != nil || got.Status != ocsp.Revoked {
		t.Fatalf("POST answer: %+v %v", got, err)
	}

	// GET with a nonce is answered fresh and marked uncacheable.
	spec := specFor(t, f.ca, f.ca.leaves["good"], crypto.SHA1)
	spec.nonceValue = octetNonce(16)
	resp, _ = f.do(t, http.MethodGet, testPrefix+url.PathEscape(base64.StdEncoding.EncodeToString(buildRequest(t, spec))), nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("GET with nonce: status %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
}

func TestHTTPRefusals(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	good := goRequest(t, f.ca.leaves["good"], f.ca.cert, crypto.SHA1)
	other := newTestCA(t, issuance.ECDSAP256, 3)
	tests := []struct {
		name       string
		method     string
		path       string
		body       []byte
		header     http.Header
		wantStatus int
		wantOCSP   ocsp.ResponseStatus // checked when wantStatus is 200
	}{
		{name: "put", method: http.MethodPut, path: testPrefix, body: good, wantStatus: http.StatusMethodNotAllowed},
		{name: "post-text", method: http.MethodPost, path: testPrefix, body: good, header: http.Header{"Content-Type": {"text/plain"}}, wantStatus: http.StatusUnsupportedMediaType},
		{name: "post-too-large", method: http.MethodPost, path: testPrefix, body: make([]byte, MaxRequestBytes+1), header: ocspPost(), wantStatus: http.StatusRequestEntityTooLarge},
		{name: "get-too-long", method: http.MethodGet, path: testPrefix + strings.Repeat("A", MaxGETPathBytes+4), wantStatus: http.StatusRequestURITooLong},
		{name: "get-not-base64", method: http.MethodGet, path: testPrefix + "not*base64", wantStatus: http.StatusBadRequest},
		{name: "get-empty", method: http.MethodGet, path: testPrefix, wantStatus: http.StatusBadRequest},
		{name: "unknown-issuer-path", method: http.MethodPost, path: "/ocsp/QuillIssuer/team-b/issuing/", body: good, header: ocspPost(), wantStatus: http.StatusNotFound},
		{name: "root", method: http.MethodGet, path: "/", wantStatus: http.StatusNotFound},
		{name: "post-garbage", method: http.MethodPost, path: testPrefix, body: []byte{0x30, 0x03, 0x01, 0x01, 0xff}, header: ocspPost(), wantStatus: http.StatusOK, wantOCSP: ocsp.Malformed},
		{name: "post-empty", method: http.MethodPost, path: testPrefix, body: []byte{}, header: ocspPost(), wantStatus: http.StatusOK, wantOCSP: ocsp.Malformed},
		{name: "post-no-content-type", method: http.MethodPost, path: testPrefix, body: []byte("junk"), wantStatus: http.StatusOK, wantOCSP: ocsp.Malformed},
		{name: "get-base64-garbage", method: http.MethodGet, path: testPrefix + "MAA=", wantStatus: http.StatusOK, wantOCSP: ocsp.Malformed},
		{name: "other-issuer", method: http.MethodPost, path: testPrefix, body: goRequest(t, other.leaves["good"], other.cert, crypto.SHA1), header: ocspPost(), wantStatus: http.StatusOK, wantOCSP: ocsp.Unauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := f.do(t, tt.method, tt.path, tt.body, tt.header)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %q", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != "GET, HEAD, POST" {
				t.Errorf("Allow %q", resp.Header.Get("Allow"))
			}
			if tt.wantStatus != http.StatusOK {
				return
			}
			_, err := ocsp.ParseResponse(body, nil)
			re, ok := err.(ocsp.ResponseError)
			if !ok || re.Status != tt.wantOCSP || resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("got %v (Cache-Control %q), want OCSP %v", err, resp.Header.Get("Cache-Control"), tt.wantOCSP)
			}
		})
	}
}

func TestCRLHandler(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	const path = "/crl/QuillIssuer/team-a/issuing/ca.crl"
	resp, _ := f.do(t, http.MethodGet, path, nil, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("no CRL yet: status %d", resp.StatusCode)
	}
	crl := []byte("pretend DER CRL bytes")
	f.crl.Store(&crl)
	resp, body := f.do(t, http.MethodGet, path, nil, nil)
	h := resp.Header
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, crl) || h.Get("Content-Type") != ContentTypeCRL {
		t.Fatalf("status %d type %q body %q", resp.StatusCode, h.Get("Content-Type"), body)
	}
	// The clock is 30 minutes past thisUpdate; nextUpdate is 2 h after it.
	if h.Get("Cache-Control") != "max-age=5400, public, no-transform, must-revalidate" ||
		h.Get("Expires") != testNow.Add(2*time.Hour).Format(http.TimeFormat) ||
		h.Get("Last-Modified") != testNow.Format(http.TimeFormat) {
		t.Errorf("headers %v", h)
	}
	etag := h.Get("ETag")
	resp, body = f.do(t, http.MethodGet, path, nil, http.Header{"If-None-Match": {etag}})
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}
	// A new CRL gets a new tag.
	crl2 := []byte("another CRL")
	f.crl.Store(&crl2)
	resp, body = f.do(t, http.MethodGet, path, nil, http.Header{"If-None-Match": {etag}})
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, crl2) || resp.Header.Get("ETag") == etag {
		t.Errorf("after republishing: %d %q etag %q", resp.StatusCode, body, resp.Header.Get("ETag"))
	}
	resp, _ = f.do(t, http.MethodPost, path, []byte("x"), nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", resp.StatusCode)
	}
}

func TestNewServer(t *testing.T) {
	t.Parallel()
	s := NewServer("127.0.0.1:0", http.NotFoundHandler())
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= MaxGETPathBytes {
		t.Errorf("server limits not set: %+v", s)
	}
}

// stripped serves h under prefix (ending in "/") as the controller's router
// (controllers/revocationhttp) hands requests to a responder: the prefix
// goes from both Path and RawPath, paths are not cleaned, and the prefix
// without its slash is h's root; anything else is 404.
func stripped(prefix string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		if path+"/" == prefix {
			path = prefix
		}
		rest, ok := strings.CutPrefix(path, prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = "/"+rest, ""
		if rp, ok := strings.CutPrefix(r.URL.RawPath, prefix); ok {
			r2.URL.RawPath = "/" + rp
		}
		h.ServeHTTP(w, r2)
	})
}
