package integration

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/test/harness"
)

// columnGap separates the columns of kubectl's table output: values may
// contain single spaces ("CN=team root"), never two.
var columnGap = regexp.MustCompile(`\s{2,}`)

// kubectlTable runs `kubectl get` with args against the test API server
// and returns the table's header and its one row, cell by cell.
func kubectlTable(t *testing.T, args ...string) (header, row []string) {
	t.Helper()
	out := env.Run(t, env.Root, nil, "kubectl", append([]string{"--kubeconfig", env.Kubeconfig, "get"}, args...)...)
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("kubectl get %s: want a header and one row, got:\n%s", strings.Join(args, " "), out)
	}
	return columnGap.Split(strings.TrimSpace(lines[0]), -1), columnGap.Split(strings.TrimSpace(lines[1]), -1)
}

// TestKubectlPrinterColumns prints one object of every Quill kind with the
// real kubectl and checks each column: the header the CRD declares and a
// value a person can read (never <invalid>, which kubectl shows for a date
// column holding a future time, as a CA's expiry is).
func TestKubectlPrinterColumns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := newNamespace(t)

	iss := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "printed"},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{
			SecretName: "printed-root", Subject: quillv1.Subject{CommonName: "printed root"},
		}}},
	}
	env.Create(t, iss)
	env.WaitIssuerReady(t, iss)
	clusterIss := clusterIssuer("printed-" + ns)
	env.Create(t, clusterIss)
	env.WaitIssuerReady(t, clusterIss)
	tmpl := &quillv1.QuillTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: "printed-" + ns},
		Spec: quillv1.TemplateSpec{
			Description:  "printed by the kubectl test",
			KeyUsages:    []quillv1.KeyUsage{"digital signature"},
			ExtKeyUsages: []quillv1.KeyUsage{"server auth", "client auth"},
		},
	}
	env.Create(t, tmpl)
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), tmpl) })

	// A certificate: sign a Kubernetes CSR (no cert-manager here).
	csrName := ns + "-printed"
	submitCSR(t, env.Client, csrName, iss.ID().SignerName(), kubeCSR(t, "printed.example.test"), nil)
	if csr := csrOutcome(t, csrName); len(csr.Status.Certificate) == 0 {
		t.Fatalf("CSR not signed: %+v", csr.Status.Conditions)
	}
	leaf := harness.ParseCerts(t, mustCSR(t, csrName).Status.Certificate)[0]
	serial := ledger.SerialHex(leaf.SerialNumber)

	rev := &quillv1.QuillRevocation{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "printed"},
		Spec: quillv1.QuillRevocationSpec{
			IssuerRef:    quillv1.RevocationIssuerRef{Kind: quillv1.IssuerKind, Name: iss.Name},
			SerialNumber: serial,
			Reason:       quillv1.ReasonKeyCompromise,
		},
	}
	env.Create(t, rev)
	harness.Eventually(t, "the revocation to be processed", harness.WaitTimeout, func() (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(rev), rev)
		return err == nil && len(rev.Status.Conditions) > 0, err
	})

	// The ledger's two kinds, as the ledger of an issuer that no longer
	// exists holds them (the controller's own objects come and go as it
	// seals and migrates): a sealed LedgerSegment, and a legacy
	// IssuedCertificate not migrated yet, which a finalizer keeps
	// printable should the controller migrate it meanwhile.
	gone := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: ns, Name: "printed-gone"}
	revokedAt := time.Now().Truncate(time.Second)
	origin := ledger.Origin{Kind: quillv1.OriginKindCertificateSigningRequest, Name: csrName, UID: "printed-uid", Requester: "printed-requester"}
	entry, err := ledger.EntryOf(leaf, revokedAt, origin)
	if err != nil {
		t.Fatal(err)
	}
	entry.Certificate = nil
	entry.Revocation = &ledger.EntryRevocation{Reason: quillv1.ReasonKeyCompromise, At: revokedAt.Unix(), By: "QuillRevocation " + ns + "/printed"}
	segment, err := ledger.NewSegment(gone, ns, quillv1.LedgerStageSealed, revokedAt, []ledger.Entry{entry})
	if err != nil {
		t.Fatal(err)
	}
	env.Create(t, segment)
	record, err := ledger.NewEntry(gone, ns, leaf, revokedAt, origin)
	if err != nil {
		t.Fatal(err)
	}
	record.Finalizers = []string{"quill.dev/kubectl-test"}
	env.Create(t, record)
	t.Cleanup(func() {
		var r quillv1.IssuedCertificate
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(record), &r); err == nil {
			r.Finalizers = nil
			_ = env.Client.Update(context.Background(), &r)
		}
	})
	record.Status.Revocation = &quillv1.RevocationRecord{Reason: quillv1.ReasonKeyCompromise, RevokedAt: metav1.NewTime(revokedAt), By: entry.Revocation.By}
	if err := env.Client.Status().Update(ctx, record); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(iss), iss); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(clusterIss), clusterIss); err != nil {
		t.Fatal(err)
	}

	rfc3339 := func(tm *metav1.Time) string { return tm.UTC().Format(time.RFC3339) }
	issuerHeader := []string{"NAME", "READY", "REASON", "STATE", "CA", "CA EXPIRY", "AGE"}
	tests := []struct {
		name   string
		args   []string
		header []string
		row    []string // "" accepts any non-empty value (ages)
	}{
		{name: "quillissuers", args: []string{"quillissuers", "-n", ns, iss.Name}, header: issuerHeader,
			row: []string{iss.Name, "True", quillv1.ReasonValid, "Active", iss.Status.CA.Subject, rfc3339(iss.Status.CA.NotAfter), ""}},
		{name: "quillclusterissuers", args: []string{"quillclusterissuers", clusterIss.Name}, header: issuerHeader,
			row: []string{clusterIss.Name, "True", quillv1.ReasonValid, "Active", clusterIss.Status.CA.Subject, rfc3339(clusterIss.Status.CA.NotAfter), ""}},
		{name: "quilltemplates", args: []string{"quilltemplates", tmpl.Name},
			header: []string{"NAME", "CA", "EXTENDED USAGES", "DESCRIPTION", "AGE"},
			row:    []string{tmpl.Name, "false", `["server auth","client auth"]`, "printed by the kubectl test", ""}},
		{name: "quillrevocations", args: []string{"quillrevocations", "-n", ns, rev.Name},
			header: []string{"NAME", "ISSUER", "REASON", "REVOKED", "WHY", "AGE"},
			row:    []string{rev.Name, iss.Name, "keyCompromise", "True", quillv1.ReasonRevoked, ""}},
		{name: "ledgersegments", args: []string{"ledgersegments", "-n", ns, segment.Name},
			header: []string{"NAME", "ISSUER", "STAGE", "ENTRIES", "REVOCATIONS", "FIRST ISSUED", "EXPIRES AFTER"},
			row: []string{segment.Name, gone.Name, quillv1.LedgerStageSealed, "1", "1", revokedAt.UTC().Format("2006-01-02T15:04:05.000000Z"),
				leaf.NotAfter.UTC().Format(time.RFC3339)}},
		{name: "issuedcertificates", args: []string{"issuedcertificates", "-n", ns, record.Name},
			header: []string{"NAME", "ISSUER", "SERIAL", "SUBJECT", "NOT AFTER", "REVOKED"},
			row:    []string{record.Name, gone.Name, serial, record.Spec.Subject, leaf.NotAfter.UTC().Format(time.RFC3339), "keyCompromise"}},
		{name: "issuedcertificates-wide", args: []string{"issuedcertificates", "-n", ns, record.Name, "-o", "wide"},
			header: []string{"NAME", "ISSUER", "SERIAL", "SUBJECT", "NOT AFTER", "REVOKED", "ORIGIN", "REQUESTER"},
			row: []string{record.Name, gone.Name, serial, record.Spec.Subject, leaf.NotAfter.UTC().Format(time.RFC3339), "keyCompromise",
				csrName, "printed-requester"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			header, row := kubectlTable(t, tt.args...)
			if strings.Join(header, "|") != strings.Join(tt.header, "|") {
				t.Errorf("header %q, want %q", header, tt.header)
			}
			if len(row) != len(tt.row) {
				t.Fatalf("row %q has %d cells, want %d like %q", row, len(row), len(tt.row), tt.row)
			}
			for i, want := range tt.row {
				if row[i] == "<invalid>" || row[i] == "<none>" || (want != "" && row[i] != want) {
					t.Errorf("column %s = %q, want %q", tt.header[i], row[i], want)
				}
			}
		})
	}
}

func mustCSR(t *testing.T, name string) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	var csr certificatesv1.CertificateSigningRequest
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, &csr); err != nil {
		t.Fatal(err)
	}
	return &csr
}
