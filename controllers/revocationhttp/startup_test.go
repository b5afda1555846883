package revocationhttp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/revocationdata"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/crl"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/pkg/ocspserver"
)

var testIssuer = quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: testNamespace, Name: "issuer"}

// revokedRecord is a revoked ledger record of testIssuer as the watch
// delivers it.
func revokedRecord(serial int64) *quillv1.IssuedCertificate {
	s := big.NewInt(serial)
	return &quillv1.IssuedCertificate{
		ObjectMeta: metav1.ObjectMeta{Name: ledger.EntryName(testIssuer, s), Namespace: testNamespace},
		Spec: quillv1.IssuedCertificateSpec{
			IssuerRef: testIssuer.Ref(), SerialNumber: ledger.SerialHex(s), IssuedAt: metav1.NewMicroTime(testNow.Add(-time.Hour)),
			NotBefore: metav1.NewTime(testNow.Add(-time.Hour)), NotAfter: metav1.NewTime(testNow.Add(24 * time.Hour)), KeyAlgorithm: "ECDSA-P256",
			Origin: quillv1.LedgerOrigin{Kind: "CertificateRequest", Namespace: testNamespace, Name: "r", UID: "uid-" + strconv.FormatInt(serial, 10)},
		},
		Status: quillv1.IssuedCertificateStatus{Revocation: &quillv1.RevocationRecord{
			Reason: quillv1.ReasonKeyCompromise, RevokedAt: metav1.NewTime(testNow.Add(-time.Minute)), By: "test",
		}},
	}
}

// TestOCSPTryLaterUntilLedgerSynced is issue 15's start-up window through
// the production router: before the ledger index has read the whole
// ledger, a revoked serial gets tryLater with Cache-Control no-store (the
// old code signed "unknown" with max-age=3585, public); once it has, the
// answer is revoked.
func TestOCSPTryLaterUntilLedgerSynced(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	api := newAPI(t, newIssuer(), caSecret(testNamespace, "ca", ca))
	clk := clocktesting.NewFakePassiveClock(testNow)
	index := ledger.NewIndex()
	s := New(Config{Cached: api, Reader: api, Index: index, Clock: clk, Store: &castore.Store{Reader: api, Clock: clk}})
	der, err := ocsp.CreateRequest(&x509.Certificate{SerialNumber: big.NewInt(7)}, ca.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	ask := func() (*http.Response, *ocsp.Response, error) {
		req := httptest.NewRequest(http.MethodPost, "/ocsp/issuer/"+testNamespace+"/issuer", bytes.NewReader(der))
		req.Header.Set("Content-Type", ocspserver.ContentTypeOCSPRequest)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		resp, err := ocsp.ParseResponse(rec.Body.Bytes(), ca.Cert)
		return rec.Result(), resp, err
	}
	for range 3 {
		hr, _, err := ask()
		var re ocsp.ResponseError
		if !errors.As(err, &re) || re.Status != ocsp.TryLater {
			t.Fatalf("before the ledger is read: %v, want tryLater", err)
		}
		if cc := hr.Header.Get("Cache-Control"); cc != "no-store" {
			t.Fatalf("before the ledger is read: Cache-Control %q, want no-store", cc)
		}
	}
	if err := index.Replace([]any{revokedRecord(7)}, "10"); err != nil {
		t.Fatal(err)
	}
	if _, resp, err := ask(); err != nil || resp.Status != ocsp.Revoked {
		t.Fatalf("after the ledger is read: %+v, %v; want revoked", resp, err)
	}
}

// TestCRLServedOnlyFromOwnedConfigMaps is issue 12's forged CRL: a
// ConfigMap with the watched label is served only as the CRL of an issuer
// that exists, only when it carries Quill's ownership mark naming that
// issuer, and only when the issuer's CA signed it.
func TestCRLServedOnlyFromOwnedConfigMaps(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	other := newCA(t)
	genuine := signCRL(t, ca)
	forged := signCRL(t, other)
	owner := testIssuer.String()
	tests := []struct {
		name     string
		issuer   string // the issuer name the ConfigMap and request use
		mark     bool
		owner    string
		der      []byte
		wantCode int
	}{
		{name: "owned-and-signed", issuer: "issuer", mark: true, owner: owner, der: genuine, wantCode: http.StatusOK},
		{name: "nonexistent-issuer", issuer: "ghost", mark: true, owner: quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: testNamespace, Name: "ghost"}.String(), der: forged, wantCode: http.StatusNotFound},
		{name: "without-ownership-mark", issuer: "issuer", der: genuine, wantCode: http.StatusNotFound},
		{name: "mark-names-another-issuer", issuer: "issuer", mark: true, owner: "QuillIssuer/" + testNamespace + "/other", der: genuine, wantCode: http.StatusNotFound},
		{name: "signed-by-another-ca", issuer: "issuer", mark: true, owner: owner, der: forged, wantCode: http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := newAPI(t, newIssuer(), caSecret(testNamespace, "ca", ca))
			clk := clocktesting.NewFakePassiveClock(testNow)
			s := New(Config{Cached: api, Reader: api, Index: ledger.NewIndex(), Clock: clk, Store: &castore.Store{Reader: api, Clock: clk}})
			cm := crlConfigMap(tt.issuer, tt.der)
			if tt.mark {
				cm.Labels[quillv1.LabelManagedBy] = quillv1.ManagedByQuill
				cm.Annotations[quillv1.AnnotationOwner] = tt.owner
			}
			if err := s.crls.Add(cm); err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/crl/issuer/"+testNamespace+"/"+tt.issuer+".crl", nil))
			if rec.Code != tt.wantCode {
				t.Fatalf("HTTP %d, want %d", rec.Code, tt.wantCode)
			}
			if served := bytes.Equal(rec.Body.Bytes(), tt.der); served != (tt.wantCode == http.StatusOK) {
				t.Fatalf("served the ConfigMap's bytes: %v, want %v", served, tt.wantCode == http.StatusOK)
			}
		})
	}
}

// TestCRLFollowsDeletedIssuer: once the issuer is gone its CRL is not
// served any more, even from a handler made while it existed.
func TestCRLFollowsDeletedIssuer(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	iss := newIssuer()
	api := newAPI(t, iss, caSecret(testNamespace, "ca", ca))
	clk := clocktesting.NewFakePassiveClock(testNow)
	s := New(Config{Cached: api, Reader: api, Index: ledger.NewIndex(), Clock: clk, Store: &castore.Store{Reader: api, Clock: clk}})
	cm := crlConfigMap("issuer", signCRL(t, ca))
	cm.Labels[quillv1.LabelManagedBy] = quillv1.ManagedByQuill
	cm.Annotations[quillv1.AnnotationOwner] = testIssuer.String()
	if err := s.crls.Add(cm); err != nil {
		t.Fatal(err)
	}
	get := func() int {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/crl/issuer/"+testNamespace+"/issuer.crl", nil))
		return rec.Code
	}
	if code := get(); code != http.StatusOK {
		t.Fatalf("HTTP %d while the issuer exists", code)
	}
	if err := api.Delete(context.Background(), iss); err != nil {
		t.Fatal(err)
	}
	if code := get(); code != http.StatusNotFound {
		t.Fatalf("HTTP %d after the issuer was deleted, want 404", code)
	}
}

func signCRL(t *testing.T, ca testCA) []byte {
	t.Helper()
	a := &issuance.Authority{Certificate: ca.Cert, Root: ca.Cert, Signer: ca.Key}
	der, err := a.SignCRL(issuance.CRLRequest{
		Entries:    []crl.Entry{{Serial: big.NewInt(7), RevokedAt: testNow.Add(-time.Minute)}},
		Number:     big.NewInt(1),
		ThisUpdate: testNow,
		Validity:   24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// crlConfigMap is the CRL ConfigMap of issuer (in testNamespace) as the
// publisher wrote it before the ownership mark: what a tenant can copy.
func crlConfigMap(issuer string, der []byte) *corev1.ConfigMap {
	sum := sha256.Sum256(der)
	name := revocationdata.CRLConfigMapName(issuer)
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: testNamespace, Name: name, ResourceVersion: "1",
			Labels: map[string]string{revocationdata.ConfigMapLabel: "true"},
			Annotations: map[string]string{
				revocationdata.AnnIssuer:        quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: testNamespace, Name: issuer}.String(),
				revocationdata.AnnCRLSHA256:     hex.EncodeToString(sum[:]),
				revocationdata.AnnCRLThisUpdate: testNow.Format(time.RFC3339),
				revocationdata.AnnCRLNextUpdate: testNow.Add(24 * time.Hour).Format(time.RFC3339),
			},
		},
		BinaryData: map[string][]byte{revocationdata.KeyDER: der},
	}
}

// TestCRLWaitsForConfigMapList: until the CRL ConfigMaps have been listed
// a CRL request is a 503 with Retry-After, not the 404 of an issuer that
// has published nothing.
func TestCRLWaitsForConfigMapList(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	api := newAPI(t, newIssuer(), caSecret(testNamespace, "ca", ca))
	clk := clocktesting.NewFakePassiveClock(testNow)
	s := New(Config{Cached: api, Reader: api, Watcher: api, Index: ledger.NewIndex(), Clock: clk, Store: &castore.Store{Reader: api, Clock: clk}})
	get := func() *http.Response {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/crl/issuer/"+testNamespace+"/issuer.crl", nil))
		return rec.Result()
	}
	if resp := get(); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("before the list: HTTP %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	cm := crlConfigMap("issuer", signCRL(t, ca))
	cm.Labels[quillv1.LabelManagedBy] = quillv1.ManagedByQuill
	cm.Annotations[quillv1.AnnotationOwner] = testIssuer.String()
	if err := s.crls.Replace([]any{cm}, "1"); err != nil {
		t.Fatal(err)
	}
	if resp := get(); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the list: HTTP %d, want 200", resp.StatusCode)
	}
}
