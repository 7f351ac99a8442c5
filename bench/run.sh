#!/bin/bash
# run.sh [--quick] [bench.py options]: run the benchmark (bench/bench.py)
# and leave no process behind: bench.py runs as its own job (process group),
# each server in its own session, and the EXIT trap ends them all.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-/usr/bin/python3}
work=${BENCH_WORK:-/tmp/kttpd-bench}

# 10,000 idle connections (W7) need descriptors on both sides.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

mkdir -p "$work"
pgids="$work/pgids"
: >"$pgids"

pid=
cleanup() {
	trap - EXIT INT TERM
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM -- "-$pid" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	while read -r g; do
		kill -KILL -- "-$g" 2>/dev/null || true
	done <"$pgids"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

set -m   # a background job gets its own process group, id = its pid
"$python" "$here/bench.py" --work "$work" --pgids "$pgids" "$@" &
pid=$!
wait "$pid"
