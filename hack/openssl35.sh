#!/usr/bin/env bash
# Provides OpenSSL 3.5 (from Debian trixie) as an outside verifier of
# ML-DSA certificates and hybrid ML-KEM handshakes: the system's OpenSSL 3.0
# reads neither.
#
# The trixie packages (openssl, libssl3t64 and the libraries they link
# against: libc6, libzstd1, zlib1g) are downloaded with a private apt
# configuration from the same Debian mirror as the system's own apt sources,
# unpacked with `dpkg -x` into a cache folder keyed by their versions
# (QUILL_OPENSSL35_CACHE, default ~/.cache/quill/openssl35) and run through
# trixie's own dynamic loader. Nothing is installed system-wide and the
# system's apt state is not touched.
#
# It writes a wrapper script, <cache>/<versions>/openssl, links it as
# bin/openssl35 in the work tree, and prints its path. Tests find it through
# QUILL_OPENSSL35 or bin/openssl35 and fail when neither exists.
#
# Usage: hack/openssl35.sh            fetch if missing, print the wrapper path
#        QUILL_DEBIAN_MIRROR=URL ...  use another mirror
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${QUILL_OPENSSL35_CACHE:-${HOME}/.cache/quill/openssl35}
suite=trixie
pkgs=(openssl libssl3t64 libc6 libzstd1 zlib1g)
arch=$(dpkg --print-architecture)
mkdir -p "${cache}" "${root}/bin"

# mirror finds the Debian archive the system's apt sources use (deb822 or
# one-line format), skipping the security archive, whose layout differs.
mirror() {
	if [ -n "${QUILL_DEBIAN_MIRROR:-}" ]; then
		echo "${QUILL_DEBIAN_MIRROR}"; return
	fi
	local m
	m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' | grep -v -- '-security' | grep '/debian/\?$' | head -n1 || true)
	if [ -z "${m}" ]; then
		m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' |
			grep -v -- '-security' | grep '/debian/\?$' | head -n1 || true)
	fi
	[ -n "${m}" ] || { echo "openssl35: no Debian mirror in the apt sources; set QUILL_DEBIAN_MIRROR" >&2; exit 1; }
	echo "${m%/}"
}

# The apt state lives in the cache, so the system's package lists and
# locks stay as they are.
state=${cache}/apt
mkdir -p "${state}/lists/partial" "${state}/archives/partial" "${state}/etc/sources.list.d" "${state}/etc/preferences.d"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb [arch=${arch} signed-by=${keyring}] $(mirror) ${suite} main" >"${state}/etc/sources.list"
: >"${state}/etc/preferences"
apt_opts=(
	-o "Dir::Etc::SourceList=${state}/etc/sources.list"
	-o "Dir::Etc::SourceParts=${state}/etc/sources.list.d"
	-o "Dir::Etc::Preferences=${state}/etc/preferences"
	-o "Dir::Etc::PreferencesParts=${state}/etc/preferences.d"
	-o "Dir::State=${state}"
	-o "Dir::State::Lists=${state}/lists"
	-o "Dir::State::status=${state}/status"
	-o "Dir::Cache=${state}"
	-o "Dir::Cache::archives=${state}/archives"
	-o "APT::Architectures=${arch}"
	-o "Debug::NoLocking=1"
	-o "APT::Sandbox::User=root"
)
touch "${state}/status"

# The lists are refreshed at most once a day: the wrapper of the versions
# already unpacked is what every test run after the first one uses.
link_and_print() {
	ln -sfn "$1/openssl" "${root}/bin/openssl35"
	echo "$1/openssl"
}
current=${cache}/current
if [ -x "${current}/openssl" ] && [ -z "$(find "${state}/lists" -maxdepth 1 -name '*Packages*' -mtime +0 -print -quit)" ] &&
	[ -n "$(find "${state}/lists" -maxdepth 1 -name '*Packages*' -print -quit)" ]; then
	link_and_print "$(readlink -f "${current}")"
	exit 0
fi

if ! apt-get "${apt_opts[@]}" -qq update >&2; then
	if [ -x "${current}/openssl" ]; then
		echo "openssl35: cannot refresh the ${suite} package lists; using the cached build" >&2
		link_and_print "$(readlink -f "${current}")"
		exit 0
	fi
	echo "openssl35: cannot download the ${suite} package lists" >&2
	exit 1
fi

versions=()
for p in "${pkgs[@]}"; do
	v=$(apt-cache "${apt_opts[@]}" show --no-all-versions "${p}" 2>/dev/null | awk '/^Version:/ { print $2; exit }')
	[ -n "${v}" ] || { echo "openssl35: package ${p} not found in ${suite}" >&2; exit 1; }
	versions+=("${p}=${v}")
done
key=$(printf '%s\n' "${versions[@]}" | sha256sum | cut -c1-12)
openssl_version=${versions[0]#openssl=}
dir=${cache}/${openssl_version//[^A-Za-z0-9.+~-]/_}-${key}

if [ ! -x "${dir}/openssl" ]; then
	echo "openssl35: fetching ${versions[*]} from ${suite}" >&2
	tmp=$(mktemp -d "${cache}/.fetch.XXXXXX")
	trap 'rm -rf "${tmp}"' EXIT
	(cd "${tmp}" && apt-get "${apt_opts[@]}" -qq download "${versions[@]}" >&2)
	mkdir -p "${tmp}/root"
	for deb in "${tmp}"/*.deb; do
		dpkg -x "${deb}" "${tmp}/root"
	done
	# dpkg-architecture (dpkg-dev) is missing on a fresh machine.
	case ${arch} in
	amd64) multiarch=x86_64-linux-gnu ;;
	arm64) multiarch=aarch64-linux-gnu ;;
	*) multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH) ;;
	esac
	# Trixie's loader is found by name rather than a fixed path so that the
	# script also works on other architectures.
	loader=$(find "${tmp}/root/usr/lib/${multiarch}" "${tmp}/root/usr/lib64" "${tmp}/root/lib64" -maxdepth 1 -name 'ld-linux*.so.*' 2>/dev/null | head -n1 || true)
	[ -n "${loader}" ] || { echo "openssl35: no dynamic loader in trixie's libc6" >&2; exit 1; }
	loader=${loader#"${tmp}/root/"}
	mv "${tmp}/root" "${tmp}/unpacked"
	rm -rf "${dir}.tmp"
	mv "${tmp}/unpacked" "${dir}.tmp"
	cat >"${dir}.tmp/openssl" <<EOF
#!/bin/sh
# OpenSSL ${openssl_version} from Debian ${suite}, run through ${suite}'s own
# dynamic loader and libraries (written by hack/openssl35.sh).
r=\$(dirname "\$(readlink -f "\$0")")
export OPENSSL_MODULES="\${r}/usr/lib/${multiarch}/ossl-modules"
export OPENSSL_CONF="\${r}/etc/ssl/openssl.cnf"
exec "\${r}/${loader}" --library-path "\${r}/usr/lib/${multiarch}:\${r}/lib/${multiarch}" "\${r}/usr/bin/openssl" "\$@"
EOF
	chmod +x "${dir}.tmp/openssl"
	# A wrapper that cannot run is worse than none: prove it before it
	# takes the cache's place, so that a broken fetch is fetched again
	# next time instead of being found and kept.
	if ! out=$("${dir}.tmp/openssl" version 2>&1) || [[ ${out} != "OpenSSL 3."* ]]; then
		rm -rf "${dir}.tmp"
		echo "openssl35: the unpacked openssl does not run: ${out}" >&2
		exit 1
	fi
	rm -rf "${dir}"
	mv "${dir}.tmp" "${dir}"
fi
ln -sfn "${dir}" "${current}"
link_and_print "${dir}"
