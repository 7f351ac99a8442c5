#!/usr/bin/env python3
"""HTTP/2 small-response cost (issue 13, W4): A/B, syscalls and a profile.

    bench/h2cost.py --before OLD/kttpd [--after build/kttpd] [--rounds 3]
                    [--seconds 5] [--kinds h2-1k,h1-1k]
    bench/h2cost.py --before OLD/kttpd --strace
    bench/h2cost.py --before OLD/kttpd --perf [--top 25]
    bench/h2cost.py --before OLD/kttpd --callgrind [--requests 20000]
    bench/h2cost.py --before OLD/kttpd --idle

The same setup as bench/ofc.py (one worker pinned to --server-cpu, the
client on --client-cpu, open_file_cache = 1000, no access log; h2-1k is
h2load -c8 -m32 on a 1 KiB file, h1-1k wrk -t1 -c64). Default mode:
interleaved rounds, server CPU per request from /proc, and per pair the
after/before ratio (robust on a shared machine). --strace: syscalls per
request (bench/ofc.py --strace). --perf: for each binary and workload,
`perf record -g` on the server during a --seconds run, then the top of
`perf report --no-children` (self time by symbol) and of the
caller-inclusive view, written under --out (default /tmp/h2cost-perf).
--callgrind: the server under valgrind --tool=callgrind, counters zeroed
after a warm-up, then --requests requests (h2load; h1-1k: wrk -t1 -c8
for 3 s): user-space instructions per request, exact and immune to other
load on the machine (no kernel time); callgrind_annotate output under
--out. --idle: server RSS growth per idle connection after 99 streams
on each of 100 HTTP/2 connections.
"""

import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ofc  # noqa: E402
from ofc import kt  # noqa: E402


def perf_one(binary, kind, root, args, tag):
    srv = ofc.server(binary, root)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / f"{tag}-{kind}.data"
    try:
        subprocess.run(["taskset", "-a", "-p", "-c", str(args.server_cpu), str(srv.pid)],
                       check=True, capture_output=True)
        ofc.run_client(kind, srv.port, 1, args.client_cpu)
        rec = subprocess.Popen(["perf", "record", "-q", "--call-graph", args.call_graph, "-F", str(args.freq), "-o", str(data),
                                "-p", str(srv.pid)], stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        n = ofc.run_client(kind, srv.port, args.seconds, args.client_cpu)
        rec.send_signal(2)
        rec.wait(30)
    finally:
        srv.stop()
    texts = []
    for extra in (["--no-children"], ["--children"]):
        r = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "-g", "none",
                            "--percent-limit", "0.7", "--sort", "dso,symbol"] + extra,
                           capture_output=True, text=True)
        lines = [ln for ln in r.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
        texts.append("\n".join(lines[:args.top]))
    (out / f"{tag}-{kind}.txt").write_text(
        f"{n} requests\n--- self ---\n{texts[0]}\n--- children ---\n{texts[1]}\n")
    return n, texts


def callgrind_one(binary, kind, root, args, tag):
    """Instructions per request (valgrind --tool=callgrind): exact and
    unmoved by other load; user space only (no kernel, no syscalls)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cg = out / f"{tag}-{kind}.cg"
    for old in out.glob(f"{tag}-{kind}.cg*"):
        old.unlink()
    wrap = out / f"{tag}-wrap.sh"
    env = f"LD_LIBRARY_PATH={args.lib_path} " if args.lib_path else ""
    wrap.write_text(f"#!/bin/sh\n{env}exec valgrind -q --tool=callgrind --callgrind-out-file={cg} "
                    f"{Path(binary).resolve()} \"$@\"\n")
    wrap.chmod(0o755)
    kt.START_TIMEOUT = 60
    srv = ofc.server(str(wrap), root)
    n = args.requests
    try:
        client(kind, srv.port, n // 10)                       # warm the cache
        subprocess.run(["callgrind_control", "-z", str(srv.pid)], check=True,
                       capture_output=True)
        n = client(kind, srv.port, n)
        subprocess.run(["callgrind_control", "-d", str(srv.pid)], check=True,
                       capture_output=True)
    finally:
        srv.stop(grace=60)
    dumps = sorted(p for p in out.glob(f"{tag}-{kind}.cg*") if p.name != cg.name)
    r = subprocess.run(["callgrind_annotate", "--inclusive=yes", str(dumps[-1])],
                       capture_output=True, text=True)
    m = re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", r.stdout)
    total = int(m.group(1).replace(",", "")) if m else 0
    r2 = subprocess.run(["callgrind_annotate", str(dumps[-1])], capture_output=True, text=True)
    (out / f"{tag}-{kind}.cg.txt").write_text(r.stdout + "\n\n=== self ===\n" + r2.stdout)
    # h1: wrk opens its connections inside the measured window, so the
    # handshakes (~2.6M instructions each) move the per-request figure
    # with the request count; report it without them too
    m = re.search(r"([\d,]+) \([ \d.]+%\)\s+\S*tls\.c:tls_handshake \[", r.stdout)
    hs = int(m.group(1).replace(",", "")) if m else 0
    return n, total / n, (total - hs) / n, r2.stdout


def cpu_split(pid):
    """(user, system) CPU seconds of pid, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / ofc.TICK, int(fields[12]) / ofc.TICK


def one_split(binary, kind, root, args):
    """ofc.one, with the user and system parts: requests, us/req in
    all, user us/req (the part kttpd's own code and its libraries can
    change; the kernel's share of W1 is ~60%)."""
    srv = ofc.server(binary, root)
    try:
        subprocess.run(["taskset", "-a", "-p", "-c", str(args.server_cpu), str(srv.pid)],
                       check=True, capture_output=True)
        ofc.run_client(kind, srv.port, 1, args.client_cpu)      # warm the cache
        u0, s0 = cpu_split(srv.pid)
        n = ofc.run_client(kind, srv.port, args.seconds, args.client_cpu)
        u1, s1 = cpu_split(srv.pid)
    finally:
        srv.stop()
    return n, (u1 - u0 + s1 - s0) / n * 1e6, (u1 - u0) / n * 1e6


def client(kind, port, n):
    """n requests (h2load) for h2; for h1 wrk -t1 -c8 for 3 s (wrk has
    no request count): returns the requests done."""
    if kind.startswith("h1"):
        return ofc.run_client(kind, port, 3, 1)
    url = f"https://127.0.0.1:{port}/1k.txt"
    out = subprocess.run(["h2load", "-c8", "-m32", f"-n{n}", url], capture_output=True,
                         text=True, timeout=600).stdout
    if f"{n} succeeded" not in out:
        raise SystemExit(f"client errors:\n{out}")
    return n


def idle_rss(binary, conns=100, streams=99):
    """Server RSS growth per idle HTTP/2 connection that served `streams`
    1-byte responses (H2Raw, one worker): what a connection keeps."""
    kt.BIN = binary
    with kt.Server(kt.site(), workers=1, keepalive_timeout=60, http2_max_streams=100) as srv:
        open_, base = [], None
        try:
            for i in range(conns):
                c = kt.H2Raw(srv.port)
                c.__enter__()
                open_.append(c)
                first = 1
                if base is None:   # the first connection's first stream: the baseline
                    c.send(c.headers(1, kt.size_path(1)))
                    c.collect(lambda c: c.ended(1))
                    time.sleep(0.3)
                    base, first = kt.proc_rss_kib(srv.pid), 3
                ids = list(range(first, 2 * streams, 2))
                c.send(b"".join(c.headers(s, kt.size_path(1)) for s in ids))
                if not c.collect(lambda c: all(c.ended(s) for s in ids)):
                    raise SystemExit("streams unanswered")
            time.sleep(0.5)
            return (kt.proc_rss_kib(srv.pid) - base) / conns
        finally:
            for c in open_:
                c.__exit__(None, None, None)


def main():
    ap = ofc.ab_parser("h2-1k,h1-1k")
    ap.add_argument("--perf", action="store_true")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--callgrind", action="store_true")
    ap.add_argument("--idle", action="store_true",
                    help="RSS per idle h2 connection after 99 streams")
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--lib-path", help="LD_LIBRARY_PATH for the server under callgrind "
                    "(a libnghttp2 built with symbols, for names in the profile)")
    ap.add_argument("--call-graph", default="dwarf,16384",
                    help="perf record --call-graph (fp misses libnghttp2's frames)")
    ap.add_argument("--freq", type=int, default=1000)
    ap.add_argument("--out", default="/tmp/h2cost-perf")
    args = ap.parse_args()
    root = kt.site().new_root("bench-h2cost")
    (root / "1k.txt").write_bytes(b"x" * 1024)
    (root / "16k.bin").write_bytes(b"y" * 16384)
    bins = (("before", args.before), ("after", args.after))
    kinds = args.kinds.split(",")
    try:
        if args.strace:
            for name, binary in bins:
                for kind in kinds:
                    n, total, per = ofc.syscalls(binary, kind, root, args)
                    top = ", ".join(f"{k} {v:.3f}" for k, v in
                                    sorted(per.items(), key=lambda x: -x[1]))
                    print(f"{name:6} {kind:7} {n:7} requests, {total:.3f} syscalls/req: {top}",
                          flush=True)
            return
        if args.idle:
            for name, binary in bins:
                print(f"{name:6} {idle_rss(binary):.1f} KiB RSS per idle h2 connection "
                      "(100 connections, 99 streams each)", flush=True)
            return
        if args.callgrind:
            for kind in kinds:
                for name, binary in bins:
                    n, ir, ir_nohs, txt = callgrind_one(binary, kind, root, args, name)
                    print(f"{name:6} {kind:7} {n:7} requests, {ir:9.0f} instructions/req "
                          f"(user space, callgrind), {ir_nohs:9.0f} without handshakes",
                          flush=True)
            return
        if args.perf:
            for name, binary in bins:
                for kind in kinds:
                    n, texts = perf_one(binary, kind, root, args, name)
                    print(f"=== {name} {kind}: {n} requests in {args.seconds} s\n"
                          f"--- self ---\n{texts[0]}\n", flush=True)
            return
        res = {}
        print(f"{'round':>5} {'workload':8} {'binary':6} {'requests':>9} {'us/req':>7} "
              f"{'user':>6}")
        for rnd in range(args.rounds):
            for kind in kinds:
                order = bins if rnd % 2 == 0 else bins[::-1]
                for name, binary in order:
                    n, us, user = one_split(binary, kind, root, args)
                    res.setdefault((kind, name), []).append(us)
                    res.setdefault((kind, name, "user"), []).append(user)
                    print(f"{rnd + 1:5} {kind:8} {name:6} {n:9} {us:7.2f} {user:6.2f}",
                          flush=True)
    finally:
        kt.cleanup()
    print("\nworkload  before us/req (min-max)  after us/req (min-max)  "
          "after/before per pair: median (min-max)")
    for kind in kinds:
        b, a = res[(kind, "before")], res[(kind, "after")]
        ratios = [y / x for x, y in zip(b, a)]
        print(f"{kind:8}  {statistics.median(b):6.2f} ({min(b):.2f}-{max(b):.2f})      "
              f"{statistics.median(a):6.2f} ({min(a):.2f}-{max(a):.2f})      "
              f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})")
    print("user-space CPU only (utime):")
    for kind in kinds:
        b, a = res[(kind, "before", "user")], res[(kind, "after", "user")]
        ratios = [y / x for x, y in zip(b, a) if x > 0]
        print(f"{kind:8}  {statistics.median(b):6.2f} ({min(b):.2f}-{max(b):.2f})      "
              f"{statistics.median(a):6.2f} ({min(a):.2f}-{max(a):.2f})      "
              f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
