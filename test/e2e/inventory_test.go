package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/issuance"
)

// waitInventory waits until the issuer ns/name's status.inventory is want
// (nextExpiry aside) and returns it.
func waitInventory(t *testing.T, ns, name string, want quillv1.InventoryStatus) *quillv1.InventoryStatus {
	t.Helper()
	var got *quillv1.InventoryStatus
	eventually(t, "issuer "+name+" status.inventory", func() (bool, error) {
		var iss quillv1.QuillIssuer
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &iss); err != nil {
			return false, err
		}
		got = iss.Status.Inventory
		if got == nil {
			return false, fmt.Errorf("no status.inventory")
		}
		cmp := *got
		cmp.NextExpiry = nil
		if !equality.Semantic.DeepEqual(cmp, want) {
			return false, fmt.Errorf("status.inventory %+v", cmp)
		}
		return true, nil
	})
	return got
}

// TestInventory issues ECDSA leaves from a classical issuer and ECDSA and
// ML-DSA leaves from an ML-DSA issuer, revokes one, and checks the
// inventory in issuer status, in the scraped metrics and in `quillctl
// inventory`'s table and JSON.
func TestInventory(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	classical := quillIssuer(t, ns, "classical", "ECDSA-P256")
	pq := quillIssuer(t, ns, "pq", "ML-DSA-65")
	ecdsaKey := func(c *cmapi.Certificate) {
		c.Spec.PrivateKey = &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256}
		c.Spec.Usages = []cmapi.KeyUsage{cmapi.UsageServerAuth, cmapi.UsageDigitalSignature}
	}
	create(t, certificate(ns, "classical-a", classical, ecdsaKey))
	create(t, certificate(ns, "classical-b", classical, ecdsaKey))
	create(t, certificate(ns, "pq-ecdsa", pq, ecdsaKey))
	waitCertificateReady(t, ns, "classical-a")
	waitCertificateReady(t, ns, "classical-b")
	pqLeaf := leafOf(t, waitCertificateReady(t, ns, "pq-ecdsa"))
	mldsaRequest(t, ns, "pq-mldsa", pq, issuance.MLDSA65, false)
	waitRevocation(t, revoke(t, ns, "classical-b-retired", quillv1.QuillRevocationSpec{
		IssuerRef: quillv1.RevocationIssuerRef{Name: "classical", Kind: quillv1.IssuerKind}, CertificateName: "classical-b", Reason: quillv1.ReasonCessationOfOperation,
	}), metav1.ConditionTrue, quillv1.ReasonRevoked)

	// One certificate per Certificate, unless cert-manager replaced a signed
	// request (see signedFor): the counts come from the ledger.
	classicalSigned, _ := signedFor(t, ns, "classical")
	pqSigned, _ := signedFor(t, ns, "pq")
	classicalN, revokedN := classicalSigned["classical-a"]+classicalSigned["classical-b"], classicalSigned["classical-b"]
	pqECDSA := pqSigned["pq-ecdsa"]
	waitInventory(t, ns, "classical", quillv1.InventoryStatus{
		UnexpiredCertificates: classicalN, QuantumVulnerable: classicalN, Revoked: revokedN,
		KeyAlgorithms:       []quillv1.AlgorithmCount{{Algorithm: "ECDSA-P256", Certificates: classicalN, QuantumVulnerable: classicalN, Revoked: revokedN}},
		SignatureAlgorithms: []quillv1.AlgorithmCount{{Algorithm: "ECDSA-SHA256", Certificates: classicalN, QuantumVulnerable: classicalN, Revoked: revokedN}},
	})
	pqInv := waitInventory(t, ns, "pq", quillv1.InventoryStatus{
		UnexpiredCertificates: pqECDSA + 1, QuantumVulnerable: pqECDSA,
		KeyAlgorithms: []quillv1.AlgorithmCount{
			{Algorithm: "ECDSA-P256", Certificates: pqECDSA, QuantumVulnerable: pqECDSA},
			{Algorithm: "ML-DSA-65", Certificates: 1},
		},
		SignatureAlgorithms: []quillv1.AlgorithmCount{{Algorithm: "ML-DSA-65", Certificates: pqECDSA + 1, QuantumVulnerable: pqECDSA}},
	})
	// Both pq certificates have cert-manager's default 90-day lifetime; the
	// earliest is one of them, to the second.
	if d := pqInv.NextExpiry.Sub(pqLeaf.NotAfter); pqInv.NextExpiry == nil || d < -time.Minute || d > time.Minute {
		t.Errorf("nextExpiry %v, want about %v", pqInv.NextExpiry, pqLeaf.NotAfter)
	}

	// Metrics, scraped as Prometheus would.
	get := scrape(t)
	issuerLabels := func(name string) string { return fmt.Sprintf(`issuer=%q,issuer_kind="QuillIssuer"`, ns+"/"+name) }
	want := []string{
		fmt.Sprintf(`quill_certificates_unexpired{`+issuerLabels("classical")+`,key_algorithm="ECDSA-P256",quantum_vulnerable="true"} %d`, classicalN),
		fmt.Sprintf(`quill_certificates_unexpired{`+issuerLabels("pq")+`,key_algorithm="ECDSA-P256",quantum_vulnerable="true"} %d`, pqECDSA),
		`quill_certificates_unexpired{` + issuerLabels("pq") + `,key_algorithm="ML-DSA-65",quantum_vulnerable="false"} 1`,
		`quill_ca_info{` + issuerLabels("classical") + `,key_algorithm="ECDSA-P256",signature_algorithm="ECDSA-SHA256"} 1`,
		`quill_ca_info{` + issuerLabels("pq") + `,key_algorithm="ML-DSA-65",signature_algorithm="ML-DSA-65"} 1`,
	}
	eventually(t, "the scraped metrics to show the inventory", func() (bool, error) {
		body, err := get()
		if err != nil {
			return false, err
		}
		var ours []string
		for _, l := range strings.Split(body, "\n") {
			if (strings.HasPrefix(l, "quill_certificates_unexpired{") || strings.HasPrefix(l, "quill_ca_info{")) && strings.Contains(l, `"`+ns+"/") {
				ours = append(ours, l)
			}
		}
		for _, w := range want {
			if !strings.Contains(body, w+"\n") {
				return false, fmt.Errorf("missing %s; have:\n%s", w, strings.Join(ours, "\n"))
			}
		}
		if len(ours) != len(want) {
			return false, fmt.Errorf("%d inventory series for %s, want %d:\n%s", len(ours), ns, len(want), strings.Join(ours, "\n"))
		}
		return true, nil
	})

	// quillctl inventory reads the same from the cluster. Other tests'
	// issuers are there too; the totals must add up over all of them.
	dir := t.TempDir()
	var report struct {
		Source  string `json:"source"`
		Issuers []struct {
			Kind, Namespace, Name                string
			CAKeyAlgorithm, CASignatureAlgorithm string
			CAQuantumVulnerable                  *bool
			Inventory                            *quillv1.InventoryStatus
		} `json:"issuers"`
		Totals struct {
			Issuers, IssuersNotCounted, QuantumVulnerableCAs  int
			UnexpiredCertificates, QuantumVulnerable, Revoked int
			QuantumVulnerableShare                            float64
		} `json:"totals"`
	}
	out := quillctl(t, dir, "inventory", "--kubeconfig", env.Kubeconfig, "--format", "json")
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("quillctl inventory --format json: %v\n%s", err, out)
	}
	var sum, vulnerable, notCounted int
	found := map[string]bool{}
	for _, ii := range report.Issuers {
		if ii.Inventory == nil {
			notCounted++
		} else {
			sum += ii.Inventory.UnexpiredCertificates
			vulnerable += ii.Inventory.QuantumVulnerable
		}
		if ii.Namespace != ns {
			continue
		}
		found[ii.Name] = true
		switch ii.Name {
		case "classical":
			if ii.CAKeyAlgorithm != "ECDSA-P256" || ii.CAQuantumVulnerable == nil || !*ii.CAQuantumVulnerable ||
				ii.Inventory == nil || ii.Inventory.UnexpiredCertificates != classicalN || ii.Inventory.Revoked != revokedN {
				t.Errorf("quillctl's classical issuer: %+v %+v", ii, ii.Inventory)
			}
		case "pq":
			if ii.CAKeyAlgorithm != "ML-DSA-65" || ii.CASignatureAlgorithm != "ML-DSA-65" || ii.CAQuantumVulnerable == nil || *ii.CAQuantumVulnerable ||
				ii.Inventory == nil || ii.Inventory.UnexpiredCertificates != pqECDSA+1 || ii.Inventory.QuantumVulnerable != pqECDSA {
				t.Errorf("quillctl's pq issuer: %+v %+v", ii, ii.Inventory)
			}
		}
	}
	if !found["classical"] || !found["pq"] {
		t.Fatalf("quillctl inventory lists %v of namespace %s; want classical and pq", found, ns)
	}
	tot := report.Totals
	if tot.Issuers != len(report.Issuers) || tot.IssuersNotCounted != notCounted || tot.UnexpiredCertificates != sum || tot.QuantumVulnerable != vulnerable ||
		tot.UnexpiredCertificates < 4 || tot.QuantumVulnerableShare != float64(vulnerable)/float64(sum) || !strings.Contains(report.Source, "status.inventory") {
		t.Errorf("totals %+v do not add up (sum %d, vulnerable %d, not counted %d)", tot, sum, vulnerable, notCounted)
	}

	table := string(quillctl(t, dir, "inventory", "--kubeconfig", env.Kubeconfig))
	rows := map[string]string{}
	tableSum := 0
	for _, l := range strings.Split(table, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		rows[f[0]] = strings.Join(f, " ")
		if n, err := strconv.Atoi(f[min(3, len(f)-1)]); err == nil && strings.HasPrefix(f[0], "Quill") {
			tableSum += n
		}
	}
	for issuer, want := range map[string]string{
		"QuillIssuer/" + ns + "/classical": fmt.Sprintf("QuillIssuer/%s/classical ECDSA-P256 ECDSA-SHA256 %d %d %d ECDSA-P256=%d ECDSA-SHA256=%d",
			ns, classicalN, classicalN, revokedN, classicalN, classicalN),
		"QuillIssuer/" + ns + "/pq": fmt.Sprintf("QuillIssuer/%s/pq ML-DSA-65 ML-DSA-65 %d %d 0 ECDSA-P256=%d ML-DSA-65=1 ML-DSA-65=%d",
			ns, pqECDSA+1, pqECDSA, pqECDSA, pqECDSA+1),
	} {
		if rows[issuer] != want {
			t.Errorf("table row %q, want %q\n%s", rows[issuer], want, table)
		}
	}
	// The issuers' rows add up to the TOTAL row of the same table.
	if !strings.HasPrefix(rows["TOTAL"], fmt.Sprintf("TOTAL %d ", tableSum)) || !strings.Contains(table, "\nQuantum-vulnerable: ") {
		t.Errorf("table TOTAL row %q; the issuers' rows add up to %d\n%s", rows["TOTAL"], tableSum, table)
	}
}
