#!/usr/bin/env python3
"""Userspace-TLS bulk bodies (issue 13): server CPU per byte, before/after.

    bench/bulk.py --before OLD/kttpd --after build/kttpd [--seconds 5]
                  [--rounds 3] [--kinds h1-100m,h2-1m,h1-16k] [--strace]

Same set-up as bench/ofc.py (one worker pinned to --server-cpu, the client
to --client-cpu, open_file_cache = 1000, no access log), workloads:
  h1-100m  h2load --h1 -c1 -n N, a 100 MiB file (N = --big, default 20)
  h2-1m    h2load -c4 -m4 -D seconds, a 1 MiB file
  h1-16k   wrk -t1 -c64 -d seconds keep-alive, a 16 KiB file
Interleaved before, after, before, ... each round. Reported per run:
MB/s (data bytes / client wall time), server CPU s/GB (utime + stime from
/proc over bytes) and us/req. --strace: each workload once per binary
under strace -c -f (all server threads): syscalls per MB and per request.
"""

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ofc  # noqa: E402
from ofc import cpu_s, kt  # noqa: E402

MiB = 1 << 20


def client(kind, port, seconds, cpu, big):
    url = f"https://127.0.0.1:{port}"
    if kind == "h1-16k":
        cmd = ["wrk", "-t1", "-c64", f"-d{seconds}s", "-H", "Host: a.test",
               url + "/16k.bin"]
    elif kind == "h1-100m":
        cmd = ["h2load", "--h1", "-c1", "-n", str(big), url + "/100m.bin"]
    else:
        cmd = ["h2load", "-c4", "-m4", f"-D{seconds}", "--warm-up-time=0",
               url + "/1m.bin"]
    t0 = time.monotonic()
    out = subprocess.run(["taskset", "-c", str(cpu)] + cmd, capture_output=True,
                         text=True, timeout=seconds + 120).stdout
    wall = time.monotonic() - t0
    if kind == "h1-16k":
        m = re.search(r"(\d+) requests in ([\d.]+)s", out)
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if m is None or bad:
            raise SystemExit(f"client failed:\n{out}")
        n = int(m.group(1))
        return n, n * 16384, float(m.group(2))
    fin = re.search(r"finished in ([\d.]+)(m?s)", out)
    req = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    tr = re.search(r"traffic: .* \S+ \((\d+)\) data", out)
    if not (fin and req and tr) or req.group(1) != req.group(2):
        raise SystemExit(f"client failed:\n{out}")
    secs = float(fin.group(1)) / (1000 if fin.group(2) == "ms" else 1)
    if kind == "h1-100m":
        secs = min(secs, wall)
    return int(req.group(2)), int(tr.group(1)), secs


def one(binary, kind, root, args):
    srv = ofc.server(binary, root)
    try:
        subprocess.run(["taskset", "-a", "-p", "-c", str(args.server_cpu), str(srv.pid)],
                       check=True, capture_output=True)
        client(kind, srv.port, 1, args.client_cpu, 2)            # warm up
        c0 = cpu_s(srv.pid)
        n, nbytes, secs = client(kind, srv.port, args.seconds, args.client_cpu, args.big)
        cpu = cpu_s(srv.pid) - c0
    finally:
        srv.stop()
    return dict(req=n, mbs=nbytes / secs / 1e6, sgb=cpu / nbytes * 1e9,
                usreq=cpu / n * 1e6)


def syscalls(binary, kind, root, args):
    srv = ofc.server(binary, root)
    got = []
    try:
        client(kind, srv.port, 1, args.client_cpu, 2)
        counts = kt.strace_counts(srv, lambda: got.append(
            client(kind, srv.port, 3, args.client_cpu, 4)))
    finally:
        srv.stop()
    n, nbytes, _ = got[0]
    mb = nbytes / MiB
    per = {k: v / mb for k, v in counts.items() if k != "total" and v / mb >= 0.05}
    return n, nbytes, counts.get("total", 0), per


def main():
    ap = ofc.ab_parser("h1-100m,h2-1m,h1-16k")
    ap.add_argument("--big", type=int, default=20)
    args = ap.parse_args()
    root = kt.site().new_root("bench-bulk")
    (root / "16k.bin").write_bytes(os.urandom(16384))
    (root / "1m.bin").write_bytes(os.urandom(MiB))
    with open(root / "100m.bin", "wb") as f:
        for _ in range(100):
            f.write(os.urandom(MiB))
    kinds = args.kinds.split(",")
    bins = (("before", args.before), ("after", args.after))
    try:
        if args.strace:
            for name, binary in bins:
                for kind in kinds:
                    n, nbytes, total, per = syscalls(binary, kind, root, args)
                    top = ", ".join(f"{k} {v:.1f}" for k, v in
                                    sorted(per.items(), key=lambda x: -x[1]))
                    print(f"{name:6} {kind:8} {n:7} req, {total / (nbytes / MiB):7.1f} "
                          f"syscalls/MiB, {total / n:6.2f}/req: {top}", flush=True)
            return
        res = {}
        print(f"{'round':>5} {'workload':8} {'binary':6} {'requests':>9} "
              f"{'MB/s':>7} {'s/GB':>6} {'us/req':>8}")
        for rnd in range(args.rounds):
            for kind in kinds:
                for name, binary in bins:
                    r = one(binary, kind, root, args)
                    res.setdefault((kind, name), []).append(r)
                    print(f"{rnd + 1:5} {kind:8} {name:6} {r['req']:9} {r['mbs']:7.0f} "
                          f"{r['sgb']:6.3f} {r['usreq']:8.2f}", flush=True)
    finally:
        kt.cleanup()
    print("\nworkload  metric   before median (min-max)    after median (min-max)    change")
    for kind in kinds:
        for key in ("mbs", "sgb", "usreq"):
            b = [r[key] for r in res[(kind, "before")]]
            a = [r[key] for r in res[(kind, "after")]]
            mb, ma = statistics.median(b), statistics.median(a)
            print(f"{kind:8}  {key:6}  {mb:9.3f} ({min(b):.3f}-{max(b):.3f})   "
                  f"{ma:9.3f} ({min(a):.3f}-{max(a):.3f})   {(ma - mb) / mb * 100:+.1f}%")


if __name__ == "__main__":
    main()
