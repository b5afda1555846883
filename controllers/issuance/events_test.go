package issuance

import (
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
)

func TestWithoutIssuedEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		regarding runtime.Object
		eventType string
		reason    string
		want      bool
	}{
		{name: "issued-on-certificaterequest-dropped", regarding: &cmapi.CertificateRequest{}, eventType: corev1.EventTypeNormal, reason: "Issued", want: false},
		{name: "quill-issued-kept", regarding: &cmapi.CertificateRequest{}, eventType: corev1.EventTypeNormal, reason: eventCertificateIssued, want: true},
		{name: "warning-kept", regarding: &cmapi.CertificateRequest{}, eventType: corev1.EventTypeWarning, reason: "Issued", want: true},
		{name: "other-reason-kept", regarding: &cmapi.CertificateRequest{}, eventType: corev1.EventTypeNormal, reason: "Pending", want: true},
		{name: "issued-on-csr-kept", regarding: &certificatesv1.CertificateSigningRequest{}, eventType: corev1.EventTypeNormal, reason: "Issued", want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := events.NewFakeRecorder(1)
			withoutIssuedEvents(fake).Eventf(tc.regarding, nil, tc.eventType, tc.reason, "Sign", "note")
			got := len(fake.Events) == 1
			if got != tc.want {
				t.Errorf("event recorded = %v; want %v", got, tc.want)
			}
		})
	}
}
