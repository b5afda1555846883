#!/usr/bin/env bash
# Builds quill-controller the way the container image carries it, and checks
# the result; with a third argument, quillctl too (the image ships it as
# /quillctl, so that `kubectl exec` can read the ledger archive on the
# controller's volume). The Dockerfile runs this script, and so does `make
# image-binary` (CI), so both build with the same flags:
#   - CGO_ENABLED=1: PKCS#11 libraries are loaded with dlopen, so the binary
#     links glibc dynamically and needs a glibc base image (distroless
#     base/cc), never a static or musl one;
#   - -trimpath, and -ldflags "-s -w -X main.version=VERSION".
# The checks: --version prints the stamp and pkcs11=true; the binary is
# dynamically linked against glibc and needs no newer glibc than the base
# image's (Debian 12: 2.36); the PKCS#11 loader is compiled in. quillctl,
# built with the same flags, must print the same version and need no newer
# glibc either.
#
# Usage: hack/image-binary.sh OUTPUT VERSION [QUILLCTL_OUTPUT]
set -euo pipefail

out=${1:?usage: image-binary.sh OUTPUT VERSION}
version=${2:?usage: image-binary.sh OUTPUT VERSION}
ctl=${3:-}
max_glibc=${MAX_GLIBC:-2.36}
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3} GOFLAGS=-buildvcs=false CGO_ENABLED=1

go build -trimpath -ldflags "-s -w -X main.version=${version}" -o "${out}" ./cmd/controller

fail() { echo "image-binary: ${out}: $*" >&2; exit 1; }

# The newest GLIBC_x.y symbol version binary $1 needs, checked against the
# base image's.
glibc_need() {
	local need
	need=$(objdump -T "$1" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
	[ "$(printf '%s\n%s\n' "${need}" "${max_glibc}" | sort -V | tail -1)" = "${max_glibc}" ] ||
		fail "$1 needs glibc ${need}, newer than the base image's ${max_glibc}"
	echo "${need}"
}

got=$("${out}" --version)
case ${got} in
"quill-controller ${version} ("*"pkcs11=true)") ;;
*) fail "--version printed '${got}', want version ${version} and pkcs11=true" ;;
esac
ldd "${out}" | grep 'libc\.so\.6' >/dev/null || fail "not dynamically linked against glibc"
need=$(glibc_need "${out}")
grep -aq C_GetFunctionList "${out}" || fail "the PKCS#11 loader is not compiled in"
echo "image-binary: ${out}: ${got}; glibc >= ${need}"

[ -n "${ctl}" ] || exit 0
go build -trimpath -ldflags "-s -w -X main.version=${version}" -o "${ctl}" ./cmd/quillctl
got=$("${ctl}" version)
case ${got} in
"quillctl ${version} ("*) ;;
*) fail "${ctl} version printed '${got}', want version ${version}" ;;
esac
need=$(glibc_need "${ctl}")
echo "image-binary: ${ctl}: ${got}; glibc >= ${need}"
