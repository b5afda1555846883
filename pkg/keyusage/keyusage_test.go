package keyusage

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/mldsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	keysOnce sync.Once
	keys     map[KeyType]crypto.PublicKey
	signers  map[KeyType]crypto.Signer
)

func testKeys(t *testing.T) map[KeyType]crypto.PublicKey {
	t.Helper()
	keysOnce.Do(func() {
		r, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		e, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		ed, edPriv, _ := ed25519.GenerateKey(rand.Reader)
		m, err := mldsa.GenerateKey(mldsa.MLDSA65())
		if err != nil {
			panic(err)
		}
		keys = map[KeyType]crypto.PublicKey{RSA: &r.PublicKey, ECDSA: &e.PublicKey, Ed25519: ed, MLDSA: m.PublicKey()}
		signers = map[KeyType]crypto.Signer{RSA: r, ECDSA: e, Ed25519: edPriv, MLDSA: m}
	})
	return keys
}

const (
	ds  = x509.KeyUsageDigitalSignature
	cc  = x509.KeyUsageContentCommitment
	ke  = x509.KeyUsageKeyEncipherment
	de  = x509.KeyUsageDataEncipherment
	ka  = x509.KeyUsageKeyAgreement
	cs  = x509.KeyUsageCertSign
	crl = x509.KeyUsageCRLSign
	eo  = x509.KeyUsageEncipherOnly
	do  = x509.KeyUsageDecipherOnly
	// cmDefault is cert-manager's default: digital signature, key encipherment.
	cmDefault = ds | ke
)

func TestFit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		key       KeyType
		requested x509.KeyUsage
		isCA      bool
		want      x509.KeyUsage
		added     x509.KeyUsage
		dropped   x509.KeyUsage
		note      string // part of the notes, when something was dropped
		wantErr   error
	}{
		{name: "rsa-leaf-default", key: RSA, requested: cmDefault, want: cmDefault},
		{name: "rsa-leaf-data-encipherment", key: RSA, requested: ds | de, want: ds | de},
		{name: "rsa-leaf-key-agreement-dropped", key: RSA, requested: ds | ka, want: ds, dropped: ka, note: "'key agreement' was left out: RFC 3279 does not allow it for RSA keys"},
		{name: "rsa-ca-default", key: RSA, requested: cmDefault | cs, isCA: true, want: ds | cs | crl, added: crl, dropped: ke, note: "a CA key only signs"},
		{name: "ecdsa-leaf-default-drops-key-encipherment", key: ECDSA, requested: cmDefault, want: ds, dropped: ke, note: "RFC 5480 does not allow it for ECDSA keys"},
		{name: "ecdsa-leaf-key-agreement", key: ECDSA, requested: ds | ka, want: ds | ka},
		{name: "ecdsa-leaf-encipher-only", key: ECDSA, requested: ka | eo, want: ka | eo},
		{name: "ecdsa-leaf-encipher-only-alone", key: ECDSA, requested: ds | eo, want: ds, dropped: eo, note: "nothing without key agreement"},
		{name: "ecdsa-leaf-encipher-and-decipher-only", key: ECDSA, requested: ka | eo | do, want: ka, dropped: eo | do, note: "contradict"},
		{name: "ecdsa-leaf-data-encipherment", key: ECDSA, requested: ds | de, want: ds, dropped: de, note: "RFC 5480"},
		{name: "ecdsa-intermediate-from-demo", key: ECDSA, requested: cmDefault | cs, isCA: true, want: ds | cs | crl, added: crl, dropped: ke, note: "'key encipherment' was left out: RFC 5480 does not allow it for ECDSA keys"},
		{name: "ecdsa-ca-key-agreement", key: ECDSA, requested: cs | ka, isCA: true, want: cs | crl, added: crl, dropped: ka, note: "a CA key only signs"},
		{name: "ecdsa-ca-cert-sign-only", key: ECDSA, requested: cs, isCA: true, want: cs | crl, added: crl},
		{name: "ecdsa-ca-nothing-asked", key: ECDSA, isCA: true, want: cs | crl, added: cs | crl},
		{name: "ed25519-leaf-default", key: Ed25519, requested: cmDefault, want: ds, dropped: ke, note: "RFC 8410 does not allow it for Ed25519 keys"},
		{name: "ed25519-leaf-key-agreement", key: Ed25519, requested: ds | ka, want: ds, dropped: ka, note: "RFC 8410"},
		{name: "ed25519-leaf-content-commitment", key: Ed25519, requested: ds | cc, want: ds | cc},
		{name: "ed25519-ca", key: Ed25519, requested: cmDefault | cs, isCA: true, want: ds | cs | crl, added: crl, dropped: ke, note: "RFC 8410"},
		{name: "mldsa-leaf-default", key: MLDSA, requested: cmDefault, want: ds, dropped: ke, note: "RFC 9881 does not allow it for ML-DSA keys"},
		{name: "mldsa-ca", key: MLDSA, requested: cs | crl, isCA: true, want: cs | crl},
		{name: "leaf-cert-sign-dropped", key: ECDSA, requested: ds | cs | crl, want: ds, dropped: cs | crl, note: "only a CA certificate"},
		{name: "leaf-nothing-asked", key: ECDSA, requested: 0, want: 0},
		{name: "nothing-left", key: Ed25519, requested: ke | de, wantErr: ErrNoUsage},
		{name: "nothing-left-ecdsa", key: ECDSA, requested: ke, wantErr: ErrNoUsage},
		{name: "undefined-bits", key: RSA, requested: ds | 1<<9, wantErr: ErrUndefinedUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := Fit(testKeys(t)[tt.key], tt.requested, tt.isCA)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Usage != tt.want || res.Added != tt.added || res.Dropped != tt.dropped {
				t.Errorf("Fit = usage %v added %v dropped %v, want %v, %v, %v",
					Names(res.Usage), Names(res.Added), Names(res.Dropped), Names(tt.want), Names(tt.added), Names(tt.dropped))
			}
			if len(res.Notes) != len(Names(res.Dropped)) {
				t.Errorf("notes %q: want one per dropped usage %v", res.Notes, Names(res.Dropped))
			}
			if tt.note != "" && !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, tt.note) }) {
				t.Errorf("notes %q do not say %q", res.Notes, tt.note)
			}
			if err := Check(testKeys(t)[tt.key], res.Usage, tt.isCA); err != nil {
				t.Errorf("Fit's result fails Check: %v", err)
			}
		})
	}
}

// TestTypeOfParsed pins TypeOf to the key types crypto/x509 hands back from
// a parsed certificate, which is where callers take their keys from.
func TestTypeOfParsed(t *testing.T) {
	t.Parallel()
	testKeys(t)
	for _, kt := range []KeyType{RSA, ECDSA, Ed25519, MLDSA} {
		t.Run(strings.ToLower(string(kt)), func(t *testing.T) {
			t.Parallel()
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Unix(1_800_000_000, 0), NotAfter: time.Unix(1_800_086_400, 0)}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signers[kt].Public(), signers[kt])
			if err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := TypeOf(cert.PublicKey); err != nil || got != kt {
				t.Fatalf("TypeOf = %q, %v; want %q", got, err, kt)
			}
		})
	}
}

func TestFitUnsupportedKey(t *testing.T) {
	t.Parallel()
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Fit(x.PublicKey(), ds, false); !errors.Is(err, ErrUnsupportedKey) {
		t.Fatalf("err = %v, want ErrUnsupportedKey", err)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		key     KeyType
		ku      x509.KeyUsage
		isCA    bool
		wantErr error
	}{
		{name: "rsa-leaf", key: RSA, ku: cmDefault},
		{name: "ecdsa-leaf", key: ECDSA, ku: ds | ka},
		{name: "no-extension", key: ECDSA, ku: 0},
		{name: "ecdsa-key-encipherment", key: ECDSA, ku: cmDefault, wantErr: ErrNotAllowed},
		{name: "ecdsa-ca-key-encipherment", key: ECDSA, ku: ds | ke | cs | crl, isCA: true, wantErr: ErrNotAllowed},
		{name: "ed25519-key-agreement", key: Ed25519, ku: ds | ka, wantErr: ErrNotAllowed},
		{name: "mldsa-data-encipherment", key: MLDSA, ku: ds | de, wantErr: ErrNotAllowed},
		{name: "leaf-cert-sign", key: RSA, ku: ds | cs, wantErr: ErrNotAllowed},
		{name: "ca-without-cert-sign", key: RSA, ku: ds | crl, isCA: true, wantErr: ErrNotAllowed},
		{name: "encipher-only-alone", key: ECDSA, ku: ds | eo, wantErr: ErrNotAllowed},
		{name: "encipher-and-decipher-only", key: ECDSA, ku: ka | eo | do, wantErr: ErrNotAllowed},
		{name: "undefined", key: RSA, ku: 1 << 10, wantErr: ErrUndefinedUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Check(testKeys(t)[tt.key], tt.ku, tt.isCA)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatal(err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestTable(t *testing.T) {
	t.Parallel()
	// The table as the RFCs state it; a change here is a change of policy.
	tests := []struct {
		name string
		key  KeyType
		isCA bool
		want x509.KeyUsage
	}{
		{name: "rsa", key: RSA, want: ds | cc | ke | de},
		{name: "ecdsa", key: ECDSA, want: ds | cc | ka | eo | do},
		{name: "ed25519", key: Ed25519, want: ds | cc},
		{name: "mldsa", key: MLDSA, want: ds | cc},
		{name: "rsa-ca", key: RSA, isCA: true, want: ds | cs | crl},
		{name: "ecdsa-ca", key: ECDSA, isCA: true, want: ds | cs | crl},
		{name: "ed25519-ca", key: Ed25519, isCA: true, want: ds | cs | crl},
		{name: "mldsa-ca", key: MLDSA, isCA: true, want: ds | cs | crl},
		{name: "unknown", key: "DSA", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Allowed(tt.key, tt.isCA); got != tt.want {
				t.Errorf("Allowed = %v, want %v", Names(got), Names(tt.want))
			}
		})
	}
}
