package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// caSpec describes a CA certificate fixture; the options below change it.
type caSpec struct {
	isCA      bool
	keyUsage  x509.KeyUsage
	notBefore time.Time
	notAfter  time.Time
	wrongKey  bool
}

func withoutCA() func(*caSpec) { return func(s *caSpec) { s.isCA = false } }
func withoutCertSign() func(*caSpec) {
	return func(s *caSpec) { s.keyUsage = x509.KeyUsageDigitalSignature }
}
func withWrongKey() func(*caSpec) { return func(s *caSpec) { s.wrongKey = true } }
func withValidity(from, to time.Time) func(*caSpec) {
	return func(s *caSpec) { s.notBefore, s.notAfter = from, to }
}

// caSecretData makes tls.crt/tls.key for a self-signed ECDSA CA.
func caSecretData(t *testing.T, opts ...func(*caSpec)) map[string][]byte {
	t.Helper()
	s := caSpec{
		isCA:      true,
		keyUsage:  x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		notBefore: time.Now().Add(-time.Hour),
		notAfter:  time.Now().Add(365 * 24 * time.Hour),
	}
	for _, o := range opts {
		o(&s)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "fixture CA"},
		NotBefore:             s.notBefore,
		NotAfter:              s.notAfter,
		IsCA:                  s.isCA,
		BasicConstraintsValid: true,
		KeyUsage:              s.keyUsage,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	if s.wrongKey {
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"tls.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
}

func newNamespace(t *testing.T) string {
	t.Helper()
	return env.Namespace(t, "it-")
}

func createSecret(t *testing.T, ns, name string, data map[string][]byte) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data}
	if err := env.Client.Create(context.Background(), s); err != nil {
		t.Fatalf("creating Secret: %v", err)
	}
	return s
}
