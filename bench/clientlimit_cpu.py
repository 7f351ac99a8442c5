#!/usr/bin/python3
"""Server CPU time per request (utime+stime from /proc/PID/stat) with the
per-client limits on (not tripping) against the same binary with them off
and against a baseline binary without them: h2load, 1 worker, 16
connections, HTTP/1.1 keep-alive and HTTP/2 (10 streams each), index.html.
Rounds are interleaved so that the machine's noise hits every variant.

    bench/clientlimit_cpu.py BASE_BIN NEW_BIN [REQUESTS [ROUNDS]]
"""

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
import kt  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")
LIMITS = dict(client_max_connections=1000, client_rate=1000000, client_burst=1000000)


def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / HZ


def run(binary, opts, n, proto):
    kt.BIN = binary
    with kt.Server(kt.site(), workers=1, access_log="", keepalive_requests=1000000,
                   **opts) as srv:
        args = ["h2load", "-n", str(n), "-c", "16", "-t", "1",
                "-m", "1" if proto == "h1" else "10"]
        if proto == "h1":
            args.append("--h1")
        args.append(f"https://127.0.0.1:{srv.port}/index.html")
        c0 = cpu(srv.pid)
        out = subprocess.run(args, capture_output=True, text=True, timeout=300).stdout
        c1 = cpu(srv.pid)
        done = [ln for ln in out.splitlines() if ln.startswith("requests:")]
        assert done and f"{n} succeeded" in done[0], out[-500:]
        return (c1 - c0) / n * 1e6


def main():
    base, new = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 200000
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    variants = [("base", base, {}), ("limits-off", new, {}), ("limits-on", new, LIMITS)]
    for proto in ("h1", "h2"):
        res = {name: [] for name, _, _ in variants}
        for _ in range(rounds):
            for name, binary, opts in variants:
                res[name].append(run(binary, opts, n, proto))
        for name, xs in res.items():
            med = sorted(xs)[len(xs) // 2]
            print(f"{proto} {name:10} median {med:.2f} us/req  runs "
                  + " ".join(f"{x:.2f}" for x in xs), flush=True)


if __name__ == "__main__":
    main()
