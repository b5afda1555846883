package e2e

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"golang.org/x/crypto/ocsp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
)

// TestShortLivedCertificates issues through cert-manager from an issuer
// with spec.revocation.shortLived: a one-hour certificate carries
// noRevAvail (RFC 9608, read back by OpenSSL 3.0) and no CRL or OCSP
// pointer, is in the ledger marked so, is answered unauthorized by OCSP,
// stays off the CRL, and a QuillRevocation for it is refused with the
// reason NoRevocationAvailable; a two-day certificate from the same issuer
// is signed, answered and revocable as before.
func TestShortLivedCertificates(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ref := quillIssuer(t, ns, "ca", "ECDSA-P256", fastCRL, func(s *quillv1.IssuerSpec) {
		s.Revocation.ShortLived = &quillv1.ShortLivedPolicy{MaxDuration: metav1.Duration{Duration: 24 * time.Hour}}
	})
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: ns, Name: "ca"}
	withDuration := func(d time.Duration) func(*cmapi.Certificate) {
		return func(c *cmapi.Certificate) { c.Spec.Duration = &metav1.Duration{Duration: d} }
	}
	create(t, certificate(ns, "short", ref, withDuration(time.Hour)))
	create(t, certificate(ns, "long", ref, withDuration(48*time.Hour)))
	shortSecret, longSecret := waitCertificateReady(t, ns, "short"), waitCertificateReady(t, ns, "long")
	short, long := leafOf(t, shortSecret), leafOf(t, longSecret)
	caCert := parseCerts(t, shortSecret.Data["ca.crt"])[0]

	if len(short.CRLDistributionPoints) != 0 || len(short.OCSPServer) != 0 {
		t.Errorf("short-lived certificate points at CRL %v and OCSP %v", short.CRLDistributionPoints, short.OCSPServer)
	}
	if len(long.CRLDistributionPoints) != 1 || len(long.OCSPServer) != 1 {
		t.Errorf("two-day certificate lost its pointers: CRL %v, OCSP %v", long.CRLDistributionPoints, long.OCSPServer)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		pem  []byte
		want bool
	}{{"short", shortSecret.Data["tls.crt"], true}, {"long", longSecret.Data["tls.crt"], false}} {
		out, err := exec.Command("openssl", "x509", "-noout", "-text", "-in", writeTemp(t, dir, tc.name+".pem", tc.pem)).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl x509: %v\n%s", err, out)
		}
		if got := strings.Contains(string(out), "No Revocation Available"); got != tc.want {
			t.Errorf("%s: openssl x509 -text shows No Revocation Available: %v, want %v\n%s", tc.name, got, tc.want, out)
		}
	}

	if !ledgerRecord(t, ns, k, short).Spec.NoRevocationAvailable || ledgerRecord(t, ns, k, long).Spec.NoRevocationAvailable {
		t.Error("ledger records do not tell the short-lived certificate from the other")
	}

	// OCSP: unauthorized for the short-lived serial, good for the other.
	ocspURL := "http://" + revocationAddr + "/ocsp/issuer/" + ns + "/ca"
	req, err := ocsp.CreateRequest(short, caCert, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(ocspURL, "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var re ocsp.ResponseError
	if _, err := ocsp.ParseResponse(body, nil); !errors.As(err, &re) || re.Status != ocsp.Unauthorized {
		t.Errorf("OCSP for the short-lived serial: %v, want unauthorized", err)
	}
	if r := ocspQuery(t, ocspURL, long, caCert); r.Status != ocsp.Good {
		t.Errorf("OCSP for the two-day serial: status %d, want good", r.Status)
	}

	// Revoking it is refused, by serial and by Certificate.
	for _, spec := range []quillv1.QuillRevocationSpec{
		{IssuerRef: quillv1.RevocationIssuerRef{Name: "ca", Kind: quillv1.IssuerKind}, SerialNumber: ledger.SerialHex(short.SerialNumber), Reason: quillv1.ReasonKeyCompromise},
		{IssuerRef: quillv1.RevocationIssuerRef{Name: "ca", Kind: quillv1.IssuerKind}, CertificateName: "short", Reason: quillv1.ReasonKeyCompromise},
	} {
		name := "by-serial"
		if spec.CertificateName != "" {
			name = "by-certificate"
		}
		rev := waitRevocation(t, revoke(t, ns, name, spec), metav1.ConditionFalse, quillv1.ReasonNoRevocationAvailable)
		if c := rev.Status.Conditions[0]; !strings.Contains(c.Message, "RFC 9608") {
			t.Errorf("%s: refusal message %q does not say why", name, c.Message)
		}
	}
	// The other one revokes, and the CRL lists only it.
	waitCRLSerials(t, ns, "ca", revokedSerials(t, waitRevocation(t, revoke(t, ns, "long", quillv1.QuillRevocationSpec{
		IssuerRef: quillv1.RevocationIssuerRef{Name: "ca", Kind: quillv1.IssuerKind}, CertificateName: "long", Reason: quillv1.ReasonKeyCompromise,
	}), metav1.ConditionTrue, quillv1.ReasonRevoked), long))
}
