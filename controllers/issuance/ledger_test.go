package issuance

import (
	"context"
	"errors"
	"strings"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/cert-manager/issuer-lib/controllers/signer"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
)

// journalEntries reads every issued entry of the ledger segments in api.
func journalEntries(t *testing.T, api client.Reader) []ledger.Entry {
	t.Helper()
	var list quillv1.LedgerSegmentList
	if err := api.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	var out []ledger.Entry
	for i := range list.Items {
		if err := ledger.SegmentEntries(&list.Items[i], func(e *ledger.Entry) error {
			if !e.IsRevocationLine() {
				out = append(out, *e)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// newLedgerSigner is a Signer for QuillIssuer "ca" and the ledger index it
// records into: empty and synced. The test chooses the journal's client.
func newLedgerSigner(t *testing.T) (*signerFixture, *ledger.Index) {
	t.Helper()
	f := newSigner(t, withObjects(caSecret(testNamespace, "ca", newCA(t))))
	index := ledger.NewIndex()
	if err := index.Replace(nil, "1"); err != nil {
		t.Fatal(err)
	}
	return f, index
}

// TestSignLedger: a certificate is recorded before Sign returns it; a
// retried request gets the recorded certificate back instead of a second
// signature, also when the journal write failed without saying whether it
// happened (the API server committed it, the reply was lost).
func TestSignLedger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, index := newLedgerSigner(t)
	lostReplies := 1
	writer := interceptor.NewClient(f.api, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if err := c.Create(ctx, obj, opts...); err != nil {
				return err
			}
			if lostReplies > 0 {
				lostReplies--
				return apierrors.NewTimeoutError("the reply was lost", 1)
			}
			return nil
		},
	})
	f.signer.Ledger = &Ledger{Index: index, Journal: ledger.NewJournal(writer, index, f.clock), Reader: f.api}

	withUID := func(uid string) crOption {
		return func(cr *cmapi.CertificateRequest) { cr.UID = types.UID(uid) }
	}
	// The first request: the entry is written, but Sign cannot know it,
	// and the index does not have it.
	cr := certificateRequest(withUID("uid-1"))(t)
	if _, err := f.signer.Sign(ctx, cr, newIssuer()); err == nil {
		t.Fatal("Sign succeeded although recording its certificate reported a failure")
	}
	if n := len(journalEntries(t, f.api)); n != 1 {
		t.Fatalf("%d ledger entries after the lost reply, want 1", n)
	}
	if _, ok := index.ByRequest(newIssuer().ID(), "uid-1"); ok {
		t.Fatal("the index has an entry whose write reported an unknown outcome; the test tests nothing")
	}
	// Its retry: the recorded certificate, no second signature.
	bundle, err := f.signer.Sign(ctx, cr, newIssuer())
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	recs := journalEntries(t, f.api)
	if len(recs) != 1 {
		t.Fatalf("%d ledger entries after the retry, want 1: signed twice", len(recs))
	}
	leaf := parseChain(t, bundle.ChainPEM)[0]
	if ledger.SerialHex(leaf.SerialNumber) != recs[0].Serial || recs[0].Origin.UID != string(cr.GetUID()) {
		t.Fatalf("retry returned serial %x for request %s; the ledger recorded %s for %s", leaf.SerialNumber, cr.GetUID(), recs[0].Serial, recs[0].Origin.UID)
	}

	// A request whose entry was written normally: found in the index.
	other := certificateRequest(withUID("uid-2"))(t)
	first, err := f.signer.Sign(ctx, other, newIssuer())
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.signer.Sign(ctx, other, newIssuer())
	if err != nil {
		t.Fatal(err)
	}
	if string(first.ChainPEM) != string(again.ChainPEM) || len(journalEntries(t, f.api)) != 2 {
		t.Fatalf("a retried request was signed again (%d entries)", len(journalEntries(t, f.api)))
	}
}

// TestSignLedgerDroppedCertificate: a retried request whose entry no
// longer keeps its certificate (sealed since) fails for good, saying why,
// rather than being signed a second time.
func TestSignLedgerDroppedCertificate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, index := newLedgerSigner(t)
	f.signer.Ledger = &Ledger{Index: index, Journal: ledger.NewJournal(f.api, index, f.clock), Reader: f.api}
	cr := certificateRequest(func(cr *cmapi.CertificateRequest) { cr.UID = "uid-sealed" })(t)
	if _, err := f.signer.Sign(ctx, cr, newIssuer()); err != nil {
		t.Fatal(err)
	}
	// What the compactor leaves: the entry, sealed, without its DER.
	e := journalEntries(t, f.api)[0]
	e.Certificate = nil
	sealed, err := ledger.NewSegment(newIssuer().ID(), testNamespace, quillv1.LedgerStageSealed, testNow, []ledger.Entry{e})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.api.Create(ctx, sealed); err != nil {
		t.Fatal(err)
	}
	index.PutSegment(sealed, []ledger.Entry{e})
	if rec, _ := index.ByRequest(newIssuer().ID(), "uid-sealed"); rec.Segment != sealed.Name {
		t.Fatalf("the index points at %s, not at the sealed segment; the test tests nothing", rec.Segment)
	}
	_, err = f.signer.Sign(ctx, cr, newIssuer())
	var perm signer.PermanentError
	if !errors.As(err, &perm) || !strings.Contains(err.Error(), "already signed (serial "+e.Serial) ||
		!strings.Contains(err.Error(), "no longer kept; create a new request") {
		t.Fatalf("retry of a request whose certificate was dropped: %v; want a permanent failure naming the serial", err)
	}
	if n := len(journalEntries(t, f.api)); n != 2 { // the journal's and the sealed copy of one entry
		t.Fatalf("%d entries in the ledger; want the one entry twice: signed again", n)
	}
}

// TestCertificateOf: a request's Certificate is believed only when
// cert-manager made the request (its requester) for that Certificate (its
// controlling owner); the annotation alone is a claim anyone can write.
func TestCertificateOf(t *testing.T) {
	t.Parallel()
	const cm = "system:serviceaccount:cert-manager:cert-manager"
	controller := func(apiVersion, kind, name string, isController bool) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: "crt-uid", Controller: &isController}
	}
	genuine := controller("cert-manager.io/v1", "Certificate", "web", true)
	tests := []struct {
		name     string
		username string
		annotate string
		owners   []metav1.OwnerReference
		identity string
		want     string
	}{
		{name: "cert-manager-request", username: cm, annotate: "web", owners: []metav1.OwnerReference{genuine}, identity: cm, want: "web"},
		{name: "other-requester", username: "mallory", annotate: "web", owners: []metav1.OwnerReference{genuine}, identity: cm},
		{name: "no-requester", annotate: "web", owners: []metav1.OwnerReference{genuine}, identity: cm},
		{name: "no-identity-configured", username: cm, annotate: "web", owners: []metav1.OwnerReference{genuine}},
		{name: "no-annotation", username: cm, owners: []metav1.OwnerReference{genuine}, identity: cm},
		{name: "no-owner", username: cm, annotate: "web", identity: cm},
		{name: "owner-not-controller", username: cm, annotate: "web", owners: []metav1.OwnerReference{controller("cert-manager.io/v1", "Certificate", "web", false)}, identity: cm},
		{name: "controlled-by-another-certificate", username: cm, annotate: "web", owners: []metav1.OwnerReference{controller("cert-manager.io/v1", "Certificate", "db", true)}, identity: cm},
		{name: "controlled-by-another-kind", username: cm, annotate: "web", owners: []metav1.OwnerReference{controller("v1", "Secret", "web", true)}, identity: cm},
		{name: "controlled-by-another-group", username: cm, annotate: "web", owners: []metav1.OwnerReference{controller("example.com/v1", "Certificate", "web", true)}, identity: cm},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cr := &cmapi.CertificateRequest{
				ObjectMeta: metav1.ObjectMeta{Name: "web-1", OwnerReferences: tc.owners},
				Spec:       cmapi.CertificateRequestSpec{Username: tc.username},
			}
			if tc.annotate != "" {
				cr.Annotations = map[string]string{cmapi.CertificateNameKey: tc.annotate}
			}
			if got := CertificateOf(cr, tc.identity); got != tc.want {
				t.Errorf("CertificateOf = %q, want %q", got, tc.want)
			}
		})
	}
}
