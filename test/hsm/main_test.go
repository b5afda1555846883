// Package hsm runs Quill's PKCS#11 issuers end to end against SoftHSM2: a
// real kube-apiserver and etcd, the real cert-manager controller, and the
// real quill-controller binary (built by `make build`) signing with keys on
// SoftHSM2 tokens.
//
// Every test has a token folder of its own and a quill-controller process
// of its own that reads it: SoftHSM reads its configuration once per
// process, so separate folders need separate processes, and a test then
// sees only what its own controller did (the PINs it presented to a token
// are read from that process's quill_pkcs11_logins_total). The test process
// itself never loads the library: keys and certificates are made with
// quillctl, as an operator would. One controller runs at a time, so the
// tests run one after another.
package hsm

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/test/harness"
	"github.com/quill-pki/quill/test/softhsm"
)

// clusterResourceNamespace is the controllers' cluster resource namespace.
const clusterResourceNamespace = "quill-system"

// controllerName is the binary the tests run.
const controllerName = "quill-controller"

var env *harness.Env

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, &env, func(e *harness.Env) (func(), error) {
		for _, ns := range []string{"cert-manager", clusterResourceNamespace} {
			if err := e.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
				return nil, err
			}
		}
		// cert-manager's built-in approver approves every request.
		if _, err := e.StartCertManager(); err != nil {
			return nil, err
		}
		return func() {}, nil
	}))
}

// hsmPIN and hsmSOPIN are the PINs of every test token.
const (
	hsmPIN   = "4321"
	hsmSOPIN = "123456"
)

// hsm is one test's SoftHSM2: a token folder, and the quill-controller
// process started on it.
type hsm struct {
	t       *testing.T
	dir     string   // working folder for quillctl's files
	environ []string // SOFTHSM2_CONF for every child process of the test
	metrics string   // the controller's metrics URL, once started
}

// newHSM gives the test a SoftHSM2 token folder holding tokens (user PIN
// hsmPIN) and a working folder. Start the controller once the keys are on
// the tokens.
func newHSM(t *testing.T, tokens ...string) *hsm {
	t.Helper()
	ts := make([]softhsm.Token, 0, len(tokens))
	for _, label := range tokens {
		ts = append(ts, softhsm.Token{Label: label, PIN: hsmPIN, SOPIN: hsmSOPIN})
	}
	conf, err := softhsm.Configure(t.TempDir(), ts...)
	if err != nil {
		t.Fatal(err)
	}
	return &hsm{t: t, dir: t.TempDir(), environ: []string{softhsm.EnvConf + "=" + conf}}
}

// namespace creates the test's namespace. Namespaces never finish
// terminating here (no namespace controller runs), so its QuillIssuers are
// deleted when the test ends: the next test's controller would otherwise
// keep reconciling them against tokens it does not have.
func (h *hsm) namespace() string {
	h.t.Helper()
	ns := env.Namespace(h.t, "hsm-")
	h.t.Cleanup(func() {
		if err := env.Client.DeleteAllOf(context.Background(), &quillv1.QuillIssuer{}, client.InNamespace(ns)); err != nil {
			h.t.Errorf("deleting the test's issuers: %v", err)
		}
	})
	return ns
}

// quillctl runs bin/quillctl on this test's tokens, in its working folder.
func (h *hsm) quillctl(args ...string) []byte {
	h.t.Helper()
	return env.Run(h.t, h.dir, h.environ, "quillctl", args...)
}

// keyURI is the pkcs11: URI quillctl uses for key label on token.
func keyURI(token, label string) string {
	return "pkcs11:token=" + token + ";object=" + label + "?module-path=" + softhsm.Module + "&pin-value=" + hsmPIN
}

// file is the path of name in the working folder.
func (h *hsm) file(name string) string { return filepath.Join(h.dir, name) }

// startController runs quill-controller on this test's tokens, allowing
// SoftHSM2 as module "softhsm", until the test ends or stop is called; a
// failed test prints its log. It returns that stop; a new process has
// metrics of its own.
func (h *hsm) startController() func() {
	h.t.Helper()
	addr, err := harness.FreeAddress()
	if err != nil {
		h.t.Fatal(err)
	}
	stop, err := env.StartProcessEnv(controllerName, h.environ,
		"--kubeconfig", env.Kubeconfig,
		"--cluster-resource-namespace", clusterResourceNamespace,
		"--pkcs11-module", "softhsm="+softhsm.Module,
		"--metrics-bind-address", addr,
		"--health-probe-bind-address", "0",
		"--revocation-bind-address", "0",
		"--max-retry-duration", "30s")
	if err != nil {
		h.t.Fatal(err)
	}
	h.metrics = "http://" + addr + "/metrics"
	var once sync.Once
	stopOnce := func() {
		once.Do(func() {
			if h.t.Failed() {
				h.t.Logf("--- %s log ---\n%s", controllerName, env.Log(controllerName))
			}
			if err := stop(); err != nil {
				h.t.Error(err)
			}
		})
	}
	h.t.Cleanup(stopOnce)
	return stopOnce
}

// logins is how many PINs the controller presented to token with result
// (ok, pin_incorrect, error; "" for all), from quill_pkcs11_logins_total.
func (h *hsm) logins(token, result string) float64 {
	h.t.Helper()
	labels := []string{fmt.Sprintf("token=%q", token)}
	if result != "" {
		labels = append(labels, fmt.Sprintf("result=%q", result))
	}
	return harness.Metric(h.t, h.metrics, "quill_pkcs11_logins_total", labels...)
}

// softhsmTool runs a SoftHSM2 or OpenSC command line tool on this test's
// tokens. While the running controller's library rewrites a token's files,
// another process listing the tokens can miss that token for a moment
// (pkcs11-tool: "No slot with token named ...", softhsm2-util: "Could not
// find a slot/token"); that case is tried again, briefly.
func (h *hsm) softhsmTool(name string, args ...string) {
	h.t.Helper()
	for attempt := 1; ; attempt++ {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), h.environ...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			return
		}
		if hidden := strings.Contains(string(out), "No slot with token") || strings.Contains(string(out), "Could not find a slot/token"); hidden && attempt < 20 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		h.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// importKey writes a software key pair to token under label and id with
// pkcs11-tool, as an operator moves an existing CA key into an HSM.
func (h *hsm) importKey(token string, key crypto.Signer, label, id string) {
	h.t.Helper()
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		h.t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		h.t.Fatal(err)
	}
	for typ, der := range map[string][]byte{"privkey": priv, "pubkey": pub} {
		file := filepath.Join(h.t.TempDir(), typ+".der")
		if err := os.WriteFile(file, der, 0o600); err != nil {
			h.t.Fatal(err)
		}
		h.softhsmTool("pkcs11-tool", "--module", softhsm.Module, "--token-label", token, "--login", "--pin", hsmPIN,
			"--write-object", file, "--type", typ, "--label", label, "--id", id)
	}
}

// reinitialise re-initialises token in place (C_InitToken on an
// initialised token), as an operator re-initialising an HSM partition
// would: every object on it is erased, the label and PINs stay. Deleting
// the token's folder and creating a new one instead can fail while the
// controller's library touches the folder.
func (h *hsm) reinitialise(token string) {
	h.t.Helper()
	h.softhsmTool("softhsm2-util", "--init-token", "--token", token, "--label", token, "--so-pin", hsmSOPIN, "--pin", hsmPIN)
}
