package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/names"
)

const oidUPN = "1.3.6.1.4.1.311.20.2.3"

// withUPN makes a Certificate ask for a UPN otherName, as Windows
// smart-card logon certificates do.
func withUPN(upn string) func(*cmapi.Certificate) {
	return func(c *cmapi.Certificate) {
		c.Spec.OtherNames = []cmapi.OtherName{{OID: oidUPN, UTF8Value: upn}}
		c.Spec.Usages = []cmapi.KeyUsage{cmapi.UsageDigitalSignature, cmapi.UsageClientAuth}
	}
}

// TestOtherNameUPN sends cert-manager Certificates with a UPN otherName
// through the real cert-manager controller and webhook: the one the
// issuer's allowedOtherNames allows is signed, carries the UPN (OpenSSL
// reads it back), and is in the ledger and the audit report; one for
// another namespace's domain, and one to an issuer whose policy says
// nothing of otherNames, are refused with the rule in the reason.
func TestOtherNameUPN(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ref := quillIssuer(t, ns, "upn", "ECDSA-P256", func(s *quillv1.IssuerSpec) {
		s.Policy = &quillv1.RequestPolicy{
			DNSNames:          []string{"*.example.test"},
			AllowedOtherNames: []quillv1.OtherNamePolicy{{TypeID: oidUPN, Values: []string{"*@{namespace}.example.com"}}},
		}
	})
	upn := "alice@" + ns + ".example.com"
	create(t, certificate(ns, "alice", ref, withUPN(upn)))
	secret := waitCertificateReady(t, ns, "alice")
	leaf := parseCerts(t, secret.Data["tls.crt"])[0]
	got, err := names.OtherNamesOfCertificate(leaf)
	if err != nil || len(got) != 1 || got[0].TypeID.String() != oidUPN || got[0].Value != upn {
		t.Fatalf("signed otherNames %v (%v); want the UPN %s", got, err, upn)
	}

	path := filepath.Join(t.TempDir(), "alice.pem")
	if err := os.WriteFile(path, secret.Data["tls.crt"], 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", path).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	for _, want := range []string{"DNS:alice.example.test", "othername: UPN::" + upn} {
		if !strings.Contains(string(out), want) {
			t.Errorf("openssl does not show %q:\n%s", want, out)
		}
	}

	_, bySerial := signedFor(t, ns, "upn")
	var recorded []quillv1.LedgerOtherName
	for _, e := range bySerial {
		if e.Spec.Origin.Certificate == "alice" {
			recorded = e.Spec.OtherNames
		}
	}
	if len(recorded) != 1 || recorded[0].TypeID != oidUPN || recorded[0].Value != upn {
		t.Errorf("ledger otherNames %v; want the UPN", recorded)
	}
	if _, err := os.Stat(filepath.Join(env.Root, "bin", "quillctl")); err == nil {
		report, _, err := auditReport("--kubeconfig", env.Kubeconfig, "--kind", "QuillIssuer", "--namespace", ns, "--issuer", "upn", "--format", "csv")
		if err != nil || !strings.Contains(report, "otherName:"+oidUPN+":"+upn) {
			t.Errorf("audit report (%v) does not list the UPN:\n%s", err, report)
		}
	} else {
		t.Logf("bin/quillctl is not built; the audit report's otherName column is checked in pkg/auditreport only")
	}

	create(t, certificate(ns, "mallory", ref, withUPN("administrator@corp.example.com")))
	if msg := waitRequestDenied(t, ns, "mallory"); !strings.Contains(msg, "refused by spec.policy.allowedOtherNames") || !strings.Contains(msg, "administrator@corp.example.com") {
		t.Errorf("refusal %q does not name the rule and the UPN", msg)
	}

	silent := quillIssuer(t, ns, "silent", "ECDSA-P256", func(s *quillv1.IssuerSpec) {
		s.Policy = &quillv1.RequestPolicy{DNSNames: []string{"*.example.test"}}
	})
	create(t, certificate(ns, "bob", silent, withUPN("bob@"+ns+".example.com")))
	if msg := waitRequestDenied(t, ns, "bob"); !strings.Contains(msg, "refused by spec.policy.allowedOtherNames") {
		t.Errorf("refusal %q does not name spec.policy.allowedOtherNames", msg)
	}
	if per, _ := signedFor(t, ns, "silent"); per["bob"] != 0 {
		t.Errorf("the ledger holds %d certificates for bob; want none", per["bob"])
	}
}
