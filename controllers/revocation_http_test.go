package controllers

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/client-go/tools/cache"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/quill-pki/quill/pkg/ledger"
)

// TestRevocationServerUnknownIssuers: CRL and OCSP requests that name
// issuers which do not exist get 404 and leave nothing behind, however
// many names a client makes up.
func TestRevocationServerUnknownIssuers(t *testing.T) {
	t.Parallel()
	s := &revocationServer{
		cached:           newAPI(t),
		index:            ledger.NewIndex(),
		clusterNamespace: "quill-system",
		clock:            clocktesting.NewFakePassiveClock(testNow),
		crls:             cache.NewStore(cache.MetaNamespaceKeyFunc),
		responders:       map[ledger.IssuerKey]*issuerResponder{},
		crlServers:       map[ledger.IssuerKey]http.Handler{},
	}
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
			s.route(rec, req)
			if rec.Code != http.StatusNotFound {
				t.Fatalf("%s %s: HTTP %d, want 404", req.Method, req.URL.Path, rec.Code)
			}
		}
	}
	if len(s.responders) != 0 || len(s.crlServers) != 0 {
		t.Errorf("made-up issuers left %d responders and %d CRL handlers", len(s.responders), len(s.crlServers))
	}
}
