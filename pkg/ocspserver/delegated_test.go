package ocspserver

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/quill-pki/quill/pkg/issuance"
)

func TestNeedsRotation(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, issuance.ECDSAP256, 0)
	cert, _, err := newDelegated(ca, 3*time.Hour-5*time.Minute, testNow)
	if err != nil {
		t.Fatal(err)
	}
	// IssueResponder backdates 5 minutes, so the life is 3 h from testNow-5m:
	// rotation is due 2 h after notBefore.
	due := cert.NotBefore.Add(2 * time.Hour)
	tests := []struct {
		name string
		cert *x509.Certificate
		now  time.Time
		want bool
	}{
		{name: "none", now: testNow, want: true},
		{name: "fresh", cert: cert, now: testNow, want: false},
		{name: "just-before-two-thirds", cert: cert, now: due.Add(-time.Second), want: false},
		{name: "at-two-thirds", cert: cert, now: due, want: true},
		{name: "expired", cert: cert, now: cert.NotAfter.Add(time.Hour), want: true},
		{name: "not-yet-valid", cert: cert, now: cert.NotBefore.Add(-time.Second), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := NeedsRotation(tt.cert, tt.now); got != tt.want {
				t.Errorf("NeedsRotation = %v, want %v", got, tt.want)
			}
		})
	}
}
