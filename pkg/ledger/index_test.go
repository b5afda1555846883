package ledger

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

var (
	issuerA = quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-a", Name: "ca"}
	issuerB = quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "ca"}
	t0      = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
)

// entry is a ledger object as the API server would hand it to the index.
func entry(k quillv1.IssuerID, serial int64, uid, cert string, issued time.Time, notAfter time.Time) *quillv1.IssuedCertificate {
	s := big.NewInt(serial)
	return &quillv1.IssuedCertificate{
		ObjectMeta: metav1.ObjectMeta{Name: EntryName(k, s), Namespace: "team-a"},
		Spec: quillv1.IssuedCertificateSpec{
			IssuerRef: k.Ref(), SerialNumber: SerialHex(s), IssuedAt: metav1.NewMicroTime(issued),
			NotBefore: metav1.NewTime(issued), NotAfter: metav1.NewTime(notAfter), KeyAlgorithm: "ECDSA-P256",
			Origin: quillv1.LedgerOrigin{Kind: "CertificateRequest", Namespace: "team-a", Name: uid, UID: uid, Certificate: cert},
		},
	}
}

func revokedEntry(e *quillv1.IssuedCertificate, reason quillv1.RevocationReason, at time.Time) *quillv1.IssuedCertificate {
	e = e.DeepCopy()
	e.Status.Revocation = &quillv1.RevocationRecord{Reason: reason, RevokedAt: metav1.NewTime(at), By: "test"}
	return e
}

func serials(rs []Record) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Serial.String())
	}
	return strings.Join(out, ",")
}

func TestIndexLookups(t *testing.T) {
	ix := NewIndex()
	if ix.Synced() {
		t.Fatal("a new index claims to hold the whole ledger")
	}
	var changes []Change
	ix.Subscribe(func(c Change) { changes = append(changes, c) })
	year := t0.Add(365 * 24 * time.Hour)
	if err := ix.Replace([]any{
		entry(issuerA, 1, "uid-1", "app", t0, year),
		entry(issuerA, 2, "uid-2", "app", t0.Add(time.Microsecond), year), // same second, later
		entry(issuerB, 1, "uid-3", "", t0, year),                          // same serial, other issuer
	}, "1"); err != nil {
		t.Fatal(err)
	}
	if !ix.Synced() || len(changes) != 2 {
		t.Fatalf("after Replace: synced=%v, %d changes (want one per issuer)", ix.Synced(), len(changes))
	}
	if r, ok := ix.ByRequest(issuerA, "uid-2"); !ok || r.Serial.Int64() != 2 {
		t.Errorf("ByRequest(uid-2) = %v, %v", r.Serial, ok)
	}
	if _, ok := ix.ByRequest(issuerB, "uid-2"); ok {
		t.Error("ByRequest found another issuer's request")
	}
	if r, ok := ix.Lookup(issuerB, big.NewInt(1)); !ok || r.RequestUID != "uid-3" {
		t.Errorf("Lookup(issuerB, 1) = %+v, %v", r, ok)
	}
	if _, ok := ix.Lookup(issuerA, big.NewInt(3)); ok {
		t.Error("Lookup found a serial never issued")
	}
	if got := serials(ix.ForCertificate(issuerA, "team-a", "app")); got != "1,2" {
		t.Errorf("ForCertificate = %s, want 1,2 (issue order)", got)
	}
	if ix.Count(issuerA) != 2 || ix.Count(issuerB) != 1 || len(ix.Issuers()) != 2 {
		t.Errorf("counts: A=%d B=%d issuers=%d", ix.Count(issuerA), ix.Count(issuerB), len(ix.Issuers()))
	}
}

func TestIndexRevocation(t *testing.T) {
	ix := NewIndex()
	var changes []Change
	ix.Subscribe(func(c Change) { changes = append(changes, c) })
	year := t0.Add(365 * 24 * time.Hour)
	short := t0.Add(time.Hour)
	live, expiring := entry(issuerA, 10, "u10", "", t0, year), entry(issuerA, 11, "u11", "", t0, short)
	for _, e := range []*quillv1.IssuedCertificate{live, expiring} {
		if err := ix.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if changes[0].RevocationChanged || changes[1].RevocationChanged {
		t.Error("a new unrevoked record was reported as a CRL change")
	}
	changes = nil
	if err := ix.Update(revokedEntry(live, quillv1.ReasonKeyCompromise, t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if err := ix.Update(revokedEntry(expiring, quillv1.ReasonSuperseded, t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 || !changes[0].RevocationChanged || changes[0].Serial.Int64() != 10 {
		t.Fatalf("revocations reported as %+v", changes)
	}
	// The same state again changes nothing the CRL shows.
	changes = nil
	_ = ix.Update(revokedEntry(live, quillv1.ReasonKeyCompromise, t0.Add(time.Minute)))
	if changes[0].RevocationChanged {
		t.Error("an unchanged revocation was reported as a CRL change")
	}
	if got := serials(ix.Revoked(issuerA, t0.Add(2*time.Minute))); !(got == "10,11" || got == "11,10") {
		t.Errorf("Revoked before expiry = %s", got)
	}
	if got := serials(ix.Revoked(issuerA, short)); got != "10" {
		t.Errorf("Revoked after one expired = %s, want 10", got)
	}
	r, _ := ix.Lookup(issuerA, big.NewInt(10))
	if !r.Revoked || r.Reason != 1 || !r.RevokedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("revoked record %+v", r)
	}
	// A deleted record leaves every view.
	changes = nil
	if err := ix.Delete(cache.DeletedFinalStateUnknown{Key: "home/x", Obj: revokedEntry(live, quillv1.ReasonKeyCompromise, t0)}); err != nil {
		t.Fatal(err)
	}
	if _, ok := ix.Lookup(issuerA, big.NewInt(10)); ok {
		t.Error("deleted record still found")
	}
	if _, ok := ix.ByRequest(issuerA, "u10"); ok {
		t.Error("deleted record still found by request")
	}
	if len(changes) != 1 || !changes[0].RevocationChanged {
		t.Errorf("deleting a revoked record reported %+v", changes)
	}
}

func TestIndexPutBeforeWatch(t *testing.T) {
	ix := NewIndex()
	_ = ix.Replace(nil, "1")
	ix.Put(Record{Segment: "n", Namespace: "team-a", Issuer: issuerA, Serial: big.NewInt(7), RequestUID: types.UID("u7"), IssuedAt: t0, NotAfter: t0.Add(time.Hour)})
	if r, ok := ix.ByRequest(issuerA, "u7"); !ok || r.Serial.Int64() != 7 {
		t.Fatalf("a record put locally is not found: %+v %v", r, ok)
	}
	// The watch then delivers the same record: still one.
	_ = ix.Add(entry(issuerA, 7, "u7", "", t0, t0.Add(time.Hour)))
	if ix.Count(issuerA) != 1 {
		t.Errorf("count %d after the watch delivered a record put locally", ix.Count(issuerA))
	}
}

// TestIndexCreatedSurvivesStaleRelist: a record this process created is
// kept by a relist whose list predates its creation, dropped by one that
// postdates it without it (someone deleted it), and no longer kept once
// the watch delivered it.
func TestIndexCreatedSurvivesStaleRelist(t *testing.T) {
	created := func(serial int64, uid, resourceVersion string) *quillv1.IssuedCertificate {
		e := entry(issuerA, serial, uid, "", t0, t0.Add(time.Hour))
		e.ResourceVersion = resourceVersion
		return e
	}
	found := func(ix *Index, uid string) bool {
		_, ok := ix.ByRequest(issuerA, types.UID(uid))
		return ok
	}
	ix := NewIndex()
	_ = ix.Replace(nil, "5")
	ix.PutCreated(created(1, "u1", "10"))
	other := entry(issuerA, 2, "u2", "", t0, t0.Add(time.Hour))

	// A list as of revision 7 has not seen the record created at 10.
	_ = ix.Replace([]any{other}, "7")
	if !found(ix, "u1") || !found(ix, "u2") {
		t.Fatalf("after a relist older than the creation: u1 %v, u2 %v; want both", found(ix, "u1"), found(ix, "u2"))
	}
	// A list as of revision 12 without it: it was deleted meanwhile.
	_ = ix.Replace([]any{other}, "12")
	if found(ix, "u1") {
		t.Fatal("a record deleted after its creation survived a newer relist")
	}

	// Delivered by the watch, the record is the list's business again.
	ix.PutCreated(created(3, "u3", "20"))
	_ = ix.Add(entry(issuerA, 3, "u3", "", t0, t0.Add(time.Hour)))
	_ = ix.Replace(nil, "15")
	if found(ix, "u3") {
		t.Fatal("a record the watch delivered was kept against a list without it")
	}
	// A resourceVersion that is not a number: the list wins.
	ix.PutCreated(created(4, "u4", "opaque"))
	_ = ix.Replace(nil, "15")
	if found(ix, "u4") {
		t.Fatal("a record with a non-numeric resourceVersion was kept against a list without it")
	}
	if n := len(ix.created); n != 0 {
		t.Fatalf("%d created records still waiting, want none", n)
	}
}

func TestIndexRejectsOtherObjects(t *testing.T) {
	ix := NewIndex()
	if err := ix.Add("not a ledger record"); err == nil {
		t.Error("Add accepted a string")
	}
	bad := entry(issuerA, 1, "u", "", t0, t0)
	bad.Spec.SerialNumber = "zz"
	if err := ix.Add(bad); err != nil || ix.Count(issuerA) != 0 {
		t.Errorf("a record with an unparsable serial: err=%v count=%d", err, ix.Count(issuerA))
	}
}

func TestEntryName(t *testing.T) {
	s := big.NewInt(0xabc)
	if got := EntryName(issuerA, s); got != "qi.ca.0000000000000000000000000000000000000abc" {
		t.Errorf("EntryName = %s", got)
	}
	long := quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: strings.Repeat("x", 250)}
	got := EntryName(long, s)
	if len(got) > 253 || !strings.HasPrefix(got, "qci.") || !strings.HasSuffix(got, "abc") {
		t.Errorf("EntryName for a long issuer name = %s (%d chars)", got, len(got))
	}
	if EntryName(long, s) != got {
		t.Error("EntryName is not deterministic")
	}
}

func TestNewEntry(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0x1f), Subject: pkix.Name{CommonName: "leaf"}, DNSNames: []string{"a.test"},
		NotBefore: t0, NotAfter: t0.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	e, err := NewEntry(issuerB, "quill-system", cert, t0, Origin{Kind: "CertificateRequest", Namespace: "team-a", Name: "r", UID: "u", Certificate: "app", Requester: "alice", Template: "server-auth"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Name != EntryName(issuerB, cert.SerialNumber) || e.Namespace != "quill-system" || e.Spec.SerialNumber != "1f" ||
		e.Spec.KeyAlgorithm != "ECDSA-P256" || e.Spec.SignatureAlgorithm != "ECDSA-SHA256" || e.Spec.Requester != "alice" ||
		e.Spec.Template != "server-auth" || e.Labels[LabelIssuerName] != "ca" || len(e.Spec.SHA256Fingerprint) != 64 {
		t.Errorf("entry %+v", e)
	}
	r, ok := recordOf(e)
	if !ok || r.Issuer != issuerB || r.Certificate != "app" || r.OriginNamespace != "team-a" || !r.IssuedAt.Equal(t0) {
		t.Errorf("record %+v", r)
	}
}

// BenchmarkIndex100k measures the index at the ledger's design size: the
// memory one issuer's 100k records take, and a lookup.
func BenchmarkIndex100k(b *testing.B) {
	const n = 100_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ix := NewIndex()
	list := make([]any, 0, n)
	for i := range n {
		list = append(list, entry(issuerA, int64(i)+1<<40, fmt.Sprintf("uid-%d", i), fmt.Sprintf("cert-%d", i%30000), t0, t0.Add(time.Hour)))
	}
	_ = ix.Replace(list, "1")
	list = nil
	runtime.GC()
	runtime.ReadMemStats(&after)
	perRecord := float64(after.HeapAlloc-before.HeapAlloc) / n
	serial := big.NewInt(5000 + 1<<40)
	b.ResetTimer()
	for b.Loop() {
		if _, ok := ix.Lookup(issuerA, serial); !ok {
			b.Fatal("not found")
		}
	}
	b.ReportMetric(perRecord, "heap-bytes/record")
	runtime.KeepAlive(ix)
}

// TestNewEntryRecordsEverySubjectAttribute checks that the ledger records
// the subject as signed: pkix.Name keeps only the last of two common
// names, and a name hidden in the first must still show.
func TestNewEntryRecordsEverySubjectAttribute(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cn := asn1.ObjectIdentifier{2, 5, 4, 3}
	raw, err := asn1.Marshal(pkix.RDNSequence{
		{{Type: cn, Value: "admin"}},
		{{Type: cn, Value: "team-a-app"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0x2f), RawSubject: raw, NotBefore: t0, NotAfter: t0.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	e, err := NewEntry(issuerB, "quill-system", cert, t0, Origin{Kind: "CertificateRequest", Namespace: "team-a", Name: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.Spec.Subject, "CN=admin") || !strings.Contains(e.Spec.Subject, "CN=team-a-app") {
		t.Errorf("ledger subject = %q, want both common names", e.Spec.Subject)
	}
}

// upnSAN is a subjectAltName with one DNS name and one UPN, encoded as
// cert-manager encodes otherNames.
func upnSAN(t *testing.T, dnsName, upn string) pkix.Extension {
	t.Helper()
	oid, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3})
	value, _ := asn1.MarshalWithParams(upn, "utf8")
	wrapped, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: value})
	der, err := asn1.Marshal([]asn1.RawValue{
		{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte(dnsName)},
		{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, wrapped...)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: der}
}

// TestNewEntryRecordsOtherNames checks that the ledger records the
// otherNames crypto/x509 does not parse, beside the names it does.
func TestNewEntryRecordsOtherNames(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0x30), Subject: pkix.Name{CommonName: "alice"}, NotBefore: t0, NotAfter: t0.Add(time.Hour),
		ExtraExtensions: []pkix.Extension{upnSAN(t, "alice.team-a.svc", "alice@team-a.example.com")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	e, err := NewEntry(issuerB, "quill-system", cert, t0, Origin{Kind: "CertificateRequest", Namespace: "team-a", Name: "r"})
	if err != nil {
		t.Fatal(err)
	}
	want := []quillv1.LedgerOtherName{{TypeID: "1.3.6.1.4.1.311.20.2.3", Value: "alice@team-a.example.com"}}
	if !slices.Equal(e.Spec.OtherNames, want) || !slices.Equal(e.Spec.DNSNames, []string{"alice.team-a.svc"}) {
		t.Errorf("ledger names: otherNames %v, DNS %v; want %v and the DNS name", e.Spec.OtherNames, e.Spec.DNSNames, want)
	}
}
