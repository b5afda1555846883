// Package pq holds what Quill's post-quantum tests share: the OpenSSL 3.5
// that verifies ML-DSA certificates and hybrid handshakes from outside, and
// certificate hierarchies issued by Quill's own signing code.
//
// Its tests (in this folder) check ML-DSA and mixed hierarchies with
// OpenSSL 3.5 and the TLS settings of pkg/tlsconfig against OpenSSL's
// s_client.
package pq

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"testing"
	"time"

	"github.com/quill-pki/quill/hack/openssl35"
	"github.com/quill-pki/quill/pkg/issuance"
)

// OpenSSL35 is hack/openssl35.Find for tests: its absence fails the test
// rather than skipping it, since a run that left out the outside verifier
// would claim more than it checked.
func OpenSSL35(t testing.TB) string {
	t.Helper()
	path, err := openssl35.Find()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// Chain is a hierarchy issued with pkg/issuance: a self-signed root, an
// optional intermediate and a leaf, all PEM.
type Chain struct {
	RootPEM         []byte // the root alone (ca.crt)
	IntermediatePEM []byte // the intermediate, empty when the root issued the leaf
	LeafPEM         []byte // the leaf alone
	LeafChainPEM    []byte // the leaf followed by the intermediate (tls.crt)
	LeafKeyPEM      []byte // the leaf's PKCS#8 key
	Leaf            *x509.Certificate
}

// TLSCertificate is the leaf and its chain as a server presents them.
func (c Chain) TLSCertificate() (tls.Certificate, error) {
	return tls.X509KeyPair(c.LeafChainPEM, c.LeafKeyPEM)
}

// Roots is a pool holding the chain's root.
func (c Chain) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(c.RootPEM)
	return p
}

// NewChain issues root (rootAlg) → intermediate (intermediateAlg, left out
// when empty) → leaf (leafAlg) with Quill's signing code. The leaf is a
// TLS server and client certificate for "localhost" and 127.0.0.1, valid
// for a day from now.
func NewChain(rootAlg, intermediateAlg, leafAlg issuance.KeyAlgorithm) (Chain, error) {
	now := time.Now()
	opts := issuance.Options{Now: now}
	rootPEM, rootKey, err := issuance.NewSelfSignedRoot(pkix.Name{CommonName: "Quill test root " + string(rootAlg), Organization: []string{"Quill"}}, rootAlg, 30*24*time.Hour, now)
	if err != nil {
		return Chain{}, err
	}
	ca, err := issuance.LoadAuthority(rootPEM, rootKey, nil)
	if err != nil {
		return Chain{}, err
	}
	var c Chain
	c.RootPEM = rootPEM
	if intermediateAlg != "" {
		csr, key, err := NewCSR(intermediateAlg, pkix.Name{CommonName: "Quill test intermediate " + string(intermediateAlg), Organization: []string{"Quill"}}, nil)
		if err != nil {
			return Chain{}, err
		}
		issued, err := ca.Sign(issuance.Request{
			CSR: csr, Duration: 7 * 24 * time.Hour, IsCA: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		}, opts)
		if err != nil {
			return Chain{}, fmt.Errorf("sign the intermediate: %w", err)
		}
		c.IntermediatePEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: issued.Certificate.Raw})
		if ca, err = issuance.LoadAuthority(issued.ChainPEM, key, issued.CAPEM); err != nil {
			return Chain{}, fmt.Errorf("load the intermediate: %w", err)
		}
	}
	csr, key, err := NewCSR(leafAlg, pkix.Name{CommonName: "localhost"}, []string{"localhost"})
	if err != nil {
		return Chain{}, err
	}
	issued, err := ca.Sign(issuance.Request{
		CSR: csr, Duration: 24 * time.Hour, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, opts)
	if err != nil {
		return Chain{}, fmt.Errorf("sign the leaf: %w", err)
	}
	c.Leaf = issued.Certificate
	c.LeafPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: issued.Certificate.Raw})
	c.LeafChainPEM = issued.ChainPEM
	c.LeafKeyPEM = key
	return c, nil
}

// NewCSR generates a key of alg and a CSR for subject and dnsNames signed
// with it, returning both PEM (the key as PKCS#8, seed-only for ML-DSA).
func NewCSR(alg issuance.KeyAlgorithm, subject pkix.Name, dnsNames []string) (csrPEM, keyPEM []byte, err error) {
	key, err := issuance.GenerateKey(alg)
	if err != nil {
		return nil, nil, err
	}
	sigAlg, err := issuance.SignatureAlgorithmFor(key.Public(), false)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject, DNSNames: dnsNames, SignatureAlgorithm: sigAlg}, key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = issuance.MarshalPrivateKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), keyPEM, nil
}
