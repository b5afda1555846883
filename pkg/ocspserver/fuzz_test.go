package ocspserver

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/quill-pki/quill/pkg/issuance"
)

// seedRequests are valid and broken requests for the fuzz corpora: every
// CertID hash, nonces of both encodings, signed requests, and the
// refusals TestParseRequest lists.
func seedRequests(t testing.TB, ca *testCA) [][]byte {
	var seeds [][]byte
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		seeds = append(seeds, goRequest(t, ca.leaves["good"], ca.cert, h), goRequest(t, ca.leaves["revoked"], ca.cert, h))
	}
	base := specFor(t, ca, ca.leaves["unknown"], crypto.SHA256)
	v1, v3 := int64(0), int64(2)
	for _, f := range []func(*reqSpec){
		func(s *reqSpec) { s.nonceValue = octetNonce(32) },
		func(s *reqSpec) { s.nonceValue = []byte{1, 2, 3, 4, 5, 6, 7, 8} },
		func(s *reqSpec) { s.version, s.requestorName, s.signature, s.singleExt = &v1, true, true, true },
		func(s *reqSpec) { s.version = &v3 },
		func(s *reqSpec) { s.count = 2 },
		func(s *reqSpec) { s.count = -1 },
		func(s *reqSpec) { s.trailing = true },
		func(s *reqSpec) { s.nonceValue = octetNonce(33) },
		func(s *reqSpec) { s.nonceValue, s.nonceTwice = octetNonce(4), true },
		func(s *reqSpec) { s.criticalExt = true },
		func(s *reqSpec) { s.keyHash = s.keyHash[:3] },
	} {
		s := base
		f(&s)
		seeds = append(seeds, buildRequest(t, s))
	}
	valid := seeds[0]
	seeds = append(seeds, nil, []byte{0x30, 0x00}, valid[:len(valid)/2], append(bytes.Clone(valid), 0x30, 0x00))
	return seeds
}

// FuzzParseRequest checks that no input panics the parser, that every
// refusal is classified, and that what it accepts is a request the
// responder answers with a signed response or unauthorized.
func FuzzParseRequest(f *testing.F) {
	ca := newTestCA(f, issuance.ECDSAP256, 0)
	for _, s := range seedRequests(f, ca) {
		f.Add(s)
	}
	r := ca.responder(f, func(c *Config) { c.CacheEntries = 256 })
	f.Fuzz(func(t *testing.T, der []byte) {
		req, err := ParseRequest(der)
		if err != nil {
			if !errors.Is(err, ErrMalformedRequest) || req != nil {
				t.Fatalf("unclassified refusal: %v", err)
			}
			if resp := r.Respond(der); resp.Status != MalformedRequest {
				t.Fatalf("refused request answered %s", resp.Status)
			}
			return
		}
		if req.Serial == nil || len(req.IssuerNameHash) != req.HashAlgorithm.Size() || len(req.IssuerKeyHash) != req.HashAlgorithm.Size() {
			t.Fatalf("accepted an inconsistent request: %+v", req)
		}
		if req.Nonce != nil && len(req.Nonce) > MaxNonceLength+2 {
			t.Fatalf("accepted a %d-octet nonce", len(req.Nonce))
		}
		resp := r.Respond(der)
		switch resp.Status {
		case Successful:
			got, err := ocsp.ParseResponse(resp.DER, ca.cert)
			if err != nil || got.SerialNumber.Cmp(req.Serial) != 0 {
				t.Fatalf("answer does not verify: %v", err)
			}
		case Unauthorized:
		default:
			t.Fatalf("accepted request answered %s", resp.Status)
		}
	})
}

// FuzzHandler sends fuzzed bodies as POST and as GET paths through the
// HTTP handler: every answer is an OCSP response with status 200 or a 4xx,
// never a panic or a 5xx.
func FuzzHandler(f *testing.F) {
	ca := newTestCA(f, issuance.ECDSAP256, 0)
	for _, s := range seedRequests(f, ca) {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Add([]byte("/%zz"), true)
	r := ca.responder(f, func(c *Config) { c.CacheEntries = 256 })
	mux := stripped(testPrefix, r)
	f.Fuzz(func(t *testing.T, data []byte, get bool) {
		var req *http.Request
		if get {
			target := testPrefix + url.PathEscape(base64.StdEncoding.EncodeToString(data))
			if len(data) > 0 && data[0] == '/' {
				// Also raw paths, escaped or not, as clients write them.
				target = testPrefix + url.PathEscape(string(data))
			}
			u, err := url.Parse(target)
			if err != nil {
				return
			}
			req = &http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}, Host: "ocsp.test"}
		} else {
			req = httptest.NewRequest(http.MethodPost, testPrefix, bytes.NewReader(data))
			req.Header.Set("Content-Type", ContentTypeOCSPRequest)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		switch {
		case rec.Code == http.StatusOK:
			if rec.Header().Get("Content-Type") != ContentTypeOCSPResponse {
				t.Fatalf("200 with Content-Type %q", rec.Header().Get("Content-Type"))
			}
			_, err := ocsp.ParseResponse(rec.Body.Bytes(), ca.cert)
			var re ocsp.ResponseError
			if err != nil && !errors.As(err, &re) {
				t.Fatalf("200 with a body that is no OCSP response: %v", err)
			}
		case rec.Code >= 400 && rec.Code < 500:
		default:
			t.Fatalf("status %d", rec.Code)
		}
	})
}
