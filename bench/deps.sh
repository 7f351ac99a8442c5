#!/bin/bash
# deps.sh install: install the peers and load tools from Debian (apt-get).
# deps.sh fetch:   download, into bench/debs/, the .debs of those tools and
#                  of every shared library they and build/kttpd load (the
#                  ldd closure, libc6 and its loader included), for
#                  bench/device.sh to run on a machine with no network.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
PKGS="nginx-light lighttpd lighttpd-mod-openssl h2o wrk nghttp2-client
      openssl gnuplot-nox"
BINS="/usr/sbin/nginx /usr/sbin/lighttpd /usr/lib/lighttpd/mod_openssl.so
      /usr/bin/h2o /usr/bin/wrk /usr/bin/h2load /usr/bin/openssl"

need_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install() {
	local missing=
	for b in $BINS /usr/bin/gnuplot; do
		[ -e "$b" ] || missing=1
	done
	[ -z "$missing" ] && return 0
	echo "bench: installing $PKGS" >&2
	need_root apt-get update -qq
	need_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends $PKGS >&2
}

# the Debian package that owns a file, trying both sides of /usr-merge
owner() {
	local f=$1 alt
	case $f in
	/usr/lib/*) alt=${f#/usr} ;;
	/lib/*) alt=/usr$f ;;
	*) alt=$f ;;
	esac
	dpkg -S "$f" 2>/dev/null || dpkg -S "$alt" 2>/dev/null || true
}

fetch() {
	install
	[ -x "$repo/build/kttpd" ] || { echo "build kttpd first (make)" >&2; exit 1; }
	local pkgs="" f
	for f in $BINS "$repo/build/kttpd" /lib64/ld-linux-x86-64.so.2; do
		pkgs="$pkgs $(owner "$f" | cut -d: -f1)"
		for l in $(ldd "$f" | awk '$3 ~ /^\// {print $3}'); do
			pkgs="$pkgs $(owner "$(readlink -f "$l")" | cut -d: -f1)"
			pkgs="$pkgs $(owner "$l" | cut -d: -f1)"
		done
	done
	pkgs=$(echo "$pkgs" | tr ' ' '\n' | grep -v '^$' | sort -u | tr '\n' ' ')
	echo "bench: downloading $pkgs" >&2
	rm -rf "$here/debs"
	mkdir -p "$here/debs"
	(cd "$here/debs" && apt-get download $pkgs >&2)
	du -sh "$here/debs" >&2
}

case "${1:-}" in
install) install ;;
fetch) fetch ;;
*) echo "usage: $0 install|fetch" >&2; exit 2 ;;
esac
