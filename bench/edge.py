#!/usr/bin/env python3
"""edge.py: the issue-5 figures, kttpd against itself in one run.

  A  open_file_cache = 0 vs 1000: W1-like, HTTP/1.1 keep-alive, 1 KiB,
     64 connections (wrk)
  B  a gzip-cached text file (Accept-Encoding: gzip) vs the same file
     uncompressed: 100 KiB of HTML-like text, 64 connections

Interleaved (A0 A1 A0 A1 ...), medians of ROUNDS, server pinned to CPU 0,
clients on the others. Uses bench.py's tools (so it runs under device.sh's
carried prefix too). Prints a Markdown table; --out FILE writes it.

    bench/edge.py [--quick] [--out FILE]
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import servers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def conf(w, port, extra):
    return f'''workers = 1
error_log = "{w.dir}/edge-{port}.err"
access_log = ""
keepalive_requests = 100000
keepalive_timeout = 300
gzip_cache = "{w.dir}/edge-gzip-{port}"
{extra}
server "bench" {{
    listen = {{ "127.0.0.1:{port} tls" }}
    tls {{ certificate = "{w.ec_crt}" key = "{w.ec_key}" }}
    root = "{w.root}"
    gzip = true
}}
'''


def start(cfg, port, extra):
    path = f"{cfg.w.dir}/edge-{port}.conf"
    with open(path, "w") as f:
        f.write(conf(cfg.w, port, extra))
    p = subprocess.Popen(["taskset", "-c", "0"] + cfg.tools["kttpd"] +
                         ["-c", path], env=cfg.env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(0.5)
    return p


def cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def wrk(cfg, pid, url, header=None):
    argv = ["taskset", "-c", cfg.clients] + cfg.tools["wrk"] + [
        "-t", str(cfg.threads), "-c", "64", "-d", f"{cfg.dur}s",
        "-s", f"{HERE}/wrk.lua"]
    if header:
        argv += ["-H", header]
    c0 = cpu_s(pid)
    out = subprocess.run(argv + [url], capture_output=True, text=True,
                         env=cfg.env).stdout
    c1 = cpu_s(pid)
    r = bench.wrk_parse(out)
    if r is None or r["errors"]:
        return None
    return (r["requests"] / r["secs"], r["bytes"] / r["secs"] / 1e6,
            (c1 - c0) / r["requests"] * 1e6)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--work", default="/tmp/kttpd-bench")
    ap.add_argument("--kttpd", default=f"{bench.REPO}/build/kttpd")
    ap.add_argument("--prefix", default=os.environ.get("BENCH_PREFIX", ""))
    a = ap.parse_args()
    w = bench.Work(os.path.abspath(a.work))
    cfg = argparse.Namespace(w=w)
    cfg.tools = bench.find_tools(a.prefix, os.path.abspath(a.kttpd))
    cfg.env = dict(os.environ, OPENSSL_CONF=bench.openssl_conf(w))
    clients = bench.client_cpus(0)
    cfg.clients, cfg.threads = ",".join(map(str, clients)), len(clients)
    cfg.dur = 2 if a.quick else 5
    rounds = 3
    bench.setup(w, cfg.tools, cfg.env)
    with open(f"{w.root}/page.html", "w") as f:  # compressible, 100 KiB
        line = "<p class=\"item\">kttpd edge benchmark line {}</p>\n"
        f.write("".join(line.format(i) for i in range(2700))[:102400])

    procs = {"ofc0": start(cfg, 19501, "open_file_cache = 0"),
             "ofc1000": start(cfg, 19502, "open_file_cache = 1000")}
    cases = [("A", "open_file_cache = 0", "ofc0", "/1k.bin", None),
             ("A", "open_file_cache = 1000", "ofc1000", "/1k.bin", None),
             ("B", "100 KiB page, identity", "ofc1000", "/page.html", None),
             ("B", "100 KiB page, gzip (cached)", "ofc1000", "/page.html",
              "Accept-Encoding: gzip")]
    ports = {"ofc0": 19501, "ofc1000": 19502}
    res = {i: [] for i in range(len(cases))}
    try:
        for _ in range(rounds):
            for i, (_, _, srv, path, hdr) in enumerate(cases):
                r = wrk(cfg, procs[srv].pid,
                        f"https://localhost:{ports[srv]}{path}", hdr)
                if r:
                    res[i].append(r)
    finally:
        for p in procs.values():
            os.killpg(p.pid, 15)
            p.wait()
    lines = ["| case | req/s | MB/s on the wire | server CPU µs/req | runs |",
             "|---|---:|---:|---:|---:|"]
    for i, (g, title, *_rest) in enumerate(cases):
        rs = res[i]
        if not rs:
            lines.append(f"| {g}: {title} | errors | | | 0 |")
            continue
        med = [statistics.median(x[k] for x in rs) for k in range(3)]
        lines.append(f"| {g}: {title} | {med[0]:,.0f} | {med[1]:,.1f} | "
                     f"{med[2]:.1f} | {len(rs)} |")
    text = ("\n".join(lines) + f"\n\nwrk -t {cfg.threads} -c 64 -d "
            f"{cfg.dur}s, {rounds} interleaved rounds, server on CPU 0, "
            f"clients on {cfg.clients}; medians.\n")
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
