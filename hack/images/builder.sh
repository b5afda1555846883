#!/usr/bin/env bash
# Makes the builder base image (the Dockerfile's GO_IMAGE) from Debian 12
# packages: a stand-in for golang:1.27-bookworm, for machines that cannot
# pull it. A Debian 12 minbase with gcc, libc6-dev, ca-certificates and git
# (and their dependencies: binutils gives objdump, which
# hack/image-binary.sh uses), and the Go toolchain the Dockerfile pins
# (ENV GOTOOLCHAIN) in /usr/local/go with GOPATH=/go, laid out as the
# golang image lays it out. The toolchain is the golang.org/toolchain module
# that GOTOOLCHAIN fetches from the module proxy everywhere else in this
# repository, taken from this machine's module cache.
#
# debootstrap makes the minimal system from the release's own packages;
# apt in a chroot, reading this machine's Debian sources and package lists,
# then upgrades it and installs exactly the pinned versions (updates and
# security included). Both keep the packages in this machine's apt cache,
# so a rebuild after a key change downloads only what changed.
#
# Cached in the container store (see lib.sh); prints the image reference,
# localhost/quill/builder:<key>.
# Usage: hack/images/builder.sh
. "$(dirname "$0")/lib.sh"

go_version=$(sed -n 's/^ENV GOTOOLCHAIN=\([^ ]*\).*/\1/p' "${root}/Dockerfile")
[ -n "${go_version}" ] || fail "the Dockerfile pins no GOTOOLCHAIN"
pkgs=(gcc libc6-dev ca-certificates git)
pin pinned "${pkgs[@]}"
ref=localhost/quill/builder:$(key "${pinned[@]}" "${go_version}")
if have "${ref}"; then
	echo "${ref}"
	exit 0
fi

# goroot: the pinned toolchain's directory, fetched through the module
# proxy when it is not cached yet.
gobin=$("${root}/hack/ensure-go.sh")
goroot=$(GOTOOLCHAIN=${go_version} "${gobin}/go" env GOROOT)
[ "$(GOTOOLCHAIN=local "${goroot}/bin/go" env GOVERSION)" = "${go_version}" ] || fail "${goroot} is not ${go_version}"

# mirror: the first Debian archive apt is configured with.
mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
	awk '/^URIs:/ && $2 ~ /debian\/?$/ && $2 !~ /security/ { print $2; exit }')
if [ -z "${mirror}" ]; then
	mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		awk '$1 == "deb" && $2 ~ /debian\/?$/ && $2 !~ /security/ { print $2; exit }')
fi
mirror=${mirror:-http://deb.debian.org/debian}

start=${SECONDS}
log "building ${ref}: debootstrap ${suite} from ${mirror}, ${pinned[*]}, Go ${go_version}"
r=${tmp}/rootfs
# Two stages, so that dpkg in the second, and apt after it, skip the fsync
# after every file (force-unsafe-io): a root filesystem about to be
# archived needs no crash safety.
if ! debootstrap --foreign --variant=minbase --arch="${arch}" \
	--cache-dir=/var/cache/apt/archives "${suite}" "${r}" "${mirror}" >"${tmp}/debootstrap.log" 2>&1; then
	tail -30 "${tmp}/debootstrap.log" >&2
	fail "debootstrap failed (log above)"
fi
mkdir -p "${r}/etc/dpkg/dpkg.cfg.d"
echo force-unsafe-io >"${r}/etc/dpkg/dpkg.cfg.d/quill-unsafe-io"
if ! chroot "${r}" /debootstrap/debootstrap --second-stage >>"${tmp}/debootstrap.log" 2>&1; then
	tail -30 "${tmp}/debootstrap.log" >&2
	fail "debootstrap --second-stage failed (log above)"
fi
log "debootstrap done after $((SECONDS - start))s"

rm -f "${r}/etc/apt/sources.list"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
	[ -f "${f}" ] && grep -q '/debian' "${f}" || continue
	cp "${f}" "${r}/etc/apt/sources.list.d/$(basename "${f}" | sed 's/^sources\.list$/debian.list/')"
done
find /var/lib/apt/lists -maxdepth 1 -type f ! -name lock -exec cp -t "${r}/var/lib/apt/lists/" {} +
cp -L /etc/resolv.conf "${r}/etc/resolv.conf"
mount -t proc proc "${r}/proc"
mount --bind /dev "${r}/dev"
mount --bind /var/cache/apt/archives "${r}/var/cache/apt/archives"
if ! DEBIAN_FRONTEND=noninteractive chroot "${r}" sh -c \
	'apt-get -qq -y dist-upgrade && apt-get -qq -y --no-install-recommends install "$@"' \
	apt "${pinned[@]}" >"${tmp}/apt.log" 2>&1; then
	tail -30 "${tmp}/apt.log" >&2
	fail "apt-get install in the builder root filesystem failed (log above)"
fi
umount "${r}/var/cache/apt/archives" "${r}/dev" "${r}/proc"
for p in "${pinned[@]}"; do
	[ "$(chroot "${r}" dpkg-query -W -f '${Version}' "${p%%=*}")" = "${p#*=}" ] ||
		fail "the builder has another version of ${p%%=*} than ${p#*=}"
done
log "apt done after $((SECONDS - start))s"
rm -f "${r}/etc/resolv.conf" "${r}/etc/dpkg/dpkg.cfg.d/quill-unsafe-io"
rm -rf "${r}"/var/cache/apt/archives/*.deb "${r}"/var/lib/apt/lists/* "${r}/usr/share/man"

cp -a "${goroot}" "${r}/usr/local/go"
# Module zips keep no file modes, and the module cache is read-only.
chmod -R u+w "${r}/usr/local/go"
chmod +x "${r}/usr/local/go/bin/"* "${r}/usr/local/go/pkg/tool/"*/*
install -d -m 1777 "${r}/go" "${r}/go/bin" "${r}/go/src"
import "${ref}" "${r}" \
	"ENV GOLANG_VERSION=${go_version#go}" "ENV GOTOOLCHAIN=local" "ENV GOPATH=/go" \
	"ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
	"WORKDIR /go"
log "built ${ref} in $((SECONDS - start))s"
echo "${ref}"
