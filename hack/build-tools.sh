#!/usr/bin/env bash
# Builds the control-plane binaries the tests run against (kube-apiserver,
# etcd, the cert-manager controller and webhook, kubectl) from the Go module proxy, each from its
# own throwaway module under hack/tools/, so that their dependency graphs stay
# out of Quill's go.mod.
#
# A build is keyed by the hash of its module (go.mod, go.sum, sources) and the
# Go version, and kept in a cache outside the work tree
# (QUILL_TOOLS_CACHE, default ~/.cache/quill/tools), so a fresh clone on the
# same machine (CI) reuses it; bin/<tool> links to the cached build. A tool is
# rebuilt only when its key changes: the kube-apiserver cold build takes about
# 11 minutes on two cores.
#
# Usage: hack/build-tools.sh [kube-apiserver] [etcd] [cert-manager-controller] [cert-manager-webhook] [kubectl] [controller-gen] [helm]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${QUILL_TOOLS_CACHE:-${HOME}/.cache/quill/tools}
bindir=${root}/bin
mkdir -p "${cache}" "${bindir}"

tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(controller-gen etcd kube-apiserver cert-manager-controller cert-manager-webhook kubectl helm)

# pinned prints the version of module $2 required by the tool module in $1.
pinned() {
	awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$1/go.mod"
}

build() {
	local tool=$1 dir=${root}/hack/tools/$1 ldflags="-s -w" pkg=. version=""
	# A module with a "tool" directive builds that upstream main package
	# instead of a main.go of its own.
	local toolpkg
	toolpkg=$(awk '$1 == "tool" { print $2; exit }' "${dir}/go.mod" 2>/dev/null || true)
	[ -z "${toolpkg}" ] || pkg=${toolpkg}
	[ -d "${dir}" ] || { echo "build-tools: unknown tool ${tool}" >&2; return 2; }
	# stamp: -X flags that depend only on pinned versions; they are part of
	# the cache key, so a change to them rebuilds the tool.
	local stamp=""
	if [ "${tool}" = helm ]; then
		# The same stamps as helm's own release build: its version, and the
		# Kubernetes version that `helm template` and `helm lint` assume,
		# taken from the client-go it is built with (v0.N -> 1.N).
		version=$(pinned "${dir}" helm.sh/helm/v3)
		stamp="-X helm.sh/helm/v3/internal/version.version=${version} -X helm.sh/helm/v3/internal/version.metadata="
		local kminor p
		kminor=$(pinned "${dir}" k8s.io/client-go | cut -d. -f2)
		for p in pkg/lint/rules pkg/chartutil; do
			stamp+=" -X helm.sh/helm/v3/${p}.k8sVersionMajor=1 -X helm.sh/helm/v3/${p}.k8sVersionMinor=${kminor}"
		done
		ldflags+=" ${stamp}"
	fi
	if [ "${tool}" = kubectl ]; then
		# kubectl's version comes from its staging module's tag (v0.N.x
		# is Kubernetes 1.N.x); stamped so `kubectl version` tells the truth.
		version=$(pinned "${dir}" k8s.io/kubectl)
		version="v1.${version#v0.}"
		local v=k8s.io/component-base/version c=k8s.io/client-go/pkg/version
		stamp="-X ${v}.gitVersion=${version} -X ${v}.gitMajor=1 -X ${v}.gitMinor=$(echo "${version}" | cut -d. -f2) -X ${v}.gitTreeState=clean"
		stamp+=" -X ${c}.gitVersion=${version} -X ${c}.gitMajor=1 -X ${c}.gitMinor=$(echo "${version}" | cut -d. -f2) -X ${c}.gitTreeState=clean"
		ldflags+=" ${stamp}"
	fi
	local key
	key=$(cd "${dir}" && { cat go.mod go.sum; find . -maxdepth 1 -name '*.go' -print0 | sort -z | xargs -0r cat; go env GOVERSION; [ -z "${stamp}" ] || echo "${stamp}"; } | sha256sum | cut -c1-16)
	local out=${cache}/${tool}-${key}
	if [ -x "${out}/${tool}" ]; then
		ln -sfn "${out}/${tool}" "${bindir}/${tool}"
		echo "build-tools: ${tool} up to date (${out})"
		return 0
	fi
	case ${tool} in
	kube-apiserver)
		version=$(pinned "${dir}" k8s.io/kubernetes)
		local major minor
		major=$(echo "${version#v}" | cut -d. -f1)
		minor=$(echo "${version#v}" | cut -d. -f2)
		local v=k8s.io/component-base/version
		ldflags+=" -X ${v}.gitVersion=${version} -X ${v}.gitMajor=${major} -X ${v}.gitMinor=${minor}"
		ldflags+=" -X ${v}.gitTreeState=clean -X ${v}.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
		;;
	esac
	echo "build-tools: building ${tool}${version:+ ${version}}"
	local start=${SECONDS}
	mkdir -p "${out}.tmp"
	(cd "${dir}" && go build -trimpath -ldflags "${ldflags}" -o "${out}.tmp/${tool}" "${pkg}")
	rm -rf "${out}" && mv "${out}.tmp" "${out}"
	ln -sfn "${out}/${tool}" "${bindir}/${tool}"
	echo "build-tools: built ${tool} in $((SECONDS - start))s"
}

for t in "${tools[@]}"; do build "$t"; done
