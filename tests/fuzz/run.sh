#!/bin/sh
# tests/fuzz/run.sh BUILD_DIR SECONDS TARGET...
#
# Runs each libFuzzer target for SECONDS on one core (nice 10), starting
# from the committed seeds (tests/fuzz/corpus/TARGET) plus what earlier
# runs found (BUILD_DIR/corpus/TARGET, where new inputs go). A crash,
# leak, sanitizer report or timeout is saved as
# BUILD_DIR/crashes/TARGET-crash-<sha1> (or leak-, timeout-, oom-).
# Prints `PASS fuzz/TARGET: ...` or `FAIL fuzz/TARGET: ...` per target
# (tests/run.py --suite reads these); exits 1 if any failed.
#
# Reproduce a crash:  BUILD_DIR/fuzz_TARGET BUILD_DIR/crashes/FILE
set -u
build=$1 secs=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$build/crashes"
fail=0
for t in "$@"; do
	bin=$build/fuzz_$t
	work=$build/corpus/$t
	log=$build/fuzz_$t.log
	mkdir -p "$work"
	dict=
	[ -f "$here/$t.dict" ] && dict=-dict=$here/$t.dict
	before=$(ls "$build/crashes" | grep -c "^$t-")
	# detect_leaks: a leak per input would be found in the first seconds
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	timeout -k 10 $((secs + 120)) nice -n 10 "$bin" \
		-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-max_len=65536 -print_final_stats=1 \
		-artifact_prefix="$build/crashes/$t-" $dict \
		"$work" "$here/corpus/$t" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
	after=$(ls "$build/crashes" | grep -c "^$t-")
	if [ $rc -eq 0 ] && [ "$after" -eq "$before" ]; then
		echo "PASS fuzz/$t: ${execs:-?} execs in ${secs}s, $cov, corpus $(ls "$work" | wc -l)"
	else
		what=$(grep -m1 -E 'ERROR: |runtime error|fuzz: |Assertion|deadly signal|timeout' "$log")
		art=$(ls -t "$build/crashes" | grep "^$t-" | head -1)
		echo "FAIL fuzz/$t: rc $rc, ${what:-see $log}; input $build/crashes/$art (log $log)"
		fail=1
	fi
done
exit $fail
