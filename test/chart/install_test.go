package chart

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"golang.org/x/crypto/ocsp"
	authzv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/test/harness"
)

var metav1CreateOptions = metav1.CreateOptions{}

const waitTimeout = 2 * time.Minute

// softHSMModule is where Debian's softhsm2 package (installed by `make
// deps`) puts its PKCS#11 library; it stands in for a vendor's library.
const softHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	harness.Eventually(t, what, waitTimeout, cond)
}

func newNamespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), ns) })
}

// bootstrapIssuer creates a QuillClusterIssuer with a root Quill generates
// and waits until it is Ready.
func bootstrapIssuer(t *testing.T, name string) cmmeta.IssuerReference {
	t.Helper()
	iss := &quillv1.QuillClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{
			SecretName: name + "-ca", Subject: quillv1.Subject{CommonName: name + " root"}, KeyAlgorithm: "ECDSA-P256",
		}}},
	}
	if err := env.Client.Create(context.Background(), iss); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), iss) })
	eventually(t, "issuer "+name+" Ready", func() (bool, error) {
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(iss), iss); err != nil {
			return false, err
		}
		for _, c := range iss.Status.Conditions {
			if c.Type == "Ready" && c.ObservedGeneration == iss.Generation && c.Status == metav1.ConditionTrue {
				return true, nil
			}
		}
		return false, fmt.Errorf("conditions %+v", iss.Status.Conditions)
	})
	return cmmeta.IssuerReference{Group: "quill.dev", Kind: quillv1.ClusterIssuerKind, Name: name}
}

func newCertificate(ns, name string, ref cmmeta.IssuerReference) *cmapi.Certificate {
	return &cmapi.Certificate{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: cmapi.CertificateSpec{
			SecretName: name + "-tls", DNSNames: []string{name + "." + ns + ".svc"}, IssuerRef: ref,
			PrivateKey: &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256},
		},
	}
}

func certificateReady(ctx context.Context, key client.ObjectKey) (bool, error) {
	var crt cmapi.Certificate
	if err := env.Client.Get(ctx, key, &crt); err != nil {
		return false, err
	}
	for _, c := range crt.Status.Conditions {
		if c.Type == cmapi.CertificateConditionReady && c.Status == cmmeta.ConditionTrue {
			return true, nil
		}
	}
	return false, fmt.Errorf("certificate %s: %+v", key, crt.Status.Conditions)
}

// TestChartInstallIssues installs the rendered chart, runs its Deployment's
// container as the chart's ServiceAccount (so the chart's RBAC is all the
// controller has), with a PKCS#11 library allowed and configured the way
// the chart documents, and issues a certificate through cert-manager.
func TestChartInstallIssues(t *testing.T) {
	ctx := context.Background()
	hsmConf := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", t.TempDir())
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: releaseNamespace, Name: "softhsm-config"},
		Data:       map[string]string{"softhsm2.conf": hsmConf},
	}
	if err := env.Client.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), cm) })
	values := `
replicaCount: 1
pkcs11:
  modules: [{name: softhsm, path: ` + softHSMModule + `}]
volumes: [{name: softhsm-config, configMap: {name: softhsm-config}}]
volumeMounts: [{name: softhsm-config, mountPath: /etc/softhsm-quill, readOnly: true}]
extraEnv: [{name: SOFTHSM2_CONF, value: /etc/softhsm-quill/softhsm2.conf}]
`
	dep := install(t, render(t, values))
	c := dep.Spec.Template.Spec.Containers[0]
	if !strings.Contains(strings.Join(c.Args, " "), "--pkcs11-module=softhsm="+softHSMModule) {
		t.Fatalf("args %v lack the PKCS#11 module", c.Args)
	}
	p := startPod(t, dep, "pod-0")
	p.waitReady(t, dep)
	// The rewritten SOFTHSM2_CONF names the mounted file.
	if env := p.cmd.Env; !containsPrefix(env, "SOFTHSM2_CONF=") {
		t.Fatalf("environment %v lacks SOFTHSM2_CONF", env)
	}

	ref := bootstrapIssuer(t, "chart-root")
	newNamespace(t, "chart-app")
	if err := env.Client.Create(ctx, newCertificate("chart-app", "web", ref)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Certificate chart-app/web Ready", func() (bool, error) {
		return certificateReady(ctx, client.ObjectKey{Namespace: "chart-app", Name: "web"})
	})
	var secret corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "chart-app", Name: "web-tls"}, &secret); err != nil {
		t.Fatal(err)
	}
	harness.VerifyChain(t, &secret, x509.ExtKeyUsageServerAuth)

	// The trust bundle reached the cluster resource namespace: the chart
	// lets the controller write ConfigMaps.
	eventually(t, "trust bundle of chart-root", func() (bool, error) {
		var b corev1.ConfigMap
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "chart-root-ca-bundle"}, &b)
		return err == nil && b.Data[quillv1.TrustBundleKey] != "" && strings.Contains(string(secret.Data["ca.crt"]), strings.TrimSpace(b.Data[quillv1.TrustBundleKey])), err
	})

	// cert-manager's ServiceAccount may approve requests for Quill's
	// signers, and nothing else, through the chart's approver binding.
	// cert-manager's webhook asks with the literal name "<signer>/*" (all
	// issuers of a kind), as here, or with the one issuer's name.
	for signer, want := range map[string]bool{
		"quillclusterissuers.quill.dev/*": true,
		"quillissuers.quill.dev/*":        true,
		"issuers.cert-manager.io/*":       false,
	} {
		sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User:   "system:serviceaccount:cert-manager:cert-manager",
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:cert-manager", "system:authenticated"},
			ResourceAttributes: &authzv1.ResourceAttributes{
				Group: "cert-manager.io", Resource: "signers", Verb: "approve", Name: signer,
			},
		}}
		if err := env.Client.Create(ctx, sar); err != nil {
			t.Fatal(err)
		}
		if sar.Status.Allowed != want {
			t.Errorf("cert-manager may approve %s: %v, want %v", signer, sar.Status.Allowed, want)
		}
	}

	// Everything the controller did, it was allowed to do.
	log, _ := os.ReadFile(p.log)
	if strings.Contains(string(log), "forbidden") {
		t.Errorf("the controller was refused by RBAC:\n%s", grepLines(string(log), "forbidden"))
	}
}

// TestChartHighAvailability runs the chart's two replicas under leader
// election, kills the leader while Certificates keep arriving, and checks
// that only a leader signed, that every Certificate became Ready, and that
// no CertificateRequest ever carried two different certificates.
func TestChartHighAvailability(t *testing.T) {
	ctx := context.Background()
	dep := install(t, render(t, ""))
	if r := dep.Spec.Replicas; r == nil || *r != 2 {
		t.Fatalf("the chart's default replicas is %v, want 2", r)
	}
	// A lease left by an earlier test's process would make both wait for
	// it to expire.
	_ = env.Client.Delete(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNamespace, Name: "quill-controller.quill.dev"}})
	pods := []*pod{startPod(t, dep, "pod-0"), startPod(t, dep, "pod-1")}
	for _, p := range pods {
		p.waitReady(t, dep)
	}
	leaderOf := func() (*pod, *pod) {
		var leader, follower *pod
		eventually(t, "a single leader", func() (bool, error) {
			leader, follower = nil, nil
			n := 0
			for _, p := range pods {
				if p.metric(t, "leader_election_master_status") == 1 {
					leader, n = p, n+1
				} else {
					follower = p
				}
			}
			return n == 1, fmt.Errorf("%d leaders", n)
		})
		return leader, follower
	}
	leader, follower := leaderOf()
	t.Logf("leader %s, follower %s", leader.name, follower.name)
	ref := bootstrapIssuer(t, "ha-root")

	const ns, total, killAfter = "ha", 24, 8
	newNamespace(t, ns)
	rec := watchRequests(t, ns)

	signedBy := map[string]float64{}
	for i := range total {
		if i == killAfter {
			// Wait until the leader has signed some of the stream, then
			// crash it (no graceful lease release).
			eventually(t, "the leader signing", func() (bool, error) {
				return leader.metric(t, "controller_runtime_reconcile_total", `controller="certificaterequest"`) > 0, nil
			})
			if n := follower.metric(t, "controller_runtime_reconcile_total", `controller="certificaterequest"`); n != 0 {
				t.Fatalf("the follower %s reconciled %v CertificateRequests", follower.name, n)
			}
			// Both replicas answer OCSP and serve the CRL; only the leader
			// signs CRLs.
			servesRevocation(t, ns, "c00", leader, follower)
			if n := follower.metric(t, "controller_runtime_reconcile_total", `controller="crl-clusterissuer"`); n != 0 {
				t.Fatalf("the follower %s ran the CRL signer %v times", follower.name, n)
			}
			signedBy[leader.name] = leader.metric(t, "controller_runtime_reconcile_total", `controller="certificaterequest"`, `result="success"`)
			leader.kill(9)
			t.Logf("killed leader %s after %d Certificates", leader.name, i)
		}
		if err := env.Client.Create(ctx, newCertificate(ns, fmt.Sprintf("c%02d", i), ref)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	for i := range total {
		key := client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("c%02d", i)}
		eventually(t, "Certificate "+key.String()+" Ready", func() (bool, error) { return certificateReady(ctx, key) })
	}
	if follower.metric(t, "leader_election_master_status") != 1 {
		t.Fatalf("%s did not take over", follower.name)
	}
	signedBy[follower.name] = follower.metric(t, "controller_runtime_reconcile_total", `controller="certificaterequest"`, `result="success"`)
	// The follower reconciled no request before the leader died, and
	// after that the dead process could sign nothing: every request was
	// signed by whichever process led at the time.
	t.Logf("successful request reconciles by process: %v", signedBy)
	if signedBy[follower.name] == 0 {
		t.Errorf("the new leader %s reconciled no request", follower.name)
	}

	// The new leader signs CRLs: a revocation after the failover reaches
	// its CRL and its OCSP answers.
	revokeAndCheck(t, ns, "c01", follower)

	// Every request was signed once: one request per Certificate, Ready,
	// one certificate ever seen on it, and that is the one in the Secret
	// and the only one the ledger recorded for it.
	rec.stop()
	ledgerSerials := ledgerSerialsByRequest(t)
	var list cmapi.CertificateRequestList
	if err := env.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != total {
		t.Errorf("%d CertificateRequests for %d Certificates", len(list.Items), total)
	}
	serials := map[string]string{}
	for _, cr := range list.Items {
		seen := rec.certificates(string(cr.UID))
		if len(seen) != 1 {
			t.Errorf("CertificateRequest %s carried %d different certificates", cr.Name, len(seen))
		}
		leaf := firstCert(t, cr.Status.Certificate)
		if other, dup := serials[leaf.SerialNumber.String()]; dup {
			t.Errorf("serial %s issued to both %s and %s", leaf.SerialNumber, other, cr.Name)
		}
		serials[leaf.SerialNumber.String()] = cr.Name
		crtName := cr.Annotations[cmapi.CertificateNameKey]
		var s corev1.Secret
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: crtName + "-tls"}, &s); err != nil {
			t.Fatal(err)
		}
		if !firstCert(t, s.Data["tls.crt"]).Equal(leaf) {
			t.Errorf("Secret of %s does not hold the certificate of its request %s", crtName, cr.Name)
		}
		if got := ledgerSerials[string(cr.UID)]; len(got) != 1 || got[0] != leaf.SerialNumber.Text(16) {
			t.Errorf("ledger records for request %s: %v, want [%x]", cr.Name, got, leaf.SerialNumber)
		}
	}
}

// ledgerSerialsByRequest maps request UIDs to the serials the ledger
// recorded for them: the entries of every LedgerSegment in the release
// namespace, and of the IssuedCertificates of a ledger not migrated yet.
// A serial in more than one object (a journal not deleted yet after its
// entries were sealed) is one entry, so it counts once.
func ledgerSerialsByRequest(t *testing.T) map[string][]string {
	t.Helper()
	ctx := context.Background()
	out := map[string][]string{}
	seen := map[string]bool{}
	add := func(e *ledger.Entry) {
		if e.IsRevocationLine() || seen[e.Serial] {
			return
		}
		seen[e.Serial] = true
		out[e.Origin.UID] = append(out[e.Origin.UID], e.Serial)
	}
	var segs quillv1.LedgerSegmentList
	if err := env.Client.List(ctx, &segs, client.InNamespace(releaseNamespace)); err != nil {
		t.Fatal(err)
	}
	for i := range segs.Items {
		if err := ledger.SegmentEntries(&segs.Items[i], func(e *ledger.Entry) error { add(e); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	var list quillv1.IssuedCertificateList
	if err := env.Client.List(ctx, &list, client.InNamespace(releaseNamespace)); err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		e, err := ledger.EntryOfLegacy(&list.Items[i])
		if err != nil {
			t.Fatal(err)
		}
		add(&e)
	}
	return out
}

// ocspStatus asks pod p's OCSP responder about the certificate in the
// Secret of Certificate ns/name.
func ocspStatus(t *testing.T, p *pod, ns, name string) int {
	t.Helper()
	var s corev1.Secret
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name + "-tls"}, &s); err != nil {
		t.Fatal(err)
	}
	leaf, ca := firstCert(t, s.Data["tls.crt"]), firstCert(t, s.Data["ca.crt"])
	req, err := ocsp.CreateRequest(leaf, ca, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/ocsp/clusterissuer/ha-root", p.ports["http"]), "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		t.Fatalf("OCSP on %s: %v", p.name, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	r, err := ocsp.ParseResponseForCert(body, leaf, ca)
	if err != nil {
		t.Fatalf("OCSP answer of %s: %v", p.name, err)
	}
	return r.Status
}

// crlOf fetches the CRL that pod p serves for ha-root; an error (no CRL
// yet, an HTTP error) is for a wait to retry.
func crlOf(p *pod) (*x509.RevocationList, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/crl/clusterissuer/ha-root.crl", p.ports["http"]))
	if err != nil {
		return nil, fmt.Errorf("CRL from %s: %w", p.name, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("CRL from %s: %w", p.name, err)
	}
	crl, err := x509.ParseRevocationList(body)
	if err != nil {
		return nil, fmt.Errorf("CRL from %s (HTTP %d): %w", p.name, resp.StatusCode, err)
	}
	return crl, nil
}

func servesRevocation(t *testing.T, ns, name string, pods ...*pod) {
	t.Helper()
	key := client.ObjectKey{Namespace: ns, Name: name}
	eventually(t, "Certificate "+key.String()+" Ready", func() (bool, error) { return certificateReady(context.Background(), key) })
	var numbers []string
	for _, p := range pods {
		if st := ocspStatus(t, p, ns, name); st != ocsp.Good {
			t.Errorf("%s answers OCSP status %d for a good certificate", p.name, st)
		}
		var crl *x509.RevocationList
		eventually(t, p.name+" serving the CRL", func() (bool, error) {
			var err error
			crl, err = crlOf(p)
			return err == nil, err
		})
		numbers = append(numbers, crl.Number.String())
	}
	if numbers[0] != numbers[1] {
		t.Errorf("the replicas serve different CRLs: numbers %v", numbers)
	}
}

func revokeAndCheck(t *testing.T, ns, name string, p *pod) {
	t.Helper()
	rev := &quillv1.QuillRevocation{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "revoke-" + name},
		Spec: quillv1.QuillRevocationSpec{IssuerRef: quillv1.RevocationIssuerRef{Kind: quillv1.ClusterIssuerKind, Name: "ha-root"},
			CertificateName: name, Reason: quillv1.ReasonKeyCompromise},
	}
	if err := env.Client.Create(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
	eventually(t, "OCSP revoked on "+p.name, func() (bool, error) { return ocspStatus(t, p, ns, name) == ocsp.Revoked, nil })
	eventually(t, "CRL with the revocation on "+p.name, func() (bool, error) {
		crl, err := crlOf(p)
		return err == nil && len(crl.RevokedCertificateEntries) == 1, err
	})
}

func firstCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func containsPrefix(l []string, prefix string) bool {
	for _, s := range l {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return lastLines(strings.Join(out, "\n"), 10)
}
