#!/usr/bin/env bash
# Prints the folder holding a go command that can run Go 1.27.3 (through
# GOTOOLCHAIN). A machine normally has Go in /usr/local/go; when it has none,
# Debian's golang-go is installed and, being too old to switch toolchains by
# itself, is used once to fetch the go1.27.3 toolchain module from the
# module proxy, whose bin/ is then used directly.
set -euo pipefail

want=go1.27.3
if command -v go >/dev/null 2>&1; then
	dirname "$(command -v go)"; exit 0
fi
if [ -x /usr/local/go/bin/go ]; then
	echo /usr/local/go/bin; exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
	echo "ensure-go: no Go found; installing Debian's golang-go to bootstrap ${want}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go ca-certificates >&2
fi
command -v go >/dev/null 2>&1 || { echo "ensure-go: no go command and cannot install one" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "${tmp}"' EXIT
cd "${tmp}"
GOFLAGS=-mod=mod GOTOOLCHAIN=local go mod init bootstrap >/dev/null 2>&1
dir=$(GOTOOLCHAIN=local go mod download -json "golang.org/toolchain@v0.0.1-${want}.linux-$(dpkg --print-architecture)" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
chmod +x "${dir}/bin/go" "${dir}/pkg/tool/"*/* 2>/dev/null || true
echo "${dir}/bin"
