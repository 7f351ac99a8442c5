#!/usr/bin/env python3
"""Open-file cache (issue 13): server CPU per request before and after.

    bench/ofc.py --before OLD/kttpd --after build/kttpd [--seconds 5]
                 [--rounds 3] [--server-cpu 0] [--client-cpu 1]

One worker, open_file_cache = 1000, no access log, kttpd pinned to
--server-cpu (every thread) and the client to --client-cpu. Workloads:
  h1-1k    wrk -t1 -c64 keep-alive, a 1 KiB file
  h1-16k   wrk -t1 -c64 keep-alive, a 16 KiB file
  h2-1k    h2load -c8 -m32, a 1 KiB file
Each round runs every workload on both binaries, interleaved (before,
after, before, ...), --seconds each. CPU per request = the server
process's utime + stime (/proc/PID/stat) over the run / requests done.
Prints one row per run and a summary (median, min-max) per workload.
With --strace: instead, each workload once per binary (wrk -c8, 3 s)
under strace -c -f on every server thread: syscalls per request.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import kt  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK   # utime, stime


def run_client(kind, port, seconds, cpu):
    url = f"https://127.0.0.1:{port}"
    if kind.startswith("h1"):
        path = "/1k.txt" if kind == "h1-1k" else "/16k.bin"
        conns = "-c8" if seconds == 3 else "-c64"   # 3: the strace run
        cmd = ["wrk", "-t1", conns, f"-d{seconds}s", "-H", "Host: a.test", url + path]
    else:
        cmd = ["h2load", "-c8", "-m32", f"-D{seconds}", "--warm-up-time=0",
               url + "/1k.txt"]
    out = subprocess.run(["taskset", "-c", str(cpu)] + cmd, capture_output=True,
                         text=True, timeout=seconds + 30).stdout
    if kind.startswith("h1"):
        m = re.search(r"(\d+) requests in", out)
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    else:
        m = re.search(r"requests: \d+ total, \d+ started, (\d+) done", out)
        bad = re.search(r"status codes: \d+ 2xx, \d+ 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if m is None:
        raise SystemExit(f"cannot read the client's output:\n{out}")
    if bad and any(int(g) for g in bad.groups()):
        raise SystemExit(f"errors in the run:\n{out}")
    return int(m.group(1))


def server(binary, root):
    kt.BIN = binary
    return kt.Server(kt.site(), vhost_a=dict(root=str(root)), workers=1,
                     open_file_cache=1000, access_log=None, log_level="warn",
                     keepalive_requests=100000000, keepalive_timeout=60)


def syscalls(binary, kind, root, args):
    srv = server(binary, root)
    n = []
    try:
        run_client(kind, srv.port, 1, args.client_cpu)
        counts = kt.strace_counts(
            srv, lambda: n.append(run_client(kind, srv.port, 3, args.client_cpu)))
    finally:
        srv.stop()
    per = {k: v / n[0] for k, v in counts.items() if k != "total" and v / n[0] >= 0.005}
    return n[0], counts.get("total", 0) / n[0], per


def one(binary, kind, root, args):
    srv = server(binary, root)
    try:
        subprocess.run(["taskset", "-a", "-p", "-c", str(args.server_cpu), str(srv.pid)],
                       check=True, capture_output=True)
        run_client(kind, srv.port, 1, args.client_cpu)          # warm the cache
        c0 = cpu_s(srv.pid)
        n = run_client(kind, srv.port, args.seconds, args.client_cpu)
        c1 = cpu_s(srv.pid)
    finally:
        srv.stop()
    return n, (c1 - c0) / n * 1e6


def ab_parser(kinds):
    """The options every A/B script here shares (bulk.py, h2cost.py)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", default=str(REPO / "build" / "kttpd"))
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--kinds", default=kinds)
    ap.add_argument("--strace", action="store_true")
    return ap


def main():
    args = ab_parser("h1-1k,h1-16k,h2-1k").parse_args()
    root = kt.site().new_root("bench-ofc")
    (root / "1k.txt").write_bytes(b"x" * 1024)
    (root / "16k.bin").write_bytes(os.urandom(16384))
    if args.strace:
        try:
            for name, binary in (("before", args.before), ("after", args.after)):
                for kind in args.kinds.split(","):
                    n, total, per = syscalls(binary, kind, root, args)
                    top = ", ".join(f"{k} {v:.2f}" for k, v in
                                    sorted(per.items(), key=lambda x: -x[1]))
                    print(f"{name:6} {kind:7} {n:7} requests, {total:.2f} syscalls/req: {top}",
                          flush=True)
        finally:
            kt.cleanup()
        return
    res = {}
    print(f"{'round':>5} {'workload':8} {'binary':6} {'requests':>9} {'us/req':>7}")
    try:
        for rnd in range(args.rounds):
            for kind in args.kinds.split(","):
                for name, binary in (("before", args.before), ("after", args.after)):
                    n, us = one(binary, kind, root, args)
                    res.setdefault((kind, name), []).append(us)
                    print(f"{rnd + 1:5} {kind:8} {name:6} {n:9} {us:7.2f}", flush=True)
    finally:
        kt.cleanup()
    print("\nworkload  before us/req (min-max)   after us/req (min-max)   change")
    for kind in args.kinds.split(","):
        b, a = res[(kind, "before")], res[(kind, "after")]
        mb, ma = statistics.median(b), statistics.median(a)
        print(f"{kind:8}  {mb:6.2f} ({min(b):.2f}-{max(b):.2f})        "
              f"{ma:6.2f} ({min(a):.2f}-{max(a):.2f})        {(ma - mb) / mb * 100:+.1f}%")


if __name__ == "__main__":
    main()
