package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
)

// Output formats of quillctl inventory.
const (
	formatTable = "table"
	formatJSON  = "json"
)

var errCluster = errors.New("reading the cluster")

// inventorySource says where the counts come from, in both formats.
const inventorySource = "each issuer's status.inventory, as quill-controller last counted it from the issuer's ledger (it recounts when certificates are issued, revoked or expire, and every few minutes)"

func (a *app) inventoryCommand() *cobra.Command {
	var kubeconfig, kubeContext, format string
	cmd := &cobra.Command{
		Use:   "inventory",
		Short: "Crypto-agility inventory: every issuer's CA algorithms and unexpired certificates by algorithm",
		Long: `Crypto-agility inventory of the cluster: every QuillIssuer and
QuillClusterIssuer with its CA's key and signature algorithm and its
unexpired certificates by key and signature algorithm, then the totals
and the share of certificates that are quantum-vulnerable.

A certificate is quantum-vulnerable when its key is classical (RSA, ECDSA,
Ed25519) or a classical signature signed it; only an ML-DSA key signed with
ML-DSA is not. Revoked certificates that have not expired are counted (and
shown apart): relying parties that do not check revocation still accept
them.

The counts are read from each issuer's status.inventory, which
quill-controller keeps from the issuance ledger; quillctl reads issuers
only (get and list on quillissuers and quillclusterissuers, which the
quill-auditor role grants), never the ledger itself.`,
		Example: `  quillctl inventory
  quillctl inventory --kubeconfig ~/.kube/prod --format json | jq .totals`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != formatTable && format != formatJSON {
				return fmt.Errorf("%w: --format %q: use table or json", errFlags, format)
			}
			c, err := kubeClient(kubeconfig, kubeContext)
			if err != nil {
				return err
			}
			report, err := readInventory(cmd.Context(), c)
			if err != nil {
				return err
			}
			if format == formatJSON {
				return writeInventoryJSON(a.stdout, report)
			}
			return writeInventoryTable(a.stdout, report)
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file; default $KUBECONFIG or ~/.kube/config, then the in-cluster service account")
	f.StringVar(&kubeContext, "context", "", "kubeconfig context to use; default its current context")
	f.StringVar(&format, "format", formatTable, "output format: table or json")
	return cmd
}

// kubeClient connects as kubectl would, as the audit report does.
func kubeClient(kubeconfig, kubeContext string) (client.Reader, error) {
	_, c, err := connect(kubeconfig, kubeContext)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errCluster, err)
	}
	return c, nil
}

// inventoryReport is what quillctl inventory prints; its JSON form is the
// --format json output.
type inventoryReport struct {
	Source  string            `json:"source"`
	Issuers []issuerInventory `json:"issuers"`
	Totals  inventoryTotals   `json:"totals"`
}

type issuerInventory struct {
	Kind string `json:"kind"`
	// Namespace is empty for a QuillClusterIssuer.
	Namespace            string `json:"namespace,omitempty"`
	Name                 string `json:"name"`
	CAKeyAlgorithm       string `json:"caKeyAlgorithm,omitempty"`
	CASignatureAlgorithm string `json:"caSignatureAlgorithm,omitempty"`
	// CAQuantumVulnerable is set once the CA's algorithms are known.
	CAQuantumVulnerable *bool `json:"caQuantumVulnerable,omitempty"`
	// Inventory is nil while the controller has not counted the issuer's
	// certificates (a controller older than the inventory, or one running
	// without the ledger).
	Inventory *quillv1.InventoryStatus `json:"inventory"`
}

type inventoryTotals struct {
	Issuers int `json:"issuers"`
	// IssuersNotCounted have no status.inventory yet; their certificates
	// are not in the totals.
	IssuersNotCounted     int `json:"issuersNotCounted"`
	QuantumVulnerableCAs  int `json:"quantumVulnerableCAs"`
	UnexpiredCertificates int `json:"unexpiredCertificates"`
	QuantumVulnerable     int `json:"quantumVulnerable"`
	Revoked               int `json:"revoked"`
	// QuantumVulnerableShare is QuantumVulnerable / UnexpiredCertificates,
	// 0 when there are none.
	QuantumVulnerableShare float64                  `json:"quantumVulnerableShare"`
	KeyAlgorithms          []quillv1.AlgorithmCount `json:"keyAlgorithms"`
	SignatureAlgorithms    []quillv1.AlgorithmCount `json:"signatureAlgorithms"`
}

// readInventory lists every issuer and sums their status.inventory.
func readInventory(ctx context.Context, c client.Reader) (*inventoryReport, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var cluster quillv1.QuillClusterIssuerList
	if err := c.List(ctx, &cluster); err != nil {
		return nil, fmt.Errorf("%w: listing QuillClusterIssuers: %w", errCluster, err)
	}
	var namespaced quillv1.QuillIssuerList
	if err := c.List(ctx, &namespaced); err != nil {
		return nil, fmt.Errorf("%w: listing QuillIssuers: %w", errCluster, err)
	}
	r := &inventoryReport{Source: inventorySource, Issuers: []issuerInventory{}}
	add := func(kind, namespace, name string, st *quillv1.IssuerStatus) {
		ii := issuerInventory{Kind: kind, Namespace: namespace, Name: name, Inventory: st.Inventory}
		if ca := st.CA; ca != nil && ca.KeyAlgorithm != "" {
			ii.CAKeyAlgorithm, ii.CASignatureAlgorithm = ca.KeyAlgorithm, ca.SignatureAlgorithm
			v := ledger.QuantumVulnerable(ca.KeyAlgorithm, ca.SignatureAlgorithm)
			ii.CAQuantumVulnerable = &v
		}
		r.Issuers = append(r.Issuers, ii)
	}
	for i := range cluster.Items {
		iss := &cluster.Items[i]
		add(quillv1.ClusterIssuerKind, "", iss.Name, &iss.Status)
	}
	for i := range namespaced.Items {
		iss := &namespaced.Items[i]
		add(quillv1.IssuerKind, iss.Namespace, iss.Name, &iss.Status)
	}
	sort.Slice(r.Issuers, func(i, j int) bool { return issuerLabel(r.Issuers[i]) < issuerLabel(r.Issuers[j]) })

	t := &r.Totals
	keys, sigs := map[string]*quillv1.AlgorithmCount{}, map[string]*quillv1.AlgorithmCount{}
	for _, ii := range r.Issuers {
		t.Issuers++
		if ii.CAQuantumVulnerable != nil && *ii.CAQuantumVulnerable {
			t.QuantumVulnerableCAs++
		}
		inv := ii.Inventory
		if inv == nil {
			t.IssuersNotCounted++
			continue
		}
		t.UnexpiredCertificates += inv.UnexpiredCertificates
		t.QuantumVulnerable += inv.QuantumVulnerable
		t.Revoked += inv.Revoked
		sumCounts(keys, inv.KeyAlgorithms)
		sumCounts(sigs, inv.SignatureAlgorithms)
	}
	if t.UnexpiredCertificates > 0 {
		t.QuantumVulnerableShare = float64(t.QuantumVulnerable) / float64(t.UnexpiredCertificates)
	}
	t.KeyAlgorithms, t.SignatureAlgorithms = sortedCounts(keys), sortedCounts(sigs)
	return r, nil
}

func sumCounts(into map[string]*quillv1.AlgorithmCount, counts []quillv1.AlgorithmCount) {
	for _, c := range counts {
		sum := into[c.Algorithm]
		if sum == nil {
			sum = &quillv1.AlgorithmCount{Algorithm: c.Algorithm}
			into[c.Algorithm] = sum
		}
		sum.Certificates += c.Certificates
		sum.QuantumVulnerable += c.QuantumVulnerable
		sum.Revoked += c.Revoked
	}
}

func sortedCounts(m map[string]*quillv1.AlgorithmCount) []quillv1.AlgorithmCount {
	out := make([]quillv1.AlgorithmCount, 0, len(m))
	for _, c := range m {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Algorithm < out[j].Algorithm })
	return out
}

// issuerLabel is how an issuer is named in the table: Kind/name or
// Kind/namespace/name.
func issuerLabel(ii issuerInventory) string {
	return quillv1.IssuerID{Kind: ii.Kind, Namespace: ii.Namespace, Name: ii.Name}.String()
}

func writeInventoryJSON(w io.Writer, r *inventoryReport) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func writeInventoryTable(w io.Writer, r *inventoryReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ISSUER\tCA KEY\tCA SIGNATURE\tUNEXPIRED\tQUANTUM-VULNERABLE\tREVOKED\tBY KEY ALGORITHM\tBY SIGNATURE ALGORITHM")
	for _, ii := range r.Issuers {
		caKey, caSig := dash(ii.CAKeyAlgorithm), dash(ii.CASignatureAlgorithm)
		if inv := ii.Inventory; inv != nil {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", issuerLabel(ii), caKey, caSig,
				inv.UnexpiredCertificates, inv.QuantumVulnerable, inv.Revoked, countList(inv.KeyAlgorithms), countList(inv.SignatureAlgorithms))
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\tnot counted yet\t-\n", issuerLabel(ii), caKey, caSig)
		}
	}
	t := r.Totals
	fmt.Fprintf(tw, "TOTAL\t\t\t%d\t%d\t%d\t%s\t%s\n", t.UnexpiredCertificates, t.QuantumVulnerable, t.Revoked, countList(t.KeyAlgorithms), countList(t.SignatureAlgorithms))
	if err := tw.Flush(); err != nil {
		return err
	}
	share := "no unexpired certificates"
	if t.UnexpiredCertificates > 0 {
		share = fmt.Sprintf("%d of %d unexpired certificates (%s%%)", t.QuantumVulnerable, t.UnexpiredCertificates, strconv.FormatFloat(100*t.QuantumVulnerableShare, 'f', 1, 64))
	}
	fmt.Fprintf(w, "\nQuantum-vulnerable: %s; %d of %d issuers have a quantum-vulnerable CA.\n", share, t.QuantumVulnerableCAs, t.Issuers)
	if t.IssuersNotCounted > 0 {
		fmt.Fprintf(w, "%d issuers have no status.inventory yet and are left out of the totals.\n", t.IssuersNotCounted)
	}
	_, err := fmt.Fprintf(w, "Counts: %s.\n", inventorySource)
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// countList is "ECDSA-P256=3 ML-DSA-65=1", or "-" for none.
func countList(counts []quillv1.AlgorithmCount) string {
	if len(counts) == 0 {
		return "-"
	}
	parts := make([]string, len(counts))
	for i, c := range counts {
		parts[i] = c.Algorithm + "=" + strconv.Itoa(c.Certificates)
	}
	return strings.Join(parts, " ")
}
