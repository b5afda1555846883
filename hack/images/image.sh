#!/usr/bin/env bash
# Builds the repository's Dockerfile with buildah, as a user builds it with
# docker, but FROM the local stand-ins for the golang and distroless images
# (hack/images/base-images.sh), and checks the result:
#   - its configured user is 65532:65532 (distroless' nonroot);
#   - it has no shell and no package manager (nothing named sh, bash, dash,
#     ash, busybox, apt or dpkg anywhere, /bin/sh cannot be run, and no
#     executable file but /quill-controller, /quillctl and shared
#     libraries);
#   - `quill-controller --version`, run in it, prints VERSION and pkcs11=true;
#   - its size, which it prints.
#
# The build is keyed by everything the Dockerfile reads (the files its COPY
# lines take, after .dockerignore), the Dockerfile, .dockerignore, this
# script, the base images and VERSION, and kept in the container store as
# localhost/quill/controller:<key>: an unchanged tree is never built again.
# The result is also tagged IMAGE. The build's RUN steps see this machine's
# Go module and build caches and its CA bundle (bind mounts, which change
# nothing in the image), so modules are not downloaded again, and fetched
# the way go on this machine fetches them.
#
# Prints the image reference (localhost/quill/controller:<key>) on its last
# line. VERSION defaults to what the Makefile stamps (git describe), and
# IMAGE to quill-controller:VERSION, so test/image, which runs this script
# with no arguments, finds the image `make image` built.
# Usage: hack/images/image.sh [IMAGE [VERSION]]
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "${root}"
version=${2:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
image=${1:-quill-controller:${version}}
# shellcheck source=hack/images/podman.sh
. hack/images/podman.sh

log() { echo "image: $*" >&2; }
fail() { log "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "needs root (buildah and podman with the root container store)"
command -v buildah >/dev/null || fail "buildah is missing: run make deps"
bases=$(hack/images/base-images.sh | tail -1)
go_image=$(sed -n 's/.*GO_IMAGE=\([^ ]*\).*/\1/p' <<<"${bases}")
base_image=$(sed -n 's/.*BASE_IMAGE=\([^ ]*\).*/\1/p' <<<"${bases}")
[ -n "${go_image}" ] && [ -n "${base_image}" ] || fail "base-images.sh printed '${bases}'"

# The files the Dockerfile's COPY lines take; .dockerignore leaves tests
# and test data out of the context, so this list does too.
context_hash() {
	find go.mod go.sum api cmd controllers pkg hack/image-binary.sh -type f \
		! -name '*_test.go' ! -path '*/testdata/*' -print0 | sort -z | xargs -0 sha256sum
}
key=$({
	context_hash
	sha256sum Dockerfile .dockerignore "$0"
	echo "${go_image} ${base_image} ${version}"
} | sha256sum | cut -c1-16)
ref=localhost/quill/controller:${key}

if podman image exists "${ref}"; then
	log "${ref} up to date"
else
	start=${SECONDS}
	log "building ${ref} (VERSION ${version}) FROM ${go_image} and ${base_image}"
	gomodcache=$(go env GOMODCACHE)
	gocache=$(go env GOCACHE)
	mkdir -p "${gomodcache}" "${gocache}"
	args=(
		--build-arg "GO_IMAGE=${go_image}" --build-arg "BASE_IMAGE=${base_image}"
		--build-arg "VERSION=${version}"
	)
	# The module proxy settings of this machine's go, so the build fetches
	# from where go here fetches.
	for v in GOPROXY GOSUMDB GOPRIVATE GONOSUMDB; do
		args+=(--build-arg "${v}=$(go env "${v}")")
	done
	volumes=(--volume "${gomodcache}:/go/pkg/mod" --volume "${gocache}:/root/.cache/go-build")
	# This machine's CA bundle, for the module downloads: a machine behind a
	# TLS-inspecting proxy trusts the proxy's CA, the stand-in builder (like
	# the golang image) does not.
	bundle=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
	if [ -s "${bundle}" ]; then
		volumes+=(--volume "${bundle}:/etc/ssl/certs/ca-certificates.crt:ro")
	fi
	buildah bud --runtime "${oci_runtime}" --network host --pull=never --quiet \
		"${args[@]}" "${volumes[@]}" \
		--tag "${ref}" --file Dockerfile . >&2
	# Drop the images of older keys, with the default IMAGE tags they carry
	# (one a user tagged otherwise stays).
	current=$(podman image inspect --format '{{.Id}}' "${ref}")
	for id in $(podman images --no-trunc --format '{{.ID}}' --filter reference=localhost/quill/controller | sort -u); do
		[ "${id#sha256:}" != "${current#sha256:}" ] || continue
		for tag in $(podman image inspect --format '{{join .RepoTags " "}}' "${id}" 2>/dev/null); do
			case ${tag} in
			localhost/quill/controller:* | localhost/quill-controller:*) podman untag "${id}" "${tag}" || true ;;
			esac
		done
		[ -n "$(podman image inspect --format '{{join .RepoTags " "}}' "${id}" 2>/dev/null)" ] ||
			podman rmi "${id}" >/dev/null 2>&1 || true
	done
	log "built ${ref} in $((SECONDS - start))s"
fi
podman tag "${ref}" "${image}"

# Checks.
user=$(podman image inspect --format '{{.Config.User}}' "${ref}")
[ "${user}" = "65532:65532" ] || fail "${ref} runs as '${user}', want 65532:65532"
got=$(podman "${run_flags[@]}" --network none "${ref}" --version) || fail "${ref} --version failed: ${got}"
case ${got} in
"quill-controller ${version} ("*"pkcs11=true)") ;;
*) fail "${ref} --version printed '${got}', want version ${version} and pkcs11=true" ;;
esac
ctl=$(podman "${run_flags[@]}" --network none --entrypoint /quillctl "${ref}" version) || fail "${ref} /quillctl version failed: ${ctl}"
case ${ctl} in
"quillctl ${version} ("*) ;;
*) fail "${ref} /quillctl version printed '${ctl}', want version ${version}" ;;
esac
if out=$(podman "${run_flags[@]}" --network none --entrypoint /bin/sh "${ref}" -c true 2>&1); then
	fail "${ref} ran /bin/sh"
fi
mnt=$(podman image mount "${ref}")
found=$(find "${mnt}" ! -type d \( -name sh -o -name bash -o -name dash -o -name ash -o -name busybox \
	-o -name apt -o -name apt-get -o -name dpkg \) -printf '/%P\n')
# Every executable file that is not a shared library (the loader is one):
# the controller and quillctl alone.
execs=$(find "${mnt}" -type f -perm /111 ! -name '*.so' ! -name '*.so.*' -printf '/%P\n' | sort | tr '\n' ' ')
podman image unmount "${ref}" >/dev/null
[ -z "${found}" ] || fail "${ref} has a shell or package manager: ${found}"
[ "${execs}" = "/quill-controller /quillctl " ] || fail "${ref} has executables besides /quill-controller and /quillctl: ${execs}"
size=$(podman image inspect --format '{{.Size}}' "${ref}")
log "${image} = ${ref}: user 65532:65532, no shell (sh cannot run: ${out##*: }), no executable but ${execs}"
log "${image}: ${got}; size $((size / 1000 / 1000)) MB (${size} bytes)"
echo "${ref}"
