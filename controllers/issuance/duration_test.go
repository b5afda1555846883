package issuance

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cert-manager/issuer-lib/controllers/signer"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// TestSignDefaultDurationUnderPolicy is the README's mesh cookbook at the
// controller: with a policy maxDuration below the issuer's default, a
// request that asks for no duration (a Certificate without spec.duration,
// a Kubernetes CSR without expirationSeconds or the request-duration
// annotation) is signed for the maximum, with an IssuanceAdjusted event;
// one that asks for more, by any of the three fields, is refused.
func TestSignDefaultDurationUnderPolicy(t *testing.T) {
	t.Parallel()
	root := newCA(t)
	const maxDuration = 720 * time.Hour
	policy := withPolicy(quillv1.RequestPolicy{DNSNames: []string{"*.example.test"}, MaxDuration: &metav1.Duration{Duration: maxDuration}})
	tests := []struct {
		name     string
		request  func(*testing.T) signer.CertificateRequestObject
		lifetime time.Duration // 0: refused by spec.policy.maxDuration
	}{
		{name: "certificate-request-without-duration", request: certificateRequest(), lifetime: maxDuration},
		{name: "certificate-request-at-max", request: certificateRequest(withDuration(maxDuration)), lifetime: maxDuration},
		{name: "certificate-request-below-max", request: certificateRequest(withDuration(48 * time.Hour)), lifetime: 48 * time.Hour},
		{name: "certificate-request-explicit-default-over-max", request: certificateRequest(withDuration(2160 * time.Hour))},
		{name: "kubernetes-csr-without-duration", request: kubernetesCSR(), lifetime: maxDuration},
		{name: "kubernetes-csr-expiration-seconds", request: kubernetesCSR(withExpirationSeconds(3600)), lifetime: time.Hour},
		{name: "kubernetes-csr-expiration-seconds-over-max", request: kubernetesCSR(withExpirationSeconds(int32((1000 * time.Hour).Seconds())))},
		{name: "kubernetes-csr-duration-annotation", request: kubernetesCSR(withAnnotation("experimental.cert-manager.io/request-duration", "24h")), lifetime: 24 * time.Hour},
		{name: "kubernetes-csr-duration-annotation-over-max", request: kubernetesCSR(withAnnotation("experimental.cert-manager.io/request-duration", "2160h"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newSigner(t, withObjects(caSecret(testNamespace, "ca", root)))
			bundle, err := f.signer.Sign(context.Background(), tt.request(t), newIssuer(policy))
			evs := drainEvents(f.recorder)
			if tt.lifetime == 0 {
				var perm signer.PermanentError
				if !errors.As(err, &perm) || !strings.Contains(err.Error(), "refused by spec.policy.maxDuration") {
					t.Fatalf("Sign = %v; want a refusal by spec.policy.maxDuration", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Sign = %v", err)
			}
			checkIssued(t, bundle, root, testNow, tt.lifetime)
			lowered := false
			for _, e := range evs {
				lowered = lowered || strings.HasPrefix(e, "Warning IssuanceAdjusted") && strings.Contains(e, "no duration was requested")
			}
			if want := tt.name == "certificate-request-without-duration" || tt.name == "kubernetes-csr-without-duration"; lowered != want {
				t.Errorf("IssuanceAdjusted about the lowered duration: %v, want %v (events %q)", lowered, want, evs)
			}
		})
	}
}
