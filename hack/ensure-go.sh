#!/usr/bin/env bash
# Prints the folder holding a go command that can run Go 1.27.3 (through
# GOTOOLCHAIN). A Go of 1.21 or later switches toolchains by itself, so one
# on PATH or in /usr/local/go is used as it is. An older Go (Debian 12's
# golang-go is 1.19), or Debian's installed when there is none, is used
# once to fetch the go1.27.3 toolchain module from the module proxy, whose
# bin/ is then used directly.
set -euo pipefail

want=go1.27.3

# switches reports whether go command $1 honours GOTOOLCHAIN (Go >= 1.21).
switches() {
	local v major minor
	v=$(GOTOOLCHAIN=local "$1" env GOVERSION 2>/dev/null) || return 1
	v=${v#go}
	major=${v%%.*}
	minor=${v#*.}
	minor=${minor%%[!0-9]*}
	[ "${major}" -gt 1 ] || [ "${minor:-0}" -ge 21 ]
}

candidates=()
if command -v go >/dev/null 2>&1; then candidates+=("$(command -v go)"); fi
if [ -x /usr/local/go/bin/go ]; then candidates+=(/usr/local/go/bin/go); fi
for g in "${candidates[@]}"; do
	if switches "${g}"; then
		dirname "${g}"; exit 0
	fi
done

bootstrap=${candidates[0]:-}
if [ -z "${bootstrap}" ] && [ "$(id -u)" -eq 0 ]; then
	echo "ensure-go: no Go found; installing Debian's golang-go to bootstrap ${want}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go ca-certificates >&2
	bootstrap=$(command -v go || true)
fi
[ -n "${bootstrap}" ] || { echo "ensure-go: no go command and cannot install one" >&2; exit 1; }
echo "ensure-go: $(GOTOOLCHAIN=local "${bootstrap}" version) cannot switch toolchains; fetching ${want} with it" >&2
tmp=$(mktemp -d)
trap 'rm -rf "${tmp}"' EXIT
cd "${tmp}"
if ! out=$(GOFLAGS=-mod=mod GOTOOLCHAIN=local "${bootstrap}" mod init bootstrap 2>&1); then
	echo "ensure-go: go mod init: ${out}" >&2
	exit 1
fi
# go mod download -json reports a failure in the JSON's Error field.
module="golang.org/toolchain@v0.0.1-${want}.linux-$(dpkg --print-architecture)"
json=$(GOTOOLCHAIN=local "${bootstrap}" mod download -json "${module}" 2>&1) || true
dir=$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"${json}")
[ -n "${dir}" ] || { echo "ensure-go: could not fetch ${module} from the module proxy: ${json}" >&2; exit 1; }
# Module zips keep no file modes.
chmod +x "${dir}/bin/go" "${dir}/bin/gofmt" "${dir}/pkg/tool/"*/* 2>/dev/null || true
echo "${dir}/bin"
