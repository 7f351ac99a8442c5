#!/usr/bin/python3
"""evidence.py: where each server's time goes on W1 and W4, side by side.

    bench/run.sh is not needed: /usr/bin/python3 bench/evidence.py
        [--seconds 5] [--work /tmp/kttpd-evidence] [--out FILE.md]
        [--servers kttpd,nginx,lighttpd,h2o] [--workloads W1,W4]

The servers, certificates, document root and OpenSSL configuration are
bench.py's (servers.py: one worker, TLS 1.3 AES-128-GCM, ECDSA P-256, open
file caches on, no access log). One server runs at a time, pinned to CPU 0,
the client on CPU 1 (W1: wrk -t1 -c64 on /1k.bin; W4: h2load -c8 -m32 on
/1k.bin). For every server and workload, three runs of --seconds:

  cpu     user and system CPU per request (/proc utime, stime)
  strace  strace -c -f on every thread: syscalls per request (strace slows
          the server down; the counts per request do not depend on that)
  perf    perf record (cpu-clock) on the server's processes: share of
          samples by DSO, and the top symbols

and a markdown report (stdout, and --out). The CPU figures move with other
load on the machine; the syscall counts and the DSO shares much less.
"""

import argparse
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import servers  # noqa: E402

SERVER_CPU, CLIENT_CPU = 0, 1


def client(cfg, wl, srv, seconds):
    url = f"https://localhost:{srv.port}/1k.bin"
    if wl == "W1":
        argv = cfg.tools["wrk"] + ["-t1", "-c64", f"-d{seconds}s", "-s",
                                   f"{bench.HERE}/wrk.lua", url]
        parse = bench.wrk_parse
    else:
        argv = cfg.tools["h2load"] + ["-t1", "-c8", "-m32", f"-D{seconds}",
                                      url]
        parse = bench.h2load_parse
    r = bench.sh(["taskset", "-c", str(CLIENT_CPU)] + argv, env=cfg.env,
                 timeout=seconds + 60)
    res = parse(r.stdout)
    if res is None or res["errors"] or not res["requests"]:
        raise SystemExit(f"{srv.name} {wl}: client failed:\n{r.stdout}{r.stderr}")
    return res["requests"]


def tids(srv):
    out = []
    for pid in srv.pids():
        try:
            out += os.listdir(f"/proc/{pid}/task")
        except OSError:
            pass
    return out


def run_cpu(cfg, wl, srv):
    u0, s0 = srv.cpu_split()
    n = client(cfg, wl, srv, cfg.seconds)
    u1, s1 = srv.cpu_split()
    return {"requests": n, "secs": cfg.seconds,
            "user_us": (u1 - u0) / n * 1e6, "sys_us": (s1 - s0) / n * 1e6}


def run_strace(cfg, wl, srv):
    out = f"{cfg.w.dir}/strace-{srv.name}-{wl}.txt"
    argv = ["strace", "-f", "-qq", "-c", "-o", out]
    for t in tids(srv):
        argv += ["-p", t]
    st = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    time.sleep(1)
    try:
        n = client(cfg, wl, srv, cfg.seconds)
        time.sleep(0.3)
    finally:
        st.terminate()
        st.wait(10)
    counts = {}
    with open(out) as f:
        for line in f:
            fl = line.split()
            if len(fl) >= 5 and fl[-1].isidentifier() and fl[3].isdigit():
                counts[fl[-1]] = int(fl[3])
    total = counts.pop("total", sum(counts.values()))
    return {"total": total / n,
            "each": {k: v / n for k, v in sorted(counts.items(),
                                                 key=lambda kv: -kv[1])}}


def run_perf(cfg, wl, srv):
    data = f"{cfg.w.dir}/perf-{srv.name}-{wl}.data"
    pids = ",".join(map(str, srv.pids()))
    rec = subprocess.Popen(["perf", "record", "-q", "-F", "999", "-o", data,
                            "-p", pids], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        client(cfg, wl, srv, cfg.seconds)
    finally:
        rec.send_signal(2)
        rec.wait(30)
    res = {}
    for key, sort in (("dso", "dso"), ("sym", "dso,symbol")):
        r = bench.sh(["perf", "report", "-i", data, "--stdio", "--sort", sort,
                      "--percent-limit", "1"])
        rows = []
        for line in r.stdout.splitlines():
            m = re.match(r"\s*([\d.]+)%\s+(.*\S)", line)
            if m:
                rows.append((float(m.group(1)), " ".join(m.group(2).split())))
        res[key] = rows
    return res


def short_dso(name):
    name = name.replace("[kernel.kallsyms]", "kernel")
    return re.sub(r"\.so[.\d]*$", "", name.split("/")[-1])


def report(cfg, results):
    lines = [f"# Where the time goes: W1 and W4, each server alone "
             f"({time.strftime('%Y-%m-%d')})", "",
             f"`/usr/bin/python3 bench/evidence.py --seconds {cfg.seconds}`"
             f" on {cfg.facts['cpu']}, {cfg.facts['nproc']} CPUs, "
             f"{cfg.facts['kernel']}, {cfg.facts['versions']['openssl']}; "
             f"kttpd {cfg.facts['versions']['kttpd']}. Server on CPU "
             f"{SERVER_CPU}, client on CPU {CLIENT_CPU}, userspace TLS 1.3 "
             f"AES-128-GCM, ECDSA P-256; servers.py's configurations.", ""]
    titles = {"W1": "W1: HTTP/1.1 keep-alive 1 KiB, wrk -t1 -c64",
              "W4": "W4: HTTP/2 1 KiB, h2load -c8 -m32"}
    for wl in cfg.workloads:
        lines += [f"## {titles[wl]}", "",
                  "| server | req/s | user us/req | sys us/req | syscalls/req "
                  "| most frequent syscalls / req | perf samples by DSO |",
                  "|---|---:|---:|---:|---:|---|---|"]
        for name, r in results[wl].items():
            c, s, p = r["cpu"], r["strace"], r["perf"]
            top = ", ".join(f"{k} {v:.3f}" for k, v in list(s["each"].items())[:4])
            dsos = ", ".join(f"{short_dso(d)} {pc:.0f}%" for pc, d in p["dso"][:6])
            lines.append(f"| {name} | {c['requests'] / c['secs']:,.0f} | "
                         f"{c['user_us']:.2f} | {c['sys_us']:.2f} | "
                         f"{s['total']:.3f} | {top} | {dsos} |")
        lines += [""]
        for name, r in results[wl].items():
            lines += [f"{name}, top symbols (perf, self):", "", "```"]
            lines += [f"{pc:6.2f}% {sym}" for pc, sym in r["perf"]["sym"][:12]]
            lines += ["```", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--work", default="/tmp/kttpd-evidence")
    ap.add_argument("--kttpd", default=f"{bench.REPO}/build/kttpd")
    ap.add_argument("--servers", default="kttpd,nginx,lighttpd,h2o")
    ap.add_argument("--workloads", default="W1,W4")
    ap.add_argument("--out")
    a = ap.parse_args()
    w = bench.Work(os.path.abspath(a.work))
    cfg = argparse.Namespace(w=w, seconds=a.seconds,
                             workloads=a.workloads.split(","))
    cfg.tools = bench.find_tools("", os.path.abspath(a.kttpd))
    cfg.env = dict(os.environ, OPENSSL_CONF=bench.openssl_conf(w))
    bench.setup(w, cfg.tools, cfg.env)
    cfg.facts = bench.facts(cfg.tools, cfg.env, False)
    want = a.servers.split(",")
    srvs = [s for s in servers.make_servers(w, cfg.tools, False) if s.name in want]
    results = {wl: {} for wl in cfg.workloads}
    for srv in srvs:
        srv.start(SERVER_CPU, cfg.env, w.log)
        try:
            for wl in cfg.workloads:
                client(cfg, wl, srv, 1)                     # warm caches
                r = {"cpu": run_cpu(cfg, wl, srv),
                     "strace": run_strace(cfg, wl, srv),
                     "perf": run_perf(cfg, wl, srv)}
                results[wl][srv.name] = r
                print(f"{srv.name} {wl}: {r['cpu']['user_us']:.2f} + "
                      f"{r['cpu']['sys_us']:.2f} us/req, "
                      f"{r['strace']['total']:.3f} syscalls/req",
                      file=sys.stderr, flush=True)
        finally:
            srv.stop()
    text = report(cfg, results)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
