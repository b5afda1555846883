// Command kube-apiserver is the upstream API server, built from the Go module
// proxy so that Quill's tests run against a real control plane on machines
// with no cluster and no envtest download site. The version is pinned in
// go.mod; hack/build-tools.sh stamps it into the binary.
package main

import (
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
