#!/bin/sh
# Debian 12 packages kttpd needs, by purpose. Installs what is missing when
# run as root; otherwise prints the exact apt-get line and fails.
#   debian-deps.sh build|check|bench
set -eu

build="gcc make pkg-config libssl-dev libevent-dev libhttp-parser-dev
       zlib1g-dev libnghttp2-dev libconfuse-dev openssl media-types"
check="$build curl python3 python3-h2 python3-fusepy nghttp2-client qemu-system-x86 ethtool iproute2
       clang libclang-rt-14-dev testssl.sh haproxy strace debootstrap zstd"
bench="$check nginx-light lighttpd h2o wrk gnuplot-nox linux-perf"

case "${1:-}" in
build) want=$build ;;
check) want=$check ;;
bench) want=$bench ;;
*) echo "usage: $0 build|check|bench" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

line="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" != 0 ]; then
	echo "kttpd: missing Debian packages. As root, run:" >&2
	echo "  apt-get update && $line" >&2
	exit 1
fi
echo "kttpd: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
