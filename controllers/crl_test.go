package controllers

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
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
		der, ok := crlFromConfigMaps(&main, func(n string) (*corev1.ConfigMap, bool) {
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
		if err := p.publish(ctx, testNamespace, name, &cm, err == nil, der, map[string]string{annIssuer: "QuillIssuer/team-a/ca"}); err != nil {
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
	if main.Annotations[annCRLParts] != "3" || main.BinaryData[crlKeyDER] != nil || main.Data[crlKeyPEM] != "" {
		t.Fatalf("main ConfigMap: parts %q, der %d bytes, pem %d bytes; want 3 parts and no whole CRL",
			main.Annotations[annCRLParts], len(main.BinaryData[crlKeyDER]), len(main.Data[crlKeyPEM]))
	}
	for i := 1; i < 3; i++ {
		var part corev1.ConfigMap
		if err := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: fmt.Sprintf("%s-%d", name, i)}, &part); err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if size := len(part.BinaryData[crlPartKey]); size > configMapPayloadLimit {
			t.Fatalf("part %d holds %d bytes, over the %d limit", i, size, configMapPayloadLimit)
		}
	}

	// A part from another CRL (a writer that stopped half-way): refused.
	var part corev1.ConfigMap
	if err := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: name + "-2"}, &part); err != nil {
		t.Fatal(err)
	}
	part.Annotations[annCRLSHA256] = "0000"
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
	if !ok || !bytes.Equal(der, small) || main.Annotations[annCRLParts] != "1" || main.Data[crlKeyPEM] == "" {
		t.Fatalf("small CRL: ok=%v, parts %q, pem %d bytes", ok, main.Annotations[annCRLParts], len(main.Data[crlKeyPEM]))
	}
	for i := 1; i < 3; i++ {
		err := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: fmt.Sprintf("%s-%d", name, i)}, &corev1.ConfigMap{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("part %d after the CRL shrank: %v, want NotFound", i, err)
		}
	}
}
