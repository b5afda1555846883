package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// TestRequestSignedOnFirstPass watches, through the real API server, every
// version of the CertificateRequest cert-manager makes for a Quill
// Certificate: the first Ready condition it ever carries is the signed
// result. Quill writes nothing before it signs (issuer-lib's controller
// wrote Ready=Unknown, Initializing first, and signed only on the
// reconcile that write caused), and nothing after.
func TestRequestSignedOnFirstPass(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ref := quillIssuer(t, ns, "ca", "ECDSA-P256")

	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := wc.Watch(ctx, &cmapi.CertificateRequestList{}, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	var readyStates []string // each change of the Ready condition, in order
	var quillWrites int      // versions in which Quill's status changed
	done := make(chan struct{})
	go func() {
		defer close(done)
		last, lastQuill := "", ""
		for ev := range w.ResultChan() {
			cr, ok := ev.Object.(*cmapi.CertificateRequest)
			if !ok {
				continue
			}
			state := "none"
			for _, c := range cr.Status.Conditions {
				if c.Type == cmapi.CertificateRequestConditionReady {
					state = fmt.Sprintf("%s/%s", c.Status, c.Reason)
				}
			}
			if state != last {
				readyStates = append(readyStates, state)
				last = state
			}
			// What Quill owns of the status: its Ready condition and the
			// certificate.
			if q := state + string(cr.Status.Certificate); q != lastQuill {
				quillWrites++
				lastQuill = q
			}
		}
	}()

	create(t, certificate(ns, "first-pass", ref))
	waitCertificateReady(t, ns, "first-pass")
	w.Stop()
	cancel()
	<-done

	want := []string{"none", "True/" + cmapi.CertificateRequestReasonIssued}
	if fmt.Sprint(readyStates) != fmt.Sprint(want) {
		t.Errorf("the request's Ready condition went %v, want %v: something was written before the result", readyStates, want)
	}
	if quillWrites != 2 { // the request as created, then signed
		t.Errorf("the request's Ready condition or certificate changed %d times, want once after creation", quillWrites-1)
	}
}

// TestRequestWaitsForItsIssuer asks for a Certificate from a QuillIssuer
// that does not exist yet: the request says so in a Pending condition, and
// is signed once the issuer appears and turns Ready. Nothing requeues a
// request waiting for its issuer; only the issuer's change wakes it.
func TestRequestWaitsForItsIssuer(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	create(t, certificate(ns, "early", cmmeta.IssuerReference{Group: "quill.dev", Kind: quillv1.IssuerKind, Name: "late"}))
	eventually(t, "the request Pending for its missing issuer", func() (bool, error) {
		var list cmapi.CertificateRequestList
		if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		for _, cr := range list.Items {
			for _, c := range cr.Status.Conditions {
				if c.Type == cmapi.CertificateRequestConditionReady && c.Reason == cmapi.CertificateRequestReasonPending &&
					strings.Contains(c.Message, quillv1.ReasonIssuerNotFound) {
					return true, nil
				}
			}
		}
		return false, nil
	})
	quillIssuer(t, ns, "late", "ECDSA-P256")
	waitCertificateReady(t, ns, "early")
}
