package issuance

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quill-pki/quill/pkg/crl"
	"github.com/quill-pki/quill/pkg/kms"
)

func mustName(t testing.TB, cn string) []byte {
	t.Helper()
	der, err := asn1.Marshal(pkix.Name{CommonName: cn, Organization: []string{"Quill Tests"}}.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// rawCSR builds a parsed CSR for SignCA, named by a raw DER subject.
func rawCSR(t testing.TB, subject []byte, key crypto.Signer) *x509.CertificateRequest {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{RawSubject: subject}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func TestSelfSign(t *testing.T) {
	t.Parallel()
	key := testKey(t, ECDSAP256, 30)
	p := CAProfile{
		Validity:        365 * 24 * time.Hour,
		Backdate:        time.Hour,
		MaxPathLen:      ptr(1),
		NameConstraints: &NameConstraints{PermittedDNSDomains: []string{"example.test"}},
	}
	issued, err := SelfSign(key, mustName(t, "Self-Signed Root"), p, testNow.Add(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	c := issued.Certificate
	switch {
	case !c.IsCA || c.MaxPathLen != 1 || c.KeyUsage != caKeyUsage:
		t.Errorf("CA profile: cA=%v pathLen=%d keyUsage=%v", c.IsCA, c.MaxPathLen, keyUsageNames(c.KeyUsage))
	case !slices.Equal(c.PermittedDNSDomains, []string{"example.test"}) || !c.PermittedDNSDomainsCritical:
		t.Errorf("name constraints %q (critical %v)", c.PermittedDNSDomains, c.PermittedDNSDomainsCritical)
	case !c.NotBefore.Equal(testNow.Add(-time.Hour)) || !c.NotAfter.Equal(testNow.Add(p.Validity)):
		t.Errorf("validity %s to %s", c.NotBefore, c.NotAfter)
	case !bytes.Equal(issued.ChainPEM, issued.CAPEM) || !bytes.Equal(pemCerts(t, issued.CAPEM)[0].Raw, c.Raw):
		t.Error("ChainPEM and CAPEM are not the root itself")
	case len(c.AuthorityKeyId) != 0:
		t.Errorf("a self-signed root carries authority key identifier %X", c.AuthorityKeyId)
	}

	tests := []struct {
		name    string
		signer  crypto.Signer
		subject []byte
		p       CAProfile
		now     time.Time
		want    error
		wantMsg string
	}{
		{name: "no-signer", subject: mustName(t, "r"), p: p, now: testNow, want: ErrMalformedCA},
		{name: "empty-subject", signer: key, subject: emptySubject, p: p, now: testNow, want: ErrInvalidRequest, wantMsg: "subject is empty"},
		{name: "short-validity", signer: key, subject: mustName(t, "r"), p: CAProfile{Validity: time.Minute}, now: testNow, want: ErrInvalidRequest, wantMsg: "below the minimum"},
		{name: "negative-backdate", signer: key, subject: mustName(t, "r"), p: CAProfile{Validity: time.Hour, Backdate: -time.Hour}, now: testNow, want: ErrInvalidRequest},
		{name: "negative-path-length", signer: key, subject: mustName(t, "r"), p: CAProfile{Validity: time.Hour, MaxPathLen: ptr(-2)}, now: testNow, want: ErrInvalidRequest},
		{name: "zero-now", signer: key, subject: mustName(t, "r"), p: p, want: ErrInvalidRequest, wantMsg: "now is not set"},
		{name: "weak-key", signer: testKey(t, rsa1024, 0), subject: mustName(t, "r"), p: p, now: testNow, want: ErrMalformedCA, wantMsg: "RSA-1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			issued, err := SelfSign(tt.signer, tt.subject, tt.p, tt.now)
			if !errors.Is(err, tt.want) || issued != nil {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			containsAll(t, err.Error(), tt.wantMsg)
		})
	}
}

func TestSignCA(t *testing.T) {
	t.Parallel()
	root := newCA(t, withCACN("SignCA Root"))
	shortRoot := newCA(t, withCACN("SignCA Short Root"), withCAValidity(testNow.Add(-24*time.Hour), testNow.Add(30*24*time.Hour)))
	lateStart := newCA(t, withCACN("SignCA Late Root"), withCAValidity(testNow.Add(-10*time.Minute), testNow.AddDate(1, 0, 0)))
	subKey := testKey(t, ECDSAP256, 31)
	csr := rawCSR(t, mustName(t, "SignCA Sub"), subKey)
	p := CAProfile{Validity: 90 * 24 * time.Hour, Backdate: time.Hour, MaxPathLen: ptr(0)}

	t.Run("issues", func(t *testing.T) {
		t.Parallel()
		issued, err := root.SignCA(csr, p, testNow)
		if err != nil {
			t.Fatal(err)
		}
		c := issued.Certificate
		if !c.IsCA || c.MaxPathLen != 0 || !c.MaxPathLenZero || c.KeyUsage != caKeyUsage || len(c.ExtKeyUsage) != 0 {
			t.Errorf("CA profile: cA=%v pathLen=%d keyUsage=%v eku=%v", c.IsCA, c.MaxPathLen, keyUsageNames(c.KeyUsage), c.ExtKeyUsage)
		}
		if !bytes.Equal(c.RawSubject, csr.RawSubject) || !PublicKeysEqual(c.PublicKey, subKey.Public()) {
			t.Error("subject or key not the request's")
		}
		if !c.NotBefore.Equal(testNow.Add(-time.Hour)) || !c.NotAfter.Equal(testNow.Add(p.Validity)) || len(issued.Notes) != 0 {
			t.Errorf("validity %s to %s, notes %q", c.NotBefore, c.NotAfter, issued.Notes)
		}
		verifyIssued(t, issued)
	})
	t.Run("clamped-to-the-chain", func(t *testing.T) {
		t.Parallel()
		issued, err := shortRoot.SignCA(csr, p, testNow)
		if err != nil {
			t.Fatal(err)
		}
		if !issued.Certificate.NotAfter.Equal(shortRoot.Certificate.NotAfter) || len(issued.Notes) != 1 || !strings.Contains(issued.Notes[0], "validity shortened") {
			t.Errorf("notAfter %s, notes %q", issued.Certificate.NotAfter, issued.Notes)
		}
		issued, err = lateStart.SignCA(csr, p, testNow)
		if err != nil {
			t.Fatal(err)
		}
		if !issued.Certificate.NotBefore.Equal(lateStart.Certificate.NotBefore) {
			t.Errorf("notBefore %s precedes the issuer's %s", issued.Certificate.NotBefore, lateStart.Certificate.NotBefore)
		}
	})

	tampered := rawCSR(t, mustName(t, "SignCA Tampered"), subKey)
	tampered.Signature = bytes.Clone(tampered.Signature)
	tampered.Signature[len(tampered.Signature)-2] ^= 0xff
	tests := []struct {
		name string
		ca   *Authority
		csr  *x509.CertificateRequest
		p    CAProfile
		now  time.Time
		want error
	}{
		{name: "no-request", ca: root, p: p, now: testNow, want: ErrInvalidRequest},
		{name: "tampered-request", ca: root, csr: tampered, p: p, now: testNow, want: ErrInvalidRequest},
		{name: "issuer-name", ca: root, csr: rawCSR(t, root.Certificate.RawSubject, subKey), p: p, now: testNow, want: ErrInvalidRequest},
		{name: "empty-name", ca: root, csr: rawCSR(t, emptySubject, subKey), p: p, now: testNow, want: ErrInvalidRequest},
		{name: "weak-key", ca: root, csr: rawCSR(t, mustName(t, "Weak"), testKey(t, rsa1024, 0)), p: p, now: testNow, want: ErrInvalidRequest},
		{name: "path-length-over-the-chain", ca: newCA(t, withCACN("SignCA Path Zero"), withCAPathLen(0)), csr: csr, p: p, now: testNow, want: ErrInvalidRequest},
		{name: "issuer-expired", ca: root, csr: csr, p: p, now: root.Certificate.NotAfter.Add(time.Hour), want: ErrCAExpired},
		{name: "issuer-not-a-ca", ca: newCA(t, withCACN("SignCA Not CA"), withNotCA()), csr: csr, p: p, now: testNow, want: ErrNotCA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			issued, err := tt.ca.SignCA(tt.csr, tt.p, tt.now)
			if !errors.Is(err, tt.want) || issued != nil {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestIssueResponder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		caAlg   KeyAlgorithm
		keyAlg  KeyAlgorithm
		wantKey KeyAlgorithm
	}{
		{name: "ecdsa-ca-default-key", caAlg: ECDSAP256, wantKey: ECDSAP256},
		{name: "rsa-ca-ed25519-key", caAlg: RSA2048, keyAlg: Ed25519, wantKey: Ed25519},
		{name: "ml-dsa-ca-default-key", caAlg: MLDSA65, wantKey: ECDSAP256},
		{name: "ecdsa-ca-p384-key", caAlg: ECDSAP256, keyAlg: ECDSAP384, wantKey: ECDSAP384},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := newCA(t, withCACN("Responder Root "+tt.name), withCAKeyAlg(tt.caAlg, 32))
			ca := newCA(t, withParent(root), withCACN("Responder CA "+tt.name), withCAKeyAlg(tt.caAlg, 33))
			issued, key, err := ca.IssueResponder(48*time.Hour, tt.keyAlg, testNow)
			if err != nil {
				t.Fatalf("IssueResponder: %v", err)
			}
			cert := issued.Certificate
			if alg, err := KeyAlgorithmOf(key.Public()); err != nil || alg != tt.wantKey {
				t.Errorf("key %s (%v), want %s", alg, err, tt.wantKey)
			}
			if !PublicKeysEqual(key.Public(), cert.PublicKey) {
				t.Error("key does not match the certificate")
			}
			if cert.Subject.CommonName != "OCSP Responder for "+ca.Certificate.Subject.CommonName {
				t.Errorf("subject %q", cert.Subject)
			}
			if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}) || cert.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("usages %v / %v", cert.ExtKeyUsage, cert.KeyUsage)
			}
			if !cert.BasicConstraintsValid || cert.IsCA {
				t.Error("responder certificate is a CA or lacks basicConstraints")
			}
			var nocheck bool
			for _, e := range cert.Extensions {
				if e.Id.Equal(oidOCSPNoCheck) {
					nocheck = bytes.Equal(e.Value, []byte{0x05, 0x00}) && !e.Critical
				}
			}
			if !nocheck {
				t.Error("no id-pkix-ocsp-nocheck extension with a NULL value")
			}
			if !cert.NotBefore.Equal(testNow.Add(-responderBackdate)) || !cert.NotAfter.Equal(testNow.Add(48*time.Hour)) {
				t.Errorf("validity %s to %s", cert.NotBefore, cert.NotAfter)
			}
			// The same shape as Sign: the chain without the root, and the root.
			if chain := pemCerts(t, issued.ChainPEM); len(chain) != 2 || !bytes.Equal(chain[1].Raw, ca.Certificate.Raw) || !bytes.Equal(issued.CAPEM, EncodeCertificatesPEM(root.Certificate)) {
				t.Error("ChainPEM/CAPEM are not the responder, its CA, and the root")
			}
			// Clients check the chain with the OCSPSigning purpose.
			roots, inter := x509.NewCertPool(), x509.NewCertPool()
			roots.AddCert(root.Certificate)
			inter.AddCert(ca.Certificate)
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}}); err != nil {
				t.Errorf("chain does not verify for OCSPSigning: %v", err)
			}
		})
	}
}

func TestIssueResponderValidity(t *testing.T) {
	t.Parallel()
	ca := newCA(t, withCACN("Responder Validity"))
	issued, _, err := ca.IssueResponder(0, "", ca.Certificate.NotAfter.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !issued.Certificate.NotAfter.Equal(ca.Certificate.NotAfter) {
		t.Errorf("notAfter %s past the CA's %s", issued.Certificate.NotAfter, ca.Certificate.NotAfter)
	}
	issued, _, err = ca.IssueResponder(0, "", testNow)
	if err != nil || !issued.Certificate.NotAfter.Equal(testNow.Add(DefaultResponderValidity)) {
		t.Errorf("default validity: %v, %v", issued, err)
	}
	young := newCA(t, withCACN("Responder Young"), withCAValidity(testNow.Add(-time.Minute), testNow.AddDate(1, 0, 0)))
	issued, _, err = young.IssueResponder(0, "", testNow)
	if err != nil || !issued.Certificate.NotBefore.Equal(young.Certificate.NotBefore) {
		t.Errorf("notBefore precedes the CA's: %v, %v", issued, err)
	}
}

func TestIssueResponderRefuses(t *testing.T) {
	t.Parallel()
	ca := newCA(t, withCACN("Responder Refusals"))
	tests := []struct {
		name   string
		ca     *Authority
		now    time.Time
		keyAlg KeyAlgorithm
		valid  time.Duration
		want   error
	}{
		{name: "no-ca", ca: &Authority{}, now: testNow, want: ErrMalformedCA},
		{name: "not-a-ca", ca: newCA(t, withCACN("Responder Leaf"), withNotCA()), now: testNow, want: ErrNotCA},
		{name: "wrong-key", ca: &Authority{Certificate: ca.Certificate, Root: ca.Root, Signer: testKey(t, ECDSAP256, 34)}, now: testNow, want: kms.ErrKeyMismatch},
		{name: "no-subject-key-identifier", ca: newCA(t, withCACN("Responder No SKI"), withoutSKI()), now: testNow, want: ErrMalformedCA},
		{name: "unknown-key-algorithm", ca: ca, now: testNow, keyAlg: "DSA-1024", want: ErrInvalidOptions},
		{name: "ca-expired", ca: ca, now: ca.Certificate.NotAfter.Add(time.Second), want: ErrCAExpired},
		{name: "negative-validity", ca: ca, now: testNow, valid: -time.Hour, want: ErrInvalidOptions},
		{name: "chain-forbids-ocsp-signing", ca: newCA(t, withCACN("Responder TLS Only"), withCAExtKeyUsage(x509.ExtKeyUsageServerAuth)), now: testNow, want: ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			issued, key, err := tt.ca.IssueResponder(tt.valid, tt.keyAlg, tt.now)
			if !errors.Is(err, tt.want) || issued != nil || key != nil {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSignCRL(t *testing.T) {
	t.Parallel()
	entries := []crl.Entry{{Serial: big.NewInt(42), RevokedAt: testNow.Add(-time.Hour), Reason: 1}}
	tests := []struct {
		name    string
		ca      *Authority
		rsaPSS  bool
		wantSig x509.SignatureAlgorithm
		want    error
	}{
		{name: "ecdsa", ca: newCA(t, withCACN("CRL ECDSA")), wantSig: x509.ECDSAWithSHA256},
		{name: "rsa-pss", ca: newCA(t, withCACN("CRL RSA"), withCAKeyAlg(RSA2048, 35)), rsaPSS: true, wantSig: x509.SHA256WithRSAPSS},
		{name: "ml-dsa", ca: newCA(t, withCACN("CRL ML-DSA"), withCAKeyAlg(MLDSA44, 35)), wantSig: x509.MLDSA44},
		{name: "no-crl-sign", ca: newCA(t, withCACN("CRL Forbidden"), withCAKeyUsage(x509.KeyUsageCertSign)), want: crl.ErrNoCRLSign},
		{name: "wrong-key", ca: &Authority{Certificate: newCA(t, withCACN("CRL Mismatch")).Certificate, Signer: testKey(t, ECDSAP256, 36)}, want: kms.ErrKeyMismatch},
		{name: "no-authority", ca: &Authority{}, want: crl.ErrInvalidIssuer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			der, err := tt.ca.SignCRL(CRLRequest{Entries: entries, Number: big.NewInt(7), ThisUpdate: testNow, Validity: 24 * time.Hour, RSAPSS: tt.rsaPSS})
			if tt.want != nil {
				if !errors.Is(err, tt.want) || der != nil {
					t.Fatalf("error %v, want %v", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			list, err := x509.ParseRevocationList(der)
			if err != nil {
				t.Fatal(err)
			}
			if err := list.CheckSignatureFrom(tt.ca.Certificate); err != nil {
				t.Errorf("signature: %v", err)
			}
			if list.SignatureAlgorithm != tt.wantSig || list.Number.Int64() != 7 || len(list.RevokedCertificateEntries) != 1 {
				t.Errorf("algorithm %s, number %s, %d entries", list.SignatureAlgorithm, list.Number, len(list.RevokedCertificateEntries))
			}
			if !bytes.Equal(list.AuthorityKeyId, tt.ca.Certificate.SubjectKeyId) {
				t.Errorf("authority key identifier %X", list.AuthorityKeyId)
			}
		})
	}
}
