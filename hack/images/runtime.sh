#!/usr/bin/env bash
# Makes the runtime base image (the Dockerfile's BASE_IMAGE) from Debian 12
# packages: a stand-in for gcr.io/distroless/cc-debian12:nonroot, for
# machines that cannot pull it. It holds distroless cc-debian12's package
# set, unpacked with dpkg-deb -x (no maintainer script runs): glibc, libgcc,
# libstdc++, libgomp, libssl3 (distroless base carries it, and PKCS#11
# libraries such as SoftHSM2 link it), the ca-certificates bundle, tzdata,
# and the data files of base-files, netbase and media-types; a passwd with
# the non-root user 65532 (nonroot), /tmp and /home/nonroot; and nothing
# else: no shell, no package manager, no libc-bin tools. Its user is
# 65532:65532, as distroless' :nonroot tag.
#
# Cached in the container store (see lib.sh); prints the image reference,
# localhost/quill/runtime:<key>.
# Usage: hack/images/runtime.sh
. "$(dirname "$0")/lib.sh"

# gcc-12-base is libgcc-s1's dependency and holds only its copyright.
pkgs=(base-files netbase media-types tzdata ca-certificates libc6 libssl3
	libgcc-s1 gcc-12-base libgomp1 libstdc++6)
pin pinned "${pkgs[@]}"
ref=localhost/quill/runtime:$(key "${pinned[@]}")
if have "${ref}"; then
	echo "${ref}"
	exit 0
fi

start=${SECONDS}
log "building ${ref} from ${pinned[*]}"
r=${tmp}/rootfs
mkdir -p "${tmp}/debs" "${r}"
(cd "${tmp}/debs" && apt-get download -qq -o APT::Sandbox::User=root "${pinned[@]}" >&2)
for deb in "${tmp}"/debs/*.deb; do dpkg-deb -x "${deb}" "${r}"; done
# ca-certificates: the certificates and the bundle its maintainer script
# would make; never the script.
rm -rf "${r}/usr/sbin" "${r}/etc/ca-certificates" "${r}/etc/ca-certificates.conf"
mkdir -p "${r}/etc/ssl/certs"
find "${r}/usr/share/ca-certificates" -name '*.crt' -print0 | sort -z | xargs -0 cat \
	>"${r}/etc/ssl/certs/ca-certificates.crt"
[ -s "${r}/etc/ssl/certs/ca-certificates.crt" ] || fail "empty CA bundle"
rm -rf "${r}/usr/share/man" "${r}/usr/share/lintian" "${r}/usr/share/info"
# Scripts no one can run here: base-files' motd snippet, documentation
# examples.
rm -rf "${r}/etc/update-motd.d" "${r}"/usr/share/doc/*/examples
cat >"${r}/etc/passwd" <<-'PASSWD'
	root:x:0:0:root:/root:/sbin/nologin
	nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
	nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PASSWD
cat >"${r}/etc/group" <<-'GROUP'
	root:x:0:
	tty:x:5:
	staff:x:50:
	nonroot:x:65532:
	nogroup:x:65534:
GROUP
printf 'hosts: files dns\n' >"${r}/etc/nsswitch.conf"
printf 'include /etc/ld.so.conf.d/*.conf\n' >"${r}/etc/ld.so.conf"
# The loader's cache, as libc-bin's trigger would write it.
ldconfig -r "${r}"
install -d -m 1777 "${r}/tmp"
install -d -m 0700 "${r}/root"
install -d -m 0700 -o 65532 -g 65532 "${r}/home/nonroot"
# No package may have brought a shell or a package manager.
for f in bin/sh bin/bash bin/dash usr/bin/sh usr/bin/bash usr/bin/dash bin/busybox usr/bin/dpkg usr/bin/apt; do
	[ ! -e "${r}/${f}" ] || fail "the runtime root filesystem has /${f}"
done
import "${ref}" "${r}" \
	"USER 65532:65532" "WORKDIR /home/nonroot" \
	"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
	"ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
log "built ${ref} in $((SECONDS - start))s"
echo "${ref}"
