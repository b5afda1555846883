package revocation

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/revocationdata"
	"github.com/quill-pki/quill/pkg/audit"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/ledger"
)

// testCRL signs a CRL with n entries.
func testCRL(t *testing.T, n int, number int64) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CRL test CA"},
		NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCRLSign | x509.KeyUsageCertSign,
		SubjectKeyId: []byte{1, 2, 3, 4},
	}
	entries := make([]x509.RevocationListEntry, n)
	for i := range entries {
		entries[i] = x509.RevocationListEntry{SerialNumber: new(big.Int).Lsh(big.NewInt(int64(i+1)), 120), RevocationTime: testNow}
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(number), ThisUpdate: testNow, NextUpdate: testNow.Add(time.Hour), RevokedCertificateEntries: entries,
	}, ca, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestCRLPublishParts: a CRL too large for one ConfigMap is written in
// parts that readers reassemble; a torn set is refused; when the CRL
// shrinks back into one object the parts go.
func TestCRLPublishParts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	api := newAPI(t)
	p := &crlPublisher{client: api, reader: api}
	const name = "ca-crl"

	read := func() (*corev1.ConfigMap, []byte, bool) {
		t.Helper()
		var main corev1.ConfigMap
		if err := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: name}, &main); err != nil {
			t.Fatal(err)
		}
		der, ok := revocationdata.CRLFromConfigMaps(&main, func(n string) (*corev1.ConfigMap, bool) {
			var part corev1.ConfigMap
			err := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: n}, &part)
			return &part, err == nil
		})
		return &main, der, ok
	}
	publish := func(der []byte) {
		t.Helper()
		var cm corev1.ConfigMap
		err := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: name}, &cm)
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		if err := p.publish(ctx, testNamespace, name, &cm, err == nil, der, map[string]string{revocationdata.AnnIssuer: "QuillIssuer/team-a/ca"}); err != nil {
			t.Fatal(err)
		}
	}

	// 55,000 entries: about 2 MB, three parts.
	large := testCRL(t, 55000, 1)
	if len(large) <= 2*configMapPayloadLimit {
		t.Fatalf("test CRL is %d bytes; it must need three parts", len(large))
	}
	publish(large)
	main, der, ok := read()
	if !ok || !bytes.Equal(der, large) {
		t.Fatalf("reassembled CRL: ok=%v, %d bytes, want the %d published", ok, len(der), len(large))
	}
	if main.Annotations[revocationdata.AnnCRLParts] != "3" || main.BinaryData[revocationdata.KeyDER] != nil || main.Data[revocationdata.KeyPEM] != "" {
		t.Fatalf("main ConfigMap: parts %q, der %d bytes, pem %d bytes; want 3 parts and no whole CRL",
			main.Annotations[revocationdata.AnnCRLParts], len(main.BinaryData[revocationdata.KeyDER]), len(main.Data[revocationdata.KeyPEM]))
	}
	for i := 1; i < 3; i++ {
		var part corev1.ConfigMap
		if err := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: fmt.Sprintf("%s-%d", name, i)}, &part); err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if size := len(part.BinaryData[revocationdata.KeyPart]); size > configMapPayloadLimit {
			t.Fatalf("part %d holds %d bytes, over the %d limit", i, size, configMapPayloadLimit)
		}
	}

	// A part from another CRL (a writer that stopped half-way): refused.
	var part corev1.ConfigMap
	if err := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: name + "-2"}, &part); err != nil {
		t.Fatal(err)
	}
	part.Annotations[revocationdata.AnnCRLSHA256] = "0000"
	if err := api.Update(ctx, &part); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := read(); ok {
		t.Fatal("a CRL was assembled from parts of two CRLs")
	}

	// Back under one object: whole in the main ConfigMap, parts removed.
	small := testCRL(t, 10, 2)
	publish(small)
	main, der, ok = read()
	if !ok || !bytes.Equal(der, small) || main.Annotations[revocationdata.AnnCRLParts] != "1" || main.Data[revocationdata.KeyPEM] == "" {
		t.Fatalf("small CRL: ok=%v, parts %q, pem %d bytes", ok, main.Annotations[revocationdata.AnnCRLParts], len(main.Data[revocationdata.KeyPEM]))
	}
	for i := 1; i < 3; i++ {
		err := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: fmt.Sprintf("%s-%d", name, i)}, &corev1.ConfigMap{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("part %d after the CRL shrank: %v, want NotFound", i, err)
		}
	}
}

// TestEnsureResponderRecordsLedgerAndAudit: a delegated OCSP responder
// certificate is signed with the CA key, so, like every certificate Quill
// signs, it is in the ledger (origin OCSPResponder, naming its Secret) and
// gets an audit=true issue line; a current responder is not signed again.
func TestEnsureResponderRecordsLedgerAndAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := newCA(t)
	a, err := issuance.LoadAuthority(ca.CertPEM, ca.KeyPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	api := newAPI(t)
	index := ledger.NewIndex()
	var lines []map[string]any
	logger := funcr.NewJSON(func(obj string) {
		var m map[string]any
		if err := json.Unmarshal([]byte(obj), &m); err != nil {
			t.Errorf("audit line is not JSON: %q", obj)
		}
		lines = append(lines, m)
	}, funcr.Options{})
	p := &crlPublisher{client: api, reader: api, index: index, clock: clocktesting.NewFakePassiveClock(testNow), audit: audit.Logger{Log: logger}}
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: testNamespace, Name: "hsm"}

	if _, err := p.ensureResponder(ctx, testNamespace, k, a); err != nil {
		t.Fatalf("ensureResponder: %v", err)
	}
	var sec corev1.Secret
	if err := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: revocationdata.OCSPResponderSecretName("hsm")}, &sec); err != nil {
		t.Fatalf("responder Secret: %v", err)
	}
	cert := parseCert(t, sec.Data[corev1.TLSCertKey])

	var list quillv1.IssuedCertificateList
	if err := api.List(ctx, &list, client.InNamespace(testNamespace)); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("%d ledger records, want the responder's", len(list.Items))
	}
	e := list.Items[0]
	if e.Spec.SerialNumber != ledger.SerialHex(cert.SerialNumber) || e.Spec.IssuerRef.ID() != k ||
		e.Spec.Origin.Kind != quillv1.OriginKindOCSPResponder || e.Spec.Origin.Name != revocationdata.OCSPResponderSecretName("hsm") ||
		e.Spec.Origin.Namespace != testNamespace {
		t.Errorf("ledger record = %+v, want serial %s of %s with origin OCSPResponder %s/%s", e.Spec,
			ledger.SerialHex(cert.SerialNumber), k, testNamespace, revocationdata.OCSPResponderSecretName("hsm"))
	}
	if _, ok := index.Lookup(k, cert.SerialNumber); !ok {
		t.Error("the index does not know the responder certificate: OCSP would answer unknown for it")
	}
	if len(lines) != 1 {
		t.Fatalf("%d audit lines, want 1: %v", len(lines), lines)
	}
	l := lines[0]
	if l["audit"] != true || l["action"] != audit.ActionIssue || l["issuer"] != k.String() ||
		l["requestKind"] != quillv1.OriginKindOCSPResponder || l["serial"] != hex.EncodeToString(cert.SerialNumber.Bytes()) {
		t.Errorf("audit line = %v, want an audit=true issue line for the responder of %s", l, k)
	}

	if _, err := p.ensureResponder(ctx, testNamespace, k, a); err != nil {
		t.Fatalf("second ensureResponder: %v", err)
	}
	if err := api.List(ctx, &list, client.InNamespace(testNamespace)); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || len(lines) != 1 {
		t.Errorf("a current responder was signed again: %d records, %d audit lines", len(list.Items), len(lines))
	}
}
