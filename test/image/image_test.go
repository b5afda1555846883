package image

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"golang.org/x/crypto/ocsp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/test/harness"
	"github.com/quill-pki/quill/test/softhsm"
)

// TestImageRunsAsTheChartRunsIt runs one replica of the chart's Deployment
// from the image, confined as its securityContext says, and checks the
// confinement from the host, leadership, a Certificate signed through
// cert-manager, and the OCSP, CRL and metrics endpoints.
func TestImageRunsAsTheChartRunsIt(t *testing.T) {
	dep := install(t, render(t, "replicaCount: 1\n"))
	p := startPod(t, dep, "pod-0")
	p.waitReady(t, dep)
	checkConfinement(t, dep, p)
	waitLeader(t, p)

	ref := clusterIssuer(t, "image-root")
	ns := env.Namespace(t, "image-")
	env.Create(t, harness.Certificate(ns, "web", ref))
	secret := env.WaitCertificateReady(t, ns, "web")
	harness.VerifyChain(t, secret, x509.ExtKeyUsageServerAuth)

	issuerPath := "clusterissuer/image-root"
	if st := ocspStatus(t, p, issuerPath, secret); st != ocsp.Good {
		t.Errorf("OCSP status %d for a good certificate, want Good", st)
	}
	waitCRL(t, p, issuerPath, 0)
	if n := p.metric(t, "controller_runtime_reconcile_total", `controller="certificaterequest"`, `result="success"`); n < 1 {
		t.Errorf("the metrics endpoint counts %v successful CertificateRequest reconciles, want at least 1", n)
	}
	noRBACRefusals(t, p)
}

// TestImagePKCS11 runs the image with a PKCS#11 issuer: the SoftHSM2
// library and its token folder are mounted into the container from the
// host (hostPath volumes, as an operator mounts a vendor's HSM client), its
// configuration from a ConfigMap, and the module allowed by name through
// the chart's pkcs11.modules.
func TestImagePKCS11(t *testing.T) {
	ctx := context.Background()
	const (
		token, pin, soPIN = "image", "4321", "123456"
		libDir            = "/opt/hsm-client/lib"
		tokenDir          = "/var/lib/softhsm/tokens"
	)
	// The token, its CA key and a self-signed CA certificate, made on the
	// host with quillctl as an operator would.
	dir := t.TempDir()
	conf, err := softhsm.Configure(dir, softhsm.Token{Label: token, PIN: pin, SOPIN: soPIN})
	if err != nil {
		t.Fatal(err)
	}
	hostEnv := []string{softhsm.EnvConf + "=" + conf}
	uri := "pkcs11:token=" + token + ";object=ca-key?module-path=" + softhsm.Module + "&pin-value=" + pin
	env.Run(t, dir, hostEnv, "quillctl", "hsm", "keygen", "--key", uri, "--key-algorithm", "ECDSA-P256")
	env.Run(t, dir, hostEnv, "quillctl", "ca", "init", "--key", uri, "--subject", "CN=Image HSM root",
		"--validity", "8760h", "--out-cert", "ca.crt")
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	// The controller runs as 65532 and SoftHSM2 writes to its token
	// folder: the token belongs to that user, as an operator gives the HSM
	// client's state to the pod's user.
	hostTokens := filepath.Join(dir, "tokens")
	chownTree(t, hostTokens, 65532, 65532)
	lib, err := filepath.EvalSymlinks(softhsm.Module)
	if err != nil {
		t.Fatal(err)
	}

	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: releaseNamespace, Name: "softhsm-config"},
		Data: map[string]string{"softhsm2.conf": "directories.tokendir = " + tokenDir +
			"\nobjectstore.backend = file\nlog.level = ERROR\n"},
	}
	env.Create(t, cm)
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), cm) })
	values := fmt.Sprintf(`
replicaCount: 1
pkcs11:
  modules: [{name: softhsm, path: %[1]s/%[2]s}]
volumes:
  - {name: hsm-client, hostPath: {path: %[3]s, type: Directory}}
  - {name: hsm-tokens, hostPath: {path: %[4]s, type: Directory}}
  - {name: softhsm-config, configMap: {name: softhsm-config}}
volumeMounts:
  - {name: hsm-client, mountPath: %[1]s, readOnly: true}
  - {name: hsm-tokens, mountPath: %[5]s}
  - {name: softhsm-config, mountPath: /etc/softhsm-quill, readOnly: true}
extraEnv: [{name: SOFTHSM2_CONF, value: /etc/softhsm-quill/softhsm2.conf}]
`, libDir, filepath.Base(lib), filepath.Dir(lib), hostTokens, tokenDir)
	dep := install(t, render(t, values))
	if args := strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " "); !strings.Contains(args, "--pkcs11-module=softhsm="+libDir+"/") {
		t.Fatalf("args %s lack the PKCS#11 module", args)
	}
	p := startPod(t, dep, "pod-0")
	p.waitReady(t, dep)
	checkConfinement(t, dep, p)
	waitLeader(t, p)

	ns := env.Namespace(t, "image-hsm-")
	env.Create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hsm-ca"},
		Data: map[string][]byte{"tls.crt": caPEM, "ca.crt": caPEM}})
	env.Create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hsm-pin"},
		Data: map[string][]byte{"pin": []byte(pin)}})
	iss := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hsm"},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{PKCS11: &quillv1.PKCS11CA{
			Module: "softhsm", TokenLabel: token, KeyLabel: "ca-key",
			PINSecretRef:         quillv1.SecretKeySelector{Name: "hsm-pin"},
			CertificateSecretRef: &quillv1.SecretReference{Name: "hsm-ca"},
		}}},
	}
	env.Create(t, iss)
	// The issuer goes before the namespace: a controller of a later test
	// would otherwise keep reconciling it against a token it cannot see.
	t.Cleanup(func() { _ = env.Client.Delete(ctx, iss) })
	env.WaitIssuerReady(t, iss)
	env.Create(t, harness.Certificate(ns, "leaf", cmmeta.IssuerReference{Group: "quill.dev", Kind: "QuillIssuer", Name: "hsm"}))
	secret := env.WaitCertificateReady(t, ns, "leaf")
	leaf := harness.VerifyChain(t, secret, x509.ExtKeyUsageServerAuth)
	if ca := firstCert(t, caPEM); leaf.CheckSignatureFrom(ca) != nil {
		t.Error("the leaf is not signed by the HSM's CA key")
	}
	if n := p.metric(t, "quill_pkcs11_logins_total", `result="ok"`); n < 1 {
		t.Errorf("quill_pkcs11_logins_total{result=\"ok\"} is %v: the container did not log in to the token", n)
	}
	if st := ocspStatus(t, p, "issuer/"+ns+"/hsm", secret); st != ocsp.Good {
		t.Errorf("OCSP status %d for a good certificate, want Good", st)
	}
	noRBACRefusals(t, p)
}

// TestImageHighAvailability runs the chart's two replicas from the image:
// one leads and signs, the other serves OCSP and the CRL without signing;
// the leader's container is killed, the other takes over, signs a new
// Certificate, and publishes a revocation in its CRL and OCSP answers.
func TestImageHighAvailability(t *testing.T) {
	dep := install(t, render(t, ""))
	if r := dep.Spec.Replicas; r == nil || *r != 2 {
		t.Fatalf("the chart's default replicas is %v, want 2", r)
	}
	pods := []*pod{startPod(t, dep, "pod-0"), startPod(t, dep, "pod-1")}
	for _, p := range pods {
		p.waitReady(t, dep)
	}
	var leader, follower *pod
	harness.Eventually(t, "a single leader", harness.WaitTimeout, func() (bool, error) {
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
	t.Logf("leader %s, follower %s", leader.name, follower.name)

	ref := clusterIssuer(t, "image-ha-root")
	issuerPath := "clusterissuer/image-ha-root"
	ns := env.Namespace(t, "image-ha-")
	env.Create(t, harness.Certificate(ns, "before", ref))
	before := env.WaitCertificateReady(t, ns, "before")
	const requests = `controller="certificaterequest"`
	if n := follower.metric(t, "controller_runtime_reconcile_total", requests); n != 0 {
		t.Fatalf("the follower %s reconciled %v CertificateRequests", follower.name, n)
	}
	// Both replicas answer OCSP and serve the same CRL; only the leader
	// signs CRLs.
	for _, p := range pods {
		if st := ocspStatus(t, p, issuerPath, before); st != ocsp.Good {
			t.Errorf("%s answers OCSP status %d for a good certificate", p.name, st)
		}
	}
	if a, b := waitCRL(t, leader, issuerPath, 0), waitCRL(t, follower, issuerPath, 0); a.Number.Cmp(b.Number) != 0 {
		t.Errorf("the replicas serve different CRLs: numbers %v and %v", a.Number, b.Number)
	}
	if n := follower.metric(t, "controller_runtime_reconcile_total", `controller="crl-clusterissuer"`); n != 0 {
		t.Fatalf("the follower %s ran the CRL signer %v times", follower.name, n)
	}

	leader.kill(t)
	t.Logf("killed the leader's container %s", leader.name)
	harness.Eventually(t, follower.name+" leading", harness.WaitTimeout, func() (bool, error) {
		return follower.metric(t, "leader_election_master_status") == 1, nil
	})
	env.Create(t, harness.Certificate(ns, "after", ref))
	after := env.WaitCertificateReady(t, ns, "after")
	harness.VerifyChain(t, after, x509.ExtKeyUsageServerAuth)
	if n := follower.metric(t, "controller_runtime_reconcile_total", requests, `result="success"`); n < 1 {
		t.Errorf("the new leader %s reconciled no CertificateRequest", follower.name)
	}

	// The new leader signs CRLs: a revocation reaches its CRL and its
	// OCSP answers.
	env.Create(t, &quillv1.QuillRevocation{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "revoke-before"},
		Spec: quillv1.QuillRevocationSpec{IssuerRef: quillv1.RevocationIssuerRef{Kind: "QuillClusterIssuer", Name: "image-ha-root"},
			CertificateName: "before", Reason: quillv1.ReasonKeyCompromise},
	})
	harness.Eventually(t, "OCSP revoked on "+follower.name, harness.WaitTimeout, func() (bool, error) {
		return ocspStatus(t, follower, issuerPath, before) == ocsp.Revoked, nil
	})
	waitCRL(t, follower, issuerPath, 1)
}

// checkConfinement checks, from the host's view of the container's first
// process, what the Deployment's securityContext asks for.
func checkConfinement(t *testing.T, dep *appsv1.Deployment, p *pod) {
	t.Helper()
	spec := dep.Spec.Template.Spec
	psc, csc := spec.SecurityContext, spec.Containers[0].SecurityContext
	if psc == nil || csc == nil {
		t.Fatal("the chart sets no pod or container securityContext")
	}
	uid := ptr.Deref(firstSet(csc.RunAsUser, psc.RunAsUser), -1)
	gid := ptr.Deref(firstSet(csc.RunAsGroup, psc.RunAsGroup), -1)
	if uid != 65532 || gid != 65532 {
		t.Errorf("the chart runs the container as %d:%d, want the image's 65532:65532", uid, gid)
	}
	st := procStatus(t, p.name)
	ids := func(id int64) string { s := strconv.FormatInt(id, 10); return strings.Join([]string{s, s, s, s}, " ") }
	for field, want := range map[string]string{
		"Uid": ids(uid), "Gid": ids(gid),
		// Every capability dropped, none left to regain.
		"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
		"CapBnd": "0000000000000000", "CapAmb": "0000000000000000",
		"NoNewPrivs": "1", // allowPrivilegeEscalation: false
		"Seccomp":    "2", // a filter: RuntimeDefault
	} {
		if st[field] != want {
			t.Errorf("%s: %s is %q, want %q", p.name, field, st[field], want)
		}
	}
	if fsGroup := psc.FSGroup; fsGroup != nil && !slices.Contains(strings.Fields(st["Groups"]), strconv.FormatInt(*fsGroup, 10)) {
		t.Errorf("%s: groups %q lack fsGroup %d", p.name, st["Groups"], *fsGroup)
	}
	if ptr.Deref(csc.ReadOnlyRootFilesystem, false) != true {
		t.Error("the chart does not make the root filesystem read-only")
	}
	opts := rootMountOptions(t, p.name)
	if !slices.Contains(opts, "ro") {
		t.Errorf("%s: the root filesystem is mounted %v, want ro", p.name, opts)
	}
	t.Logf("%s: Uid %s, Gid %s, Groups %s, CapEff %s, CapBnd %s, NoNewPrivs %s, Seccomp %s, / mounted %s",
		p.name, st["Uid"], st["Gid"], st["Groups"], st["CapEff"], st["CapBnd"], st["NoNewPrivs"], st["Seccomp"], strings.Join(opts, ","))
}

// waitLeader waits until p holds the leader election lease.
func waitLeader(t *testing.T, p *pod) {
	t.Helper()
	harness.Eventually(t, p.name+" leading", harness.WaitTimeout, func() (bool, error) {
		return p.metric(t, "leader_election_master_status") == 1, nil
	})
}

// clusterIssuer creates a QuillClusterIssuer with a root Quill generates,
// waits until it is Ready, and deletes it after the test.
func clusterIssuer(t *testing.T, name string) cmmeta.IssuerReference {
	t.Helper()
	iss := &quillv1.QuillClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{
			SecretName: name + "-ca", Subject: quillv1.Subject{CommonName: name}, KeyAlgorithm: "ECDSA-P256",
		}}},
	}
	env.Create(t, iss)
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), iss) })
	env.WaitIssuerReady(t, iss)
	return cmmeta.IssuerReference{Group: "quill.dev", Kind: "QuillClusterIssuer", Name: name}
}

// ocspStatus asks p's OCSP responder for issuerPath ("clusterissuer/<name>"
// or "issuer/<namespace>/<name>") about the certificate in secret.
func ocspStatus(t *testing.T, p *pod, issuerPath string, secret *corev1.Secret) int {
	t.Helper()
	leaf, ca := firstCert(t, secret.Data["tls.crt"]), firstCert(t, secret.Data["ca.crt"])
	req, err := ocsp.CreateRequest(leaf, ca, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/ocsp/%s", p.ports["http"], issuerPath), "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		t.Fatalf("OCSP on %s: %v", p.name, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	r, err := ocsp.ParseResponseForCert(body, leaf, ca)
	if err != nil {
		t.Fatalf("OCSP answer of %s (HTTP %d): %v", p.name, resp.StatusCode, err)
	}
	return r.Status
}

// waitCRL waits until p serves a CRL for issuerPath with revoked entries,
// and returns it.
func waitCRL(t *testing.T, p *pod, issuerPath string, revoked int) *x509.RevocationList {
	t.Helper()
	var crl *x509.RevocationList
	harness.Eventually(t, fmt.Sprintf("%s serving a CRL with %d entries", p.name, revoked), harness.WaitTimeout, func() (bool, error) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/crl/%s.crl", p.ports["http"], issuerPath))
		if err != nil {
			return false, err
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return false, err
		}
		if crl, err = x509.ParseRevocationList(body); err != nil {
			return false, fmt.Errorf("HTTP %d: %w", resp.StatusCode, err)
		}
		return len(crl.RevokedCertificateEntries) == revoked, fmt.Errorf("%d entries", len(crl.RevokedCertificateEntries))
	})
	return crl
}

// noRBACRefusals fails the test if the API server refused the controller
// anything: the chart's RBAC must grant all it does.
func noRBACRefusals(t *testing.T, p *pod) {
	t.Helper()
	logs, err := containerLogs(p.name, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "forbidden") {
			t.Errorf("%s was refused by RBAC: %s", p.name, l)
		}
	}
}

// chownTree gives dir and everything under it to uid:gid.
func chownTree(t *testing.T, dir string, uid, gid int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
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
