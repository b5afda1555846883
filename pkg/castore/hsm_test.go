package castore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/pkcs11"
)

// TestHSMRefusedPINPresentedOnce: reconcilers that load an HSM-backed CA at
// the same moment, and the intermediate CSR path, present a PIN the token
// refuses once between them, and again only after the PIN Secret changes.
func TestHSMRefusedPINPresentedOnce(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	pin := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "hsm-pin"}, Data: map[string][]byte{"pin": []byte("0000")}}
	f := newStore(t, withObjects(newSecret("hsm-ca", withCA(ca)), pin))
	var opens atomic.Int32
	f.store.PKCS11Modules = map[string]string{"hsm": "/opt/vendor/libhsm.so"}
	f.store.HSM = func(pkcs11.Config) (castore.HSMKey, error) {
		opens.Add(1)
		// A login takes a while; the other callers arrive meanwhile.
		time.Sleep(20 * time.Millisecond)
		return nil, pkcs11.ErrPINIncorrect
	}
	p := &quillv1.PKCS11CA{
		Module: "hsm", TokenLabel: "Root CA", KeyLabel: "ca-key",
		PINSecretRef:         quillv1.SecretKeySelector{Name: "hsm-pin"},
		CertificateSecretRef: &quillv1.SecretReference{Name: "hsm-ca"},
	}
	src := quillv1.CASource{PKCS11: p}
	ctx := context.Background()

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := f.store.Load(ctx, testNamespace, src)
			checkErr(t, err, wantErr{reason: quillv1.ReasonPINIncorrect})
		})
	}
	wg.Go(func() {
		_, err := f.store.OpenHSMKey(ctx, testNamespace, p)
		checkErr(t, err, wantErr{reason: quillv1.ReasonPINIncorrect})
	})
	wg.Wait()
	if n := opens.Load(); n != 1 {
		t.Fatalf("the refused PIN was presented %d times by 9 concurrent callers, want once", n)
	}

	// A new PIN is tried, once.
	var s corev1.Secret
	if err := f.api.Get(ctx, types.NamespacedName{Namespace: testNamespace, Name: "hsm-pin"}, &s); err != nil {
		t.Fatal(err)
	}
	s.Data["pin"] = []byte("1111")
	if err := f.api.Update(ctx, &s); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := f.store.OpenHSMKey(ctx, testNamespace, p); !errors.As(err, new(*castore.Error)) {
			t.Fatalf("OpenHSMKey: %v, want a classified PINIncorrect", err)
		}
	}
	if _, err := f.store.Load(ctx, testNamespace, src); err == nil {
		t.Fatal("Load after a refused PIN succeeded")
	}
	if n := opens.Load(); n != 2 {
		t.Fatalf("%d PIN presentations after the PIN Secret changed once, want 2", n)
	}
}

// TestHSMOpenErrorsAreClassified: whatever opening an HSM key fails with,
// Load and OpenHSMKey return a classified error, never nothing (a nil
// authority with no error would crash the signer).
func TestHSMOpenErrorsAreClassified(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	pin := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "hsm-pin"}, Data: map[string][]byte{"pin": []byte("1234")}}
	tests := []struct {
		name   string
		err    error
		reason string
	}{
		{"token-ambiguous", fmt.Errorf("open: %w", pkcs11.ErrTokenAmbiguous), quillv1.ReasonInvalidConfig},
		{"invalid-config", fmt.Errorf("open: %w", pkcs11.ErrInvalidConfig), quillv1.ReasonInvalidConfig},
		{"unknown", errors.New("C_GetSlotList: CKR_GENERAL_ERROR"), quillv1.ReasonHSMUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newStore(t, withObjects(newSecret("hsm-ca", withCA(ca)), pin))
			f.store.PKCS11Modules = map[string]string{"hsm": "/opt/vendor/libhsm.so"}
			f.store.HSM = func(pkcs11.Config) (castore.HSMKey, error) { return nil, tt.err }
			p := &quillv1.PKCS11CA{
				Module: "hsm", TokenLabel: "Root CA", KeyLabel: "ca-key",
				PINSecretRef:         quillv1.SecretKeySelector{Name: "hsm-pin"},
				CertificateSecretRef: &quillv1.SecretReference{Name: "hsm-ca"},
			}
			a, err := f.store.Load(context.Background(), testNamespace, quillv1.CASource{PKCS11: p})
			if a != nil {
				t.Fatal("Load returned an authority")
			}
			checkErr(t, err, wantErr{reason: tt.reason})
			key, err := f.store.OpenHSMKey(context.Background(), testNamespace, p)
			if key != nil {
				t.Fatal("OpenHSMKey returned a key")
			}
			checkErr(t, err, wantErr{reason: tt.reason})
		})
	}
}
