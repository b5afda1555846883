package ledger

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"
	"time"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// TestNewEntryRecordsNoRevAvail: the ledger reads noRevAvail (RFC 9608)
// from the signed certificate, and the index carries it to OCSP and
// revocation.
func TestNewEntryRecordsNoRevAvail(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		exts []pkix.Extension
		want bool
	}{
		{name: "with-norevavail", exts: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 56}, Value: []byte{5, 0}}}, want: true},
		{name: "without", want: false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(int64(100 + i)), Subject: pkix.Name{CommonName: "short"},
				NotBefore: t0, NotAfter: t0.Add(time.Hour), ExtraExtensions: tt.exts,
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			e, err := NewEntry(issuerA, "team-a", cert, t0, Origin{Kind: "CertificateRequest", UID: "uid"})
			if err != nil {
				t.Fatal(err)
			}
			if e.Spec.NoRevocationAvailable != tt.want {
				t.Fatalf("spec.noRevocationAvailable = %v, want %v", e.Spec.NoRevocationAvailable, tt.want)
			}
			ix := NewIndex()
			if err := ix.Replace([]any{e}, "1"); err != nil {
				t.Fatal(err)
			}
			if r, ok := ix.Lookup(issuerA, cert.SerialNumber); !ok || r.NoRevocationAvailable != tt.want {
				t.Fatalf("index record %+v, %v", r, ok)
			}
		})
	}
}

// TestReadyCheck fails until the first list has been read.
func TestReadyCheck(t *testing.T) {
	t.Parallel()
	ix := NewIndex()
	if err := ix.ReadyCheck(nil); !errors.Is(err, ErrNotSynced) {
		t.Fatalf("before the list: %v, want ErrNotSynced", err)
	}
	ix.Put(Record{Issuer: issuerA, Serial: big.NewInt(1)}) // a record alone is not the whole ledger
	if err := ix.ReadyCheck(nil); !errors.Is(err, ErrNotSynced) {
		t.Fatalf("after one Put: %v, want ErrNotSynced", err)
	}
	if err := ix.Replace([]any{&quillv1.IssuedCertificate{}}, "1"); err != nil {
		t.Fatal(err)
	}
	if err := ix.ReadyCheck(nil); err != nil {
		t.Fatalf("after the list: %v", err)
	}
}
