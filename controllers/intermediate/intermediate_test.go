package intermediate

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/fixture"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/owned"
)

const owner = "QuillIssuer/" + fixture.Namespace + "/hsm"

func hsmIssuer() *quillv1.QuillIssuer {
	return &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: fixture.Namespace, Name: "hsm", Generation: 1},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{PKCS11: &quillv1.PKCS11CA{
			Module: "softhsm", TokenLabel: "t", KeyLabel: "k",
			PINSecretRef:         quillv1.SecretKeySelector{Name: "pin"},
			CertificateSecretRef: &quillv1.SecretReference{Name: "hsm-ca"},
			IssuedBy:             &quillv1.ParentIssuer{Kind: quillv1.IssuerKind, Name: "root", Subject: quillv1.Subject{CommonName: "HSM CA"}},
		}}},
	}
}

// issuedRequest is a Ready CertificateRequest of the kind the reconciler
// sends, holding a CA certificate for the key its CSR was signed with.
func issuedRequest(t *testing.T, mark bool) *cmapi.CertificateRequest {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "HSM CA"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "HSM CA"},
		NotBefore: fixture.Now.Add(-time.Hour), NotAfter: fixture.Now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cr := &cmapi.CertificateRequest{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: fixture.Namespace, Name: "hsm-ca-1",
			Labels:      map[string]string{labelIntermediateFor: ownerHash(owner)},
			Annotations: map[string]string{},
		},
		Spec: cmapi.CertificateRequestSpec{
			Request:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}),
			IsCA:      true,
			IssuerRef: cmmeta.IssuerReference{Group: quillv1.GroupVersion.Group, Kind: quillv1.IssuerKind, Name: "root"},
		},
		Status: cmapi.CertificateRequestStatus{
			Certificate: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			CA:          pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			Conditions:  []cmapi.CertificateRequestCondition{{Type: cmapi.CertificateRequestConditionReady, Status: cmmeta.ConditionTrue, Reason: cmapi.CertificateRequestReasonIssued}},
		},
	}
	if mark {
		owned.Mark(cr, owner)
	}
	return cr
}

// TestReconcileWritesOnlyItsOwnSecret: the certificate Secret is written
// only when it is the issuer's; any other Secret under certificateSecretRef
// (the attack: an unrelated Secret whose ca.crt was overwritten) is left
// as it is, with a NameCollision event, and nothing is requested for it.
// Requests count only when the issuer sent them: a copied label is not
// enough to have a certificate installed.
func TestReconcileWritesOnlyItsOwnSecret(t *testing.T) {
	t.Parallel()
	secret := func(mark string) *corev1.Secret {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: fixture.Namespace, Name: "hsm-ca"},
			Data:       map[string][]byte{"ca.crt": []byte("someone's anchors")},
		}
		if mark != "" {
			owned.Mark(s, mark)
		}
		return s
	}
	tests := []struct {
		name        string
		secret      *corev1.Secret
		request     *cmapi.CertificateRequest
		wantEvent   string
		wantWritten bool
	}{
		{name: "unrelated-secret", secret: secret(""), request: issuedRequest(t, true), wantEvent: quillv1.ReasonNameCollision},
		{name: "another-issuers-secret", secret: secret("QuillIssuer/" + fixture.Namespace + "/other"), request: issuedRequest(t, true), wantEvent: quillv1.ReasonNameCollision},
		{name: "own-secret", secret: secret(owner), request: issuedRequest(t, true), wantEvent: "IntermediateInstalled", wantWritten: true},
		{name: "no-secret-yet", request: issuedRequest(t, true), wantEvent: "IntermediateInstalled", wantWritten: true},
		{name: "forged-request", secret: secret(owner), request: issuedRequest(t, false)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			objs := []client.Object{hsmIssuer(), tt.request}
			if tt.secret != nil {
				objs = append(objs, tt.secret)
			}
			api := fixture.NewAPI(t, objs...)
			rec := events.NewFakeRecorder(10)
			r := &intermediateReconciler{
				client: api, store: &castore.Store{Reader: api, Metadata: api, Writer: api, Clock: clocktesting.NewFakePassiveClock(fixture.Now)},
				kind: &quillv1.QuillIssuer{}, clock: clocktesting.NewFakePassiveClock(fixture.Now), recorder: rec,
			}
			_, _ = r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Namespace: fixture.Namespace, Name: "hsm"}})

			var got corev1.Secret
			err := api.Get(ctx, client.ObjectKey{Namespace: fixture.Namespace, Name: "hsm-ca"}, &got)
			if tt.wantWritten {
				if err != nil || len(got.Data[castore.KeyTLSCrt]) == 0 || !owned.Marked(&got, owner) {
					t.Fatalf("certificate Secret: %v, keys %d, marked %v; want the chain installed under the issuer's mark", err, len(got.Data), owned.Marked(&got, owner))
				}
			} else if tt.secret != nil {
				if err != nil || string(got.Data["ca.crt"]) != "someone's anchors" || len(got.Data) != 1 {
					t.Fatalf("the Secret was written: %v, %d keys", err, len(got.Data))
				}
			}
			var events []string
			for len(rec.Events) > 0 {
				events = append(events, <-rec.Events)
			}
			if tt.wantEvent != "" && (len(events) == 0 || !strings.Contains(events[0], tt.wantEvent)) {
				t.Errorf("events %q, want %s first", events, tt.wantEvent)
			}
			var requests cmapi.CertificateRequestList
			if err := api.List(ctx, &requests); err != nil {
				t.Fatal(err)
			}
			if !tt.wantWritten && (len(requests.Items) != 1 || requests.Items[0].Name != tt.request.Name) {
				t.Errorf("%d requests after the reconcile, want the one there was, untouched", len(requests.Items))
			}
		})
	}
}
