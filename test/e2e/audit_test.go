package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/csv"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/auditreport"
	"github.com/quill-pki/quill/pkg/ledger"
)

// errQuillctl is a quillctl run that exited with an error; the message
// holds the one line quillctl printed.
var errQuillctl = errors.New("quillctl failed")

// auditReport runs `bin/quillctl audit report` with args and returns its
// standard output, its warnings and, when it fails, an error carrying the
// line it printed.
func auditReport(args ...string) (string, []string, error) {
	return runQuillctl("audit", append([]string{"report"}, args...)...)
}

// runQuillctl runs `bin/quillctl command args...` as auditReport does.
func runQuillctl(command string, args ...string) (string, []string, error) {
	cmd := exec.Command(filepath.Join(env.Root, "bin", "quillctl"), append([]string{command}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var warnings []string
	msg := ""
	for _, line := range strings.Split(stderr.String(), "\n") {
		if w, ok := strings.CutPrefix(line, "quillctl: warning: "); ok {
			warnings = append(warnings, w)
		} else if line != "" {
			msg = strings.TrimPrefix(line, "quillctl: ")
		}
	}
	if runErr != nil {
		return stdout.String(), warnings, fmt.Errorf("%w (%v): %s", errQuillctl, runErr, msg)
	}
	return stdout.String(), warnings, nil
}

// kubeconfigAs writes a copy of the harness kubeconfig that impersonates
// user.
func kubeconfigAs(t *testing.T, user string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range cfg.AuthInfos {
		a.Impersonate = user
	}
	p := filepath.Join(t.TempDir(), "kubeconfig-"+user)
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// auditLedger reads the ledger of issuer k from its home namespace as the
// controller keeps it, without pkg/auditreport: every LedgerSegment of the
// issuer and the IssuedCertificates of a ledger not migrated yet, decoded
// and merged here (one entry per serial, the earliest revocation of all
// lines about it). It checks the one-signature rule on the way: a request
// is never signed twice.
func auditLedger(t *testing.T, home string, k quillv1.IssuerID) map[string]*ledger.Entry {
	t.Helper()
	ctx := context.Background()
	entries := map[string]*ledger.Entry{}
	revocations := map[string]*ledger.EntryRevocation{}
	add := func(e *ledger.Entry) {
		if e.IsRevocationLine() {
			if e.Revocation.Wins(revocations[e.Serial]) {
				revocations[e.Serial] = e.Revocation
			}
			return
		}
		if e.Revocation.Wins(revocations[e.Serial]) {
			revocations[e.Serial] = e.Revocation
		}
		if have := entries[e.Serial]; have != nil && have.Fingerprint != e.Fingerprint {
			t.Fatalf("serial %s recorded for two certificates", e.Serial)
		}
		entries[e.Serial] = e
	}
	var segs quillv1.LedgerSegmentList
	if err := env.Client.List(ctx, &segs, client.InNamespace(home)); err != nil {
		t.Fatal(err)
	}
	for i := range segs.Items {
		if segs.Items[i].Spec.IssuerRef.ID() != k {
			continue
		}
		if err := ledger.SegmentEntries(&segs.Items[i], func(e *ledger.Entry) error { add(e); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	var legacy quillv1.IssuedCertificateList
	if err := env.Client.List(ctx, &legacy, client.InNamespace(home)); err != nil {
		t.Fatal(err)
	}
	for i := range legacy.Items {
		if legacy.Items[i].Spec.IssuerRef.ID() != k {
			continue
		}
		e, err := ledger.EntryOfLegacy(&legacy.Items[i])
		if err != nil {
			t.Fatal(err)
		}
		add(&e)
	}
	request := map[string]string{} // request UID -> serial
	for serial, e := range entries {
		e.Revocation = revocations[serial]
		if other, dup := request[e.Origin.UID]; dup {
			t.Fatalf("request %s (uid %s) was signed twice: serials %s and %s", e.Origin.Name, e.Origin.UID, other, serial)
		}
		request[e.Origin.UID] = serial
	}
	return entries
}

// expectedRow is what the report must say about a ledger entry, spelt
// out field by field.
func expectedRow(e *ledger.Entry) []string {
	var sans []string
	for _, n := range e.DNSNames {
		sans = append(sans, "DNS:"+n)
	}
	for _, n := range e.IPAddresses {
		sans = append(sans, "IP:"+n)
	}
	for _, n := range e.URIs {
		sans = append(sans, "URI:"+n)
	}
	for _, n := range e.EmailAddresses {
		sans = append(sans, "email:"+n)
	}
	row := []string{
		e.Serial, e.Subject, strings.Join(sans, " "), e.Requester, e.Origin.Namespace,
		e.Origin.Kind, e.Origin.Name, e.Origin.Certificate, e.Template,
		time.UnixMicro(e.IssuedAt).UTC().Format("2006-01-02T15:04:05.000000Z"), time.Unix(e.NotAfter, 0).UTC().Format(time.RFC3339), "", "", "",
	}
	if r := e.Revocation; r != nil {
		row[11], row[12], row[13] = string(r.Reason), time.Unix(r.At, 0).UTC().Format(time.RFC3339), r.By
	}
	return row
}

// TestAuditReport issues three certificates under two templates, revokes
// one, and checks the audit report, run through quillctl's command against
// the harness kubeconfig, column by column against the ledger objects and
// the issued certificates: CSV read one record per page, JSON, --since,
// --out, a missing issuer, a user without access and one with the
// quill-auditor role. It also checks the revocation and ledger metrics,
// including the ledger gauge after a record is deleted.
func TestAuditReport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := newNamespace(t)
	ref := quillIssuer(t, ns, "audited", "ECDSA-P256", func(s *quillv1.IssuerSpec) {
		s.Templates = []string{quillv1.TemplateServerAuth, quillv1.TemplateClientAuth}
	})
	server := []func(*cmapi.Certificate){
		withCertAnnotation(quillv1.AnnotationTemplate, quillv1.TemplateServerAuth),
		withUsages(cmapi.UsageServerAuth, cmapi.UsageDigitalSignature, cmapi.UsageKeyEncipherment),
	}
	create(t, certificate(ns, "web", ref, append(server, func(c *cmapi.Certificate) {
		c.Spec.CommonName = "web, the front end" // a comma that CSV must quote
		c.Spec.IPAddresses = []string{"10.0.0.7"}
	})...))
	create(t, certificate(ns, "api", ref, server...))
	create(t, certificate(ns, "partner", ref,
		withCertAnnotation(quillv1.AnnotationTemplate, quillv1.TemplateClientAuth),
		withUsages(cmapi.UsageClientAuth, cmapi.UsageDigitalSignature),
		func(c *cmapi.Certificate) {
			c.Spec.DNSNames = nil
			c.Spec.CommonName = "partner"
			c.Spec.URIs = []string{"spiffe://example.test/partner"}
			c.Spec.EmailAddresses = []string{"partner@example.test"}
		}))
	certs := map[string]*x509.Certificate{}
	for _, name := range []string{"web", "api", "partner"} {
		certs[name] = leafOf(t, waitCertificateReady(t, ns, name))
	}

	// Everything issued lies before the cut-off; only the revocation after.
	time.Sleep(1100 * time.Millisecond)
	cutoff := time.Now().UTC().Truncate(time.Second)
	waitRevocation(t, revoke(t, ns, "partner-leaked", quillv1.QuillRevocationSpec{
		IssuerRef: quillv1.RevocationIssuerRef{Name: "audited", Kind: quillv1.IssuerKind}, CertificateName: "partner", Reason: quillv1.ReasonKeyCompromise,
	}), metav1.ConditionTrue, quillv1.ReasonRevoked)

	// What the report must list: every entry of the issuer, possibly more
	// than one per Certificate: cert-manager replaces a request it made
	// (same name, new UID) when the key behind it changed meanwhile, and
	// the replaced request may already have been signed.
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: ns, Name: "audited"}
	records := auditLedger(t, ns, k)
	partnerRecords := 0
	for _, e := range records {
		if e.Origin.Certificate == "partner" {
			partnerRecords++
			if e.Revocation == nil {
				t.Fatalf("partner certificate %s is not revoked", e.Serial)
			}
		}
	}
	for name, c := range certs {
		if records[ledger.SerialHex(c.SerialNumber)] == nil {
			t.Fatalf("no ledger record for %s's certificate %x", name, c.SerialNumber)
		}
	}
	if n := len(records); n > len(certs) {
		t.Logf("cert-manager replaced %d signed requests; the ledger keeps their certificates too", n-len(certs))
	}
	base := []string{"--kubeconfig", env.Kubeconfig, "--kind", "QuillIssuer", "--namespace", ns, "--issuer", "audited"}

	// CSV, one record per list request: the API server's pagination.
	out, warnings, err := auditReport(append(base, "--format", "csv", "--chunk-size", "1")...)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("audit report: %v (warnings %q)", err, warnings)
	}
	if !strings.HasSuffix(out, "\r\n") || !strings.Contains(out, `"CN=web\, the front end"`) {
		t.Errorf("not RFC 4180 CSV with the subject quoted:\n%q", out)
	}
	table, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("CSV: %v\n%s", err, out)
	}
	wantHeader := "serial,subject,sans,requester,namespace,request_kind,request,certificate,template,issued,expires,revocation_reason,revoked_at,revoked_by"
	if got := strings.Join(table[0], ","); got != wantHeader {
		t.Fatalf("header %s\nwant   %s", got, wantHeader)
	}
	if len(table)-1 != len(records) {
		t.Fatalf("%d rows; want %d:\n%s", len(table)-1, len(records), out)
	}
	seen := map[string]bool{}
	prev := ""
	for _, row := range table[1:] {
		e, ok := records[row[0]]
		if !ok {
			t.Fatalf("row for serial %s, which the issuer did not issue here", row[0])
		}
		seen[row[0]] = true
		if want := expectedRow(e); strings.Join(row, "\x00") != strings.Join(want, "\x00") {
			for i := range want {
				if row[i] != want[i] {
					t.Errorf("serial %s column %s = %q; the ledger says %q", row[0], table[0][i], row[i], want[i])
				}
			}
		}
		if len(row[0]) < len(prev) || len(row[0]) == len(prev) && row[0] < prev {
			t.Errorf("serial %s after %s: rows are not in serial order", row[0], prev)
		}
		prev = row[0]
	}
	if len(seen) != len(records) {
		t.Errorf("rows for %d distinct certificates; want %d", len(seen), len(records))
	}
	// The columns against the certificates and requests themselves, not
	// only the ledger's copy of them.
	bySerial, byName := map[string][]string{}, map[string][]string{}
	for _, row := range table[1:] {
		bySerial[row[0]] = row
	}
	for name, c := range certs {
		row := bySerial[ledger.SerialHex(c.SerialNumber)]
		byName[name] = row
		if row == nil {
			t.Fatalf("no row for Certificate %s", name)
		}
		cr := requestOf(t, ns, name)
		if row[0] != c.SerialNumber.Text(16) || row[1] != c.Subject.String() || row[4] != ns || row[5] != "CertificateRequest" ||
			row[6] != cr.Name || row[3] != cr.Spec.Username || row[10] != c.NotAfter.UTC().Format(time.RFC3339) {
			t.Errorf("row of %s %q does not match its certificate (serial %x, subject %s, notAfter %s) and request %s by %s",
				name, row, c.SerialNumber, c.Subject, c.NotAfter, cr.Name, cr.Spec.Username)
		}
		wantTemplate, wantReason := quillv1.TemplateServerAuth, ""
		if name == "partner" {
			wantTemplate, wantReason = quillv1.TemplateClientAuth, string(quillv1.ReasonKeyCompromise)
		}
		if row[8] != wantTemplate || row[11] != wantReason {
			t.Errorf("row of %s: template %q, revocation %q; want %q, %q", name, row[8], row[11], wantTemplate, wantReason)
		}
	}
	if got, want := byName["web"][2], "DNS:web.example.test IP:10.0.0.7"; got != want {
		t.Errorf("web's SANs %q; want %q", got, want)
	}
	if got, want := byName["partner"][2], "URI:spiffe://example.test/partner email:partner@example.test"; got != want {
		t.Errorf("partner's SANs %q; want %q", got, want)
	}
	if got, want := byName["partner"][13], "QuillRevocation "+ns+"/partner-leaked"; got != want {
		t.Errorf("partner revoked by %q; want %q", got, want)
	}

	// JSON: the same rows as objects keyed by the columns.
	out, _, err = auditReport(append(base, "--format", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	var objs []map[string]any
	if err := json.Unmarshal([]byte(out), &objs); err != nil || len(objs) != len(records) {
		t.Fatalf("JSON report (%v):\n%s", err, out)
	}
	for _, o := range objs {
		e := records[fmt.Sprint(o["serial"])]
		if e == nil {
			t.Fatalf("JSON object for an unknown serial: %v", o)
		}
		want := expectedRow(e)
		for i, col := range table[0] {
			got := fmt.Sprint(o[col])
			if col == "sans" {
				var parts []string
				for _, s := range o[col].([]any) {
					parts = append(parts, s.(string))
				}
				got = strings.Join(parts, " ")
			}
			if got != want[i] {
				t.Errorf("JSON serial %s %s = %q; want %q", want[0], col, got, want[i])
			}
		}
	}

	// --since: everything was issued before the cut-off; the revoked
	// partner certificates are reported because their revocation came
	// after.
	out, _, err = auditReport(append(base, "--since", cutoff.Format(time.RFC3339))...)
	if err != nil {
		t.Fatal(err)
	}
	if table, err := csv.NewReader(strings.NewReader(out)).ReadAll(); err != nil || len(table)-1 != partnerRecords || table[1][7] != "partner" {
		t.Errorf("--since %s reported (%v); want the %d partner certificates:\n%s", cutoff.Format(time.RFC3339), err, partnerRecords, out)
	}
	out, _, err = auditReport(append(base, "--since", time.Now().Add(time.Minute).UTC().Format(time.RFC3339))...)
	if err != nil || out != wantHeader+"\r\n" {
		t.Errorf("--since in the future: %v\n%q", err, out)
	}

	// --out: the same report, in a file.
	file := filepath.Join(t.TempDir(), "audit.csv")
	csvOut, _, _ := auditReport(base...)
	if out, _, err := auditReport(append(base, "--out", file)...); err != nil || !strings.Contains(out, fmt.Sprintf("%d certificates", len(records))) {
		t.Fatalf("--out: %v %q", err, out)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != csvOut {
		t.Errorf("--out file differs from the report on standard output (%v)", err)
	}
	if _, _, err := auditReport(append(base, "--out", file)...); err == nil || !strings.Contains(err.Error(), "output file exists") {
		t.Errorf("--out over an existing file: %v", err)
	}

	// Clear errors: an issuer that never existed, a user without rights.
	if _, _, err := auditReport("--kubeconfig", env.Kubeconfig, "--kind", "QuillIssuer", "--namespace", ns, "--issuer", "nope"); err == nil || !strings.Contains(err.Error(), auditreport.ErrIssuerNotFound.Error()) ||
		!strings.Contains(err.Error(), "QuillIssuer "+ns+"/nope") {
		t.Errorf("missing issuer: %v", err)
	}
	user := "auditor-" + ns
	asUser := append([]string{"--kubeconfig", kubeconfigAs(t, user)}, base[2:]...)
	if out, _, err := auditReport(asUser...); err == nil || !strings.Contains(err.Error(), auditreport.ErrNoAccess.Error()) || out != "" {
		t.Errorf("a user without rights: %v, output %q", err, out)
	}
	// The shipped quill-auditor role, bound in the issuer's namespace, is
	// all the report needs.
	data, err := os.ReadFile(filepath.Join(env.Root, "config", "rbac", "roles", "auditor.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(data, &role); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, &role); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	create(t, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "auditor"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
	})
	eventually(t, "the report as "+user+" with quill-auditor", func() (bool, error) {
		out, _, err := auditReport(asUser...)
		return err == nil && out == csvOut, err
	})

	// Metrics: the revocation counted once by reason, and the ledger's
	// size. (A certificate's entry can no longer be deleted on its own: it
	// shares its segment with others; the index's removal rules are tested
	// in pkg/ledger.)
	get := scrape(t)
	labels := fmt.Sprintf(`issuer=%q,issuer_kind="QuillIssuer"`, ns+"/audited")
	waitMetrics(t, get, ns,
		fmt.Sprintf(`quill_certificates_revoked_total{`+labels+`,key_algorithm="RSA-2048",reason="keyCompromise",template="client-auth"} %d`, partnerRecords),
		fmt.Sprintf(`quill_ledger_entries{`+labels+`} %d`, len(records)))

	// quillctl ledger: a serial, a Certificate's history, the segments.
	partner := certs["partner"]
	got, _, err := runQuillctl("ledger", append([]string{"get", partner.SerialNumber.Text(16), "--format", "json"}, base...)...)
	if err != nil {
		t.Fatal(err)
	}
	var view struct {
		Serial      string `json:"serial"`
		Certificate string `json:"certificate"`
		Revocation  *struct {
			Reason string `json:"reason"`
		} `json:"revocation"`
		Places []struct {
			Kind string `json:"kind"`
		} `json:"places"`
	}
	if err := json.Unmarshal([]byte(got), &view); err != nil {
		t.Fatalf("ledger get: %v\n%s", err, got)
	}
	if view.Serial != ledger.SerialHex(partner.SerialNumber) || view.Revocation == nil || view.Revocation.Reason != string(quillv1.ReasonKeyCompromise) || len(view.Places) == 0 {
		t.Errorf("ledger get of partner's certificate: %s", got)
	}
	if view.Certificate != "" {
		if b, _ := pem.Decode([]byte(view.Certificate)); b == nil || !bytes.Equal(b.Bytes, partner.Raw) {
			t.Errorf("ledger get printed a PEM that is not partner's certificate")
		}
	}
	got, _, err = runQuillctl("ledger", append([]string{"history", "--certificate", ns + "/partner"}, base...)...)
	if err != nil || strings.Count(got, "\n") != partnerRecords+1 || !strings.Contains(got, ledger.SerialHex(partner.SerialNumber)) || !strings.Contains(got, "keyCompromise") {
		t.Errorf("ledger history of partner (%v):\n%s", err, got)
	}
	got, _, err = runQuillctl("ledger", append([]string{"list"}, base...)...)
	if err != nil || !strings.Contains(got, fmt.Sprintf("QuillIssuer/%s/audited in namespace %s: ", ns, ns)) {
		t.Errorf("ledger list (%v):\n%s", err, got)
	}

	// A deleted issuer's ledger as segments, read through the real API
	// server a segment per list request: sealed segments with the entries
	// (no certificate kept), one of them twice (a journal sealed but not
	// deleted yet), and a journal revoking one of them apart.
	gone := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: ns, Name: "audited-gone"}
	var goneEntries []ledger.Entry
	for _, name := range []string{"web", "api", "partner"} {
		e, err := ledger.EntryOf(certs[name], time.Now(), ledger.Origin{Kind: quillv1.OriginKindCertificateRequest, Namespace: ns,
			Name: name + "-1", UID: types.UID("uid-" + name), Certificate: name, Requester: "someone"})
		if err != nil {
			t.Fatal(err)
		}
		e.Certificate = nil
		goneEntries = append(goneEntries, e)
	}
	revokedAt := time.Now().Truncate(time.Second)
	for i, es := range [][]ledger.Entry{goneEntries[:2], goneEntries[1:], {{Serial: goneEntries[2].Serial, NotAfter: goneEntries[2].NotAfter,
		Revocation: &ledger.EntryRevocation{Reason: quillv1.ReasonCessationOfOperation, At: revokedAt.Unix(), By: "QuillRevocation " + ns + "/gone"}}}} {
		stage := quillv1.LedgerStageSealed
		if i == 2 {
			stage = quillv1.LedgerStageJournal
		}
		seg, err := ledger.NewSegment(gone, ns, stage, time.Now(), es)
		if err != nil {
			t.Fatal(err)
		}
		create(t, seg)
	}
	goneBase := []string{"--kubeconfig", env.Kubeconfig, "--kind", "QuillIssuer", "--namespace", ns, "--issuer", gone.Name}
	out, warnings, err = auditReport(append(goneBase, "--chunk-size", "1")...)
	if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "no longer exists") {
		t.Fatalf("report of a deleted issuer's segments: %v, warnings %q", err, warnings)
	}
	table, err = csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(table) != 4 {
		t.Fatalf("want 3 rows (%v):\n%s", err, out)
	}
	for _, row := range table[1:] {
		revoked := row[11] != ""
		if want := row[0] == goneEntries[2].Serial; revoked != want || revoked && (row[11] != string(quillv1.ReasonCessationOfOperation) || row[12] != revokedAt.UTC().Format(time.RFC3339)) {
			t.Errorf("row %q: revoked %v; want only %s, by the journal's line", row, revoked, goneEntries[2].Serial)
		}
		if row[3] != "someone" || row[7] == "" {
			t.Errorf("row %q does not carry the segment's entry", row)
		}
	}
}
