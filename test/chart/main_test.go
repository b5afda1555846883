// Package chart tests the Helm chart charts/quill against a real control
// plane: helm lint, the rendered manifests accepted by kube-apiserver
// (server-side dry-run), and the rendered Deployment actually run — its
// args, environment and mounted files handed to quill-controller, under the
// chart's ServiceAccount — issuing certificates through the real
// cert-manager controller, alone and as two replicas under leader election.
package chart

import (
	"context"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/quill-pki/quill/test/harness"
)

// releaseNamespace is the namespace the chart is installed in.
const releaseNamespace = "quill-system"

var env *harness.Env

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, &env, func(e *harness.Env) (func(), error) {
		for _, ns := range []string{"cert-manager", releaseNamespace} {
			if err := e.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
				return nil, err
			}
		}
		// cert-manager's built-in approver approves requests for Quill's
		// issuers, as in a default installation.
		_, err := e.StartCertManager()
		return nil, err
	}))
}
