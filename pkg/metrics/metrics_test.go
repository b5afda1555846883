package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

func TestRecordAndExpose(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	ns := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-a", Name: "ca"}
	cl := quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "root"}
	m.Issue(ns, "server-auth", "ECDSA-P256", 3*time.Millisecond)
	m.Issue(ns, "server-auth", "ECDSA-P256", 4*time.Millisecond)
	m.Deny(cl, "", "RSA-2048", "spec.policy.minRSAKeySize")
	notAfter := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	m.IssuerChecked(cl, true, notAfter)
	m.IssuerChecked(ns, false, time.Time{})

	want := `
# HELP quill_certificates_denied_total Requests refused for good, by issuer, template, requester key algorithm and refusing rule.
# TYPE quill_certificates_denied_total counter
quill_certificates_denied_total{issuer="root",issuer_kind="QuillClusterIssuer",key_algorithm="RSA-2048",rule="spec.policy.minRSAKeySize",template=""} 1
# HELP quill_certificates_issued_total Certificates signed, by issuer, template and requester key algorithm.
# TYPE quill_certificates_issued_total counter
quill_certificates_issued_total{issuer="team-a/ca",issuer_kind="QuillIssuer",key_algorithm="ECDSA-P256",template="server-auth"} 2
# HELP quill_issuer_ready 1 when the issuer can sign (health check passed and state Active), else 0.
# TYPE quill_issuer_ready gauge
quill_issuer_ready{issuer="root",issuer_kind="QuillClusterIssuer"} 1
quill_issuer_ready{issuer="team-a/ca",issuer_kind="QuillIssuer"} 0
# HELP quill_ca_not_after_timestamp_seconds Expiry of the issuer's signing CA certificate, as a Unix time.
# TYPE quill_ca_not_after_timestamp_seconds gauge
quill_ca_not_after_timestamp_seconds{issuer="root",issuer_kind="QuillClusterIssuer"} 1.893553445e+09
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"quill_certificates_denied_total", "quill_certificates_issued_total", "quill_issuer_ready", "quill_ca_not_after_timestamp_seconds"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m.SigningDuration); n != 1 {
		t.Fatalf("%d signing-duration series; want 1", n)
	}

	m.ForgetIssuer(cl)
	if n := testutil.CollectAndCount(m.IssuerReady); n != 1 {
		t.Errorf("%d readiness series after ForgetIssuer; want 1", n)
	}
}

// TestRegisterTwice: a second Metrics registered with the same registry
// adopts the first one's collectors, so both feed the served series.
func TestRegisterTwice(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	a, b := New(), New()
	if err := a.Register(reg); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(reg); err != nil {
		t.Fatalf("second Register: %v", err)
	}
	b.Issue(quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "n", Name: "i"}, "", "Ed25519", time.Millisecond)
	if got := testutil.ToFloat64(a.Issued.WithLabelValues(quillv1.IssuerKind, "n/i", "", "Ed25519")); got != 1 {
		t.Fatalf("first Metrics sees %v issued; want 1", got)
	}
}

func TestNilRecordsNothing(t *testing.T) {
	t.Parallel()
	var m *Metrics
	m.Issue(quillv1.IssuerID{}, "", "", 0)
	m.Deny(quillv1.IssuerID{}, "", "", "")
	m.IssuerChecked(quillv1.IssuerID{}, true, time.Now())
	m.ForgetIssuer(quillv1.IssuerID{})
	m.Revoke(quillv1.IssuerID{}, "", "", "")
	m.LedgerSize(quillv1.IssuerID{}, 1)
	m.PKCS11Login("", "", "")
}

// TestRevocationAndLedger: revocations count by reason; the ledger gauge
// follows the size up and down and drops an issuer whose ledger is empty.
func TestRevocationAndLedger(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	ns := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-a", Name: "ca"}
	cl := quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "root"}
	m.Revoke(cl, "server-auth", "ECDSA-P256", "keyCompromise")
	m.Revoke(cl, "server-auth", "ECDSA-P256", "keyCompromise")
	m.Revoke(cl, "", "RSA-2048", "superseded")
	m.LedgerSize(ns, 3)
	m.LedgerSize(cl, 7)
	m.LedgerSize(cl, 5)

	want := `
# HELP quill_certificates_revoked_total Certificates revoked, by issuer, template, key algorithm and RFC 5280 reason.
# TYPE quill_certificates_revoked_total counter
quill_certificates_revoked_total{issuer="root",issuer_kind="QuillClusterIssuer",key_algorithm="ECDSA-P256",reason="keyCompromise",template="server-auth"} 2
quill_certificates_revoked_total{issuer="root",issuer_kind="QuillClusterIssuer",key_algorithm="RSA-2048",reason="superseded",template=""} 1
# HELP quill_ledger_entries Issued-certificate records in the issuer's ledger, revoked and expired ones included.
# TYPE quill_ledger_entries gauge
quill_ledger_entries{issuer="root",issuer_kind="QuillClusterIssuer"} 5
quill_ledger_entries{issuer="team-a/ca",issuer_kind="QuillIssuer"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "quill_certificates_revoked_total", "quill_ledger_entries"); err != nil {
		t.Fatal(err)
	}
	m.LedgerSize(ns, 0)
	if n := testutil.CollectAndCount(m.LedgerEntries); n != 1 {
		t.Errorf("%d ledger series after the namespaced issuer's ledger emptied; want 1", n)
	}
	m.SetInventory(quillv1.IssuerID{}, []UnexpiredCount{{KeyAlgorithm: "RSA-2048", Certificates: 1}}, "RSA-2048", "SHA256-RSA")
	m.ForgetInventory(quillv1.IssuerID{})
}

// TestSetInventory: each call replaces the issuer's inventory series, so a
// key algorithm whose certificates expired and a replaced CA leave no
// stale series, and other issuers' series stay.
func TestSetInventory(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	ns := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-a", Name: "ca"}
	cl := quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "root"}
	m.SetInventory(cl, []UnexpiredCount{{KeyAlgorithm: "ECDSA-P256", QuantumVulnerable: true, Certificates: 7}}, "ECDSA-P384", "ECDSA-SHA384")
	m.SetInventory(ns, []UnexpiredCount{
		{KeyAlgorithm: "ECDSA-P256", QuantumVulnerable: true, Certificates: 3},
		{KeyAlgorithm: "ML-DSA-65", QuantumVulnerable: false, Certificates: 2},
	}, "ECDSA-P384", "ECDSA-SHA384")
	// The ECDSA certificates expired and the CA was replaced by an ML-DSA one.
	m.SetInventory(ns, []UnexpiredCount{{KeyAlgorithm: "ML-DSA-65", Certificates: 1}}, "ML-DSA-87", "ML-DSA-87")

	want := `
# HELP quill_ca_info 1 for the key and signature algorithm of the issuer's signing CA.
# TYPE quill_ca_info gauge
quill_ca_info{issuer="root",issuer_kind="QuillClusterIssuer",key_algorithm="ECDSA-P384",signature_algorithm="ECDSA-SHA384"} 1
quill_ca_info{issuer="team-a/ca",issuer_kind="QuillIssuer",key_algorithm="ML-DSA-87",signature_algorithm="ML-DSA-87"} 1
# HELP quill_certificates_unexpired Unexpired certificates in the issuer's ledger, revoked ones included, by key algorithm and whether they are quantum-vulnerable (classical key or classical signature).
# TYPE quill_certificates_unexpired gauge
quill_certificates_unexpired{issuer="root",issuer_kind="QuillClusterIssuer",key_algorithm="ECDSA-P256",quantum_vulnerable="true"} 7
quill_certificates_unexpired{issuer="team-a/ca",issuer_kind="QuillIssuer",key_algorithm="ML-DSA-65",quantum_vulnerable="false"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "quill_ca_info", "quill_certificates_unexpired"); err != nil {
		t.Fatal(err)
	}
	m.ForgetInventory(ns)
	if n := testutil.CollectAndCount(m.CertificatesUnexpired) + testutil.CollectAndCount(m.CAInfo); n != 2 {
		t.Errorf("%d series after forgetting team-a/ca; want the cluster issuer's 2", n)
	}
}

// TestPKCS11Logins checks the login counter's series and that it is
// registered and served with the others.
func TestPKCS11Logins(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	m.PKCS11Login("softhsm", "Root CA", "pin_incorrect")
	m.PKCS11Login("softhsm", "Root CA", "ok")
	m.PKCS11Login("softhsm", "Root CA", "ok")
	want := `
# HELP quill_pkcs11_logins_total PINs presented to PKCS#11 tokens (C_Login calls), by module, token and result (ok, pin_incorrect, error). HSMs lock a PIN after a few failures: alert on pin_incorrect.
# TYPE quill_pkcs11_logins_total counter
quill_pkcs11_logins_total{module="softhsm",result="ok",token="Root CA"} 2
quill_pkcs11_logins_total{module="softhsm",result="pin_incorrect",token="Root CA"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "quill_pkcs11_logins_total"); err != nil {
		t.Fatal(err)
	}
}
