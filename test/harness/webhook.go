package harness

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// This file runs cert-manager's admission webhook beside its controller, as
// every real cluster does. The webhook is what records a
// CertificateRequest's requester (spec.username, groups, uid) from the API
// server's view of who created it, and what runs cert-manager's own
// validation; without it the requester is empty, and anything Quill decides
// from it cannot be tested.

// webhookName names the webhook configurations, as cert-manager's chart
// names them for a release called cert-manager.
const webhookName = "cert-manager-webhook"

// DisableValidationLabel, set to "true" on a namespace, turns cert-manager's
// validating webhook off there, as cert-manager's chart configures it by
// default; the requester is still recorded.
const DisableValidationLabel = "cert-manager.io/disable-validation"

// webhookReadyTimeout bounds the start of the webhook: the process, its TLS
// listener, and the API server's first successful call to it.
const webhookReadyTimeout = time.Minute

var errWebhookNotReady = errors.New("cert-manager webhook not ready")

// startCertManagerWebhook starts bin/cert-manager-webhook once per
// environment, serving a throwaway certificate for 127.0.0.1, registers it
// with the API server the way cert-manager's Helm chart does, and returns
// when the API server mutates a CertificateRequest through it. It stays up
// until Stop: with failurePolicy Fail, cert-manager resources cannot be
// written without it.
func (e *Env) startCertManagerWebhook(ctx context.Context) error {
	e.mu.Lock()
	started := e.webhookStarted
	e.mu.Unlock()
	if started {
		return nil
	}
	dir := filepath.Join(e.workdir, "webhook")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caPEM, err := writeServingCert(dir)
	if err != nil {
		return fmt.Errorf("webhook serving certificate: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	if _, err := e.StartProcess("cert-manager-webhook",
		"--kubeconfig", e.Kubeconfig,
		"--secure-port", strconv.Itoa(port),
		"--tls-cert-file", filepath.Join(dir, "tls.crt"),
		"--tls-private-key-file", filepath.Join(dir, "tls.key"),
	); err != nil {
		return err
	}
	e.mu.Lock()
	e.webhookStarted = true
	e.mu.Unlock()
	if err := e.registerWebhook(ctx, "https://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), caPEM); err != nil {
		return err
	}
	return e.waitForWebhook(ctx)
}

// registerWebhook creates the mutating and validating configurations of
// cert-manager's chart (deploy/charts/cert-manager/templates/webhook-*-
// webhook.yaml), pointed at url instead of the chart's Service.
func (e *Env) registerWebhook(ctx context.Context, url string, caPEM []byte) error {
	none := admissionregistrationv1.SideEffectClassNone
	fail := admissionregistrationv1.Fail
	equivalent := admissionregistrationv1.Equivalent
	timeout := int32(10)
	clientConfig := func(path string) admissionregistrationv1.WebhookClientConfig {
		u := url + path
		return admissionregistrationv1.WebhookClientConfig{URL: &u, CABundle: caPEM}
	}
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: webhookName},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name: "webhook.cert-manager.io",
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{"cert-manager.io"}, APIVersions: []string{"v1"}, Resources: []string{"certificaterequests"},
				},
			}},
			AdmissionReviewVersions: []string{"v1"},
			MatchPolicy:             &equivalent,
			TimeoutSeconds:          &timeout,
			FailurePolicy:           &fail,
			SideEffects:             &none,
			ClientConfig:            clientConfig("/mutate"),
		}},
	}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: webhookName},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "webhook.cert-manager.io",
			// The chart's default: an administrator may turn validation
			// off for a namespace, so what cert-manager would refuse can
			// still reach an issuer there.
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: DisableValidationLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"true"},
			}}},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{"cert-manager.io", "acme.cert-manager.io"}, APIVersions: []string{"v1"}, Resources: []string{"*/*"},
				},
			}},
			AdmissionReviewVersions: []string{"v1"},
			MatchPolicy:             &equivalent,
			TimeoutSeconds:          &timeout,
			FailurePolicy:           &fail,
			SideEffects:             &none,
			ClientConfig:            clientConfig("/validate"),
		}},
	}
	if err := e.Client.Create(ctx, mutating); err != nil {
		return fmt.Errorf("registering cert-manager's mutating webhook: %w", err)
	}
	if err := e.Client.Create(ctx, validating); err != nil {
		return fmt.Errorf("registering cert-manager's validating webhook: %w", err)
	}
	return nil
}

// waitForWebhook dry-runs the creation of a CertificateRequest until the
// API server returns it with the requester filled in: only then does every
// request that follows carry it.
func (e *Env) waitForWebhook(ctx context.Context) error {
	csr, err := probeCSR()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(webhookReadyTimeout)
	var last error
	for time.Now().Before(deadline) {
		cr := &cmapi.CertificateRequest{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", GenerateName: "webhook-probe-"},
			Spec: cmapi.CertificateRequestSpec{
				Request:   csr,
				IssuerRef: cmmeta.IssuerReference{Name: "webhook-probe"},
				Usages:    []cmapi.KeyUsage{cmapi.UsageDigitalSignature},
			},
		}
		last = e.Client.Create(ctx, cr, client.DryRunAll)
		if last == nil && cr.Spec.Username != "" {
			return nil
		}
		if last == nil {
			last = errors.New("the dry-run request came back without spec.username")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%w after %s (last: %v); webhook log:\n%s", errWebhookNotReady, webhookReadyTimeout, last, e.Log("cert-manager-webhook"))
}

// writeServingCert writes tls.crt and tls.key for 127.0.0.1 into dir,
// signed by a throwaway CA whose PEM it returns for the caBundle.
func writeServingCert(dir string) ([]byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "quill test cert-manager-webhook CA"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), leafPEM, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	// The pair must load as the webhook will load it.
	if _, err := tls.X509KeyPair(leafPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})); err != nil {
		return nil, err
	}
	return caPEM, nil
}

// probeCSR is a valid CSR for the readiness probe: cert-manager's
// validation parses spec.request.
func probeCSR() ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "webhook-probe"}, DNSNames: []string{"webhook-probe.example"},
	}, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// freePort asks the kernel for a loopback port nobody listens on. Another
// process may take it before the webhook binds it; the readiness wait then
// fails with the webhook's log.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
