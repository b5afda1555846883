package auditreport

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
)

var (
	root   = quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "root"}
	t0     = time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
	scheme = func() *runtime.Scheme {
		s := runtime.NewScheme()
		if err := quillv1.AddToScheme(s); err != nil {
			panic(err)
		}
		return s
	}()
)

// entry builds a ledger entry of a certificate issued at t0+offset.
func entry(serial int64, offset time.Duration, opts ...func(*ledger.Entry)) *ledger.Entry {
	e := &ledger.Entry{
		Serial: ledger.SerialHex(big.NewInt(serial)), Fingerprint: fmt.Sprintf("%064x", serial), Subject: "CN=web,O=Example, Inc.",
		DNSNames: []string{"web.team-a.svc"}, IPAddresses: []string{"10.0.0.1"}, URIs: []string{"spiffe://cluster.local/ns/team-a/sa/web"},
		EmailAddresses: []string{"ops@example.test"},
		IssuedAt:       t0.Add(offset).UnixMicro(), NotBefore: t0.Add(offset).Unix(),
		NotAfter: t0.Add(offset + 90*24*time.Hour).Unix(), Requester: "system:serviceaccount:cert-manager:cert-manager",
		KeyAlgorithm: "ECDSA-P256", SignatureAlgorithm: "ECDSA-SHA256",
		Template: "server-auth",
		Origin:   &ledger.EntryOrigin{Kind: "CertificateRequest", Namespace: "team-a", Name: "web-1", UID: "u", Certificate: "web"},
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

func revoked(at time.Time) func(*ledger.Entry) {
	return func(e *ledger.Entry) {
		e.Revocation = &ledger.EntryRevocation{Reason: "keyCompromise", At: at.Unix(), By: "QuillRevocation team-a/leak"}
	}
}

// revocationLine is the line a journal writes when it revokes serial.
func revocationLine(serial int64, at time.Time, reason quillv1.RevocationReason) *ledger.Entry {
	return &ledger.Entry{Serial: ledger.SerialHex(big.NewInt(serial)), NotAfter: at.Add(90 * 24 * time.Hour).Unix(),
		Revocation: &ledger.EntryRevocation{Reason: reason, At: at.Unix(), By: "QuillRevocation team-a/" + string(reason)}}
}

// segment builds issuer k's LedgerSegment at stage holding entries.
func segment(t testing.TB, k quillv1.IssuerID, home, stage string, entries ...*ledger.Entry) *quillv1.LedgerSegment {
	t.Helper()
	es := make([]ledger.Entry, len(entries))
	for i, e := range entries {
		es[i] = *e
	}
	seg, err := ledger.NewSegment(k, home, stage, t0, es)
	if err != nil {
		t.Fatal(err)
	}
	return seg
}

// legacy builds the IssuedCertificate, the ledger record before segments,
// saying what e says.
func legacy(k quillv1.IssuerID, home string, e *ledger.Entry) *quillv1.IssuedCertificate {
	serial, _ := e.SerialInt()
	ic := &quillv1.IssuedCertificate{
		ObjectMeta: metav1.ObjectMeta{Namespace: home, Name: ledger.EntryName(k, serial),
			Labels: map[string]string{ledger.LabelIssuerKind: k.Kind, ledger.LabelIssuerName: k.Name}},
		Spec: quillv1.IssuedCertificateSpec{
			IssuerRef: k.Ref(), SerialNumber: e.Serial, Subject: e.Subject, SHA256Fingerprint: e.Fingerprint,
			DNSNames: e.DNSNames, IPAddresses: e.IPAddresses, URIs: e.URIs, EmailAddresses: e.EmailAddresses,
			IssuedAt: metav1.NewMicroTime(time.UnixMicro(e.IssuedAt)), NotBefore: metav1.NewTime(time.Unix(e.NotBefore, 0)),
			NotAfter: metav1.NewTime(time.Unix(e.NotAfter, 0)), Requester: e.Requester, Template: e.Template,
			KeyAlgorithm: e.KeyAlgorithm, SignatureAlgorithm: e.SignatureAlgorithm,
			Origin: quillv1.LedgerOrigin{Kind: e.Origin.Kind, Namespace: e.Origin.Namespace, Name: e.Origin.Name, UID: e.Origin.UID, Certificate: e.Origin.Certificate},
		},
	}
	for _, o := range e.OtherNames {
		ic.Spec.OtherNames = append(ic.Spec.OtherNames, quillv1.LedgerOtherName{TypeID: o.TypeID, Value: o.Value})
	}
	if r := e.Revocation; r != nil {
		ic.Status.Revocation = &quillv1.RevocationRecord{Reason: r.Reason, RevokedAt: metav1.NewTime(time.Unix(r.At, 0)), By: r.By}
	}
	return ic
}

func newClient(objs ...client.Object) client.WithWatch {
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(copies(objs)...).WithStatusSubresource(&quillv1.IssuedCertificate{}).Build()
}

// copies deep-copies objs: the fake client writes resourceVersions into
// the objects it is given, and parallel tests share fixtures.
func copies(objs []client.Object) []client.Object {
	out := make([]client.Object, len(objs))
	for i, o := range objs {
		out[i] = o.DeepCopyObject().(client.Object)
	}
	return out
}

// pager makes the fake client page its lists as the API server does
// (the fake returns everything at once): at most Limit items, and a
// continue token for the rest. lists counts the requests by kind, and
// maxLimit keeps the largest page size asked for.
type pager struct {
	mu       sync.Mutex
	lists    map[string]int
	maxLimit map[string]int64
}

func (p *pager) funcs() interceptor.Funcs {
	return interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		var lo client.ListOptions
		lo.ApplyOptions(opts)
		if err := c.List(ctx, list, opts...); err != nil {
			return err
		}
		kind := fmt.Sprintf("%T", list)
		p.mu.Lock()
		if p.lists == nil {
			p.lists, p.maxLimit = map[string]int{}, map[string]int64{}
		}
		p.lists[kind]++
		p.maxLimit[kind] = max(p.maxLimit[kind], lo.Limit)
		p.mu.Unlock()
		items, err := meta.ExtractList(list)
		if err != nil {
			return err
		}
		from := 0
		if lo.Continue != "" {
			from, _ = strconv.Atoi(lo.Continue)
		}
		to := len(items)
		if lo.Limit > 0 && from+int(lo.Limit) < to {
			to = from + int(lo.Limit)
			list.(metav1.ListInterface).SetContinue(strconv.Itoa(to))
		} else {
			list.(metav1.ListInterface).SetContinue("")
		}
		return meta.SetList(list, items[from:to])
	}}
}

func pagedClient(p *pager, objs ...client.Object) client.WithWatch {
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(copies(objs)...).WithInterceptorFuncs(p.funcs()).Build()
}

func TestRowAndCSV(t *testing.T) {
	t.Parallel()
	e := entry(0xabc, 0, revoked(time.Date(2026, 3, 2, 1, 2, 3, 0, time.FixedZone("CET", 3600))))
	r := RowOf(e)
	want := []string{
		"abc", "CN=web,O=Example, Inc.", "DNS:web.team-a.svc IP:10.0.0.1 URI:spiffe://cluster.local/ns/team-a/sa/web email:ops@example.test",
		"system:serviceaccount:cert-manager:cert-manager", "team-a", "CertificateRequest", "web-1", "web", "server-auth",
		"2026-03-01T12:00:00.123456Z", "2026-05-30T12:00:00Z", "keyCompromise", "2026-03-02T00:02:03Z", "QuillRevocation team-a/leak",
	}
	got := r.Record()
	if len(got) != len(Columns) {
		t.Fatalf("%d fields for %d columns", len(got), len(Columns))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("column %s = %q; want %q", Columns[i], got[i], want[i])
		}
	}

	var buf bytes.Buffer
	n, err := Write(context.Background(), newClient(&quillv1.QuillClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "root"}}, segment(t, root, "quill-system", quillv1.LedgerStageSealed, e)),
		Options{Issuer: root, ClusterResourceNamespace: "quill-system"}, FormatCSV, &buf)
	if err != nil || n != 1 {
		t.Fatalf("Write: %d rows, %v", n, err)
	}
	// RFC 4180: CRLF line ends, the comma-bearing subject quoted.
	if !strings.HasSuffix(buf.String(), "\r\n") || !strings.Contains(buf.String(), `,"CN=web,O=Example, Inc.",`) {
		t.Errorf("not RFC 4180:\n%q", buf.String())
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || strings.Join(recs[0], ",") != strings.Join(Columns, ",") || strings.Join(recs[1], "\x00") != strings.Join(want, "\x00") {
		t.Errorf("CSV read back as %q", recs)
	}
}

func TestJSON(t *testing.T) {
	t.Parallel()
	iss := &quillv1.QuillIssuer{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "ca"}}
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-a", Name: "ca"}
	for _, tt := range []struct {
		name string
		objs []client.Object
		rows int
	}{
		{name: "empty-ledger", objs: []client.Object{iss}},
		{name: "two-entries", objs: []client.Object{iss, segment(t, k, "team-a", quillv1.LedgerStageJournal, entry(1, 0), entry(2, time.Second, revoked(t0.Add(time.Hour))))}, rows: 2},
		{name: "two-legacy-records", objs: []client.Object{iss, legacy(k, "team-a", entry(1, 0)), legacy(k, "team-a", entry(2, time.Second, revoked(t0.Add(time.Hour))))}, rows: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			n, err := Write(context.Background(), newClient(tt.objs...), Options{Issuer: k}, FormatJSON, &buf)
			if err != nil || n != tt.rows {
				t.Fatalf("Write: %d rows, %v", n, err)
			}
			var got []map[string]any
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatalf("not a JSON array: %v\n%s", err, buf.String())
			}
			if len(got) != tt.rows {
				t.Fatalf("%d objects; want %d", len(got), tt.rows)
			}
			for _, o := range got {
				if len(o) != len(Columns) {
					t.Errorf("object has %d keys; want the %d columns", len(o), len(Columns))
				}
				if sans, ok := o["sans"].([]any); !ok || len(sans) != 4 {
					t.Errorf("sans = %v; want an array of 4", o["sans"])
				}
			}
			// One object per line, keys in column order.
			if tt.rows > 0 && !strings.HasPrefix(strings.Split(buf.String(), "\n")[1], `{"serial":"1","subject":`) {
				t.Errorf("first object line %q", strings.Split(buf.String(), "\n")[1])
			}
		})
	}
}

// TestSelection: only the issuer's records, only those issued or revoked
// since the cut-off.
func TestSelection(t *testing.T) {
	t.Parallel()
	other := quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "other"}
	nsIssuer := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "quill-system", Name: "root"}
	impostor := segment(t, root, "quill-system", quillv1.LedgerStageSealed, entry(6, -time.Hour))
	impostor.Spec.IssuerRef.Name = "impostor" // label lies: kept out by issuerRef
	impostor.Name += "x"
	legacyImpostor := legacy(root, "quill-system", entry(8, 0))
	legacyImpostor.Spec.IssuerRef.Name = "impostor"
	var p pager
	c := pagedClient(&p,
		&quillv1.QuillClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "root"}},
		segment(t, root, "quill-system", quillv1.LedgerStageSealed,
			entry(1, -48*time.Hour),                                // old
			entry(2, -48*time.Hour, revoked(t0.Add(-time.Minute))), // old, revoked recently
		),
		legacy(root, "quill-system", entry(3, 0)),                                    // new, not migrated yet
		segment(t, other, "quill-system", quillv1.LedgerStageSealed, entry(4, 0)),    // another issuer
		segment(t, nsIssuer, "quill-system", quillv1.LedgerStageSealed, entry(5, 0)), // a namespaced issuer of the same name
		impostor, legacyImpostor,
		segment(t, root, "team-a", quillv1.LedgerStageSealed, entry(7, 0)), // another namespace
	)
	for _, tt := range []struct {
		name  string
		since time.Time
		want  string
	}{
		{name: "everything", want: "1 2 3"},
		{name: "since-an-hour-ago", since: t0.Add(-time.Hour), want: "2 3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if _, err := Write(context.Background(), c, Options{Issuer: root, ClusterResourceNamespace: "quill-system", Since: tt.since, ChunkSize: 1}, FormatCSV, &buf); err != nil {
				t.Fatal(err)
			}
			recs, err := csv.NewReader(&buf).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			var serials []string
			for _, r := range recs[1:] {
				serials = append(serials, r[0])
			}
			if got := strings.Join(serials, " "); got != tt.want {
				t.Errorf("serials %q; want %q", got, tt.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	forbidden := func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		return apierrors.NewForbidden(schema.GroupResource{Group: "quill.dev", Resource: "quillclusterissuers"}, key.Name, errors.New("RBAC"))
	}
	listForbidden := func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		return apierrors.NewForbidden(schema.GroupResource{Group: "quill.dev", Resource: "ledgersegments"}, "", errors.New("RBAC"))
	}
	// A role written before segments: issuedcertificates only.
	legacyOnly := func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		if _, ok := list.(*quillv1.LedgerSegmentList); ok {
			return listForbidden(ctx, c, list, opts...)
		}
		return c.List(ctx, list, opts...)
	}
	expired := func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		return apierrors.NewResourceExpired("continue token too old")
	}
	issuer := &quillv1.QuillClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "root"}}
	base := Options{Issuer: root, ClusterResourceNamespace: "quill-system"}
	for _, tt := range []struct {
		name   string
		client client.Reader
		opts   Options
		format Format
		want   error
	}{
		{name: "issuer-not-found", client: newClient(), opts: base, format: FormatCSV, want: ErrIssuerNotFound},
		{name: "issuer-forbidden", client: fake.NewClientBuilder().WithScheme(scheme).WithInterceptorFuncs(interceptor.Funcs{Get: forbidden}).Build(),
			opts: base, format: FormatCSV, want: ErrNoAccess},
		{name: "ledger-forbidden", client: fake.NewClientBuilder().WithScheme(scheme).WithObjects(issuer.DeepCopy()).WithInterceptorFuncs(interceptor.Funcs{List: listForbidden}).Build(),
			opts: base, format: FormatCSV, want: ErrNoAccess},
		{name: "segments-forbidden", client: fake.NewClientBuilder().WithScheme(scheme).WithObjects(issuer.DeepCopy()).WithInterceptorFuncs(interceptor.Funcs{List: legacyOnly}).Build(),
			opts: base, format: FormatCSV, want: ErrNoAccess},
		{name: "listing-expired", client: fake.NewClientBuilder().WithScheme(scheme).WithObjects(issuer.DeepCopy()).WithInterceptorFuncs(interceptor.Funcs{List: expired}).Build(),
			opts: base, format: FormatCSV, want: ErrExpired},
		{name: "archive-missing", client: newClient(issuer), opts: Options{Issuer: root, ClusterResourceNamespace: "quill-system", ArchiveDir: "/nonexistent/quill-archive"}, format: FormatCSV, want: fs.ErrNotExist},
		{name: "bad-format", client: newClient(issuer), opts: base, format: "xml", want: ErrInvalid},
		{name: "bad-kind", client: newClient(issuer), opts: Options{Issuer: quillv1.IssuerID{Kind: "Issuer", Name: "x"}}, format: FormatCSV, want: ErrInvalid},
		{name: "issuer-without-namespace", client: newClient(issuer), opts: Options{Issuer: quillv1.IssuerID{Kind: quillv1.IssuerKind, Name: "x"}}, format: FormatCSV, want: ErrInvalid},
		{name: "cluster-issuer-with-namespace", client: newClient(issuer), opts: Options{Issuer: quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Namespace: "a", Name: "x"}, ClusterResourceNamespace: "q"}, format: FormatCSV, want: ErrInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			_, err := Write(context.Background(), tt.client, tt.opts, tt.format, &buf)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v; want %v", err, tt.want)
			}
			if buf.Len() != 0 {
				t.Errorf("a failed report wrote %q", buf.String())
			}
		})
	}
}

// TestDeletedIssuer: an issuer that is gone but left records is reported,
// with a warning.
func TestDeletedIssuer(t *testing.T) {
	t.Parallel()
	var warnings []string
	var buf bytes.Buffer
	n, err := Write(context.Background(), newClient(segment(t, root, "quill-system", quillv1.LedgerStageSealed, entry(7, 0))),
		Options{Issuer: root, ClusterResourceNamespace: "quill-system", Warn: func(s string) { warnings = append(warnings, s) }}, FormatCSV, &buf)
	if err != nil || n != 1 {
		t.Fatalf("Write: %d rows, %v", n, err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "QuillClusterIssuer root no longer exists") {
		t.Errorf("warnings %q", warnings)
	}
}

func TestParseSince(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{in: "24h", want: now.Add(-24 * time.Hour)},
		{in: "30d", want: now.Add(-30 * 24 * time.Hour)},
		{in: "2026-01-31T00:00:00Z", want: time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC)},
		{in: "2026-01-31T01:00:00+01:00", want: time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC)},
		{in: "-1h", err: true},
		{in: "0d", err: true},
		{in: "1.5d", err: true},
		{in: "yesterday", err: true},
		{in: "", err: true},
	} {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseSince(tt.in, now)
			if tt.err {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("got %v, %v; want ErrInvalid", got, err)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestRowOtherNames checks that otherNames recorded in the ledger show in
// the report's SANs, after the names OpenSSL prints by type.
func TestRowOtherNames(t *testing.T) {
	t.Parallel()
	e := entry(0xabd, 0, func(e *ledger.Entry) {
		e.OtherNames = []ledger.EntryOtherName{{TypeID: "1.3.6.1.4.1.311.20.2.3", Value: "web@team-a.example.com"}}
	})
	got := RowOf(e).Record()[2]
	want := "DNS:web.team-a.svc IP:10.0.0.1 URI:spiffe://cluster.local/ns/team-a/sa/web email:ops@example.test otherName:1.3.6.1.4.1.311.20.2.3:web@team-a.example.com"
	if got != want {
		t.Errorf("sans = %q; want %q", got, want)
	}
}
