package ocspserver

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HTTP limits. An OCSP request for one certificate with a 32-octet nonce is
// about 120 octets of DER; the limits leave room for signed requests and
// extensions while keeping what one connection can make the server read
// small.
const (
	// MaxRequestBytes bounds a POST body.
	MaxRequestBytes = 4 << 10
	// MaxGETPathBytes bounds the (escaped) path of a GET request after the
	// responder's prefix.
	MaxGETPathBytes = 4 << 10
)

// Media types of RFC 6960 Appendix C and RFC 5280 §4.2.1.13 (via RFC 2585).
const (
	ContentTypeOCSPRequest  = "application/ocsp-request"
	ContentTypeOCSPResponse = "application/ocsp-response"
	ContentTypeCRL          = "application/pkix-crl"
)

// ServeHTTP answers OCSP over HTTP as RFC 6960 Appendix A and RFC 5019
// describe:
//
//   - GET (and HEAD) with the base64 DER request, URL-escaped, as the path
//     after the responder's prefix; POST with the DER request as the body
//     (Content-Type application/ocsp-request, or none).
//   - Anything that can carry OCSP request bytes gets an OCSP response with
//     status 200, as responders do: requests that do not parse get
//     malformedRequest, requests about another CA unauthorized.
//   - Transport-level garbage that cannot be an OCSP request gets a 4xx and
//     a short text: other methods 405, a POST with another content type
//     415, a body over MaxRequestBytes 413, a GET path over
//     MaxGETPathBytes 414, a GET path that is not base64 (or empty) 400.
//   - Successful answers to GET without a nonce carry the RFC 5019 §6
//     caching headers (Cache-Control max-age up to nextUpdate, public,
//     no-transform, must-revalidate; Last-Modified = thisUpdate; Expires =
//     nextUpdate; a strong ETag), and If-None-Match gets 304. POST answers,
//     answers with a nonce and error answers carry Cache-Control no-store.
//
// The Responder can be the handler at "/" itself or sit behind a router
// that strips its prefix from both Path and RawPath, as the controller's
// does (controllers/revocationhttp). Do not put http.ServeMux in front of
// it: ServeMux redirects paths with "//", which base64 contains.
func (r *Responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var der []byte
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		var status int
		if der, status = requestFromPath(req); status != 0 {
			httpError(w, status)
			return
		}
	case http.MethodPost:
		var status int
		if der, status = requestFromBody(w, req); status != 0 {
			httpError(w, status)
			return
		}
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		httpError(w, http.StatusMethodNotAllowed)
		return
	}
	resp := r.Respond(der)
	h := w.Header()
	h.Set("Content-Type", ContentTypeOCSPResponse)
	if resp.Cacheable && req.Method != http.MethodPost {
		now := r.now()
		maxAge := max(int64(resp.NextUpdate.Sub(now)/time.Second), 0)
		h.Set("Cache-Control", "max-age="+strconv.FormatInt(maxAge, 10)+", public, no-transform, must-revalidate")
		h.Set("Last-Modified", resp.ThisUpdate.UTC().Format(http.TimeFormat))
		h.Set("Expires", resp.NextUpdate.UTC().Format(http.TimeFormat))
		h.Set("ETag", resp.ETag)
		if etagMatches(req.Header.Get("If-None-Match"), resp.ETag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	} else {
		h.Set("Cache-Control", "no-store")
	}
	h.Set("Content-Length", strconv.Itoa(len(resp.DER)))
	w.WriteHeader(http.StatusOK)
	if req.Method != http.MethodHead {
		_, _ = w.Write(resp.DER)
	}
}

// requestFromPath decodes the GET form. It returns an HTTP status for paths
// that cannot hold a request.
func requestFromPath(req *http.Request) ([]byte, int) {
	if len(req.URL.RawPath) > MaxGETPathBytes || len(req.URL.Path) > MaxGETPathBytes {
		return nil, http.StatusRequestURITooLong
	}
	// req.URL.Path is already unescaped, and unescaping leaves '+' alone,
	// so what is left is base64. Clients that do not escape '/' put the
	// request across path segments, which joins them back.
	enc := strings.TrimPrefix(req.URL.Path, "/")
	if enc == "" {
		return nil, http.StatusBadRequest
	}
	// RFC 6960 names plain base64; some clients send the URL alphabet or
	// leave out the padding.
	for _, e := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if der, err := e.DecodeString(enc); err == nil {
			return der, 0
		}
	}
	return nil, http.StatusBadRequest
}

func requestFromBody(w http.ResponseWriter, req *http.Request) ([]byte, int) {
	if ct := req.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != ContentTypeOCSPRequest {
			return nil, http.StatusUnsupportedMediaType
		}
	}
	if req.ContentLength > MaxRequestBytes {
		return nil, http.StatusRequestEntityTooLarge
	}
	der, err := io.ReadAll(http.MaxBytesReader(w, req.Body, MaxRequestBytes))
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			return nil, http.StatusRequestEntityTooLarge
		}
		return nil, http.StatusBadRequest
	}
	return der, 0
}

func httpError(w http.ResponseWriter, status int) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = fmt.Fprintln(w, http.StatusText(status))
}

// etagMatches implements the weak comparison If-None-Match asks for
// (RFC 9110 §13.1.2) against one strong tag.
func etagMatches(header, etag string) bool {
	if header == "" || etag == "" {
		return false
	}
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// CRLGetter returns the current DER CRL of an issuer and its thisUpdate and
// nextUpdate, or ok=false while there is none yet. The returned slice must
// not be modified afterwards (publish a new one instead).
type CRLGetter func() (der []byte, thisUpdate, nextUpdate time.Time, ok bool)

// CRLHandler serves the CRL get returns (GET and HEAD) as
// application/pkix-crl, with Cache-Control max-age up to nextUpdate,
// Last-Modified = thisUpdate, Expires = nextUpdate and a strong ETag, and
// answers If-None-Match / If-Modified-Since with 304 and Range requests as
// net/http does. While there is no CRL it answers 503 with Retry-After.
// now is the clock (nil: time.Now).
func CRLHandler(get CRLGetter, now func() time.Time) http.Handler {
	if now == nil {
		now = time.Now
	}
	return &crlHandler{get: get, now: now}
}

type crlHandler struct {
	get func() ([]byte, time.Time, time.Time, bool)
	now func() time.Time

	mu       sync.Mutex
	lastDER  []byte
	lastETag string
}

func (c *crlHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpError(w, http.StatusMethodNotAllowed)
		return
	}
	der, thisUpdate, nextUpdate, ok := c.get()
	if !ok || len(der) == 0 {
		w.Header().Set("Retry-After", "5")
		httpError(w, http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h.Set("Content-Type", ContentTypeCRL)
	h.Set("ETag", c.etag(der))
	maxAge := max(int64(nextUpdate.Sub(c.now())/time.Second), 0)
	h.Set("Cache-Control", "max-age="+strconv.FormatInt(maxAge, 10)+", public, no-transform, must-revalidate")
	h.Set("Expires", nextUpdate.UTC().Format(http.TimeFormat))
	http.ServeContent(w, req, "", thisUpdate, bytes.NewReader(der))
}

// etag hashes a CRL once per published version rather than once per
// request: a 100k-entry CRL is megabytes.
func (c *crlHandler) etag(der []byte) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(der) == len(c.lastDER) && &der[0] == &c.lastDER[0] {
		return c.lastETag
	}
	sum := sha256.Sum256(der)
	c.lastDER, c.lastETag = der, `"`+hex.EncodeToString(sum[:])+`"`
	return c.lastETag
}

// NewServer returns an http.Server for addr serving h with timeouts and
// limits fit for a public OCSP and CRL endpoint: headers within 5 s, a whole
// request within 10 s, a response (a CRL of megabytes to a slow client)
// within 60 s, idle keep-alive connections closed after 2 minutes, and
// request headers (the GET form of OCSP included) of at most 16 KiB.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
}
