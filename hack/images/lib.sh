# Sourced by hack/images/runtime.sh and builder.sh: what both base-image
# builds share. Each image is tagged localhost/quill/<name>:<key> in this
# machine's container store, which is the cache: the key hashes the image's
# script, this file and its pinned inputs (exact Debian package versions,
# the Go version), so an unchanged input never builds again, and a fresh
# clone on the same machine (CI) finds the images; a changed input replaces
# the image of the old key.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${QUILL_IMAGES_CACHE:-${HOME}/.cache/quill/images}
suite=bookworm
arch=$(dpkg --print-architecture)
me=$(basename "$0" .sh)

log() { echo "${me}: $*" >&2; }
fail() {
	log "$*"
	exit 1
}

[ "$(id -u)" -eq 0 ] || fail "needs root (debootstrap, chroot, and podman's root container store)"
for cmd in podman debootstrap dpkg-deb apt-get flock; do
	command -v "${cmd}" >/dev/null || fail "${cmd} is missing: run make deps (installs buildah, podman, runc, debootstrap)"
done
mkdir -p "${cache}"
# One build at a time per machine: make image and the tests may both ask.
exec 9>"${cache}/.lock"
flock 9

tmp=$(mktemp -d)
cleanup() {
	# A failed builder build may leave the chroot's mounts behind.
	local m
	for m in var/cache/apt/archives dev proc; do
		if mountpoint -q "${tmp}/rootfs/${m}" 2>/dev/null; then umount "${tmp}/rootfs/${m}"; fi
	done
	rm -rf "${tmp}"
}
trap cleanup EXIT

# candidates prints "pkg=version" for each package apt has a candidate
# version of, in one apt-cache call (each call loads the whole cache).
candidates() {
	apt-cache policy "$@" 2>/dev/null |
		awk '/^[^ ].*:$/ { p = substr($0, 1, length($0) - 1) } $1 == "Candidate:" && $2 != "(none)" { print p "=" $2 }'
}

# pin puts "pkg=version" for each package, in order, into the array named
# $1, refreshing apt's lists once if a package has no candidate (a fresh
# machine).
pin() {
	local -n into=$1
	shift
	local found p v
	found=$(candidates "$@")
	if [ "$(wc -l <<<"${found}")" -ne $# ] || [ -z "${found}" ]; then
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		found=$(candidates "$@")
	fi
	into=()
	for p in "$@"; do
		v=$(awk -F= -v p="${p}" '$1 == p { print $2 }' <<<"${found}")
		[ -n "${v}" ] || fail "apt has no version of ${p}"
		into+=("${p}=${v}")
	done
}

# key hashes this file, the calling script and the lines given.
key() {
	{
		cat "${BASH_SOURCE[0]}" "$0"
		printf '%s\n' "$@"
	} | sha256sum | cut -c1-16
}

# have reports whether image $1 is in the container store.
have() { podman image exists "$1" 2>/dev/null; }

# import makes image $1 from root filesystem $2 with the changes
# (Dockerfile instructions) that follow, and removes the images an older key
# left under the same name (one in use stays).
import() {
	local ref=$1 dir=$2
	shift 2
	local changes=() c old
	for c in "$@"; do changes+=(--change "${c}"); done
	tar -C "${dir}" --numeric-owner -c . | podman import --quiet "${changes[@]}" - "${ref}" >/dev/null
	for old in $(podman images --format '{{.Repository}}:{{.Tag}}' --filter "reference=${ref%:*}"); do
		[ "${old}" = "${ref}" ] || podman rmi "${old}" >/dev/null 2>&1 || true
	done
}
