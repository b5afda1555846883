package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

func inventoryFixture(t *testing.T) *inventoryReport {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := quillv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	classical := &quillv1.QuillClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: "platform"},
		Status: quillv1.IssuerStatus{
			CA: &quillv1.CASummary{KeyAlgorithm: "ECDSA-P384", SignatureAlgorithm: "ECDSA-SHA384"},
			Inventory: &quillv1.InventoryStatus{
				UnexpiredCertificates: 5, QuantumVulnerable: 5, Revoked: 1,
				KeyAlgorithms:       []quillv1.AlgorithmCount{{Algorithm: "ECDSA-P256", Certificates: 3, QuantumVulnerable: 3}, {Algorithm: "RSA-2048", Certificates: 2, QuantumVulnerable: 2, Revoked: 1}},
				SignatureAlgorithms: []quillv1.AlgorithmCount{{Algorithm: "ECDSA-SHA384", Certificates: 5, QuantumVulnerable: 5, Revoked: 1}},
			},
		},
	}
	pq := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "pq"},
		Status: quillv1.IssuerStatus{
			CA: &quillv1.CASummary{KeyAlgorithm: "ML-DSA-65", SignatureAlgorithm: "ML-DSA-65"},
			Inventory: &quillv1.InventoryStatus{
				UnexpiredCertificates: 3, QuantumVulnerable: 2,
				KeyAlgorithms:       []quillv1.AlgorithmCount{{Algorithm: "ECDSA-P256", Certificates: 2, QuantumVulnerable: 2}, {Algorithm: "ML-DSA-65", Certificates: 1}},
				SignatureAlgorithms: []quillv1.AlgorithmCount{{Algorithm: "ML-DSA-65", Certificates: 3, QuantumVulnerable: 2}},
			},
		},
	}
	fresh := &quillv1.QuillIssuer{ObjectMeta: metav1.ObjectMeta{Namespace: "team-b", Name: "new"}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(classical, pq, fresh).Build()
	r, err := readInventory(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestInventoryTotals(t *testing.T) {
	t.Parallel()
	r := inventoryFixture(t)
	tot := r.Totals
	if tot.Issuers != 3 || tot.IssuersNotCounted != 1 || tot.QuantumVulnerableCAs != 1 ||
		tot.UnexpiredCertificates != 8 || tot.QuantumVulnerable != 7 || tot.Revoked != 1 || tot.QuantumVulnerableShare != 7.0/8 {
		t.Fatalf("totals %+v", tot)
	}
	wantKeys := []quillv1.AlgorithmCount{
		{Algorithm: "ECDSA-P256", Certificates: 5, QuantumVulnerable: 5},
		{Algorithm: "ML-DSA-65", Certificates: 1},
		{Algorithm: "RSA-2048", Certificates: 2, QuantumVulnerable: 2, Revoked: 1},
	}
	if got, _ := json.Marshal(tot.KeyAlgorithms); string(got) != string(must(json.Marshal(wantKeys))) {
		t.Errorf("key algorithms %s, want %s", got, must(json.Marshal(wantKeys)))
	}
	var names []string
	for _, ii := range r.Issuers {
		names = append(names, issuerLabel(ii))
	}
	if got := strings.Join(names, " "); got != "QuillClusterIssuer/platform QuillIssuer/team-a/pq QuillIssuer/team-b/new" {
		t.Errorf("issuers in order %s", got)
	}
}

func TestInventoryTable(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := writeInventoryTable(&out, inventoryFixture(t)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"QuillClusterIssuer/platform  ECDSA-P384  ECDSA-SHA384  5          5                   1        ECDSA-P256=3 RSA-2048=2",
		"QuillIssuer/team-a/pq        ML-DSA-65   ML-DSA-65     3          2                   0        ECDSA-P256=2 ML-DSA-65=1",
		"QuillIssuer/team-b/new       -           -             -          -                   -        not counted yet",
		"TOTAL                                                  8          7                   1        ECDSA-P256=5 ML-DSA-65=1 RSA-2048=2  ECDSA-SHA384=5 ML-DSA-65=3",
		"Quantum-vulnerable: 7 of 8 unexpired certificates (87.5%); 1 of 3 issuers have a quantum-vulnerable CA.",
		"1 issuers have no status.inventory yet",
		"Counts: each issuer's status.inventory",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestInventoryJSON(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := writeInventoryJSON(&out, inventoryFixture(t)); err != nil {
		t.Fatal(err)
	}
	var back inventoryReport
	if err := json.Unmarshal(out.Bytes(), &back); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if back.Totals.QuantumVulnerable != 7 || len(back.Issuers) != 3 || back.Issuers[2].Inventory != nil || !strings.Contains(back.Source, "status.inventory") {
		t.Errorf("round trip: %+v", back)
	}
	if vuln := back.Issuers[1].CAQuantumVulnerable; vuln == nil || *vuln {
		t.Errorf("ML-DSA CA reported quantum-vulnerable: %v", vuln)
	}
}

// TestInventoryFlags: a bad --format is refused before anything is read.
func TestInventoryFlags(t *testing.T) {
	t.Parallel()
	res := run(t, t.TempDir(), nil, "inventory", "--format", "yaml")
	if res.code != 1 || !strings.Contains(res.stderr, `--format "yaml": use table or json`) {
		t.Fatalf("quillctl inventory --format yaml: code %d, stderr %q", res.code, res.stderr)
	}
	res = run(t, t.TempDir(), nil, "inventory", "--kubeconfig", "/nonexistent/kubeconfig")
	if res.code != 1 || !strings.Contains(res.stderr, "kubeconfig") {
		t.Fatalf("quillctl inventory with a missing kubeconfig: code %d, stderr %q", res.code, res.stderr)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
