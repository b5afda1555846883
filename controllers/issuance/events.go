package issuance

import (
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
)

// issuerLibIssuedReason is the reason of the event issuer-lib records on a
// CertificateRequest it has written a certificate to.
const issuerLibIssuedReason = "Issued"

// withoutIssuedEvents hands issuer-lib a recorder that drops its Issued
// event on CertificateRequests: Quill has already recorded
// CertificateIssued on the request, naming the serial, template and
// expiry, and every event is one more write to the API server per
// certificate. Every other event passes through.
func withoutIssuedEvents(r events.EventRecorder) events.EventRecorder {
	if r == nil {
		return nil
	}
	return issuedFilter{r}
}

type issuedFilter struct{ events.EventRecorder }

func (f issuedFilter) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	if _, ok := regarding.(*cmapi.CertificateRequest); ok && eventtype == corev1.EventTypeNormal && reason == issuerLibIssuedReason {
		return
	}
	f.EventRecorder.Eventf(regarding, related, eventtype, reason, action, note, args...)
}
