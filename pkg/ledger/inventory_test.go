package ledger

import (
	"fmt"
	"math/big"
	"reflect"
	"testing"
	"time"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

var invNow = time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)

type recordOption func(*Record)

func expiring(d time.Duration) recordOption { return func(r *Record) { r.NotAfter = invNow.Add(d) } }
func revoked() recordOption {
	return func(r *Record) { r.Revoked, r.RevokedAt, r.Reason = true, invNow, 1 }
}
func forIssuer(k quillv1.IssuerID) recordOption { return func(r *Record) { r.Issuer = k } }

var (
	invIssuer = quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-a", Name: "ca"}
	invOther  = quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "root"}
)

// record builds a record of invIssuer, unexpired for a day unless told
// otherwise.
func record(serial int64, keyAlg, sigAlg string, opts ...recordOption) Record {
	r := Record{
		Segment: fmt.Sprintf("qi.ca.%040x", serial), Namespace: "team-a", Issuer: invIssuer, Serial: big.NewInt(serial),
		IssuedAt: invNow.Add(-time.Hour), NotBefore: invNow.Add(-time.Hour), NotAfter: invNow.Add(24 * time.Hour),
		KeyAlgorithm: keyAlg, SignatureAlgorithm: sigAlg,
	}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func TestQuantumVulnerable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key, sig string
		want     bool
	}{
		{key: "ML-DSA-65", sig: "ML-DSA-65", want: false},
		{key: "ML-DSA-44", sig: "ML-DSA-87", want: false},
		{key: "SLH-DSA-SHA2-128s", sig: "ML-DSA-65", want: false},
		{key: "ML-DSA-65", sig: "ECDSA-SHA384", want: true},
		{key: "ECDSA-P256", sig: "ML-DSA-65", want: true},
		{key: "ECDSA-P256", sig: "ECDSA-SHA256", want: true},
		{key: "RSA-2048", sig: "SHA256-RSAPSS", want: true},
		{key: "Ed25519", sig: "Ed25519", want: true},
		// A name Quill does not know is never called safe.
		{key: "X448", sig: "ML-DSA-65", want: true},
		{key: "", sig: "", want: true},
		{key: "ML-DSA", sig: "ML-DSA-65", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.key+"-signed-"+tt.sig, func(t *testing.T) {
			t.Parallel()
			if got := QuantumVulnerable(tt.key, tt.sig); got != tt.want {
				t.Errorf("QuantumVulnerable(%q, %q) = %t, want %t", tt.key, tt.sig, got, tt.want)
			}
		})
	}
}

func TestInventory(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		records []Record
		want    Inventory
	}{
		{name: "no-records", want: Inventory{}},
		{
			name: "expired-records-do-not-count",
			records: []Record{
				record(1, "ECDSA-P256", "ECDSA-SHA256", expiring(-time.Second)),
				record(2, "ECDSA-P256", "ECDSA-SHA256", expiring(0)), // notAfter == now: expired
			},
			want: Inventory{},
		},
		{
			name: "mixed-algorithms",
			records: []Record{
				record(1, "ECDSA-P256", "ML-DSA-65", expiring(3*time.Hour)),
				record(2, "ECDSA-P256", "ML-DSA-65"),
				record(3, "ML-DSA-65", "ML-DSA-65", expiring(2*time.Hour)),
				record(4, "RSA-2048", "ECDSA-SHA384"),
				record(5, "ML-DSA-44", "ECDSA-SHA384"),
				record(6, "ML-DSA-65", "ML-DSA-65", expiring(-time.Hour)),
				record(7, "ML-DSA-65", "ML-DSA-65", forIssuer(invOther)),
			},
			want: Inventory{
				Unexpired: 5, QuantumVulnerable: 4,
				KeyAlgorithms: []AlgorithmCount{
					{Algorithm: "ECDSA-P256", Certificates: 2, QuantumVulnerable: 2},
					{Algorithm: "ML-DSA-44", Certificates: 1, QuantumVulnerable: 1},
					{Algorithm: "ML-DSA-65", Certificates: 1},
					{Algorithm: "RSA-2048", Certificates: 1, QuantumVulnerable: 1},
				},
				SignatureAlgorithms: []AlgorithmCount{
					{Algorithm: "ECDSA-SHA384", Certificates: 2, QuantumVulnerable: 2},
					{Algorithm: "ML-DSA-65", Certificates: 3, QuantumVulnerable: 2},
				},
				NextExpiry: invNow.Add(2 * time.Hour),
			},
		},
		{
			name: "revoked-but-unexpired-count-and-are-marked",
			records: []Record{
				record(1, "ECDSA-P256", "ECDSA-SHA256", revoked()),
				record(2, "ECDSA-P256", "ECDSA-SHA256"),
				record(3, "ML-DSA-65", "ML-DSA-65", revoked()),
				record(4, "ML-DSA-65", "ML-DSA-65", revoked(), expiring(-time.Minute)),
			},
			want: Inventory{
				Unexpired: 3, Revoked: 2, QuantumVulnerable: 2,
				KeyAlgorithms: []AlgorithmCount{
					{Algorithm: "ECDSA-P256", Certificates: 2, QuantumVulnerable: 2, Revoked: 1},
					{Algorithm: "ML-DSA-65", Certificates: 1, Revoked: 1},
				},
				SignatureAlgorithms: []AlgorithmCount{
					{Algorithm: "ECDSA-SHA256", Certificates: 2, QuantumVulnerable: 2, Revoked: 1},
					{Algorithm: "ML-DSA-65", Certificates: 1, Revoked: 1},
				},
				NextExpiry: invNow.Add(24 * time.Hour),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ix := NewIndex()
			for _, r := range tt.records {
				ix.Put(r)
			}
			if got := ix.Inventory(invIssuer, invNow); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Inventory() =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

// TestInventoryFollowsTheLedger: a record revoked or deleted later changes
// the counts, and time alone expires certificates.
func TestInventoryFollowsTheLedger(t *testing.T) {
	t.Parallel()
	ix := NewIndex()
	short := record(1, "RSA-2048", "SHA256-RSA", expiring(time.Hour))
	ix.Put(short)
	ix.Put(record(2, "ML-DSA-87", "ML-DSA-87"))
	if got := ix.Inventory(invIssuer, invNow); got.Unexpired != 2 || got.QuantumVulnerable != 1 || !got.NextExpiry.Equal(short.NotAfter) {
		t.Fatalf("before: %+v", got)
	}
	short.Revoked = true
	ix.Put(short)
	if got := ix.Inventory(invIssuer, invNow); got.Revoked != 1 || got.Unexpired != 2 {
		t.Fatalf("after revoking: %+v", got)
	}
	if got := ix.Inventory(invIssuer, short.NotAfter); got.Unexpired != 1 || got.QuantumVulnerable != 0 || got.Revoked != 0 {
		t.Fatalf("once the RSA certificate expired: %+v", got)
	}
	ix.mu.Lock()
	ii := ix.st.issuers[short.Issuer]
	key, _ := keyOf(short.Serial)
	ix.st.removeSlot(ii, ii.bySerial[key])
	ix.mu.Unlock()
	if got := ix.Inventory(invIssuer, invNow); got.Unexpired != 1 {
		t.Fatalf("after deleting the record: %+v", got)
	}
}

// BenchmarkInventory walks one issuer's 100k records, a quarter of them
// expired, with four key and two signature algorithms.
//
//	go test -run '^$' -bench Inventory -benchmem ./pkg/ledger/
func BenchmarkInventory(b *testing.B) {
	ix := NewIndex()
	keys := []string{"ECDSA-P256", "RSA-2048", "ML-DSA-65", "Ed25519"}
	sigs := []string{"ECDSA-SHA256", "ML-DSA-65"}
	for i := range 100_000 {
		r := record(int64(i+1), keys[i%len(keys)], sigs[i%len(sigs)], expiring(time.Duration(i%4-1)*24*time.Hour+time.Minute))
		r.Revoked = i%50 == 0
		ix.Put(r)
	}
	if got := ix.Inventory(invIssuer, invNow); got.Unexpired != 75_000 {
		b.Fatalf("%d unexpired, want 75000", got.Unexpired)
	}
	b.ReportAllocs()
	for b.Loop() {
		ix.Inventory(invIssuer, invNow)
	}
}
