// Package integration tests Quill's API and issuer controllers against a
// real kube-apiserver and etcd (no cert-manager controller): schema and CEL
// validation, and issuer readiness for good and broken CAs.
package integration

import (
	"context"
	"os"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/quill-pki/quill/controllers"
	"github.com/quill-pki/quill/test/harness"
)

const clusterResourceNamespace = "quill-system"

var env *harness.Env

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, &env, startQuill))
}

func startQuill(e *harness.Env) (func(), error) {
	if err := e.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: clusterResourceNamespace}}); err != nil {
		return nil, err
	}
	return e.StartQuill(controllers.Options{
		ClusterResourceNamespace: clusterResourceNamespace,
		MaxRetryDuration:         time.Minute,
		MaxConcurrentReconciles:  2,
		CRLPartSize:              crlPartSize,
	}, zapcore.ErrorLevel, nil)
}
