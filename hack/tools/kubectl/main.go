// Command kubectl is the upstream Kubernetes command-line client, built from
// the Go module proxy like the other control-plane binaries, so that tests can
// print a CRD's table exactly as a user's `kubectl get` would show it (its
// printer columns, their types and formatting). The version is pinned in
// go.mod.
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
