package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
)

var (
	shopCA  = quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "shop", Name: "shop-ca"}
	ledgerT = time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
)

// ledgerCert signs a real certificate with the given serial and returns
// its ledger entry (DER kept, as a journal keeps it), issued for the
// cert-manager Certificate shop/<certificate> at ledgerT+offset.
func ledgerCert(t *testing.T, serial int64, certificate string, offset time.Duration) ledger.Entry {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	at := ledgerT.Add(offset)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: certificate + ".shop.svc"},
		DNSNames: []string{certificate + ".shop.svc"}, NotBefore: at, NotAfter: at.Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ledger.EntryOf(cert, at, ledger.Origin{Kind: quillv1.OriginKindCertificateRequest, Namespace: "shop",
		Name: certificate + "-" + big.NewInt(serial).String(), UID: "uid", Certificate: certificate, Requester: "system:serviceaccount:cert-manager:cert-manager"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func sealedCopy(e ledger.Entry) ledger.Entry {
	e.Certificate = nil
	return e
}

func ledgerSegment(t *testing.T, stage string, entries ...ledger.Entry) *quillv1.LedgerSegment {
	t.Helper()
	seg, err := ledger.NewSegment(shopCA, "shop", stage, ledgerT, entries)
	if err != nil {
		t.Fatal(err)
	}
	return seg
}

// legacyRecord is the IssuedCertificate the controller wrote for e before
// segments.
func legacyRecord(t *testing.T, e ledger.Entry) *quillv1.IssuedCertificate {
	t.Helper()
	cert, err := x509.ParseCertificate(e.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	o := e.Origin
	ic, err := ledger.NewEntry(shopCA, "shop", cert, time.UnixMicro(e.IssuedAt), ledger.Origin{Kind: o.Kind, Namespace: o.Namespace,
		Name: o.Name, UID: "uid", Certificate: o.Certificate, Requester: e.Requester})
	if err != nil {
		t.Fatal(err)
	}
	return ic
}

// ledgerFixture is one issuer's ledger in every place an entry can be:
//
//	0xa1 checkout, sealed (no DER), revoked by a line in a journal
//	0xa2 checkout, in a journal with its DER
//	0xa3 checkout, a legacy IssuedCertificate not migrated yet
//	0xa4 checkout, archived only
//	0xb1 cart, sealed, and also in a journal not deleted yet
type ledgerFixture struct {
	objs    []client.Object
	archive string
	certs   map[int64]ledger.Entry
}

func newLedgerFixture(t *testing.T) *ledgerFixture {
	t.Helper()
	f := &ledgerFixture{archive: t.TempDir(), certs: map[int64]ledger.Entry{}}
	for serial, spec := range map[int64]struct {
		certificate string
		offset      time.Duration
	}{0xa1: {"checkout", 2 * time.Hour}, 0xa2: {"checkout", 3 * time.Hour}, 0xa3: {"checkout", time.Hour}, 0xa4: {"checkout", 0}, 0xb1: {"cart", 0}} {
		f.certs[serial] = ledgerCert(t, serial, spec.certificate, spec.offset)
	}
	revoke := ledger.Entry{Serial: "a1", NotAfter: f.certs[0xa1].NotAfter,
		Revocation: &ledger.EntryRevocation{Reason: quillv1.ReasonKeyCompromise, At: ledgerT.Add(4 * time.Hour).Unix(), By: "QuillRevocation shop/leak"}}
	f.objs = []client.Object{
		&quillv1.QuillIssuer{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "shop-ca"}},
		ledgerSegment(t, quillv1.LedgerStageSealed, sealedCopy(f.certs[0xa1]), sealedCopy(f.certs[0xb1])),
		ledgerSegment(t, quillv1.LedgerStageJournal, f.certs[0xa2], revoke),
		ledgerSegment(t, quillv1.LedgerStageJournal, f.certs[0xb1]),
		legacyRecord(t, f.certs[0xa3]),
	}
	if err := (&ledger.Archive{Dir: f.archive}).Append(shopCA, "qi.shop-ca.s0", []ledger.Entry{sealedCopy(f.certs[0xa4])}); err != nil {
		t.Fatal(err)
	}
	return f
}

// runLedger runs quillctl in this process against a fake API server
// holding objs.
func runLedger(t *testing.T, objs []client.Object, args ...string) (string, string, error) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := quillv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	// The fake client writes resourceVersions into the objects it is
	// given, and parallel tests share the fixture.
	own := make([]client.Object, len(objs))
	for i, o := range objs {
		own[i] = o.DeepCopyObject().(client.Object)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(own...).Build()
	var stdout, stderr bytes.Buffer
	a := &app{stdin: os.Stdin, stdout: &stdout, stderr: &stderr, now: time.Now, getenv: os.LookupEnv,
		connect: func(string, string) (clientcmd.ClientConfig, client.Client, error) { return nil, c, nil }}
	cmd := a.command()
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return stdout.String(), stderr.String(), err
}

var shopFlags = []string{"--kind", "QuillIssuer", "--namespace", "shop", "--issuer", "shop-ca"}

func TestLedgerGet(t *testing.T) {
	t.Parallel()
	f := newLedgerFixture(t)
	pemOf := func(serial int64) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.certs[serial].Certificate}))
	}
	for _, tt := range []struct {
		name    string
		args    []string
		want    []string // lines (or parts of them) the output must hold
		notWant []string
		err     error
	}{
		{name: "sealed-and-revoked-in-a-journal", args: []string{"a1"}, want: []string{
			"Serial:       a1", "Revoked:      keyCompromise at 2026-05-01T12:00:00Z by QuillRevocation shop/leak",
			"Recorded in:  LedgerSegment shop/qi.shop-ca.s", "(Sealed)", "(Journal), revocation only",
			"Certificate:  shop/checkout", "PEM:          no longer kept"}},
		{name: "journal-keeps-the-pem", args: []string{"0xA2"}, want: []string{"Serial:       a2", "Revoked:      no", "(Journal)", pemOf(0xa2)},
			notWant: []string{"no longer kept"}},
		{name: "colons-and-leading-zeros", args: []string{"00:a2"}, want: []string{"Serial:       a2"}},
		{name: "legacy-record", args: []string{"a3"}, want: []string{"IssuedCertificate shop/qi.shop-ca.", "(legacy, not migrated yet)", pemOf(0xa3)}},
		{name: "archived", args: []string{"a4", "--archive-dir", f.archive}, want: []string{"Recorded in:  archive " + f.archive, "no longer kept"}},
		{name: "archived-without-the-archive", args: []string{"a4"}, err: errNotInLedger},
		{name: "in-two-segments", args: []string{"b1"}, want: []string{"(Sealed)", "(Journal)", pemOf(0xb1)}},
		{name: "unknown-serial", args: []string{"ff"}, err: errNotInLedger},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, _, err := runLedger(t, f.objs, append(append([]string{"ledger", "get"}, tt.args...), shopFlags...)...)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("error %v; want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		t.Parallel()
		out, _, err := runLedger(t, f.objs, append([]string{"ledger", "get", "a1", "--format", "json"}, shopFlags...)...)
		if err != nil {
			t.Fatal(err)
		}
		var v entryView
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if v.Serial != "a1" || v.Issuer != "QuillIssuer/shop/shop-ca" || v.Revocation == nil || v.Revocation.Reason != "keyCompromise" ||
			len(v.Places) != 2 || v.Certificate != "" || v.Fingerprint != f.certs[0xa1].Fingerprint || v.Origin.Certificate != "checkout" {
			t.Errorf("JSON %+v", v)
		}
	})
}

func TestLedgerHistory(t *testing.T) {
	t.Parallel()
	f := newLedgerFixture(t)
	out, _, err := runLedger(t, f.objs, append([]string{"ledger", "history", "--certificate", "shop/checkout", "--archive-dir", f.archive}, shopFlags...)...)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "SERIAL") {
		t.Fatalf("want a header and 4 certificates:\n%s", out)
	}
	// Oldest first, wherever each lives; the revocation merged in.
	for i, want := range []string{"a4 ", "a3 ", "a1 ", "a2 "} {
		if !strings.HasPrefix(lines[i+1], want) {
			t.Errorf("line %d %q; want serial %s", i+1, lines[i+1], want)
		}
	}
	for i, want := range []string{"archive", "legacy", "keyCompromise 2026-05-01T12:00:00Z", "Journal qi.shop-ca.j"} {
		if !strings.Contains(lines[i+1], want) {
			t.Errorf("line %d %q lacks %q", i+1, lines[i+1], want)
		}
	}

	out, _, err = runLedger(t, f.objs, append([]string{"ledger", "history", "--certificate", "shop/cart", "--format", "json"}, shopFlags...)...)
	if err != nil {
		t.Fatal(err)
	}
	var views []entryView
	if err := json.Unmarshal([]byte(out), &views); err != nil || len(views) != 1 || views[0].Serial != "b1" || len(views[0].Places) != 2 {
		t.Errorf("cart history %v: %s", err, out)
	}

	if _, _, err := runLedger(t, f.objs, append([]string{"ledger", "history", "--certificate", "shop/gone"}, shopFlags...)...); !errors.Is(err, errNotInLedger) {
		t.Errorf("a Certificate never issued for: %v", err)
	}
}

func TestLedgerList(t *testing.T) {
	t.Parallel()
	f := newLedgerFixture(t)
	out, _, err := runLedger(t, f.objs, append([]string{"ledger", "list", "--archive-dir", f.archive}, shopFlags...)...)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "SEGMENT") || !strings.Contains(lines[1], " Journal ") || !strings.Contains(lines[3], " Sealed ") {
		t.Errorf("want the journals first, then the sealed segment:\n%s", out)
	}
	for _, want := range []string{
		"QuillIssuer/shop/shop-ca in namespace shop: 3 segments, 4 entries, 1 revocations, 2 certificates kept",
		"legacy IssuedCertificates not migrated yet: 1",
		"archive " + f.archive + ": 1 entries, 0 revocations",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	out, _, err = runLedger(t, f.objs, append([]string{"ledger", "list", "--format", "json"}, shopFlags...)...)
	if err != nil {
		t.Fatal(err)
	}
	var sum ledgerSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil || len(sum.Segments) != 3 || sum.Totals.Entries != 4 || sum.LegacyRecords != 1 || sum.Archive != nil {
		t.Errorf("JSON %v %+v", err, sum)
	}
}

// TestLedgerRefusals: bad arguments fail before the kubeconfig is read,
// with one line.
func TestLedgerRefusals(t *testing.T) {
	t.Parallel()
	noCluster := []string{"--kubeconfig", "absent-kubeconfig", "--issuer", "ca"}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{name: "get-no-serial", args: []string{"get"}, want: "accepts 1 arg(s)"},
		{name: "get-bad-serial", args: []string{"get", "xyz"}, want: `invalid ledger query: serial "xyz": give it in hexadecimal`},
		{name: "get-bad-format", args: []string{"get", "a1", "--format", "yaml"}, want: `--format "yaml": use text or json`},
		{name: "get-missing-archive", args: []string{"get", "a1", "--archive-dir", "no-such-dir"}, want: "--archive-dir: stat no-such-dir"},
		{name: "history-no-certificate", args: []string{"history"}, want: `"certificate" not set`},
		{name: "history-no-namespace", args: []string{"history", "--certificate", "checkout"}, want: `--certificate "checkout": give NAMESPACE/NAME`},
		{name: "list-bad-kind", args: []string{"list", "--kind", "Issuer"}, want: `--kind "Issuer": use QuillIssuer or QuillClusterIssuer`},
		{name: "list-no-kubeconfig", args: []string{"list"}, want: "reading the kubeconfig"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			r := run(t, dir, nil, append(append([]string{"ledger"}, tt.args...), noCluster...)...)
			if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, tt.want) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 1, no output and one line containing %q", r.code, r.stdout, r.stderr, tt.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("a refused command left %d files", len(entries))
			}
		})
	}
}
