package revocation

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/revocationdata"
	"github.com/quill-pki/quill/pkg/audit"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/pkg/owned"
)

// testCRL signs a CRL with n entries.
func testCRL(t *testing.T, n int, number int64) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CRL test CA"},
		NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCRLSign | x509.KeyUsageCertSign,
		SubjectKeyId: []byte{1, 2, 3, 4},
	}
	entries := make([]x509.RevocationListEntry, n)
	for i := range entries {
		entries[i] = x509.RevocationListEntry{SerialNumber: new(big.Int).Lsh(big.NewInt(int64(i+1)), 120), RevocationTime: testNow}
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(number), ThisUpdate: testNow, NextUpdate: testNow.Add(time.Hour), RevokedCertificateEntries: entries,
	}, ca, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestCRLPublishParts: a CRL too large for one ConfigMap is written in
// parts that readers reassemble; a torn set is refused; when the CRL
// shrinks back into one object the parts go.
func TestCRLPublishParts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	api := newAPI(t)
	p := &crlPublisher{client: api, reader: api}
	const name = "ca-crl"

	read := func() (*corev1.ConfigMap, []byte, bool) {
		t.Helper()
		var main corev1.ConfigMap
		if err := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: name}, &main); err != nil {
			t.Fatal(err)
		}
		der, ok := revocationdata.CRLFromConfigMaps(&main, func(n string) (*corev1.ConfigMap, bool) {
			var part corev1.ConfigMap
			err := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: n}, &part)
			return &part, err == nil
		})
		return &main, der, ok
	}
	publish := func(der []byte) {
		t.Helper()
		var cm corev1.ConfigMap
		err := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: name}, &cm)
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		if err := p.publish(ctx, testNamespace, name, &cm, err == nil, der, map[string]string{revocationdata.AnnIssuer: "QuillIssuer/team-a/ca"}); err != nil {
			t.Fatal(err)
		}
	}

	// 55,000 entries: about 2 MB, three parts.
	large := testCRL(t, 55000, 1)
	if len(large) <= 2*configMapPayloadLimit {
		t.Fatalf("test CRL is %d bytes; it must need three parts", len(large))
	}
	publish(large)
	main, der, ok := read()
	if !ok || !bytes.Equal(der, large) {
		t.Fatalf("reassembled CRL: ok=%v, %d bytes, want the %d published", ok, len(der), len(large))
	}
	if main.Annotations[revocationdata.AnnCRLParts] != "3" || main.BinaryData[revocationdata.KeyDER] != nil || main.Data[revocationdata.KeyPEM] != "" {
		t.Fatalf("main ConfigMap: parts %q, der %d bytes, pem %d bytes; want 3 parts and no whole CRL",
			main.Annotations[revocationdata.AnnCRLParts], len(main.BinaryData[revocationdata.KeyDER]), len(main.Data[revocationdata.KeyPEM]))
	}
	for i := 1; i < 3; i++ {
		var part corev1.ConfigMap
		if err := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: fmt.Sprintf("%s-%d", name, i)}, &part); err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if size := len(part.BinaryData[revocationdata.KeyPart]); size > configMapPayloadLimit {
			t.Fatalf("part %d holds %d bytes, over the %d limit", i, size, configMapPayloadLimit)
		}
	}

	// A part from another CRL (a writer that stopped half-way): refused.
	var part corev1.ConfigMap
	if err := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: name + "-2"}, &part); err != nil {
		t.Fatal(err)
	}
	part.Annotations[revocationdata.AnnCRLSHA256] = "0000"
	if err := api.Update(ctx, &part); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := read(); ok {
		t.Fatal("a CRL was assembled from parts of two CRLs")
	}

	// Back under one object: whole in the main ConfigMap, parts removed.
	small := testCRL(t, 10, 2)
	publish(small)
	main, der, ok = read()
	if !ok || !bytes.Equal(der, small) || main.Annotations[revocationdata.AnnCRLParts] != "1" || main.Data[revocationdata.KeyPEM] == "" {
		t.Fatalf("small CRL: ok=%v, parts %q, pem %d bytes", ok, main.Annotations[revocationdata.AnnCRLParts], len(main.Data[revocationdata.KeyPEM]))
	}
	for i := 1; i < 3; i++ {
		err := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: fmt.Sprintf("%s-%d", name, i)}, &corev1.ConfigMap{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("part %d after the CRL shrank: %v, want NotFound", i, err)
		}
	}
}

// TestEnsureResponderRecordsLedgerAndAudit: a delegated OCSP responder
// certificate is signed with the CA key, so, like every certificate Quill
// signs, it is in the ledger (origin OCSPResponder, naming its Secret) and
// gets an audit=true issue line; a current responder is not signed again.
func TestEnsureResponderRecordsLedgerAndAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := newCA(t)
	a, err := issuance.LoadAuthority(ca.CertPEM, ca.KeyPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	api := newAPI(t)
	index := ledger.NewIndex()
	var lines []map[string]any
	logger := funcr.NewJSON(func(obj string) {
		var m map[string]any
		if err := json.Unmarshal([]byte(obj), &m); err != nil {
			t.Errorf("audit line is not JSON: %q", obj)
		}
		lines = append(lines, m)
	}, funcr.Options{})
	p := &crlPublisher{client: api, reader: api, index: index, journal: ledger.NewJournal(api, index, clocktesting.NewFakePassiveClock(testNow)),
		clock: clocktesting.NewFakePassiveClock(testNow), audit: audit.Logger{Log: logger}}
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: testNamespace, Name: "hsm"}

	if _, err := p.ensureResponder(ctx, testNamespace, k, a); err != nil {
		t.Fatalf("ensureResponder: %v", err)
	}
	var sec corev1.Secret
	if err := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: revocationdata.OCSPResponderSecretName("hsm")}, &sec); err != nil {
		t.Fatalf("responder Secret: %v", err)
	}
	cert := parseCert(t, sec.Data[corev1.TLSCertKey])

	entries := ledgerEntries(t, api, testNamespace)
	if len(entries) != 1 {
		t.Fatalf("%d ledger entries, want the responder's", len(entries))
	}
	e := entries[0]
	if e.Serial != ledger.SerialHex(cert.SerialNumber) || e.issuer != k || e.Origin == nil ||
		e.Origin.Kind != quillv1.OriginKindOCSPResponder || e.Origin.Name != revocationdata.OCSPResponderSecretName("hsm") ||
		e.Origin.Namespace != testNamespace {
		t.Errorf("ledger entry = %+v, want serial %s of %s with origin OCSPResponder %s/%s", e,
			ledger.SerialHex(cert.SerialNumber), k, testNamespace, revocationdata.OCSPResponderSecretName("hsm"))
	}
	if _, ok := index.Lookup(k, cert.SerialNumber); !ok {
		t.Error("the index does not know the responder certificate: OCSP would answer unknown for it")
	}
	if len(lines) != 1 {
		t.Fatalf("%d audit lines, want 1: %v", len(lines), lines)
	}
	l := lines[0]
	if l["audit"] != true || l["action"] != audit.ActionIssue || l["issuer"] != k.String() ||
		l["requestKind"] != quillv1.OriginKindOCSPResponder || l["serial"] != hex.EncodeToString(cert.SerialNumber.Bytes()) {
		t.Errorf("audit line = %v, want an audit=true issue line for the responder of %s", l, k)
	}

	if _, err := p.ensureResponder(ctx, testNamespace, k, a); err != nil {
		t.Fatalf("second ensureResponder: %v", err)
	}
	if again := ledgerEntries(t, api, testNamespace); len(again) != 1 || len(lines) != 1 {
		t.Errorf("a current responder was signed again: %d records, %d audit lines", len(again), len(lines))
	}
}

// TestCRLPublishLeavesOthersConfigMaps: every ConfigMap the CRL publisher
// writes or deletes is the issuer's. A part name that another object holds
// (a user's ConfigMap named like a part, another issuer's) stops the
// publication before anything is written, with a collision; a part an
// earlier Quill wrote for the same issuer is adopted; a stale part name
// that is not the issuer's is not deleted when the CRL shrinks.
func TestCRLPublishLeavesOthersConfigMaps(t *testing.T) {
	t.Parallel()
	const (
		name  = "ca-crl"
		owner = "QuillIssuer/team-a/ca"
	)
	part := func(opts ...func(*corev1.ConfigMap)) *corev1.ConfigMap {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name + "-1"},
			Data:       map[string]string{"app.conf": "keep me"},
		}
		for _, o := range opts {
			o(cm)
		}
		return cm
	}
	markedBy := func(who string) func(*corev1.ConfigMap) {
		return func(cm *corev1.ConfigMap) { owned.Mark(cm, who) }
	}
	legacyOf := func(who string) func(*corev1.ConfigMap) {
		return func(cm *corev1.ConfigMap) {
			cm.Labels = map[string]string{revocationdata.ConfigMapLabel: "true"}
			cm.Annotations = map[string]string{revocationdata.AnnIssuer: who}
		}
	}
	tests := []struct {
		name      string
		part      *corev1.ConfigMap
		collision bool
	}{
		{name: "users-configmap-named-like-a-part", part: part(), collision: true},
		{name: "users-configmap-with-the-crl-label-only", part: part(func(cm *corev1.ConfigMap) {
			cm.Labels = map[string]string{revocationdata.ConfigMapLabel: "true"}
		}), collision: true},
		{name: "another-issuers-part", part: part(markedBy("QuillIssuer/team-a/other")), collision: true},
		{name: "another-issuers-legacy-part", part: part(legacyOf("QuillIssuer/team-a/other")), collision: true},
		{name: "own-part", part: part(markedBy(owner))},
		{name: "own-legacy-part", part: part(legacyOf(owner))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			api := newAPI(t, tt.part)
			der := testCRL(t, 40, 1)
			p := &crlPublisher{client: api, reader: api, partSize: len(der)/2 + 1} // two parts
			err := p.publish(ctx, testNamespace, name, nil, false, der, map[string]string{revocationdata.AnnIssuer: owner})
			var got corev1.ConfigMap
			if gerr := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: name + "-1"}, &got); gerr != nil {
				t.Fatal(gerr)
			}
			if tt.collision {
				if !errors.Is(err, owned.ErrCollision) {
					t.Fatalf("publish = %v, want a collision", err)
				}
				if !maps.Equal(got.Data, tt.part.Data) || got.BinaryData != nil || !maps.Equal(got.Labels, tt.part.Labels) || !maps.Equal(got.Annotations, tt.part.Annotations) {
					t.Fatalf("the ConfigMap that is not the issuer's was written: %+v", got.ObjectMeta)
				}
				if err := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: name}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
					t.Errorf("main CRL ConfigMap: %v; want none written after a collision", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("publish: %v", err)
			}
			if !owned.Marked(&got, owner) || len(got.BinaryData[revocationdata.KeyPart]) == 0 {
				t.Fatalf("part %+v: want the issuer's mark and its part of the CRL", got.ObjectMeta)
			}
		})
	}
}

// TestCRLShrinkKeepsOthersStaleParts: when the CRL shrinks, the parts it no
// longer needs are deleted only when they are the issuer's.
func TestCRLShrinkKeepsOthersStaleParts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const (
		name  = "ca-crl"
		owner = "QuillIssuer/team-a/ca"
	)
	api := newAPI(t)
	large := testCRL(t, 60, 1)
	p := &crlPublisher{client: api, reader: api, partSize: len(large)/3 + 1} // three parts
	if err := p.publish(ctx, testNamespace, name, nil, false, large, map[string]string{revocationdata.AnnIssuer: owner}); err != nil {
		t.Fatal(err)
	}
	// Part 2 is replaced by someone else's ConfigMap between two CRLs.
	if err := api.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name + "-2"}}); err != nil {
		t.Fatal(err)
	}
	if err := api.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name + "-2"}, Data: map[string]string{"app": "keep"}}); err != nil {
		t.Fatal(err)
	}
	var main corev1.ConfigMap
	if err := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: name}, &main); err != nil {
		t.Fatal(err)
	}
	if err := p.publish(ctx, testNamespace, name, &main, true, testCRL(t, 1, 2), map[string]string{revocationdata.AnnIssuer: owner}); err != nil {
		t.Fatalf("publish of the small CRL: %v", err)
	}
	if err := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: name + "-1"}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
		t.Errorf("the issuer's stale part 1: %v, want deleted", err)
	}
	var kept corev1.ConfigMap
	if err := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: name + "-2"}, &kept); err != nil || kept.Data["app"] != "keep" {
		t.Errorf("someone else's ConfigMap under a stale part's name: %v %v, want it kept", err, kept.Data)
	}
}

// TestEnsureResponderLeavesOthersSecret: a Secret under the responder's
// name that is not the issuer's is a collision, found before a responder
// certificate is signed; one an earlier Quill wrote for the issuer is
// adopted.
func TestEnsureResponderLeavesOthersSecret(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	a, err := issuance.LoadAuthority(ca.CertPEM, ca.KeyPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: testNamespace, Name: "ca"}
	secretName := revocationdata.OCSPResponderSecretName(k.Name)
	tests := []struct {
		name      string
		ann       map[string]string
		mark      string
		collision bool
	}{
		{name: "users-secret", collision: true},
		{name: "another-issuers-secret", mark: "QuillIssuer/team-a/other", collision: true},
		{name: "another-issuers-legacy-secret", ann: map[string]string{revocationdata.AnnIssuer: "QuillIssuer/team-a/other"}, collision: true},
		{name: "own-legacy-secret", ann: map[string]string{revocationdata.AnnIssuer: k.String()}},
		{name: "own-secret", mark: k.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			sec := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: secretName, Annotations: maps.Clone(tt.ann)},
				Data:       map[string][]byte{"password": []byte("keep me")},
			}
			if tt.mark != "" {
				owned.Mark(sec, tt.mark)
			}
			api := newAPI(t, sec)
			ix := ledger.NewIndex()
			p := &crlPublisher{client: api, reader: api, index: ix, journal: ledger.NewJournal(api, ix, clocktesting.NewFakePassiveClock(testNow)),
				clock: clocktesting.NewFakePassiveClock(testNow)}
			_, err := p.ensureResponder(ctx, testNamespace, k, a)
			var got corev1.Secret
			if gerr := api.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: secretName}, &got); gerr != nil {
				t.Fatal(gerr)
			}
			records := ledgerEntries(t, api, "")
			if tt.collision {
				if !errors.Is(err, owned.ErrCollision) {
					t.Fatalf("ensureResponder = %v, want a collision", err)
				}
				if string(got.Data["password"]) != "keep me" || len(got.Data) != 1 {
					t.Errorf("the Secret that is not the issuer's was written: keys %v", slices.Collect(maps.Keys(got.Data)))
				}
				if len(records) != 0 {
					t.Errorf("%d responder certificates signed for a Secret Quill may not write", len(records))
				}
				return
			}
			if err != nil {
				t.Fatalf("ensureResponder: %v", err)
			}
			if !owned.Marked(&got, k.String()) || len(got.Data[corev1.TLSCertKey]) == 0 {
				t.Errorf("responder Secret %v: want the issuer's mark and the responder certificate", got.ObjectMeta)
			}
		})
	}
}

// TestReportTakenLooksAgainWithinAMinute: a collision is told in
// status.revocation.message and looked at again within a minute, never
// sooner than a refresh that is still ahead and never every second when
// the refresh is already due.
func TestReportTakenLooksAgainWithinAMinute(t *testing.T) {
	t.Parallel()
	taken := &owned.CollisionError{Kind: "ConfigMap", Namespace: testNamespace, Name: "ca-crl-1", Owner: "QuillIssuer/team-a/ca"}
	tests := []struct {
		name      string
		refreshAt time.Time
		want      time.Time
	}{
		{name: "no-crl-yet", want: testNow.Add(crlRetryWhenNameTaken)},
		{name: "refresh-overdue", refreshAt: testNow.Add(-time.Hour), want: testNow.Add(crlRetryWhenNameTaken)},
		{name: "refresh-later", refreshAt: testNow.Add(time.Hour), want: testNow.Add(crlRetryWhenNameTaken)},
		{name: "refresh-sooner", refreshAt: testNow.Add(10 * time.Second), want: testNow.Add(10 * time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := &crlPublisher{}
			run := &crlRun{now: testNow, refreshAt: tt.refreshAt, taken: taken, message: "no new CRL is signed: x"}
			p.reportTaken(&quillv1.QuillIssuer{}, run)
			if !run.refreshAt.Equal(tt.want) {
				t.Errorf("refreshAt = %s, want %s", run.refreshAt, tt.want)
			}
			if !strings.Contains(run.message, "no new CRL is signed: x; "+quillv1.ReasonNameCollision+": ") || !strings.Contains(run.message, "ca-crl-1") {
				t.Errorf("message %q", run.message)
			}
		})
	}
}

// issuerEntry is a ledger entry with the issuer whose segment holds it.
type issuerEntry struct {
	ledger.Entry
	issuer quillv1.IssuerID
}

// ledgerEntries lists the issued entries of api's ledger segments in
// namespace (every namespace when empty).
func ledgerEntries(t *testing.T, api client.Reader, namespace string) []issuerEntry {
	t.Helper()
	var list quillv1.LedgerSegmentList
	if err := api.List(context.Background(), &list, client.InNamespace(namespace)); err != nil {
		t.Fatal(err)
	}
	var out []issuerEntry
	for i := range list.Items {
		seg := &list.Items[i]
		if err := ledger.SegmentEntries(seg, func(e *ledger.Entry) error {
			if !e.IsRevocationLine() {
				out = append(out, issuerEntry{Entry: *e, issuer: seg.Spec.IssuerRef.ID()})
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestCRLAwaitingLedgerSkipsBatchDelay: an issuer whose reconcile found
// the ledger unread gets its CRL as soon as the index has read it, not a
// batch delay later; other issuers keep their batch delay.
func TestCRLAwaitingLedgerSkipsBatchDelay(t *testing.T) {
	t.Parallel()
	iss := &quillv1.QuillClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "root"}}
	api := newAPI(t, iss)
	p := &crlPublisher{client: api, reader: api, index: ledger.NewIndex(), delays: map[quillv1.IssuerID]time.Duration{}}
	r := &crlReconciler{p: p, kind: &quillv1.QuillClusterIssuer{}}
	k := iss.ID()
	if d := p.batchDelay(k); d != DefaultCRLBatchDelay {
		t.Fatalf("batch delay before any reconcile %s; want %s", d, DefaultCRLBatchDelay)
	}
	res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: k.NamespacedName()})
	if err != nil || res.RequeueAfter == 0 {
		t.Fatalf("Reconcile before the ledger is read = %+v, %v; want a requeue", res, err)
	}
	if d := p.batchDelay(k); d != 0 {
		t.Errorf("batch delay while awaiting the ledger %s; want 0", d)
	}
	other := quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "other"}
	if d := p.batchDelay(other); d != DefaultCRLBatchDelay {
		t.Errorf("another issuer's batch delay %s; want %s", d, DefaultCRLBatchDelay)
	}
}
