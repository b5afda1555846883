package issuance

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quill-pki/quill/pkg/kms"
)

func TestSignKeyTypes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		caKey     KeyAlgorithm
		rsaPSS    bool
		leafKey   KeyAlgorithm
		wantSig   x509.SignatureAlgorithm
		wantNotes int
	}{
		{name: "leaf-rsa-2048", caKey: ECDSAP256, leafKey: RSA2048, wantSig: x509.ECDSAWithSHA256},
		{name: "leaf-rsa-3072", caKey: ECDSAP256, leafKey: RSA3072, wantSig: x509.ECDSAWithSHA256},
		{name: "leaf-ecdsa-p256", caKey: ECDSAP256, leafKey: ECDSAP256, wantSig: x509.ECDSAWithSHA256},
		{name: "leaf-ecdsa-p384", caKey: ECDSAP256, leafKey: ECDSAP384, wantSig: x509.ECDSAWithSHA256},
		{name: "leaf-ecdsa-p521", caKey: ECDSAP256, leafKey: ECDSAP521, wantSig: x509.ECDSAWithSHA256},
		{name: "leaf-ed25519", caKey: ECDSAP256, leafKey: Ed25519, wantSig: x509.ECDSAWithSHA256},
		{name: "leaf-ml-dsa-44", caKey: ECDSAP256, leafKey: MLDSA44, wantSig: x509.ECDSAWithSHA256},
		{name: "leaf-ml-dsa-65", caKey: ECDSAP256, leafKey: MLDSA65, wantSig: x509.ECDSAWithSHA256},
		{name: "leaf-ml-dsa-87", caKey: ECDSAP256, leafKey: MLDSA87, wantSig: x509.ECDSAWithSHA256},
		{name: "ca-ecdsa-p384", caKey: ECDSAP384, leafKey: ECDSAP256, wantSig: x509.ECDSAWithSHA384},
		{name: "ca-ecdsa-p521", caKey: ECDSAP521, leafKey: ECDSAP256, wantSig: x509.ECDSAWithSHA512},
		{name: "ca-ecdsa-ignores-pss", caKey: ECDSAP256, rsaPSS: true, leafKey: ECDSAP256, wantSig: x509.ECDSAWithSHA256},
		{name: "ca-rsa-2048-pkcs1", caKey: RSA2048, leafKey: ECDSAP256, wantSig: x509.SHA256WithRSA},
		{name: "ca-rsa-2048-pss", caKey: RSA2048, rsaPSS: true, leafKey: ECDSAP256, wantSig: x509.SHA256WithRSAPSS},
		{name: "ca-rsa-3072-pss-rsa-leaf", caKey: RSA3072, rsaPSS: true, leafKey: RSA2048, wantSig: x509.SHA256WithRSAPSS},
		{name: "ca-ed25519", caKey: Ed25519, leafKey: ECDSAP256, wantSig: x509.PureEd25519},
		{name: "ca-ed25519-ed25519-leaf", caKey: Ed25519, leafKey: Ed25519, wantSig: x509.PureEd25519},
		{name: "ca-ml-dsa-44", caKey: MLDSA44, leafKey: ECDSAP256, wantSig: x509.MLDSA44},
		{name: "ca-ml-dsa-65", caKey: MLDSA65, leafKey: ECDSAP256, wantSig: x509.MLDSA65},
		{name: "ca-ml-dsa-87", caKey: MLDSA87, leafKey: ECDSAP256, wantSig: x509.MLDSA87},
		{name: "ca-ml-dsa-87-ml-dsa-65-leaf", caKey: MLDSA87, leafKey: MLDSA65, wantSig: x509.MLDSA87},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca := newCA(t, withCAKeyAlg(tt.caKey, 0))
			leafKey := testKey(t, tt.leafKey, 0)
			opts := baseOptions()
			opts.RSAPSS = tt.rsaPSS
			issued := mustSign(t, ca, Request{
				CSR:         newCSR(t, withKey(leafKey)),
				KeyUsage:    x509.KeyUsageDigitalSignature,
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}, opts)

			cert := issued.Certificate
			if cert.SignatureAlgorithm != tt.wantSig {
				t.Errorf("signature algorithm = %s, want %s", cert.SignatureAlgorithm, tt.wantSig)
			}
			if !PublicKeysEqual(leafKey.Public(), cert.PublicKey) {
				t.Error("certificate does not carry the CSR's public key")
			}
			if alg, err := describeKey(cert.PublicKey); err != nil || alg != tt.leafKey {
				t.Errorf("certificate key = %s (%v), want %s", alg, err, tt.leafKey)
			}
			if err := cert.CheckSignatureFrom(ca.Certificate); err != nil {
				t.Errorf("CheckSignatureFrom: %v", err)
			}
			if len(issued.Notes) != tt.wantNotes {
				t.Errorf("notes = %q", issued.Notes)
			}
			verifyIssued(t, issued)
		})
	}
}

// tamperCSR changes one letter of the first name in the signed part of a
// CSR, leaving its signature as it was.
func tamperCSR(t testing.TB, csrPEM []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(csrPEM)
	der := bytes.Replace(b.Bytes, []byte("app.example.test"), []byte("app.example.tesx"), 1)
	if bytes.Equal(der, b.Bytes) {
		t.Fatal("nothing to tamper with")
	}
	return pem.EncodeToMemory(&pem.Block{Type: b.Type, Bytes: der})
}

// flipSignatureBit flips the last bit of a CSR, which lies in its signature.
func flipSignatureBit(t testing.TB, csrPEM []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(csrPEM)
	der := slices.Clone(b.Bytes)
	der[len(der)-1] ^= 1
	return pem.EncodeToMemory(&pem.Block{Type: b.Type, Bytes: der})
}

func TestSignRejectsInvalidRequests(t *testing.T) {
	t.Parallel()
	root := newCA(t)
	pathLenZero := newCA(t, withCAPathLen(0), withCACN("Path Zero Root"))
	pathLenOneRoot := newCA(t, withCAPathLen(1), withCACN("Path One Root"))
	underPathLenOne := newCA(t, withParent(pathLenOneRoot))
	pathLenTwo := newCA(t, withCAPathLen(2), withCACN("Path Two Root"))
	serverOnly := newCA(t, withCAExtKeyUsage(x509.ExtKeyUsageServerAuth), withCACN("Server Only CA"))
	constrained := newCA(t, withPermittedDNS("example.test"), withCACN("Constrained CA"))

	good := func(t testing.TB) []byte { return newCSR(t) }
	leafUsages := func(csr []byte) Request {
		return Request{CSR: csr, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}
	}
	otherNameSAN := pkix.Extension{Id: oidExtSubjectAltName, Value: mustMarshal(t, []asn1.RawValue{
		{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte("app.example.test")},
		{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: mustMarshal(t, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3})},
	})}

	tests := []struct {
		name    string
		ca      *Authority
		req     func(t testing.TB) Request
		opts    func(*Options)
		wantMsg []string
	}{
		{name: "empty-csr", req: func(testing.TB) Request { return Request{} }, wantMsg: []string{"no PEM data"}},
		{name: "garbage", req: func(testing.TB) Request { return leafUsages([]byte("hello, CA")) }, wantMsg: []string{"not valid PEM", "unexpected data"}},
		{name: "leading-garbage", req: func(t testing.TB) Request { return leafUsages(append([]byte("csr follows\n"), good(t)...)) }, wantMsg: []string{"unexpected data"}},
		{name: "trailing-garbage", req: func(t testing.TB) Request { return leafUsages(append(good(t), "trailer"...)) }, wantMsg: []string{"unexpected data", "trailer"}},
		{name: "two-csr-blocks", req: func(t testing.TB) Request { return leafUsages(append(good(t), good(t)...)) }, wantMsg: []string{"exactly one PEM block, found 2"}},
		{name: "truncated-pem", req: func(t testing.TB) Request { c := good(t); return leafUsages(c[:len(c)/2]) }, wantMsg: []string{"no END line"}},
		{name: "damaged-base64", req: func(t testing.TB) Request {
			return leafUsages(bytes.Replace(good(t), []byte("\n"), []byte("\n!!!!"), 2))
		}, wantMsg: []string{"damaged"}},
		{name: "wrong-block-type", req: func(testing.TB) Request { return leafUsages(EncodeCertificatesPEM(root.Certificate)) }, wantMsg: []string{`"CERTIFICATE"`, `want "CERTIFICATE REQUEST"`}},
		{name: "private-key-block", req: func(testing.TB) Request {
			return leafUsages(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}))
		}, wantMsg: []string{"private key", "never send private keys"}},
		{name: "pem-headers", req: func(t testing.TB) Request {
			b, _ := pem.Decode(good(t))
			b.Headers = map[string]string{"Proc-Type": "4,ENCRYPTED"}
			return leafUsages(pem.EncodeToMemory(b))
		}, wantMsg: []string{"unexpected PEM headers"}},
		{name: "der-garbage", req: func(testing.TB) Request {
			return leafUsages(pem.EncodeToMemory(&pem.Block{Type: pemCSR, Bytes: []byte("not DER")}))
		}, wantMsg: []string{"does not parse"}},
		{name: "tampered-rsa", req: func(t testing.TB) Request { return leafUsages(tamperCSR(t, newCSR(t, withKeyAlg(RSA2048)))) }, wantMsg: []string{"signature does not verify"}},
		{name: "tampered-ecdsa", req: func(t testing.TB) Request { return leafUsages(tamperCSR(t, newCSR(t))) }, wantMsg: []string{"signature does not verify"}},
		{name: "tampered-ed25519", req: func(t testing.TB) Request { return leafUsages(tamperCSR(t, newCSR(t, withKeyAlg(Ed25519)))) }, wantMsg: []string{"signature does not verify"}},
		{name: "tampered-ml-dsa-44", req: func(t testing.TB) Request { return leafUsages(tamperCSR(t, newCSR(t, withKeyAlg(MLDSA44)))) }, wantMsg: []string{"signature does not verify", "ML-DSA"}},
		{name: "tampered-ml-dsa-65", req: func(t testing.TB) Request { return leafUsages(tamperCSR(t, newCSR(t, withKeyAlg(MLDSA65)))) }, wantMsg: []string{"signature does not verify", "ML-DSA"}},
		{name: "tampered-ml-dsa-87", req: func(t testing.TB) Request { return leafUsages(tamperCSR(t, newCSR(t, withKeyAlg(MLDSA87)))) }, wantMsg: []string{"signature does not verify", "ML-DSA"}},
		{name: "flipped-signature-ml-dsa-65", req: func(t testing.TB) Request {
			return leafUsages(flipSignatureBit(t, newCSR(t, withKeyAlg(MLDSA65))))
		}, wantMsg: []string{"signature does not verify"}},
		{name: "flipped-signature-ed25519", req: func(t testing.TB) Request {
			return leafUsages(flipSignatureBit(t, newCSR(t, withKeyAlg(Ed25519))))
		}, wantMsg: []string{"signature does not verify"}},
		{name: "rsa-1024", req: func(t testing.TB) Request { return leafUsages(newCSR(t, withKeyAlg(rsa1024))) }, wantMsg: []string{"RSA-1024", "too weak", "2048 to 8192"}},
		{name: "ecdsa-p224", req: func(t testing.TB) Request { return leafUsages(newCSR(t, withKeyAlg(ecdsaP224))) }, wantMsg: []string{"ECDSA-P224", "P-256, P-384 or P-521"}},
		{name: "empty-subject-no-sans", req: func(t testing.TB) Request { return leafUsages(newCSR(t, withEmptySubject(), withDNS())) }, wantMsg: []string{"empty subject and no subject alternative names"}},
		{name: "other-name-without-value", req: func(t testing.TB) Request {
			return leafUsages(newCSR(t, withDNS(), withExtension(otherNameSAN)))
		}, wantMsg: []string{"otherName", "[0] EXPLICIT value"}},
		{name: "x400-address-san", req: func(t testing.TB) Request {
			ext := pkix.Extension{Id: oidExtSubjectAltName, Value: mustMarshal(t, []asn1.RawValue{
				{Class: asn1.ClassContextSpecific, Tag: 3, IsCompound: true, Bytes: []byte{0x30, 0x00}},
			})}
			return leafUsages(newCSR(t, withDNS(), withExtension(ext)))
		}, wantMsg: []string{"x400Address subject alternative name"}},
		{name: "name-constraints-in-csr", req: func(t testing.TB) Request {
			ext := pkix.Extension{Id: oidExtNameConstraints, Critical: true, Value: []byte{0x30, 0x00}}
			return Request{CSR: newCSR(t, withExtension(ext)), IsCA: true}
		}, wantMsg: []string{"name constraints"}},
		{name: "unknown-critical-extension", req: func(t testing.TB) Request {
			ext := pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{0x05, 0x00}}
			return leafUsages(newCSR(t, withExtension(ext)))
		}, wantMsg: []string{"critical extension 1.2.3.4"}},
		{name: "duration-over-max", req: func(t testing.TB) Request {
			r := leafUsages(good(t))
			r.Duration = 31 * 24 * time.Hour
			return r
		}, opts: func(o *Options) { o.MaxDuration = 30 * 24 * time.Hour; o.DefaultDuration = 7 * 24 * time.Hour }, wantMsg: []string{"31 days exceeds this issuer's maximum of 30 days"}},
		{name: "negative-duration", req: func(t testing.TB) Request {
			r := leafUsages(good(t))
			r.Duration = -time.Hour
			return r
		}, wantMsg: []string{"negative"}},
		{name: "duration-below-minimum", req: func(t testing.TB) Request {
			r := leafUsages(good(t))
			r.Duration = 5 * time.Minute
			return r
		}, wantMsg: []string{"5m0s is below the minimum of 10m0s"}},
		{name: "csr-key-usage-contradicts", req: func(t testing.TB) Request {
			return leafUsages(newCSR(t, withKeyUsageExt(x509.KeyUsageDigitalSignature)))
		}, wantMsg: []string{"the CSR encodes key usages ['digital signature']", "['digital signature', 'key encipherment']"}},
		{name: "csr-ext-key-usage-contradicts", req: func(t testing.TB) Request {
			r := leafUsages(newCSR(t, withExtKeyUsageExt(x509.ExtKeyUsageServerAuth)))
			r.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
			return r
		}, wantMsg: []string{"['server auth']", "['client auth']"}},
		{name: "csr-ext-key-usage-missing-from-request", req: func(t testing.TB) Request {
			return leafUsages(newCSR(t, withExtKeyUsageExt(x509.ExtKeyUsageServerAuth)))
		}, wantMsg: []string{"extended key usages ['server auth'] but the request asks for []"}},
		{name: "csr-unknown-ext-key-usage", req: func(t testing.TB) Request {
			ext := pkix.Extension{Id: oidExtExtKeyUsage, Value: mustMarshal(t, []asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 17}})}
			return leafUsages(newCSR(t, withExtension(ext)))
		}, wantMsg: []string{"1.3.6.1.5.5.7.3.17", "cannot issue"}},
		{name: "csr-is-ca-request-is-not", req: func(t testing.TB) Request {
			return leafUsages(newCSR(t, withBasicConstraintsExt(true, -1)))
		}, wantMsg: []string{"cA=true but the request has isCA=false"}},
		{name: "csr-path-len-contradicts", req: func(t testing.TB) Request {
			return Request{CSR: newCSR(t, withBasicConstraintsExt(true, 1)), IsCA: true, MaxPathLen: ptr(0)}
		}, wantMsg: []string{"pathLenConstraint 1 but the request asks for 0"}},
		{name: "cert-sign-without-is-ca", req: func(t testing.TB) Request {
			return Request{CSR: good(t), KeyUsage: x509.KeyUsageCertSign}
		}, wantMsg: []string{"'cert sign' is only allowed with isCA: true"}},
		{name: "path-len-without-is-ca", req: func(t testing.TB) Request {
			r := leafUsages(good(t))
			r.MaxPathLen = ptr(1)
			return r
		}, wantMsg: []string{"only allowed with isCA: true"}},
		{name: "negative-path-len", req: func(t testing.TB) Request {
			return Request{CSR: good(t), IsCA: true, MaxPathLen: ptr(-2)}
		}, wantMsg: []string{"-2 is negative"}},
		{name: "undefined-key-usage-bits", req: func(t testing.TB) Request {
			return Request{CSR: good(t), KeyUsage: 1 << 12}
		}, wantMsg: []string{"not defined by RFC 5280"}},
		{name: "unknown-ext-key-usage-value", req: func(t testing.TB) Request {
			return Request{CSR: good(t), ExtKeyUsage: []x509.ExtKeyUsage{99}}
		}, wantMsg: []string{"unknown extended key usage value 99"}},
		{name: "is-ca-under-path-len-zero", ca: pathLenZero, req: func(t testing.TB) Request {
			return Request{CSR: good(t), IsCA: true}
		}, wantMsg: []string{`"CN=Path Zero Root,O=Quill Tests" has pathLenConstraint 0`, "isCA: false"}},
		{name: "is-ca-two-below-path-len-one-root", ca: underPathLenOne, req: func(t testing.TB) Request {
			return Request{CSR: good(t), IsCA: true}
		}, wantMsg: []string{`"CN=Path One Root,O=Quill Tests" has pathLenConstraint 1`}},
		{name: "path-len-above-chain-budget", ca: pathLenTwo, req: func(t testing.TB) Request {
			return Request{CSR: good(t), IsCA: true, MaxPathLen: ptr(5)}
		}, wantMsg: []string{"path length constraint 5", "at most 1"}},
		{name: "ext-key-usage-outside-ca", ca: serverOnly, req: func(t testing.TB) Request {
			r := leafUsages(good(t))
			r.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
			return r
		}, wantMsg: []string{"'client auth' is not allowed by CA", "['server auth']"}},
		{name: "name-outside-ca-constraints", ca: constrained, req: func(t testing.TB) Request {
			return leafUsages(newCSR(t, withCN("evil.other.test"), withDNS("evil.other.test")))
		}, wantMsg: []string{"name constraints do not permit", "discarded"}},
		{name: "ed25519-explicit-key-encipherment", req: func(t testing.TB) Request {
			r := leafUsages(newCSR(t, withKeyAlg(Ed25519)))
			r.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			return r
		}, wantMsg: []string{"['key encipherment'] are not possible with Ed25519 keys"}},
		{name: "ml-dsa-key-agreement", req: func(t testing.TB) Request {
			return Request{CSR: newCSR(t, withKeyAlg(MLDSA65)), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement}
		}, wantMsg: []string{"['key agreement'] are not possible with ML-DSA-65 keys"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca := tt.ca
			if ca == nil {
				ca = root
			}
			opts := baseOptions()
			if tt.opts != nil {
				tt.opts(&opts)
			}
			issued, err := ca.Sign(tt.req(t), opts)
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("Sign() = %v, %v; want an error wrapping ErrInvalidRequest", issued, err)
			}
			if issued != nil {
				t.Error("Sign returned a certificate along with an error")
			}
			containsAll(t, err.Error(), tt.wantMsg...)
		})
	}
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	der, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestSignIssuerFaults(t *testing.T) {
	t.Parallel()
	expiringRoot := newCA(t, withCAValidity(testNow.AddDate(-1, 0, 0), testNow.Add(5*time.Minute)))
	tests := []struct {
		name    string
		ca      *Authority
		opts    func(*Options)
		want    error
		wantMsg []string
	}{
		{name: "expired-ca", ca: newCA(t, withCAValidity(testNow.AddDate(-2, 0, 0), testNow.AddDate(0, 0, -1))), want: ErrCAExpired, wantMsg: []string{"expired at 2026-02-28T12:00:00Z"}},
		{name: "not-yet-valid-ca", ca: newCA(t, withCAValidity(testNow.Add(time.Hour), testNow.AddDate(1, 0, 0))), want: ErrCANotYetValid},
		{name: "not-a-ca", ca: newCA(t, withNotCA()), want: ErrNotCA},
		{name: "no-cert-sign", ca: newCA(t, withCAKeyUsage(x509.KeyUsageDigitalSignature)), want: ErrNoCertSign},
		{name: "key-mismatch", ca: func() *Authority {
			a := newCA(t)
			return &Authority{Certificate: a.Certificate, Root: a.Root, Signer: testKey(t, ECDSAP256, 3)}
		}(), want: kms.ErrKeyMismatch},
		{name: "ca-expires-within-minimum-duration", ca: expiringRoot, want: ErrCAExpired, wantMsg: []string{"less than the minimum certificate lifetime of 10m0s away"}},
		{name: "options-without-now", ca: newCA(t), opts: func(o *Options) { o.Now = time.Time{} }, want: ErrInvalidOptions, wantMsg: []string{"Now is not set"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := baseOptions()
			if tt.opts != nil {
				tt.opts(&opts)
			}
			_, err := tt.ca.Sign(Request{CSR: newCSR(t), KeyUsage: DefaultKeyUsage}, opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Sign() error = %v, want %v", err, tt.want)
			}
			if errors.Is(err, ErrInvalidRequest) {
				t.Errorf("issuer fault %v is reported as an invalid request", err)
			}
			containsAll(t, err.Error(), tt.wantMsg...)
		})
	}
}

func TestSignAccepts(t *testing.T) {
	t.Parallel()
	root := newCA(t)
	pathLenOneRoot := newCA(t, withCAPathLen(1), withCACN("Path One Root"))
	serverOnly := newCA(t, withCAExtKeyUsage(x509.ExtKeyUsageServerAuth), withCACN("Server Only CA"))
	constrained := newCA(t, withPermittedDNS("example.test"), withCACN("Constrained CA"))

	// A subject in an order Go would never produce, with a UTF8String value,
	// as cert-manager's literalSubject can send.
	literal := mustMarshal(t, pkix.RDNSequence{
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "literal.example.test"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte("Quill Ünïcode")}}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 6}, Value: "DE"}},
	})

	tests := []struct {
		name  string
		ca    *Authority
		req   func(t testing.TB) Request
		check func(t *testing.T, csr *x509.CertificateRequest, issued *Issued)
	}{
		{name: "all-san-kinds", req: func(t testing.TB) Request {
			return Request{CSR: newCSR(t, withDNS("a.example.test", "*.b.example.test"), withIP("10.0.0.7", "2001:db8::1"),
				withURI("spiffe://cluster.local/ns/default/sa/app"), withEmail("ops@example.test"))}
		}, check: func(t *testing.T, _ *x509.CertificateRequest, issued *Issued) {
			c := issued.Certificate
			if !slices.Equal(c.DNSNames, []string{"a.example.test", "*.b.example.test"}) || len(c.IPAddresses) != 2 ||
				len(c.URIs) != 1 || c.URIs[0].String() != "spiffe://cluster.local/ns/default/sa/app" ||
				!slices.Equal(c.EmailAddresses, []string{"ops@example.test"}) {
				t.Errorf("names = %v %v %v %v", c.DNSNames, c.IPAddresses, c.URIs, c.EmailAddresses)
			}
		}},
		{name: "empty-subject-with-sans", req: func(t testing.TB) Request {
			return Request{CSR: newCSR(t, withEmptySubject(), withDNS("app.example.test"))}
		}, check: func(t *testing.T, _ *x509.CertificateRequest, issued *Issued) {
			if !bytes.Equal(issued.Certificate.RawSubject, emptySubject) {
				t.Errorf("subject = %q, want empty", issued.Certificate.Subject)
			}
			for _, e := range issued.Certificate.Extensions {
				if e.Id.Equal(oidExtSubjectAltName) && !e.Critical {
					t.Error("subjectAltName must be critical when the subject is empty (RFC 5280, 4.2.1.6)")
				}
			}
		}},
		{name: "literal-subject-kept-byte-for-byte", req: func(t testing.TB) Request {
			return Request{CSR: newCSR(t, withRawSubject(literal))}
		}, check: func(t *testing.T, csr *x509.CertificateRequest, issued *Issued) {
			if !bytes.Equal(issued.Certificate.RawSubject, literal) || !bytes.Equal(csr.RawSubject, literal) {
				t.Errorf("subject = %q, want the CSR's bytes", issued.Certificate.Subject)
			}
		}},
		{name: "csr-usages-agree-in-another-order", req: func(t testing.TB) Request {
			return Request{
				CSR:         newCSR(t, withKeyUsageExt(DefaultKeyUsage), withExtKeyUsageExt(x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)),
				KeyUsage:    DefaultKeyUsage,
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
			}
		}, check: func(t *testing.T, _ *x509.CertificateRequest, issued *Issued) {
			// The CSR's key is ECDSA: the key usage table leaves
			// keyEncipherment out (RFC 5480), whatever was asked.
			c := issued.Certificate
			if c.KeyUsage != x509.KeyUsageDigitalSignature || !sameUsageSet(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
				t.Errorf("usages = %v %v", keyUsageNames(c.KeyUsage), extKeyUsageNames(c.ExtKeyUsage))
			}
		}},
		{name: "request-usages-without-csr-extensions", req: func(t testing.TB) Request {
			return Request{CSR: newCSR(t), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		}, check: func(t *testing.T, _ *x509.CertificateRequest, issued *Issued) {
			c := issued.Certificate
			if c.KeyUsage != x509.KeyUsageDigitalSignature || !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
				t.Errorf("usages = %v %v", keyUsageNames(c.KeyUsage), extKeyUsageNames(c.ExtKeyUsage))
			}
		}},
		{name: "rsa-keeps-default-key-encipherment", req: func(t testing.TB) Request {
			return Request{CSR: newCSR(t, withKeyAlg(RSA2048), withKeyUsageExt(DefaultKeyUsage)), KeyUsage: DefaultKeyUsage}
		}, check: func(t *testing.T, _ *x509.CertificateRequest, issued *Issued) {
			if issued.Certificate.KeyUsage != DefaultKeyUsage || len(issued.Notes) != 0 {
				t.Errorf("usages = %v, notes %q", keyUsageNames(issued.Certificate.KeyUsage), issued.Notes)
			}
		}},
		{name: "ed25519-drops-default-key-encipherment", req: func(t testing.TB) Request {
			return Request{CSR: newCSR(t, withKeyAlg(Ed25519)), KeyUsage: DefaultKeyUsage}
		}, check: wantSignOnly(x509.KeyUsageDigitalSignature, "Ed25519 keys can only sign")},
		{name: "ml-dsa-65-drops-default-key-encipherment-encoded-in-csr", req: func(t testing.TB) Request {
			return Request{CSR: newCSR(t, withKeyAlg(MLDSA65), withKeyUsageExt(DefaultKeyUsage)), KeyUsage: DefaultKeyUsage}
		}, check: wantSignOnly(x509.KeyUsageDigitalSignature, "ML-DSA-65 keys can only sign")},
		{name: "ml-dsa-87-ca-drops-default-key-encipherment", req: func(t testing.TB) Request {
			return Request{CSR: newCSR(t, withKeyAlg(MLDSA87)), KeyUsage: DefaultKeyUsage | x509.KeyUsageCertSign, IsCA: true}
		}, check: wantSignOnly(x509.KeyUsageDigitalSignature|x509.KeyUsageCertSign|x509.KeyUsageCRLSign, "ML-DSA-87 keys can only sign")},
		{name: "leaf-has-ca-false", req: func(t testing.TB) Request {
			return Request{CSR: newCSR(t, withBasicConstraintsExt(false, -1)), KeyUsage: DefaultKeyUsage}
		}, check: func(t *testing.T, _ *x509.CertificateRequest, issued *Issued) {
			c := issued.Certificate
			if !c.BasicConstraintsValid || c.IsCA || c.MaxPathLen != -1 {
				t.Errorf("basic constraints = %t %t %d", c.BasicConstraintsValid, c.IsCA, c.MaxPathLen)
			}
		}},
		{name: "is-ca-with-path-len-zero", req: func(t testing.TB) Request {
			return Request{CSR: newCSR(t, withBasicConstraintsExt(true, 0)), IsCA: true, MaxPathLen: ptr(0)}
		}, check: func(t *testing.T, _ *x509.CertificateRequest, issued *Issued) {
			c := issued.Certificate
			if !c.IsCA || c.MaxPathLen != 0 || !c.MaxPathLenZero || c.KeyUsage&x509.KeyUsageCertSign == 0 {
				t.Errorf("CA = %t pathlen %d zero %t usages %v", c.IsCA, c.MaxPathLen, c.MaxPathLenZero, keyUsageNames(c.KeyUsage))
			}
		}},
		{name: "is-ca-without-path-len", req: func(t testing.TB) Request {
			return Request{CSR: newCSR(t), IsCA: true}
		}, check: func(t *testing.T, _ *x509.CertificateRequest, issued *Issued) {
			c := issued.Certificate
			if !c.IsCA || c.MaxPathLen != -1 || c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
				t.Errorf("CA = %t pathlen %d usages %v", c.IsCA, c.MaxPathLen, keyUsageNames(c.KeyUsage))
			}
		}},
		{name: "is-ca-within-root-path-len", ca: pathLenOneRoot, req: func(t testing.TB) Request {
			return Request{CSR: newCSR(t), IsCA: true, MaxPathLen: ptr(0)}
		}, check: func(t *testing.T, _ *x509.CertificateRequest, issued *Issued) {
			if !issued.Certificate.IsCA {
				t.Error("not a CA")
			}
		}},
		{name: "ext-key-usage-within-ca", ca: serverOnly, req: func(t testing.TB) Request {
			return Request{CSR: newCSR(t), KeyUsage: DefaultKeyUsage, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		}},
		{name: "names-within-ca-constraints", ca: constrained, req: func(t testing.TB) Request {
			return Request{CSR: newCSR(t, withCN("api.example.test"), withDNS("api.example.test"))}
		}},
		{name: "legacy-pem-label", req: func(t testing.TB) Request {
			b, _ := pem.Decode(newCSR(t))
			b.Type = pemLegacyCSR
			return Request{CSR: pem.EncodeToMemory(b)}
		}},
		{name: "unknown-non-critical-extension-noted", req: func(t testing.TB) Request {
			ext := pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Value: []byte{0x05, 0x00}}
			return Request{CSR: newCSR(t, withExtension(ext))}
		}, check: func(t *testing.T, _ *x509.CertificateRequest, issued *Issued) {
			if len(issued.Notes) != 1 || !strings.Contains(issued.Notes[0], "1.2.3.4") {
				t.Errorf("notes = %q", issued.Notes)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca := tt.ca
			if ca == nil {
				ca = root
			}
			req := tt.req(t)
			issued := mustSign(t, ca, req, baseOptions())
			verifyIssued(t, issued)
			if tt.check != nil {
				b, _ := pem.Decode(req.CSR)
				csr, err := x509.ParseCertificateRequest(b.Bytes)
				if err != nil {
					t.Fatal(err)
				}
				tt.check(t, csr, issued)
			}
		})
	}
}

func wantSignOnly(ku x509.KeyUsage, note string) func(*testing.T, *x509.CertificateRequest, *Issued) {
	return func(t *testing.T, _ *x509.CertificateRequest, issued *Issued) {
		if issued.Certificate.KeyUsage != ku {
			t.Errorf("usages = %v, want %v", keyUsageNames(issued.Certificate.KeyUsage), keyUsageNames(ku))
		}
		if len(issued.Notes) != 1 || !strings.Contains(issued.Notes[0], note) || !strings.Contains(issued.Notes[0], "'key encipherment'") {
			t.Errorf("notes = %q, want one mentioning %q", issued.Notes, note)
		}
	}
}

func TestSignValidity(t *testing.T) {
	t.Parallel()
	root := newCA(t, withCACN("Long Root"))
	shortRoot := newCA(t, withCACN("Short Root"), withCAValidity(testNow.AddDate(-1, 0, 0), testNow.AddDate(0, 0, 30)))
	underShortRoot := newCA(t, withParent(shortRoot), withCAValidity(testNow.AddDate(-1, 0, 0), testNow.AddDate(5, 0, 0)))
	now := testNow.Add(1500 * time.Millisecond)
	tests := []struct {
		name         string
		ca           *Authority
		duration     time.Duration
		defaultDur   time.Duration
		wantNotAfter time.Time
		wantNote     []string
	}{
		{name: "requested-duration", ca: root, duration: 48 * time.Hour, wantNotAfter: testNow.Add(time.Second + 48*time.Hour)},
		{name: "minimum-duration", ca: root, duration: MinCertificateDuration, wantNotAfter: testNow.Add(time.Second + MinCertificateDuration)},
		{name: "package-default-duration", ca: root, wantNotAfter: testNow.Add(time.Second + 90*24*time.Hour)},
		{name: "options-default-duration", ca: root, defaultDur: 30 * 24 * time.Hour, wantNotAfter: testNow.Add(time.Second + 30*24*time.Hour)},
		{name: "clamped-to-issuing-ca", ca: shortRoot, duration: 90 * 24 * time.Hour, wantNotAfter: shortRoot.Certificate.NotAfter,
			wantNote: []string{"validity clamped to the CA's notAfter 2026-03-31T12:00:00Z", "90 days", "Short Root"}},
		{name: "clamped-to-root-above-intermediate", ca: underShortRoot, duration: 90 * 24 * time.Hour, wantNotAfter: shortRoot.Certificate.NotAfter,
			wantNote: []string{"2026-03-31T12:00:00Z", "Short Root"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := baseOptions()
			opts.Now, opts.DefaultDuration = now, tt.defaultDur
			issued := mustSign(t, tt.ca, Request{CSR: newCSR(t), Duration: tt.duration}, opts)
			c := issued.Certificate
			if want := testNow.Add(time.Second); !c.NotBefore.Equal(want) {
				t.Errorf("NotBefore = %s, want %s (now truncated to the second)", c.NotBefore, want)
			}
			if !c.NotAfter.Equal(tt.wantNotAfter) {
				t.Errorf("NotAfter = %s, want %s", c.NotAfter, tt.wantNotAfter)
			}
			if len(tt.wantNote) == 0 {
				if len(issued.Notes) != 0 {
					t.Errorf("unexpected notes %q", issued.Notes)
				}
				return
			}
			if len(issued.Notes) != 1 {
				t.Fatalf("notes = %q, want one", issued.Notes)
			}
			containsAll(t, issued.Notes[0], tt.wantNote...)
		})
	}
}

func TestSignSerials(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	csr := newCSR(t)
	seen := map[string]bool{}
	for range 300 {
		serial := mustSign(t, ca, Request{CSR: csr}, baseOptions()).Certificate.SerialNumber
		if serial.Sign() <= 0 {
			t.Fatalf("serial %x is not positive", serial)
		}
		if serial.BitLen() != 159 {
			t.Fatalf("serial %x has %d bits, want 159", serial, serial.BitLen())
		}
		der := mustMarshal(t, serial)
		if contentLen := int(der[1]); contentLen > 20 {
			t.Fatalf("serial encodes in %d octets, RFC 5280 allows 20", contentLen)
		}
		if seen[serial.String()] {
			t.Fatalf("serial %x repeated", serial)
		}
		seen[serial.String()] = true
	}
}

// fixedReader yields one byte value forever.
type fixedReader byte

func (r fixedReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

func TestSignSerialFromOptionsRand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fill byte
		want string
	}{
		{name: "all-ones", fill: 0xff, want: "7f" + strings.Repeat("ff", 19)},
		{name: "all-zeros", fill: 0x00, want: "40" + strings.Repeat("00", 19)},
	}
	ca := newCA(t, withCAKeyAlg(Ed25519, 0)) // Ed25519 signing reads no randomness
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := baseOptions()
			opts.Rand = io.Reader(fixedReader(tt.fill))
			got := mustSign(t, ca, Request{CSR: newCSR(t)}, opts).Certificate.SerialNumber
			if want, _ := new(big.Int).SetString(tt.want, 16); got.Cmp(want) != 0 {
				t.Errorf("serial = %x, want %s", got, tt.want)
			}
		})
	}
}

func TestSignKeyIdentifiers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		ca       *Authority
		leafKey  KeyAlgorithm
		wantAKI  bool
		wantNote string
	}{
		{name: "ecdsa-leaf", ca: newCA(t), leafKey: ECDSAP256, wantAKI: true},
		{name: "ml-dsa-leaf", ca: newCA(t), leafKey: MLDSA44, wantAKI: true},
		{name: "rsa-leaf-under-ca-without-ski", ca: newCA(t, withoutSKI()), leafKey: RSA2048, wantNote: "no subject key identifier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			issued := mustSign(t, tt.ca, Request{CSR: newCSR(t, withKeyAlg(tt.leafKey))}, baseOptions())
			c := issued.Certificate
			var spki struct {
				Algorithm asn1.RawValue
				Key       asn1.BitString
			}
			if _, err := asn1.Unmarshal(c.RawSubjectPublicKeyInfo, &spki); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(spki.Key.Bytes)
			if !bytes.Equal(c.SubjectKeyId, sum[:20]) {
				t.Errorf("SKI = %x, want RFC 7093 method 1 %x", c.SubjectKeyId, sum[:20])
			}
			if tt.wantAKI {
				if len(tt.ca.Certificate.SubjectKeyId) == 0 || !bytes.Equal(c.AuthorityKeyId, tt.ca.Certificate.SubjectKeyId) {
					t.Errorf("AKI = %x, want the CA's SKI %x", c.AuthorityKeyId, tt.ca.Certificate.SubjectKeyId)
				}
			} else if len(c.AuthorityKeyId) != 0 {
				t.Errorf("AKI = %x, want none", c.AuthorityKeyId)
			}
			if tt.wantNote != "" && (len(issued.Notes) != 1 || !strings.Contains(issued.Notes[0], tt.wantNote)) {
				t.Errorf("notes = %q, want %q", issued.Notes, tt.wantNote)
			}
			verifyIssued(t, issued)
		})
	}
}

func TestSignSubjectSameAsCA(t *testing.T) {
	t.Parallel()
	ca := newCA(t, withCACN("app.example.test"))
	csr := newCSR(t, withRawSubject(ca.Certificate.RawSubject))
	issued := mustSign(t, ca, Request{CSR: csr}, baseOptions())
	if !bytes.Equal(issued.Certificate.AuthorityKeyId, ca.Certificate.SubjectKeyId) {
		t.Errorf("AKI = %x, want %x even when the subject equals the issuer", issued.Certificate.AuthorityKeyId, ca.Certificate.SubjectKeyId)
	}
}

func TestSignURLs(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	opts := baseOptions()
	opts.CRLDistributionPoints = []string{"http://pki.example.test/crl/root.crl"}
	opts.OCSPServers = []string{"http://ocsp.example.test", "http://ocsp2.example.test"}
	opts.IssuingCertificateURLs = []string{"http://pki.example.test/root.cer"}
	c := mustSign(t, ca, Request{CSR: newCSR(t)}, opts).Certificate
	tests := []struct {
		name      string
		got, want []string
	}{
		{name: "crl-distribution-points", got: c.CRLDistributionPoints, want: opts.CRLDistributionPoints},
		{name: "ocsp-servers", got: c.OCSPServer, want: opts.OCSPServers},
		{name: "issuing-certificate-urls", got: c.IssuingCertificateURL, want: opts.IssuingCertificateURLs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if !slices.Equal(tt.got, tt.want) {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestSignChainShapes(t *testing.T) {
	t.Parallel()
	root := newCA(t, withCACN("Shape Root"))
	inter1 := newCA(t, withParent(root), withCACN("Shape Intermediate 1"))
	inter2 := newCA(t, withParent(inter1), withCACN("Shape Intermediate 2"))
	tests := []struct {
		name      string
		ca        *Authority
		wantChain []string
	}{
		{name: "issued-by-root", ca: root, wantChain: []string{"leaf"}},
		{name: "issued-by-intermediate", ca: inter1, wantChain: []string{"leaf", "Shape Intermediate 1"}},
		{name: "issued-by-second-intermediate", ca: inter2, wantChain: []string{"leaf", "Shape Intermediate 2", "Shape Intermediate 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			issued := mustSign(t, tt.ca, Request{CSR: newCSR(t, withCN("leaf"))}, baseOptions())
			var got []string
			for _, c := range pemCerts(t, issued.ChainPEM) {
				got = append(got, c.Subject.CommonName)
			}
			if !slices.Equal(got, tt.wantChain) {
				t.Errorf("ChainPEM = %q, want %q", got, tt.wantChain)
			}
			ca := pemCerts(t, issued.CAPEM)
			if len(ca) != 1 || !bytes.Equal(ca[0].Raw, root.Certificate.Raw) {
				t.Errorf("CAPEM is not just the root")
			}
			verifyIssued(t, issued)
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    Options
		wantMsg string
	}{
		{name: "minimal", opts: Options{Now: testNow}},
		{name: "full", opts: Options{Now: testNow, DefaultDuration: time.Hour, MaxDuration: 24 * time.Hour,
			CRLDistributionPoints: []string{"http://crl.example.test/a.crl"}, OCSPServers: []string{"https://ocsp.example.test"}}},
		{name: "no-now", opts: Options{}, wantMsg: "Now is not set"},
		{name: "negative-default", opts: Options{Now: testNow, DefaultDuration: -time.Hour}, wantMsg: "default duration -1h0m0s is negative"},
		{name: "negative-max", opts: Options{Now: testNow, MaxDuration: -time.Hour}, wantMsg: "maximum duration -1h0m0s is negative"},
		{name: "default-over-max", opts: Options{Now: testNow, DefaultDuration: 48 * time.Hour, MaxDuration: 24 * time.Hour}, wantMsg: "exceeds the maximum"},
		{name: "package-default-over-max", opts: Options{Now: testNow, MaxDuration: 24 * time.Hour}, wantMsg: "default duration 2160h0m0s exceeds"},
		{name: "default-below-minimum", opts: Options{Now: testNow, DefaultDuration: time.Minute}, wantMsg: "below the minimum"},
		{name: "max-below-minimum", opts: Options{Now: testNow, DefaultDuration: time.Minute, MaxDuration: time.Minute}, wantMsg: "maximum duration 1m0s is below"},
		{name: "ldap-url-without-host", opts: Options{Now: testNow, CRLDistributionPoints: []string{"ldap:///CN=Quill,CN=CDP,DC=example,DC=test"}}},
		{name: "relative-url", opts: Options{Now: testNow, OCSPServers: []string{"/ocsp"}}, wantMsg: `OCSP server "/ocsp" is not an absolute URL`},
		{name: "http-url-without-host", opts: Options{Now: testNow, IssuingCertificateURLs: []string{"http:///ca.cer"}}, wantMsg: `issuing certificate URL "http:///ca.cer"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.opts.Validate()
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("Validate() = %v, want ErrInvalidOptions", err)
			}
			containsAll(t, err.Error(), tt.wantMsg)
		})
	}
}

// failingSigner stands in for an HSM that stops answering.
type failingSigner struct{ crypto.Signer }

func (failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("hsm: session closed")
}

// lyingSigner returns a signature that is not over the data.
type lyingSigner struct{ crypto.Signer }

func (s lyingSigner) Sign(r io.Reader, _ []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.Signer.Sign(r, make([]byte, 32), opts)
}

func TestSignSignerFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		wrap    func(crypto.Signer) crypto.Signer
		wantMsg string
	}{
		{name: "signer-error", wrap: func(s crypto.Signer) crypto.Signer { return failingSigner{s} }, wantMsg: "hsm: session closed"},
		{name: "signer-bad-signature", wrap: func(s crypto.Signer) crypto.Signer { return lyingSigner{s} }, wantMsg: "sign certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca := newCA(t)
			ca.Signer = tt.wrap(ca.Signer)
			issued, err := ca.Sign(Request{CSR: newCSR(t)}, baseOptions())
			if err == nil || issued != nil {
				t.Fatalf("Sign() = %v, %v; want an error and no certificate", issued, err)
			}
			for _, sentinel := range []error{ErrInvalidRequest, ErrMalformedCA, ErrCAExpired, kms.ErrKeyMismatch} {
				if errors.Is(err, sentinel) {
					t.Errorf("signer failure %v classified as %v, want a plain error", err, sentinel)
				}
			}
			containsAll(t, err.Error(), tt.wantMsg)
		})
	}
}

func ExampleAuthority_Sign() {
	now := time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)
	certPEM, keyPEM, err := NewSelfSignedRoot(pkix.Name{CommonName: "Example Root"}, ECDSAP256, 365*24*time.Hour, now)
	if err != nil {
		panic(err)
	}
	ca, err := LoadAuthority(certPEM, keyPEM, nil)
	if err != nil {
		panic(err)
	}
	key, _ := GenerateKey(Ed25519)
	der, _ := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{DNSNames: []string{"app.example.test"}}, key)
	issued, err := ca.Sign(Request{
		CSR:      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
		KeyUsage: DefaultKeyUsage,
	}, Options{Now: now})
	if err != nil {
		panic(err)
	}
	fmt.Println(issued.Certificate.DNSNames, issued.Certificate.NotAfter.Sub(now))
	fmt.Println(issued.Notes[0])
	// Output:
	// [app.example.test] 2160h0m0s
	// key usage 'key encipherment' (part of cert-manager's default usages) was left out: Ed25519 keys can only sign
}
