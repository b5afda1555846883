package issuance

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	experimentalapi "github.com/cert-manager/cert-manager/pkg/apis/experimental/v1alpha1"
	"github.com/cert-manager/issuer-lib/controllers/signer"
	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// caCSR is a CSR whose basicConstraints extension asks for a CA with
// pathLen (none when pathLen < 0).
func caCSR(t testing.TB, pathLen int) []byte {
	t.Helper()
	bc := struct {
		IsCA       bool `asn1:"optional"`
		MaxPathLen int  `asn1:"optional,default:-1"`
	}{IsCA: true, MaxPathLen: pathLen}
	val, err := asn1.Marshal(bc)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:         pkix.Name{CommonName: "sub CA"},
		ExtraExtensions: []pkix.Extension{{Id: oidBasicConstraints, Critical: true, Value: val}},
	}, requestKey())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func withKubeRequest(csrPEM []byte) kubeCSROption {
	return func(csr *certificatesv1.CertificateSigningRequest) { csr.Spec.Request = csrPEM }
}

func TestCSRRequestDetails(t *testing.T) {
	t.Parallel()
	const isCA = experimentalapi.CertificateSigningRequestIsCAAnnotationKey
	const duration = experimentalapi.CertificateSigningRequestDurationAnnotationKey
	tests := []struct {
		name        string
		opts        []kubeCSROption
		wantErr     error
		wantIsCA    bool
		wantPathLen int // -1: none
		wantDur     time.Duration
	}{
		{name: "leaf-default-duration", wantPathLen: -1, wantDur: 90 * 24 * time.Hour},
		{name: "expiration-seconds", opts: []kubeCSROption{withExpirationSeconds(3600)}, wantPathLen: -1, wantDur: time.Hour},
		{name: "duration-annotation", opts: []kubeCSROption{withAnnotation(duration, "2h")}, wantPathLen: -1, wantDur: 2 * time.Hour},
		{name: "both-durations-agree", opts: []kubeCSROption{withExpirationSeconds(7200), withAnnotation(duration, "2h")},
			wantPathLen: -1, wantDur: 2 * time.Hour},
		{name: "both-durations-disagree", opts: []kubeCSROption{withExpirationSeconds(3600), withAnnotation(duration, "2h")},
			wantErr: errDurationsDisagree},
		{name: "negative-duration-annotation", opts: []kubeCSROption{withAnnotation(duration, "-1h")}, wantErr: errDurationNotPositive},
		{name: "is-ca-false", opts: []kubeCSROption{withAnnotation(isCA, "false")}, wantPathLen: -1, wantDur: 90 * 24 * time.Hour},
		{name: "is-ca-unreadable", opts: []kubeCSROption{withAnnotation(isCA, "True")}, wantErr: errIsCAValue},
		{name: "is-ca-empty", opts: []kubeCSROption{withAnnotation(isCA, "")}, wantErr: errIsCAValue},
		{name: "is-ca-with-path-length", opts: []kubeCSROption{withAnnotation(isCA, "true"), withKubeRequest(caCSR(t, 0))},
			wantIsCA: true, wantPathLen: 0, wantDur: 90 * 24 * time.Hour},
		{name: "is-ca-with-path-length-two", opts: []kubeCSROption{withAnnotation(isCA, "true"), withKubeRequest(caCSR(t, 2))},
			wantIsCA: true, wantPathLen: 2, wantDur: 90 * 24 * time.Hour},
		{name: "is-ca-without-path-length", opts: []kubeCSROption{withAnnotation(isCA, "true"), withKubeRequest(caCSR(t, -1))},
			wantIsCA: true, wantPathLen: -1, wantDur: 90 * 24 * time.Hour},
		{name: "leaf-ignores-path-length-of-its-csr", opts: []kubeCSROption{withKubeRequest(caCSR(t, 1))},
			wantPathLen: -1, wantDur: 90 * 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := csrRequest{newKubeCSR(t, tt.opts...)}.GetCertificateDetails()
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			gotPathLen := -1
			if d.MaxPathLen != nil {
				gotPathLen = *d.MaxPathLen
			}
			if d.IsCA != tt.wantIsCA || gotPathLen != tt.wantPathLen || d.Duration != tt.wantDur {
				t.Errorf("details: isCA %v, path length %d, duration %s; want %v, %d, %s", d.IsCA, gotPathLen, d.Duration, tt.wantIsCA, tt.wantPathLen, tt.wantDur)
			}
		})
	}
}

func TestPolicyNamespace(t *testing.T) {
	t.Parallel()
	issuer := &quillv1.QuillIssuer{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "ca"}}
	cluster := &quillv1.QuillClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "root"}}
	tests := []struct {
		name string
		cr   signer.CertificateRequestObject
		iss  quillv1.GenericIssuer
		want string
	}{
		{name: "certificate-request-own-namespace", cr: signer.CertificateRequestObjectFromCertificateRequest(newCertificateRequest(t, "cr")), iss: cluster, want: testNamespace},
		{name: "csr-for-issuer-issuers-namespace", cr: csrRequest{newKubeCSR(t)}, iss: issuer, want: "team-a"},
		{name: "csr-for-cluster-issuer-none", cr: csrRequest{newKubeCSR(t)}, iss: cluster, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := policyNamespace(tt.cr, tt.iss); got != tt.want {
				t.Errorf("policyNamespace = %q, want %q", got, tt.want)
			}
		})
	}
}
