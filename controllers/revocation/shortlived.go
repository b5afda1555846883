package revocation

import (
	"fmt"
	"time"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
)

// revocable drops the short-lived certificates signed with noRevAvail
// (RFC 9608) from recs: their CA told relying parties that no revocation
// information exists for them, so revoking one would change nothing a
// relying party sees while claiming it did.
func revocable(recs []ledger.Record) []ledger.Record {
	out := make([]ledger.Record, 0, len(recs))
	for _, r := range recs {
		if !r.NoRevocationAvailable {
			out = append(out, r)
		}
	}
	return out
}

// refuseShortLived is the refusal of a QuillRevocation whose certificates
// are all short-lived.
func refuseShortLived(rec ledger.Record) error {
	return refused(quillv1.ReasonNoRevocationAvailable, fmt.Sprintf(
		"serial %s is a short-lived certificate signed with noRevAvail (RFC 9608): no revocation information is published for it, so it cannot be revoked; it stops being valid at %s",
		ledger.SerialHex(rec.Serial), rec.NotAfter.UTC().Format(time.RFC3339)))
}
