package ocspserver

import (
	"bytes"
	"crypto"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"

	"github.com/quill-pki/quill/pkg/issuance"
)

func TestParseRequestAcceptsGoRequests(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, issuance.ECDSAP256, 0)
	leaf := ca.leaves["good"]
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		t.Run(h.String(), func(t *testing.T) {
			t.Parallel()
			req, err := ParseRequest(goRequest(t, leaf, ca.cert, h))
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			if req.HashAlgorithm != h || req.Serial.Cmp(leaf.SerialNumber) != 0 || req.Nonce != nil {
				t.Errorf("got hash %v serial %s nonce %x", req.HashAlgorithm, req.Serial, req.Nonce)
			}
			r := ca.responder(t)
			want := r.issuerHashes[req.hashIndex]
			if !bytes.Equal(req.IssuerNameHash, want.name) || !bytes.Equal(req.IssuerKeyHash, want.key) {
				t.Error("issuer hashes do not match the CA's")
			}
		})
	}
}

func TestParseRequest(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, issuance.ECDSAP256, 0)
	base := specFor(t, ca, ca.leaves["good"], crypto.SHA256)
	with := func(f func(*reqSpec)) reqSpec { s := base; f(&s); return s }
	v1, v2 := int64(0), int64(1)
	rawNonce := bytes.Repeat([]byte{7}, 16)
	tests := []struct {
		name      string
		spec      reqSpec
		wantErr   bool
		wantNonce []byte
	}{
		{name: "plain", spec: base},
		{name: "explicit-v1", spec: with(func(s *reqSpec) { s.version = &v1 })},
		{name: "requestor-name-and-signature", spec: with(func(s *reqSpec) { s.requestorName, s.signature = true, true })},
		{name: "single-request-extension", spec: with(func(s *reqSpec) { s.singleExt = true })},
		{name: "absent-hash-parameters", spec: with(func(s *reqSpec) { s.noNullParams = true })},
		{name: "nonce-octet-string", spec: with(func(s *reqSpec) { s.nonceValue = octetNonce(32) }), wantNonce: octetNonce(32)},
		{name: "nonce-raw-legacy", spec: with(func(s *reqSpec) { s.nonceValue = rawNonce }), wantNonce: rawNonce},
		{name: "nonce-one-octet", spec: with(func(s *reqSpec) { s.nonceValue = octetNonce(1) }), wantNonce: octetNonce(1)},

		{name: "version-2", spec: with(func(s *reqSpec) { s.version = &v2 }), wantErr: true},
		{name: "trailing-data", spec: with(func(s *reqSpec) { s.trailing = true }), wantErr: true},
		{name: "empty-request-list", spec: with(func(s *reqSpec) { s.count = -1 }), wantErr: true},
		{name: "two-requests", spec: with(func(s *reqSpec) { s.count = 2 }), wantErr: true},
		{name: "md5-hash", spec: with(func(s *reqSpec) { s.hashOID = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5} }), wantErr: true},
		{name: "sha1-oid-with-sha256-length", spec: with(func(s *reqSpec) { s.hashOID = hashes[0].oid }), wantErr: true},
		{name: "short-key-hash", spec: with(func(s *reqSpec) { s.keyHash = s.keyHash[:10] }), wantErr: true},
		{name: "nonce-33-octets", spec: with(func(s *reqSpec) { s.nonceValue = octetNonce(33) }), wantErr: true},
		{name: "nonce-raw-40-octets", spec: with(func(s *reqSpec) { s.nonceValue = bytes.Repeat([]byte{1}, 40) }), wantErr: true},
		{name: "nonce-empty", spec: with(func(s *reqSpec) { s.nonceValue = octetNonce(0) }), wantErr: true},
		{name: "nonce-twice", spec: with(func(s *reqSpec) { s.nonceValue, s.nonceTwice = octetNonce(8), true }), wantErr: true},
		{name: "unknown-critical-extension", spec: with(func(s *reqSpec) { s.criticalExt = true }), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := ParseRequest(buildRequest(t, tt.spec))
			if tt.wantErr {
				if !errors.Is(err, ErrMalformedRequest) || req != nil {
					t.Fatalf("ParseRequest = %v, %v; want ErrMalformedRequest", req, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			if req.Serial.Cmp(tt.spec.serial) != 0 || req.HashAlgorithm != crypto.SHA256 || !bytes.Equal(req.Nonce, tt.wantNonce) {
				t.Errorf("got serial %s hash %v nonce %x; want %s SHA-256 %x", req.Serial, req.HashAlgorithm, req.Nonce, tt.spec.serial, tt.wantNonce)
			}
		})
	}
}

func TestParseRequestRefusesGarbage(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, issuance.ECDSAP256, 0)
	valid := goRequest(t, ca.leaves["good"], ca.cert, crypto.SHA1)
	inputs := map[string][]byte{
		"empty":         nil,
		"one-byte":      {0x30},
		"not-sequence":  {0x04, 0x01, 0x00},
		"empty-seq":     {0x30, 0x00},
		"truncated":     valid[:len(valid)-1],
		"long-length":   append([]byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xff}, valid...),
		"http-text":     []byte("GET / HTTP/1.1\r\n\r\n"),
		"nested-trails": append(append([]byte{}, valid[:1]...), append([]byte{byte(len(valid) - 1)}, append(valid[2:], 0)...)...),
	}
	for name, in := range inputs {
		if _, err := ParseRequest(in); !errors.Is(err, ErrMalformedRequest) {
			t.Errorf("%s: error %v, want ErrMalformedRequest", name, err)
		}
	}
	// Serial numbers are taken as written, negative ones included.
	neg := specFor(t, ca, ca.leaves["good"], crypto.SHA1)
	neg.serial = big.NewInt(-5)
	req, err := ParseRequest(buildRequest(t, neg))
	if err != nil || req.Serial.Cmp(big.NewInt(-5)) != 0 {
		t.Errorf("negative serial: %v, %v", req, err)
	}
}
