#!/usr/bin/env bash
# Installs the Debian packages Quill's tests and demo use, if any is missing:
# openssl (the outside verifier of what Quill signs), util-linux's setpriv
# (ties control-plane processes to the test that started them), gcc and
# libc6-dev (cgo, for PKCS#11; gcc only recommends the C headers, and
# --no-install-recommends leaves them out), softhsm2 and opensc (the HSM the PKCS#11 tests run
# against, and pkcs11-tool), and buildah, podman, runc and debootstrap (make
# image builds the Dockerfile from local base images, and test/image runs it;
# runc because Debian 12's crun cannot start containers on a host with mixed
# cgroup v1/v2 hierarchies). Needs root for apt-get; without root it only
# says what is missing.
set -euo pipefail

need=()
command -v openssl >/dev/null || need+=(openssl)
command -v setpriv >/dev/null || need+=(util-linux)
command -v gcc >/dev/null || need+=(gcc)
[ -e /usr/include/stdlib.h ] || need+=(libc6-dev)
[ -e /usr/lib/softhsm/libsofthsm2.so ] || need+=(softhsm2)
command -v pkcs11-tool >/dev/null || need+=(opensc)
for cmd in buildah podman runc debootstrap; do
	command -v "${cmd}" >/dev/null || need+=("${cmd}")
done
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${need[*]} (run as root, or apt-get install them)" >&2
	exit 1
fi
echo "install-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}"
