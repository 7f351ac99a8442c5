#!/bin/bash
# device.sh: the QUICK benchmark, once, on a lent machine with no network.
# Run from a copy of the repo where build/kttpd is built and bench/debs/
# holds the .debs of `bench/deps.sh fetch`. They are unpacked into a
# private prefix and every binary, kttpd included, runs under the carried
# loader and libraries, so the machine's own distribution does not matter.
# Results go to $OUT (default bench/results). Under 8 minutes.
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
out=${OUT:-$here/results}
prefix=/tmp/kttpd-bench-root
mkdir -p "$out"
exec > >(tee "$out/device.log") 2>&1

echo "== machine"
echo "nproc: $(nproc)"
echo "uname -r: $(uname -r)"
grep -m1 'model name' /proc/cpuinfo
grep PRETTY_NAME /etc/os-release 2>/dev/null
echo "tcp_available_ulp (before): $(cat /proc/sys/net/ipv4/tcp_available_ulp 2>&1)"
echo "modprobe tls: $(modprobe tls 2>&1 && echo ok)"
echo "tcp_available_ulp (after): $(cat /proc/sys/net/ipv4/tcp_available_ulp 2>&1)"
echo "tls_stat: $(tr -s ' \n' ' ' </proc/net/tls_stat 2>&1)"
echo "system openssl: $(openssl version 2>&1)"
echo "python3: $(/usr/bin/python3 --version 2>&1)"
for t in taskset dpkg-deb; do command -v $t >/dev/null || echo "MISSING: $t"; done

ls "$here"/debs/*.deb >/dev/null 2>&1 || { echo "no bench/debs"; exit 1; }
rm -rf "$prefix"
mkdir -p "$prefix"
for d in "$here"/debs/*.deb; do
	dpkg-deb -x "$d" "$prefix"
done
lib="$prefix/lib/x86_64-linux-gnu:$prefix/usr/lib/x86_64-linux-gnu"
echo "carried openssl: $("$prefix/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" \
	--library-path "$lib" "$prefix/usr/bin/openssl" version)"

echo "== bench (QUICK)"
# the file name: DATE-HOST-NCPUcpu, apart from a run here on a same-named host
BENCH_HOST=${BENCH_HOST:-$(hostname)-$(nproc)cpu} \
BENCH_PREFIX=$prefix BENCH_WORK=/tmp/kttpd-bench \
	timeout -s TERM 420 "$here/run.sh" --quick --out "$out"
rc=$?
echo "== edge (open-file cache, gzip cache)"
BENCH_PREFIX=$prefix timeout -s TERM 120 /usr/bin/python3 "$here/edge.py" \
	--quick --work /tmp/kttpd-bench --out "$out/edge.md" || rc=1
cp /tmp/kttpd-bench/bench.log /tmp/kttpd-bench/*.err "$out/" 2>/dev/null
echo "== done: rc $rc"
exit $rc
