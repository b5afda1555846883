package revocation

import (
	"math/big"
	"testing"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/classify"
	"github.com/quill-pki/quill/pkg/ledger"
)

// TestRevocable: short-lived certificates (noRevAvail, RFC 9608) are never
// revocation targets, whatever else a revocation names.
func TestRevocable(t *testing.T) {
	t.Parallel()
	long := ledger.Record{Serial: big.NewInt(1)}
	short := ledger.Record{Serial: big.NewInt(2), NoRevocationAvailable: true}
	tests := []struct {
		name string
		in   []ledger.Record
		want []int64
	}{
		{name: "only-long", in: []ledger.Record{long}, want: []int64{1}},
		{name: "only-short", in: []ledger.Record{short}},
		{name: "mixed", in: []ledger.Record{short, long}, want: []int64{1}},
		{name: "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := revocable(tt.in)
			if len(got) != len(tt.want) {
				t.Fatalf("revocable kept %d records, want %d", len(got), len(tt.want))
			}
			for i, r := range got {
				if r.Serial.Int64() != tt.want[i] {
					t.Errorf("kept serial %d, want %d", r.Serial.Int64(), tt.want[i])
				}
			}
		})
	}
	// Refused for good (the record never changes), with its own reason.
	if class, reason := classify.Of(refuseShortLived(short)); class != classify.Permanent || reason != quillv1.ReasonNoRevocationAvailable {
		t.Errorf("refuseShortLived: %s %s, want Permanent %s", class, reason, quillv1.ReasonNoRevocationAvailable)
	}
}
