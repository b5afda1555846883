package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"golang.org/x/crypto/ocsp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/audit"
	"github.com/quill-pki/quill/pkg/ledger"
)

// ocspQuery asks the responder at url about cert with golang.org/x/crypto/ocsp.
func ocspQuery(t *testing.T, url string, cert, issuer *x509.Certificate) *ocsp.Response {
	t.Helper()
	req, err := ocsp.CreateRequest(cert, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url, "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	parsed, err := ocsp.ParseResponseForCert(body, cert, issuer)
	if err != nil {
		t.Fatalf("OCSP response from %s: %v", url, err)
	}
	return parsed
}

// opensslOCSP runs `openssl ocsp` against the live responder and returns
// its output; it sends a nonce and checks the response's signature.
func opensslOCSP(t *testing.T, dir, url string, caPEM []byte, leaf *corev1.Secret) string {
	t.Helper()
	out, err := exec.Command("openssl", "ocsp", "-url", url,
		"-issuer", writeTemp(t, dir, "issuer.pem", caPEM), "-CAfile", writeTemp(t, dir, "ca.pem", caPEM),
		"-cert", writeTemp(t, dir, leaf.Name+".pem", leaf.Data["tls.crt"])).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl ocsp: %v\n%s", err, out)
	}
	return string(out)
}

// TestRevocationOCSP: the certificates carry Quill's CRL and OCSP URLs;
// after a revocation, `openssl ocsp` against the live responder and
// golang.org/x/crypto/ocsp both report revoked, a good certificate stays
// good, a serial never issued is unknown and garbage is malformedRequest;
// the CRL served over HTTP is the one in the ConfigMap; and an OpenSSL mTLS
// server that loads the published CRL refuses the revoked client. Both
// responder kinds: the CA itself and a delegated responder.
func TestRevocationOCSP(t *testing.T) {
	t.Parallel()
	for _, kind := range []quillv1.OCSPResponderKind{quillv1.OCSPResponderCA, quillv1.OCSPResponderDelegated} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			testRevocationOCSP(t, kind)
		})
	}
}

func testRevocationOCSP(t *testing.T, kind quillv1.OCSPResponderKind) {
	ctx := context.Background()
	ns := newNamespace(t)
	ref := quillIssuer(t, ns, "ca", "ECDSA-P256", fastCRL, func(s *quillv1.IssuerSpec) {
		s.Revocation.OCSP.Responder = kind
	})
	clientUsage := func(c *cmapi.Certificate) {
		c.Spec.Usages = []cmapi.KeyUsage{cmapi.UsageDigitalSignature, cmapi.UsageClientAuth}
	}
	create(t, certificate(ns, "good", ref, clientUsage))
	create(t, certificate(ns, "bad", ref, clientUsage))
	create(t, certificate(ns, "server", ref, func(c *cmapi.Certificate) {
		c.Spec.DNSNames, c.Spec.IPAddresses = []string{"localhost"}, []string{"127.0.0.1"}
	}))
	goodSecret, badSecret, serverSecret := waitCertificateReady(t, ns, "good"), waitCertificateReady(t, ns, "bad"), waitCertificateReady(t, ns, "server")
	good, bad := leafOf(t, goodSecret), leafOf(t, badSecret)
	caCert := parseCerts(t, goodSecret.Data["ca.crt"])[0]

	base := "http://" + revocationAddr
	wantOCSP, wantCRL := base+"/ocsp/issuer/"+ns+"/ca", base+"/crl/issuer/"+ns+"/ca.crl"
	if len(good.OCSPServer) != 1 || good.OCSPServer[0] != wantOCSP || len(good.CRLDistributionPoints) != 1 || good.CRLDistributionPoints[0] != wantCRL {
		t.Fatalf("certificate URLs: OCSP %v CRL %v; want %s and %s", good.OCSPServer, good.CRLDistributionPoints, wantOCSP, wantCRL)
	}

	if r := ocspQuery(t, wantOCSP, bad, caCert); r.Status != ocsp.Good {
		t.Fatalf("before revocation: status %d, want good", r.Status)
	}
	badRevoked := revokedSerials(t, waitRevocation(t, revoke(t, ns, "bad", quillv1.QuillRevocationSpec{
		IssuerRef: quillv1.RevocationIssuerRef{Name: "ca", Kind: quillv1.IssuerKind}, CertificateName: "bad", Reason: quillv1.ReasonKeyCompromise,
	}), metav1.ConditionTrue, quillv1.ReasonRevoked), bad)

	// The cached "good" answer was dropped at revocation.
	eventually(t, "OCSP says revoked", func() (bool, error) {
		return ocspQuery(t, wantOCSP, bad, caCert).Status == ocsp.Revoked, nil
	})
	r := ocspQuery(t, wantOCSP, bad, caCert)
	if r.RevocationReason != ocsp.KeyCompromise {
		t.Errorf("revocation reason %d, want keyCompromise", r.RevocationReason)
	}
	delegated := r.Certificate != nil
	if delegated != (kind == quillv1.OCSPResponderDelegated) {
		eventually(t, "responder kind "+string(kind), func() (bool, error) {
			r = ocspQuery(t, wantOCSP, bad, caCert)
			return (r.Certificate != nil) == (kind == quillv1.OCSPResponderDelegated), nil
		})
	}
	if r.Certificate != nil && !bytes.Equal(r.Certificate.RawIssuer, caCert.RawSubject) {
		t.Errorf("delegated responder issued by %s", r.Certificate.Issuer)
	}
	if r.Certificate != nil {
		checkResponderRecorded(t, ns, "ca", r.Certificate)
	}
	if r := ocspQuery(t, wantOCSP, good, caCert); r.Status != ocsp.Good {
		t.Errorf("good certificate: status %d", r.Status)
	}

	dir := t.TempDir()
	caPEM := goodSecret.Data["ca.crt"]
	if out := opensslOCSP(t, dir, wantOCSP, caPEM, badSecret); !strings.Contains(out, "Response verify OK") || !strings.Contains(out, ": revoked") || !strings.Contains(out, "keyCompromise") {
		t.Errorf("openssl ocsp on the revoked certificate:\n%s", out)
	}
	if out := opensslOCSP(t, dir, wantOCSP, caPEM, goodSecret); !strings.Contains(out, "Response verify OK") || !strings.Contains(out, ": good") {
		t.Errorf("openssl ocsp on the good certificate:\n%s", out)
	}

	// GET (RFC 6960 appendix A): the base64 request, URL-escaped, after the
	// responder URL; the answer carries RFC 5019 caching headers.
	getReq, err := ocsp.CreateRequest(bad, caCert, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		t.Fatal(err)
	}
	getResp, err := http.Get(wantOCSP + "/" + url.PathEscape(base64.StdEncoding.EncodeToString(getReq)))
	if err != nil {
		t.Fatal(err)
	}
	getBody, _ := io.ReadAll(getResp.Body)
	getResp.Body.Close()
	if parsed, err := ocsp.ParseResponseForCert(getBody, bad, caCert); err != nil || parsed.Status != ocsp.Revoked {
		t.Errorf("GET: %v, %+v", err, parsed)
	}
	if cc := getResp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") || getResp.Header.Get("ETag") == "" {
		t.Errorf("GET caching headers: Cache-Control %q, ETag %q", cc, getResp.Header.Get("ETag"))
	}

	// A serial this CA never issued is unknown.
	stranger := *good
	stranger.SerialNumber = new(big.Int).Add(good.SerialNumber, big.NewInt(1))
	if r := ocspQuery(t, wantOCSP, &stranger, caCert); r.Status != ocsp.Unknown {
		t.Errorf("never-issued serial: status %d, want unknown", r.Status)
	}
	// Garbage gets malformedRequest.
	resp, err := http.Post(wantOCSP, "application/ocsp-request", strings.NewReader("not an OCSP request"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if _, err := ocsp.ParseResponse(body, nil); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("garbage request answered %q (%v)", body, err)
	}

	// The CRL at the distribution point is the ConfigMap's.
	cm := waitCRLSerials(t, ns, "ca", badRevoked)
	var served []byte
	eventually(t, "CRL served over HTTP", func() (bool, error) {
		resp, err := http.Get(wantCRL)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		served, _ = io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK && resp.Header.Get("Content-Type") == "application/pkix-crl" && bytes.Equal(served, cm.BinaryData["crl.der"]), nil
	})

	// An OpenSSL mTLS server that checks client certificates against the
	// published CRL refuses the revoked client and accepts the good one.
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(cm), cm); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cm.Data["crl.pem"], "-----BEGIN X509 CRL-----") {
		t.Fatalf("CRL ConfigMap has no PEM CRL: data keys %v, annotations %v", len(cm.Data), cm.Annotations)
	}
	crlFile := writeTemp(t, dir, "crl.pem", []byte(cm.Data["crl.pem"]))
	caFile := writeTemp(t, dir, "ca.pem", caPEM)
	addr, err := freeAddress()
	if err != nil {
		t.Fatal(err)
	}
	srv := exec.Command("openssl", "s_server", "-accept", addr, "-naccept", "2", "-www",
		"-cert", writeTemp(t, dir, "server.pem", serverSecret.Data["tls.crt"]), "-key", writeTemp(t, dir, "server.key", serverSecret.Data["tls.key"]),
		"-CAfile", caFile, "-CRL", crlFile, "-crl_check", "-Verify", "1", "-verify_return_error")
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	connect := func(secret *corev1.Secret) string {
		var out []byte
		for range 50 { // s_server needs a moment to listen
			cmd := exec.Command("openssl", "s_client", "-connect", addr, "-CAfile", caFile,
				"-cert", writeTemp(t, dir, secret.Name+".crt", secret.Data["tls.crt"]), "-key", writeTemp(t, dir, secret.Name+".key", secret.Data["tls.key"]),
				"-ign_eof")
			cmd.Stdin = strings.NewReader("GET / HTTP/1.0\r\n\r\n")
			out, _ = cmd.CombinedOutput()
			if !strings.Contains(string(out), "Connection refused") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		return string(out)
	}
	if out := connect(badSecret); strings.Contains(out, "HTTP/1.0 200") {
		t.Errorf("mTLS server accepted the revoked client:\n%s", out)
	}
	if out := connect(goodSecret); !strings.Contains(out, "HTTP/1.0 200") {
		t.Errorf("mTLS server refused the good client:\n%s\nserver:\n%s", out, srvOut.String())
	}
	if !strings.Contains(srvOut.String(), "certificate revoked") {
		t.Errorf("s_server did not report the revoked client certificate:\n%s", srvOut.String())
	}
}

// TestDisabledIssuerKeepsRevocation: a Disabled issuer signs no
// certificates but still revokes, signs CRLs and answers OCSP, so that a CA
// being retired can still withdraw what it issued.
func TestDisabledIssuerKeepsRevocation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := newNamespace(t)
	ref := quillIssuer(t, ns, "ca", "ECDSA-P256", fastCRL)
	create(t, certificate(ns, "old", ref))
	secret := waitCertificateReady(t, ns, "old")
	leaf, caCert := leafOf(t, secret), parseCerts(t, secret.Data["ca.crt"])[0]

	var iss quillv1.QuillIssuer
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ca"}, &iss); err != nil {
			return err
		}
		iss.Spec.State = quillv1.StateDisabled
		return env.Client.Update(ctx, &iss)
	}); err != nil {
		t.Fatal(err)
	}
	waitCRLSerials(t, ns, "ca", revokedSerials(t, waitRevocation(t, revoke(t, ns, "retire", quillv1.QuillRevocationSpec{
		IssuerRef: quillv1.RevocationIssuerRef{Name: "ca", Kind: quillv1.IssuerKind}, CertificateName: "old", Reason: quillv1.ReasonCessationOfOperation,
	}), metav1.ConditionTrue, quillv1.ReasonRevoked), leaf))
	eventually(t, "OCSP revoked from a Disabled issuer", func() (bool, error) {
		return ocspQuery(t, leaf.OCSPServer[0], leaf, caCert).Status == ocsp.Revoked, nil
	})
}

// checkResponderRecorded: the delegated responder certificate that signed
// an OCSP answer, signed with the CA key like every other certificate of
// the issuer, is in the ledger (origin OCSPResponder) and in the audit
// trail (an audit=true issue line).
func checkResponderRecorded(t *testing.T, ns, issuer string, responder *x509.Certificate) {
	t.Helper()
	serial := ledger.SerialHex(responder.SerialNumber)
	view := ledgerView(t, ns) // segments, and IssuedCertificates not migrated yet
	found := false
	for _, e := range view {
		if e.Spec.SerialNumber != serial {
			continue
		}
		found = true
		if e.Spec.Origin.Kind != quillv1.OriginKindOCSPResponder || e.Spec.IssuerRef.Name != issuer || e.Spec.IssuerRef.Kind != quillv1.IssuerKind {
			t.Errorf("ledger entry of the responder certificate: issuer %+v, origin %+v; want %s's, origin OCSPResponder", e.Spec.IssuerRef, e.Spec.Origin, issuer)
		}
	}
	if !found {
		t.Errorf("the delegated responder certificate (serial %s) is not in the ledger of namespace %s (%d entries)", serial, ns, len(view))
	}
	id := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: ns, Name: issuer}
	hexSerial := hex.EncodeToString(responder.SerialNumber.Bytes())
	if _, ok := audited.find(func(l map[string]any) bool {
		return l["audit"] == true && l["action"] == audit.ActionIssue && l["issuer"] == id.String() &&
			l["requestKind"] == quillv1.OriginKindOCSPResponder && l["serial"] == hexSerial
	}); !ok {
		t.Errorf("no audit=true issue line for the delegated responder certificate (serial %s) of %s", hexSerial, id)
	}
}
