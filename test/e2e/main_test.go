// Package e2e runs Quill end to end: a real kube-apiserver and etcd, the real
// cert-manager controller (built by `make tools`), and Quill's controllers in
// this test process, driven through cert-manager Certificates as a user
// would. Issuers with HSM keys are tested in test/hsm, where each test has
// its own SoftHSM2 and its own quill-controller process.
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/quill-pki/quill/controllers"
	"github.com/quill-pki/quill/test/harness"
)

// clusterResourceNamespace is where QuillClusterIssuers read Secrets in
// these tests.
const clusterResourceNamespace = "quill-system"

// revocationAddr is where the in-process controller serves CRL and OCSP.
var revocationAddr string

var env *harness.Env

func TestMain(m *testing.M) {
	code := harness.Main(m, &env, startControllers)
	// startControllers's teardown re-checked the ledger while the API
	// server still ran.
	fmt.Fprintf(os.Stderr, "ledger re-check: %d certificates, %d also against their issuer's policy and template, %d problems\n",
		ledgerRecheck.checked, ledgerRecheck.withPolicy, len(ledgerRecheck.problems))
	for _, p := range ledgerRecheck.problems {
		fmt.Fprintln(os.Stderr, "FAIL: ledger re-check:", p)
	}
	if code == 0 && len(ledgerRecheck.problems) > 0 {
		code = 1
	}
	os.Exit(code)
}

// startControllers starts cert-manager (with its built-in approver turned
// off in favour of the suite's policyApprover) and Quill's controllers
// against the environment.
func startControllers(e *harness.Env) (func(), error) {
	ctx := context.Background()
	for _, ns := range []string{"cert-manager", clusterResourceNamespace} {
		if err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return nil, err
		}
	}
	if _, err := e.StartCertManager("--controllers=*,-certificaterequests-approver"); err != nil {
		return nil, err
	}
	var err error
	if revocationAddr, err = freeAddress(); err != nil {
		return nil, err
	}
	stop, err := e.StartQuill(controllers.Options{
		RevocationBindAddress:    revocationAddr,
		RevocationBaseURL:        "http://" + revocationAddr,
		ClusterResourceNamespace: clusterResourceNamespace,
		MaxRetryDuration:         30 * time.Second,
		MaxConcurrentReconciles:  4,
		AuditLog:                 audited.logger(),
		// Journals keep every certificate until sealed: the teardown
		// re-checks what the suite signed from them. Sealing is tested on
		// its own (test/integration's compactor tests).
		LedgerSealAfter: time.Hour,
	}, logLevel(), func(mgr ctrl.Manager) error {
		return ctrl.NewControllerManagedBy(mgr).Named("e2e-approver").For(&cmapi.CertificateRequest{}).
			Complete(&policyApprover{client: mgr.GetClient()})
	})
	if err != nil {
		return nil, err
	}
	return func() {
		// Every test has ended: re-check all they had signed.
		recheckLedger(ctx, e.Client)
		stop()
	}, nil
}
