package ocspserver

import (
	"crypto/x509"
	"time"
)

// NeedsRotation reports whether a delegated responder certificate should be
// replaced at now: when there is none, when it is not valid yet, or once
// two thirds of its lifetime have passed, which leaves a third for the
// rotation to happen and for responses signed with it to run out.
func NeedsRotation(cert *x509.Certificate, now time.Time) bool {
	if cert == nil || now.Before(cert.NotBefore) {
		return true
	}
	life := cert.NotAfter.Sub(cert.NotBefore)
	return !now.Before(cert.NotBefore.Add(life / 3 * 2))
}
