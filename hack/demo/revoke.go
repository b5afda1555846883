package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ocsp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/tlsconfig"
)

// revokeClient revokes the client certificate with a QuillRevocation, then
// shows that Quill's OCSP responder (at the URL in the certificate) answers
// revoked and that an mTLS server checking clients against the CRL Quill
// published to a ConfigMap refuses the client. It writes the CRL to out.
func revokeClient(ctx context.Context, c client.Client, out string, server, clientSecret *corev1.Secret) (string, error) {
	rev := &quillv1.QuillRevocation{
		ObjectMeta: metav1.ObjectMeta{Namespace: demoNS, Name: "client-key-compromised"},
		Spec: quillv1.QuillRevocationSpec{
			IssuerRef:       quillv1.RevocationIssuerRef{Kind: quillv1.ClusterIssuerKind, Name: "demo-issuing"},
			CertificateName: "client",
			Reason:          quillv1.ReasonKeyCompromise,
		},
	}
	if err := c.Create(ctx, rev); err != nil {
		return "", err
	}
	if err := poll(ctx, "QuillRevocation "+rev.Name, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(rev), rev); err != nil {
			return err
		}
		if cond := meta.FindStatusCondition(rev.Status.Conditions, quillv1.ConditionRevoked); cond != nil && cond.Status == metav1.ConditionTrue {
			return nil
		}
		return errNotReady
	}); err != nil {
		return "", err
	}

	clientPair, err := tls.X509KeyPair(clientSecret.Data["tls.crt"], clientSecret.Data["tls.key"])
	if err != nil {
		return "", err
	}
	leaf := clientPair.Leaf
	issuing, err := x509.ParseCertificate(clientPair.Certificate[1])
	if err != nil {
		return "", fmt.Errorf("client chain: %w", err)
	}
	if len(leaf.OCSPServer) == 0 || len(leaf.CRLDistributionPoints) == 0 {
		return "", errors.New("the client certificate names no OCSP responder or CRL")
	}
	var answer *ocsp.Response
	if err := poll(ctx, "OCSP answer revoked", func() error {
		answer, err = ocspQuery(leaf.OCSPServer[0], leaf, issuing)
		if err != nil {
			return err
		}
		if answer.Status != ocsp.Revoked {
			return errNotReady
		}
		return nil
	}); err != nil {
		return "", err
	}

	var crl *x509.RevocationList
	var crlPEM []byte
	if err := poll(ctx, "CRL ConfigMap listing the client", func() error {
		var cm corev1.ConfigMap
		if err := c.Get(ctx, client.ObjectKey{Namespace: clusterNS, Name: "demo-issuing-crl"}, &cm); err != nil {
			return err
		}
		if crl, err = x509.ParseRevocationList(cm.BinaryData["crl.der"]); err != nil {
			return err
		}
		if err := crl.CheckSignatureFrom(issuing); err != nil {
			return err
		}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
				crlPEM = []byte(cm.Data["crl.pem"])
				return nil
			}
		}
		return errNotReady
	}); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(out, "demo-issuing.crl.pem"), crlPEM, 0o644); err != nil {
		return "", err
	}
	if err := refusedByCRLCheckingServer(server, clientPair, crl); err != nil {
		return "", err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "Revocation (QuillRevocation %s/%s, keyCompromise)\n", demoNS, rev.Name)
	fmt.Fprintf(&b, "  OCSP %s: revoked at %s, reason %d (keyCompromise)\n", leaf.OCSPServer[0], answer.RevokedAt.UTC().Format(time.RFC3339), answer.RevocationReason)
	fmt.Fprintf(&b, "  CRL #%s in ConfigMap %s/demo-issuing-crl (also at %s) lists serial %x\n", crl.Number, clusterNS, leaf.CRLDistributionPoints[0], leaf.SerialNumber)
	fmt.Fprintf(&b, "  an mTLS server checking that CRL refused the revoked client\n")
	return b.String(), nil
}

func ocspQuery(url string, leaf, issuer *x509.Certificate) (*ocsp.Response, error) {
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.Post(url, "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return ocsp.ParseResponseForCert(body, leaf, issuer)
}

// refusedByCRLCheckingServer runs the demo's mTLS server again, now also
// refusing client certificates the CRL lists, and checks that the client
// is refused.
func refusedByCRLCheckingServer(server *corev1.Secret, clientPair tls.Certificate, crl *x509.RevocationList) error {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(server.Data["ca.crt"])
	serverPair, err := tls.X509KeyPair(server.Data["tls.crt"], server.Data["tls.key"])
	if err != nil {
		return err
	}
	cfg := tlsconfig.Server(tlsconfig.Options{
		Certificates: []tls.Certificate{serverPair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: roots,
	})
	cfg.VerifyPeerCertificate = func(_ [][]byte, chains [][]*x509.Certificate) error {
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(chains[0][0].SerialNumber) == 0 {
				return fmt.Errorf("client certificate %x is revoked", e.SerialNumber)
			}
		}
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), TLSConfig: cfg, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{clientPair}, RootCAs: roots,
	}}}
	if r, err := hc.Get("https://" + ln.Addr().String() + "/"); err == nil {
		r.Body.Close()
		return errors.New("the CRL-checking server accepted the revoked client")
	}
	return nil
}
