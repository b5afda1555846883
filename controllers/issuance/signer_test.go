package issuance

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	issuerapi "github.com/cert-manager/issuer-lib/api/v1alpha1"
	"github.com/cert-manager/issuer-lib/controllers/signer"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/classify"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/kms"
)

// outcome is how Sign or Check should fail, as issuer-lib reads it.
type outcome int

const (
	succeeds          outcome = iota
	invalidRequestErr         // PermanentError carrying InvalidRequest=True
	permanentErr              // PermanentError, nothing more
	issuerErr                 // IssuerError wrapping an issuer fault with a reason
	plainErr                  // retry with backoff: no classification at all
	caErr                     // an issuer fault with a reason, not permanent (Check)
)

func (o outcome) String() string {
	return [...]string{"success", "invalid request", "permanent error", "issuer error", "plain error", "CA error"}[o]
}

// checkOutcome asserts that err is classified as want; reason is the
// issuer fault's reason expected for issuerErr and caErr.
func checkOutcome(t *testing.T, err error, want outcome, reason string) {
	t.Helper()
	var (
		perm signer.PermanentError
		iss  signer.IssuerError
		cond signer.SetCertificateRequestConditionError
	)
	class, gotReason := classify.Of(err)
	isPerm, isIss, isCond, isStore := errors.As(err, &perm), errors.As(err, &iss), errors.As(err, &cond), err != nil && class == classify.IssuerFault
	if want == succeeds {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got no error, want %s", want)
	}
	switch want {
	case invalidRequestErr:
		if !isPerm || !isCond || isIss {
			t.Fatalf("error %q: permanent=%t setCondition=%t issuer=%t, want a PermanentError with a condition", err, isPerm, isCond, isIss)
		}
		if cond.ConditionType != cmapi.CertificateRequestConditionInvalidRequest || cond.Status != cmmeta.ConditionTrue || cond.Reason != quillv1.ReasonInvalidRequest {
			t.Errorf("condition = %s=%s (%s), want %s=%s (%s)", cond.ConditionType, cond.Status, cond.Reason,
				cmapi.CertificateRequestConditionInvalidRequest, cmmeta.ConditionTrue, quillv1.ReasonInvalidRequest)
		}
	case permanentErr:
		if !isPerm || isIss || isCond {
			t.Fatalf("error %q: permanent=%t setCondition=%t issuer=%t, want only a PermanentError", err, isPerm, isCond, isIss)
		}
	case issuerErr:
		if !isIss || isPerm {
			t.Fatalf("error %q: issuer=%t permanent=%t, want an IssuerError that is not permanent", err, isIss, isPerm)
		}
		if !isStore {
			t.Fatalf("IssuerError %q carries no classified issuer fault", err)
		}
	case caErr:
		if !isStore || isPerm || isIss {
			t.Fatalf("error %q: issuer-fault=%t permanent=%t issuer=%t, want a retryable issuer fault", err, isStore, isPerm, isIss)
		}
		if !strings.HasPrefix(err.Error(), reason+": ") {
			t.Errorf("error %q does not start with %q, which issuer-lib shows in the Ready message", err, reason)
		}
	case plainErr:
		if isPerm || isIss || isStore {
			t.Fatalf("error %q: permanent=%t issuer=%t issuer-fault=%t, want a plain retryable error", err, isPerm, isIss, isStore)
		}
	}
	if (want == issuerErr || want == caErr) && gotReason != reason {
		t.Errorf("reason = %q, want %q (error %q)", gotReason, reason, err)
	}
}

func TestSign(t *testing.T) {
	t.Parallel()
	root := newCA(t)
	intermediate := newCA(t, withCN("Test Intermediate CA"), issuedBy(root))
	expired := newCA(t, withCN("Expired CA"), withValidity(testNow.Add(-400*day), 365*day))
	leafCA := newCA(t, withCN("Not A CA"), asLeaf())
	shortLived := newCA(t, withCN("Short-lived CA"), withValidity(testNow, 30*day))
	apiDown := apierrors.NewServiceUnavailable("etcd is down")

	tests := []struct {
		name      string
		issuer    issuerapi.Issuer
		secrets   []client.Object
		getErr    error
		request   func(t *testing.T) signer.CertificateRequestObject
		want      outcome
		reason    string
		wantCA    testCA        // the CA that must have signed
		lifetime  time.Duration // of the issued certificate
		wantEvent string        // prefix of the one event expected, if any
	}{
		{
			name:     "root-ca-signs-certificate-request",
			issuer:   newIssuer(),
			secrets:  []client.Object{caSecret(testNamespace, "ca", root)},
			request:  certificateRequest(),
			wantCA:   root,
			lifetime: defaultDuration,
		},
		{
			name:     "intermediate-ca-signs-with-chain",
			issuer:   newIssuer(),
			secrets:  []client.Object{caSecret(testNamespace, "ca", intermediate)},
			request:  certificateRequest(),
			wantCA:   intermediate,
			lifetime: defaultDuration,
		},
		{
			name:     "requested-duration-is-honoured",
			issuer:   newIssuer(),
			secrets:  []client.Object{caSecret(testNamespace, "ca", root)},
			request:  certificateRequest(withDuration(48 * time.Hour)),
			wantCA:   root,
			lifetime: 48 * time.Hour,
		},
		{
			name:     "kubernetes-csr-expiration-seconds",
			issuer:   newIssuer(),
			secrets:  []client.Object{caSecret(testNamespace, "ca", root)},
			request:  kubernetesCSR(withExpirationSeconds(3600)),
			wantCA:   root,
			lifetime: time.Hour,
		},
		{
			name:     "kubernetes-csr-without-expiration-gets-default",
			issuer:   newIssuer(),
			secrets:  []client.Object{caSecret(testNamespace, "ca", root)},
			request:  kubernetesCSR(),
			wantCA:   root,
			lifetime: defaultDuration,
		},
		{
			// Regression: issuer-lib fills in 90 days for a request without a
			// duration, which used to exceed a lower maxDuration and fail.
			name:     "max-duration-below-default-applies-when-request-has-none",
			issuer:   newIssuer(withMaxDuration(30 * day)),
			secrets:  []client.Object{caSecret(testNamespace, "ca", root)},
			request:  certificateRequest(),
			wantCA:   root,
			lifetime: 30 * day,
		},
		{
			name:     "max-duration-below-default-applies-to-kubernetes-csr",
			issuer:   newIssuer(withMaxDuration(30 * day)),
			secrets:  []client.Object{caSecret(testNamespace, "ca", root)},
			request:  kubernetesCSR(),
			wantCA:   root,
			lifetime: 30 * day,
		},
		{
			name:     "max-duration-above-default-keeps-default",
			issuer:   newIssuer(withMaxDuration(200 * day)),
			secrets:  []client.Object{caSecret(testNamespace, "ca", root)},
			request:  certificateRequest(),
			wantCA:   root,
			lifetime: defaultDuration,
		},
		{
			name:     "explicit-default-duration",
			issuer:   newIssuer(withDefaultDuration(7*day), withMaxDuration(30*day)),
			secrets:  []client.Object{caSecret(testNamespace, "ca", root)},
			request:  certificateRequest(),
			wantCA:   root,
			lifetime: 7 * day,
		},
		{
			name:    "explicit-90-days-above-max-is-refused",
			issuer:  newIssuer(withMaxDuration(30 * day)),
			secrets: []client.Object{caSecret(testNamespace, "ca", root)},
			request: certificateRequest(withDuration(90 * day)),
			want:    invalidRequestErr,
		},
		{
			name:      "validity-clamped-to-ca-emits-event",
			issuer:    newIssuer(),
			secrets:   []client.Object{caSecret(testNamespace, "ca", shortLived)},
			request:   certificateRequest(),
			wantCA:    shortLived,
			lifetime:  30 * day,
			wantEvent: "Warning " + eventIssuanceAdjusted + " ",
		},
		{
			name:    "malformed-csr",
			issuer:  newIssuer(),
			secrets: []client.Object{caSecret(testNamespace, "ca", root)},
			request: certificateRequest(withRequest([]byte("-----BEGIN CERTIFICATE REQUEST-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE REQUEST-----\n"))),
			want:    invalidRequestErr,
		},
		{
			name:    "csr-not-pem",
			issuer:  newIssuer(),
			secrets: []client.Object{caSecret(testNamespace, "ca", root)},
			request: certificateRequest(withRequest([]byte("hello"))),
			want:    invalidRequestErr,
		},
		{
			name:    "unknown-usage",
			issuer:  newIssuer(),
			secrets: []client.Object{caSecret(testNamespace, "ca", root)},
			request: certificateRequest(withUsages("teleportation")),
			want:    invalidRequestErr,
		},
		{
			name:    "kubernetes-csr-bad-duration-annotation",
			issuer:  newIssuer(),
			secrets: []client.Object{caSecret(testNamespace, "ca", root)},
			request: kubernetesCSR(withAnnotation("experimental.cert-manager.io/request-duration", "soon")),
			want:    invalidRequestErr,
		},
		{
			name:    "ca-secret-missing",
			issuer:  newIssuer(),
			request: certificateRequest(),
			want:    issuerErr,
			reason:  quillv1.ReasonSecretNotFound,
		},
		{
			name:    "ca-expired",
			issuer:  newIssuer(),
			secrets: []client.Object{caSecret(testNamespace, "ca", expired)},
			request: certificateRequest(),
			want:    issuerErr,
			reason:  quillv1.ReasonCAExpired,
		},
		{
			name:    "ca-not-a-ca",
			issuer:  newIssuer(),
			secrets: []client.Object{caSecret(testNamespace, "ca", leafCA)},
			request: certificateRequest(),
			want:    issuerErr,
			reason:  quillv1.ReasonNotACA,
		},
		{
			name:    "ca-key-mismatch",
			issuer:  newIssuer(),
			secrets: []client.Object{withSecretData(caSecret(testNamespace, "ca", root), castore.KeyTLSKey, intermediate.KeyPEM)},
			request: certificateRequest(),
			want:    issuerErr,
			reason:  quillv1.ReasonKeyMismatch,
		},
		{
			name:    "invalid-issuer-options",
			issuer:  newIssuer(withCRL("crl/relative.crl")),
			secrets: []client.Object{caSecret(testNamespace, "ca", root)},
			request: certificateRequest(),
			want:    issuerErr,
			reason:  quillv1.ReasonInvalidConfig,
		},
		{
			name:    "api-error-is-plain",
			issuer:  newIssuer(),
			secrets: []client.Object{caSecret(testNamespace, "ca", root)},
			getErr:  apiDown,
			request: certificateRequest(),
			want:    plainErr,
		},
		{
			name:    "unknown-issuer-kind",
			issuer:  foreignIssuer{newIssuer()},
			secrets: []client.Object{caSecret(testNamespace, "ca", root)},
			request: certificateRequest(),
			want:    permanentErr,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := []signerOption{withObjects(tt.secrets...)}
			if tt.getErr != nil {
				opts = append(opts, withSecretGetError(tt.getErr))
			}
			f := newSigner(t, opts...)
			bundle, err := f.signer.Sign(context.Background(), tt.request(t), tt.issuer)
			checkOutcome(t, err, tt.want, tt.reason)
			evs := drainEvents(f.recorder)
			if tt.want != succeeds {
				if len(bundle.ChainPEM) != 0 || len(bundle.CAPEM) != 0 {
					t.Errorf("Sign failed but returned a bundle")
				}
				if len(evs) != 0 {
					t.Errorf("events %q recorded for a failed Sign", evs)
				}
				return
			}
			checkIssued(t, bundle, tt.wantCA, testNow, tt.lifetime)
			// Every issuance is announced on the request; other events are
			// the case's own.
			issuedEvents := slices.DeleteFunc(slices.Clone(evs), func(e string) bool { return !strings.HasPrefix(e, "Normal CertificateIssued serial ") })
			if len(issuedEvents) != 1 {
				t.Errorf("CertificateIssued events %q, want one", issuedEvents)
			}
			evs = slices.DeleteFunc(evs, func(e string) bool { return strings.HasPrefix(e, "Normal CertificateIssued ") })
			switch {
			case tt.wantEvent == "" && len(evs) != 0:
				t.Errorf("unexpected events %q", evs)
			case tt.wantEvent != "" && (len(evs) != 1 || !strings.HasPrefix(evs[0], tt.wantEvent)):
				t.Errorf("events = %q, want one starting with %q", evs, tt.wantEvent)
			}
		})
	}
}

func certificateRequest(opts ...crOption) func(*testing.T) signer.CertificateRequestObject {
	return func(t *testing.T) signer.CertificateRequestObject {
		return signer.CertificateRequestObjectFromCertificateRequest(newCertificateRequest(t, "cr", opts...))
	}
}

func kubernetesCSR(opts ...kubeCSROption) func(*testing.T) signer.CertificateRequestObject {
	return func(t *testing.T) signer.CertificateRequestObject {
		return signer.CertificateRequestObjectFromCertificateSigningRequest(newKubeCSR(t, opts...))
	}
}

func withSecretData(s *corev1.Secret, key string, value []byte) *corev1.Secret {
	s.Data[key] = value
	return s
}

// checkIssued verifies that bundle is a certificate issued by ca at now for
// lifetime, chaining to ca's root, with that root as the CA.
func checkIssued(t *testing.T, bundle signer.PEMBundle, ca testCA, now time.Time, lifetime time.Duration) {
	t.Helper()
	if !bytes.Equal(bundle.CAPEM, ca.RootPEM) {
		t.Errorf("CAPEM is not the CA's root:\n%s\nwant:\n%s", bundle.CAPEM, ca.RootPEM)
	}
	chain := parseChain(t, bundle.ChainPEM)
	leaf := chain[0]
	roots := x509.NewCertPool()
	roots.AddCert(parseCert(t, ca.RootPEM))
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("issued chain does not verify against the root: %v", err)
	}
	if err := leaf.CheckSignatureFrom(ca.Cert); err != nil {
		t.Errorf("certificate was not signed by %q: %v", ca.Cert.Subject, err)
	}
	wantChain := 1
	if !bytes.Equal(ca.CertPEM, ca.RootPEM) {
		wantChain = 2 // leaf and the issuing intermediate, never the root
		if !bytes.Equal(chain[len(chain)-1].Raw, ca.Cert.Raw) {
			t.Errorf("chain ends with %q, want the issuing CA %q", chain[len(chain)-1].Subject, ca.Cert.Subject)
		}
	}
	if len(chain) != wantChain {
		t.Errorf("chain has %d certificates, want %d", len(chain), wantChain)
	}
	if leaf.Subject.CommonName != "app.example.test" || !slices.Equal(leaf.DNSNames, []string{"app.example.test"}) {
		t.Errorf("issued certificate names %q %v, want the CSR's", leaf.Subject, leaf.DNSNames)
	}
	if !leaf.NotBefore.Equal(now) {
		t.Errorf("notBefore = %s, want %s", leaf.NotBefore, now)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got != lifetime {
		t.Errorf("lifetime = %s, want %s", got, lifetime)
	}
}

// TestSignTenancy checks which namespace each issuer kind reads: a
// QuillIssuer its own, a QuillClusterIssuer only the cluster resource
// namespace. Every namespace holds a Secret of the same name.
func TestSignTenancy(t *testing.T) {
	t.Parallel()
	teamCA := newCA(t, withCN("Team A CA"))
	clusterCA := newCA(t, withCN("Cluster CA"))
	secrets := []client.Object{
		caSecret(testNamespace, "ca", teamCA),
		caSecret(clusterResourceNamespace, "ca", clusterCA),
	}
	inNamespace := func(ns string) *quillv1.QuillIssuer {
		iss := newIssuer()
		iss.Namespace = ns
		return iss
	}
	tests := []struct {
		name      string
		issuer    issuerapi.Issuer
		clusterNS string
		wantCA    *testCA
		wantMsg   string
	}{
		{name: "issuer-reads-own-namespace", issuer: newIssuer(), clusterNS: clusterResourceNamespace, wantCA: &teamCA},
		{name: "cluster-issuer-reads-cluster-resource-namespace", issuer: newClusterIssuer(), clusterNS: clusterResourceNamespace, wantCA: &clusterCA},
		{name: "cluster-issuer-follows-configured-namespace", issuer: newClusterIssuer(), clusterNS: testNamespace, wantCA: &teamCA},
		{name: "issuer-does-not-fall-back-to-cluster-namespace", issuer: inNamespace("team-b"), clusterNS: clusterResourceNamespace, wantMsg: "team-b/ca"},
		{name: "cluster-issuer-does-not-fall-back", issuer: newClusterIssuer(), clusterNS: "empty-ns", wantMsg: "empty-ns/ca"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newSigner(t, withObjects(secrets...), withClusterResourceNamespace(tt.clusterNS))
			bundle, err := f.signer.Sign(context.Background(), certificateRequest()(t), tt.issuer)
			if tt.wantCA == nil {
				checkOutcome(t, err, issuerErr, quillv1.ReasonSecretNotFound)
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("error %q does not name %s", err, tt.wantMsg)
				}
				return
			}
			checkOutcome(t, err, succeeds, "")
			checkIssued(t, bundle, *tt.wantCA, testNow, defaultDuration)
		})
	}
}

func TestCheckAuthority(t *testing.T) {
	t.Parallel()
	root := newCA(t)
	other := newCA(t, withCN("Other CA"))
	notYet := newCA(t, withCN("Future CA"), withValidity(testNow.Add(30*day), 365*day))
	expired := newCA(t, withCN("Expired CA"), withValidity(testNow.Add(-400*day), 365*day))
	leafCA := newCA(t, withCN("Not A CA"), asLeaf())
	noCertSign := newCA(t, withCN("CRL-only CA"), withCAKeyUsage(x509.KeyUsageCRLSign|x509.KeyUsageDigitalSignature))
	load := func(ca testCA) *issuance.Authority {
		a, err := issuance.LoadAuthority(ca.CertPEM, ca.KeyPEM, ca.RootPEM)
		if err != nil {
			t.Fatalf("load %q: %v", ca.Cert.Subject, err)
		}
		return a
	}
	mismatched := load(root)
	mismatched.Signer = other.Key

	tests := []struct {
		name     string
		a        *issuance.Authority
		want     string // reason; "" for a usable CA
		sentinel error
	}{
		{name: "usable-root", a: load(root)},
		{name: "expired", a: load(expired), want: quillv1.ReasonCAExpired, sentinel: issuance.ErrCAExpired},
		{name: "not-yet-valid", a: load(notYet), want: quillv1.ReasonCAExpired, sentinel: issuance.ErrCANotYetValid},
		{name: "not-a-ca", a: load(leafCA), want: quillv1.ReasonNotACA, sentinel: issuance.ErrNotCA},
		{name: "no-cert-sign", a: load(noCertSign), want: quillv1.ReasonNotACA, sentinel: issuance.ErrNoCertSign},
		{name: "key-mismatch", a: mismatched, want: quillv1.ReasonKeyMismatch, sentinel: kms.ErrKeyMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := checkAuthority(tt.a, testNow)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			checkOutcome(t, err, caErr, tt.want)
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("error %q does not wrap %q", err, tt.sentinel)
			}
		})
	}
}

func TestInvalidRequest(t *testing.T) {
	t.Parallel()
	cause := fmt.Errorf("%w: the CSR is empty", issuance.ErrInvalidRequest)
	err := invalidRequest(cause)
	checkOutcome(t, err, invalidRequestErr, "")
	if !errors.Is(err, cause) || err.Error() != cause.Error() {
		t.Errorf("invalidRequest(%q) = %q; it must keep the cause and its message", cause, err)
	}
}

// plainRequest is a request object without DeepCopyObject, which
// requestedDuration cannot look behind.
type plainRequest struct {
	metav1.ObjectMeta
}

func (*plainRequest) GetCertificateDetails() (signer.CertificateDetails, error) {
	return signer.CertificateDetails{Duration: 17 * time.Hour}, nil
}
func (*plainRequest) GetConditions() []metav1.Condition { return nil }

func TestRequestedDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		request func(*testing.T) signer.CertificateRequestObject
		want    time.Duration
	}{
		{name: "certificate-request-without-duration", request: certificateRequest(), want: 0},
		{name: "certificate-request-with-duration", request: certificateRequest(withDuration(48 * time.Hour)), want: 48 * time.Hour},
		{name: "certificate-request-asking-for-90-days", request: certificateRequest(withDuration(90 * day)), want: 90 * day},
		{name: "kubernetes-csr-without-expiration", request: kubernetesCSR(), want: 0},
		{name: "kubernetes-csr-expiration-seconds", request: kubernetesCSR(withExpirationSeconds(7200)), want: 2 * time.Hour},
		{name: "kubernetes-csr-duration-annotation", request: kubernetesCSR(withAnnotation("experimental.cert-manager.io/request-duration", "36h")), want: 36 * time.Hour},
		{name: "other-request-type-keeps-details", request: func(*testing.T) signer.CertificateRequestObject { return &plainRequest{} }, want: 17 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cr := tt.request(t)
			details, err := cr.GetCertificateDetails()
			if err != nil {
				t.Fatal(err)
			}
			if got := requestedDuration(cr, details.Duration); got != tt.want {
				t.Errorf("requestedDuration = %s, want %s (details said %s)", got, tt.want, details.Duration)
			}
		})
	}
}

func TestIssuanceOptions(t *testing.T) {
	t.Parallel()
	dur := func(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
	tests := []struct {
		name        string
		policy      quillv1.IssuancePolicy
		wantDefault time.Duration
		wantMax     time.Duration
		wantPSS     bool
		wantValid   bool
	}{
		{name: "empty-policy", wantDefault: 90 * day, wantValid: true},
		{name: "max-below-default-lowers-implicit-default", policy: quillv1.IssuancePolicy{MaxDuration: dur(30 * day)}, wantDefault: 30 * day, wantMax: 30 * day, wantValid: true},
		{name: "max-equal-to-default", policy: quillv1.IssuancePolicy{MaxDuration: dur(90 * day)}, wantDefault: 90 * day, wantMax: 90 * day, wantValid: true},
		{name: "max-above-default-keeps-default", policy: quillv1.IssuancePolicy{MaxDuration: dur(365 * day)}, wantDefault: 90 * day, wantMax: 365 * day, wantValid: true},
		{name: "explicit-default-within-max", policy: quillv1.IssuancePolicy{DefaultDuration: dur(7 * day), MaxDuration: dur(30 * day)}, wantDefault: 7 * day, wantMax: 30 * day, wantValid: true},
		{name: "explicit-default-alone", policy: quillv1.IssuancePolicy{DefaultDuration: dur(200 * day)}, wantDefault: 200 * day, wantValid: true},
		// The schema forbids this; an explicit default is never silently
		// lowered, so Validate reports it instead.
		{name: "explicit-default-above-max-is-kept", policy: quillv1.IssuancePolicy{DefaultDuration: dur(60 * day), MaxDuration: dur(30 * day)}, wantDefault: 60 * day, wantMax: 30 * day},
		{name: "pss", policy: quillv1.IssuancePolicy{RSASignatureScheme: quillv1.RSASignatureSchemePSS}, wantDefault: 90 * day, wantPSS: true, wantValid: true},
		{name: "pkcs1v15", policy: quillv1.IssuancePolicy{RSASignatureScheme: quillv1.RSASignatureSchemePKCS1v15}, wantDefault: 90 * day, wantValid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := &quillv1.IssuerSpec{
				Issuance:               tt.policy,
				CRLDistributionPoints:  []string{"http://crl.example.test/ca.crl"},
				OCSPServers:            []string{"http://ocsp.example.test"},
				IssuingCertificateURLs: []string{"http://aia.example.test/ca.crt"},
			}
			o := issuanceOptions(spec, testNow)
			if o.DefaultDuration != tt.wantDefault || o.MaxDuration != tt.wantMax || o.RSAPSS != tt.wantPSS {
				t.Errorf("options: default %s, max %s, PSS %t; want %s, %s, %t", o.DefaultDuration, o.MaxDuration, o.RSAPSS, tt.wantDefault, tt.wantMax, tt.wantPSS)
			}
			if !o.Now.Equal(testNow) {
				t.Errorf("Now = %s, want %s", o.Now, testNow)
			}
			if !slices.Equal(o.CRLDistributionPoints, spec.CRLDistributionPoints) || !slices.Equal(o.OCSPServers, spec.OCSPServers) ||
				!slices.Equal(o.IssuingCertificateURLs, spec.IssuingCertificateURLs) {
				t.Errorf("URLs not copied: %v %v %v", o.CRLDistributionPoints, o.OCSPServers, o.IssuingCertificateURLs)
			}
			if err := o.Validate(); (err == nil) != tt.wantValid {
				t.Errorf("Validate() = %v, want valid=%t", err, tt.wantValid)
			}
		})
	}
}
