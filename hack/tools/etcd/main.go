// Command etcd is the upstream etcd server, built from the Go module proxy.
//
// Quill's tests run against a real control plane (etcd and kube-apiserver)
// rather than fakes, and the machines they run on have neither a cluster nor
// access to the envtest download site; the Go module proxy is the one source
// they can reach. This throwaway module keeps etcd's dependency graph out of
// Quill's own go.mod. The version is pinned in go.mod; hack/build-tools.sh
// builds it into bin/etcd.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	// etcdmain parses the flags itself, so it gets the full argv.
	etcdmain.Main(os.Args)
}
