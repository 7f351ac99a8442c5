#!/usr/bin/python3
"""bench.py: workloads W1-W8 against kttpd, nginx, lighttpd and h2o on
loopback, interleaved (A B C D A B C D ...). Run it through bench/run.sh,
which sets ulimits and cleans up process groups. See bench/README.md."""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

import report
import servers

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MiB = 1 << 20


class Work:
    """The scratch directory: document root, certificates, configs, logs."""

    def __init__(self, path):
        self.dir = path
        self.root = f"{path}/root"
        self.ec_crt, self.ec_key = f"{path}/ec.crt", f"{path}/ec.key"
        self.rsa_crt, self.rsa_key = f"{path}/rsa.crt", f"{path}/rsa.key"
        os.makedirs(path, exist_ok=True)
        self.log = open(f"{path}/bench.log", "a", buffering=1)


# ---- tools: system binaries, or a private prefix of extracted .debs ----

def find_tools(prefix, kttpd):
    """argv prefixes. With a prefix (device.sh) every binary, kttpd
    included, runs under the carried loader and libraries, so the machine's
    own distribution does not matter."""
    t = {"kttpd": [kttpd]}
    names = {"nginx": "usr/sbin/nginx", "lighttpd": "usr/sbin/lighttpd",
             "h2o": "usr/bin/h2o", "wrk": "usr/bin/wrk",
             "h2load": "usr/bin/h2load", "openssl": "usr/bin/openssl"}
    if not prefix:
        for n in names:
            t[n] = [shutil.which(n) or "/" + names[n]]
        return t
    libs = ":".join(f"{prefix}/{d}" for d in (
        "lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"))
    # not lib64/: in the .deb that is an absolute link to the host loader
    run = [f"{prefix}/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
           "--library-path", libs]
    t["kttpd"] = run + [kttpd]
    for n, p in names.items():
        t[n] = run + [f"{prefix}/{p}"]
    t["lighttpd_mods"] = ["-m", f"{prefix}/usr/lib/lighttpd"]
    return t


def cpu_list(text):
    out = []
    for part in text.split(","):
        if part.strip():
            a, _, b = part.partition("-")
            out += range(int(a), int(b or a) + 1)
    return out


def client_cpus(server_cpu):
    """Up to 8 CPUs for the clients: not the server's, nor its SMT
    siblings (unless nothing else is left)."""
    allowed = sorted(os.sched_getaffinity(0))
    sib = cpu_list(read(f"/sys/devices/system/cpu/cpu{server_cpu}/topology/"
                        "thread_siblings_list") or str(server_cpu))
    free = [c for c in allowed if c != server_cpu and c not in sib]
    free = free or [c for c in allowed if c != server_cpu] or [server_cpu]
    return free[:8]


def sh(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, errors="replace", **kw)


def setup(w, tools, env):
    os.makedirs(w.root, exist_ok=True)
    os.chmod(w.dir, 0o755)
    for name, size in (("1k.bin", 1024), ("16k.bin", 16384),
                       ("1m.bin", MiB), ("100m.bin", 100 * MiB)):
        p = f"{w.root}/{name}"
        if not os.path.exists(p) or os.path.getsize(p) != size:
            with open(p, "wb") as f:
                for _ in range(max(1, size // MiB)):
                    f.write(os.urandom(min(size, MiB)))
    with open(f"{w.root}/index.html", "w") as f:
        f.write("<p>bench</p>\n")
    ossl = tools["openssl"]
    subj = ["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"]
    if not os.path.exists(w.ec_crt):
        sh(ossl + ["req", "-x509", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
                   "-keyout", w.ec_key, "-out", w.ec_crt] + subj,
           env=env, check=True)
    if not os.path.exists(w.rsa_crt):
        sh(ossl + ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                   "30", "-keyout", w.rsa_key, "-out", w.rsa_crt] + subj,
           env=env, check=True)


def openssl_conf(w):
    """One OpenSSL config for every server and client: TLS 1.3 with
    AES-128-GCM only, so no side can pick another suite."""
    p = f"{w.dir}/openssl.cnf"
    with open(p, "w") as f:
        f.write(f"""openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MinProtocol = TLSv1.3
Ciphersuites = {servers.SUITE}
""")
    return p


# ---- machine facts and the TLS mode ----

def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def tls_stat():
    out = {}
    for line in read("/proc/net/tls_stat").splitlines():
        k, _, v = line.partition(" ")
        if v.strip().isdigit():
            out[k] = int(v)
    return out


def ktls_mode():
    ulp = read("/proc/sys/net/ipv4/tcp_available_ulp")
    if "tls" not in ulp.split() and shutil.which("modprobe"):
        sh(["modprobe", "tls"])
        ulp = read("/proc/sys/net/ipv4/tcp_available_ulp")
    return "tls" in ulp.split(), ulp


def version(argv, env):
    r = sh(argv, env=env)
    out = (r.stdout + r.stderr).strip().splitlines()
    return out[0] if out else "?"


def facts(tools, env, quick):
    cpu = ""
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = read("/proc/meminfo").splitlines()[0].split()[1]
    k = tools["kttpd"][-1]
    kver = sh(["git", "-C", REPO, "describe", "--always", "--dirty"]).stdout
    return {
        "host": platform.node(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": cpu, "nproc": os.cpu_count(),
        "mem_gib": round(int(mem) / (1 << 20), 1),
        "kernel": platform.release(),
        "os": dict(re.findall(r'^(\w+)="?([^"\n]*)"?', read("/etc/os-release"),
                              re.M)).get("PRETTY_NAME", "?"),
        "mode": "quick" if quick else "full",
        "versions": {
            "kttpd": f"{kver.strip() or '?'} ({k})",
            "openssl": version(tools["openssl"] + ["version"], env),
            "nginx": version(tools["nginx"] + ["-v"], env),
            "lighttpd": version(tools["lighttpd"] + ["-v"], env),
            "h2o": version(tools["h2o"] + ["-v"], env),
            "wrk": version(tools["wrk"] + ["-v"], env),
            "h2load": version(tools["h2load"] + ["--version"], env),
            "python": platform.python_version(),
        },
    }


def aes_speed(tools, env, cpu, secs):
    """openssl speed -evp aes-128-gcm, 16 KiB blocks, one core: bytes/s."""
    args = ["speed", "-evp", "aes-128-gcm", "-bytes", "16384", "-seconds",
            str(secs), "-mr"]
    argv = ["taskset", "-c", str(cpu)] + tools["openssl"] + args
    r = sh(argv, env=env)
    for line in r.stdout.splitlines():
        if line.startswith("+F:"):
            return float(line.split(":")[-1]), " ".join(["openssl"] + args)
    return 0.0, " ".join(["openssl"] + args)


def h2_offered(tools, env, port):
    r = subprocess.run(tools["openssl"] + [
        "s_client", "-connect", f"127.0.0.1:{port}", "-alpn", "h2",
        "-servername", "localhost"], input="", capture_output=True, text=True, errors="replace",
        env=env, timeout=10)
    return "ALPN protocol: h2" in r.stdout


def negotiated(tools, env, port):
    r = subprocess.run(tools["openssl"] + [
        "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
        "localhost"], input="", capture_output=True, text=True, errors="replace", env=env,
        timeout=10)
    m = re.search(r"New, (\S+), Cipher is (\S+)", r.stdout)
    return f"{m.group(1)} {m.group(2)}" if m else "?"


# ---- the workloads ----

def wrk_parse(out):
    m = re.search(r"^BENCH (\{.*\})$", out, re.M)
    if not m:
        return None
    d = json.loads(m.group(1))
    return {"secs": d["us"] / 1e6, "requests": d["requests"],
            "bytes": d["bytes"], "errors": d["errors"],
            "p50_us": d["p50_us"], "p99_us": d["p99_us"]}


def h2load_parse(out):
    fin = re.search(r"finished in ([\d.]+)(m?s)", out)
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, "
                    r"(\d+) succeeded, (\d+) failed, (\d+) errored, "
                    r"(\d+) timeout", out)
    st = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, "
                   r"(\d+) 5xx", out)
    tr = re.search(r"traffic: \S+ \((\d+)\) total, \S+ \((\d+)\) headers.*"
                   r" \S+ \((\d+)\) data", out)
    if not (fin and req and st and tr):
        return None
    secs = float(fin.group(1)) / (1000 if fin.group(2) == "ms" else 1)
    ok2xx = int(st.group(1))
    # with -D, responses cut off at the end are neither failed nor counted
    errors = sum(int(req.group(i)) for i in (5, 6, 7)) + \
        sum(int(st.group(i)) for i in (3, 4))     # 4xx, 5xx
    # "total" reads 0 after h2load reconnects: then headers + data
    nbytes = int(tr.group(1)) or int(tr.group(2)) + int(tr.group(3))
    return {"secs": secs, "requests": ok2xx, "bytes": nbytes,
            "errors": errors}


class Workload:
    def __init__(self, key, title, unit, client, h2=False, rsa=False):
        self.key, self.title, self.unit = key, title, unit
        self.client = client        # (cfg, srv) -> (argv, env extras, parser)
        self.h2, self.rsa = h2, rsa


def workloads(cfg):
    d, t, wrk, h2l = cfg.dur, cfg.threads, cfg.tools["wrk"], cfg.tools["h2load"]
    url = lambda srv, path, rsa=False: \
        f"https://localhost:{srv.rsa_port if rsa else srv.port}{path}"
    lua = f"{HERE}/wrk.lua"
    c64 = max(64, t)

    def w_wrk(path, conns):
        return lambda srv: (wrk + ["-t", str(t), "-c", str(conns), "-d",
                                   f"{d}s", "-s", lua, url(srv, path)],
                            {}, wrk_parse)

    def w_h2(path, conns, streams):
        return lambda srv: (h2l + ["-t", str(t), "-c", str(conns), "-m",
                                   str(streams), "-D", str(d),
                                   url(srv, path)], {}, h2load_parse)

    def w_new(rsa):
        # h2load resumes TLS sessions when it reconnects, so W6 uses
        # `openssl s_time -new` (a full handshake every time), in parallel.
        return lambda srv: (cfg.tools["openssl"] + [
            "s_time", "-connect",
            f"127.0.0.1:{srv.rsa_port if rsa else srv.port}", "-new",
            "-time", str(d), "-www", "/1k.bin"], {}, None)

    n3 = cfg.big_requests
    delay_ms = cfg.w8_conns * 1000 // cfg.w8_rate
    return [
        Workload("W1", "HTTP/1.1 keep-alive, 1 KiB, 64 conns", "req/s",
                 w_wrk("/1k.bin", c64)),
        Workload("W2", "HTTP/1.1 keep-alive, 16 KiB, 64 conns", "req/s",
                 w_wrk("/16k.bin", c64)),
        Workload("W3", f"HTTP/1.1, 100 MiB file x{n3}, 1 conn", "MB/s",
                 lambda srv: (h2l + ["--h1", "-t", "1", "-c", "1", "-n",
                                     str(n3), url(srv, "/100m.bin")],
                              {}, h2load_parse)),
        Workload("W4", "HTTP/2, 1 KiB, 8 conns x 32 streams", "req/s",
                 w_h2("/1k.bin", max(8, t), 32), h2=True),
        Workload("W5", "HTTP/2, 1 MiB, 4 conns x 4 streams", "MB/s",
                 w_h2("/1m.bin", max(4, t), 4), h2=True),
        Workload("W6e", f"new TLS conns/s, ECDSA P-256 "
                 f"({cfg.new_procs} x s_time -new)",
                 "conn/s", w_new(False)),
        Workload("W6r", f"new TLS conns/s, RSA-2048 "
                 f"({cfg.new_procs} x s_time -new)",
                 "conn/s", w_new(True), rsa=True),
        Workload("W7", f"memory per idle TLS conn ({cfg.idle_conns} conns)",
                 "KiB/conn", None),
        Workload("W8", f"latency at {cfg.w8_rate} req/s, 1 KiB, "
                 f"{cfg.w8_conns} conns", "p50/p99 us",
                 lambda srv: (wrk + ["-t", "1", "-c", str(cfg.w8_conns),
                                     "-d", f"{d}s", "-s", lua,
                                     url(srv, "/1k.bin")],
                              {"BENCH_DELAY_MS": str(delay_ms)}, wrk_parse)),
    ]


def client_run(cfg, argv, extra_env, timeout):
    env = dict(cfg.env, **extra_env)
    argv = ["taskset", "-c", cfg.client_cpus] + argv
    cfg.w.log.write("$ " + " ".join(argv) + "\n")
    try:
        r = subprocess.run(argv, capture_output=True, text=True, errors="replace", env=env,
                           timeout=timeout)
        out = r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") + "\nTIMEOUT"
    cfg.w.log.write(out + "\n")
    return out, argv


def parallel_run(cfg, argv, timeout):
    """cfg.new_procs copies of argv at once; their outputs, tagged with
    the wall time of the whole, for s_time_parse."""
    argv = ["taskset", "-c", cfg.client_cpus] + argv
    cfg.w.log.write(f"$ {cfg.new_procs} x " + " ".join(argv) + "\n")
    t0 = time.time()
    ps = [subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, errors="replace", env=cfg.env)
          for _ in range(cfg.new_procs)]
    outs = []
    for p in ps:
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out = p.communicate()[0] + "\nTIMEOUT"
        outs.append(f"{out}\nRC {p.returncode}\n")
    out = f"WALL {time.time() - t0}\n" + "".join(outs)
    cfg.w.log.write(out + "\n")
    return out, [f"{cfg.new_procs} x"] + argv


def s_time_parse(out):
    wall = float(re.search(r"^WALL (\S+)", out, re.M).group(1))
    conns = re.findall(r"^(\d+) connections in [\d.]+s; .* bytes read (\d+)",
                       out, re.M)
    bad = len(re.findall(r"^RC [^0]", out, re.M)) + out.count("ERROR")
    return {"secs": wall, "requests": sum(int(c) for c, _ in conns),
            "bytes": sum(int(b) for _, b in conns), "errors": bad}


def measure(cfg, wl, srv):
    """One run of one workload against one server."""
    argv, extra, parse = wl.client(srv)
    srv.reset_peak()
    st0, cpu0 = tls_stat(), srv.cpu_seconds()
    if parse is None:
        out, full = parallel_run(cfg, argv, cfg.dur * 4 + 60)
        parse = s_time_parse
    else:
        out, full = client_run(cfg, argv, extra, cfg.dur * 4 + 60)
    cpu1, st1 = srv.cpu_seconds(), tls_stat()
    res = parse(out) or {"secs": 0, "requests": 0, "bytes": 0, "errors": -1}
    res.update(cpu_s=cpu1 - cpu0, peak_kib=srv.peak_rss_kib(),
               tls_stat={k: st1[k] - st0.get(k, 0) for k in st1},
               alive=srv.alive())
    if not srv.alive():
        res["errors"] = max(res["errors"], 1)
    if wl.unit == "MB/s":
        res["value"] = res["bytes"] / 1e6 / res["secs"] if res["secs"] else 0
    elif wl.key == "W8":
        res["value"] = res.get("p50_us", 0)
        res["rate"] = res["requests"] / res["secs"] if res["secs"] else 0
    else:
        res["value"] = res["requests"] / res["secs"] if res["secs"] else 0
    return res, full


def measure_idle(cfg, srv):
    """W7: restart the server (a fresh heap), warm it with one request,
    then RSS with N idle connections minus RSS before, per connection."""
    srv.stop()
    srv.start(cfg.server_cpu, cfg.env, cfg.w.log)
    time.sleep(0.3)
    base = srv.rss_kib()
    srv.reset_peak()
    cpu0 = srv.cpu_seconds()
    argv = ["taskset", "-c", cfg.client_cpus, sys.executable,
            f"{HERE}/idle.py", "127.0.0.1", str(srv.port),
            str(cfg.idle_conns), str(cfg.idle_procs)]
    cfg.w.log.write("$ " + " ".join(argv) + "\n")
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, env=cfg.env)
    res = {"secs": 0, "requests": 0, "bytes": 0, "errors": cfg.idle_conns}
    try:
        t0 = time.time()
        line = p.stdout.readline().split()
        res["secs"] = time.time() - t0
        if line and line[0] == "ready":
            time.sleep(1.0)
            held = srv.rss_kib()
            ok, err = int(line[1]), int(line[2])
            res.update(requests=ok, errors=err, base_kib=base, held_kib=held,
                       value=(held - base) / max(ok, 1))
    finally:
        res["cpu_s"] = srv.cpu_seconds() - cpu0
        res["peak_kib"] = srv.peak_rss_kib()
        p.stdin.close()
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    res.setdefault("value", 0)
    return res, argv


def run_all(cfg, srvs):
    results = {}            # key -> server name -> [run, ...]
    commands = {}           # key -> the kttpd client command
    for wl in workloads(cfg):
        results[wl.key] = {s.name: [] for s in srvs}
        rounds = cfg.idle_rounds if wl.key == "W7" else cfg.rounds
        for rnd in range(rounds):
            for srv in srvs:
                if wl.h2 and not srv.h2:
                    continue
                t0 = time.time()
                if wl.key == "W7":
                    res, argv = measure_idle(cfg, srv)
                else:
                    res, argv = measure(cfg, wl, srv)
                if srv.name == "kttpd" and wl.key not in commands:
                    commands[wl.key] = " ".join(argv)
                results[wl.key][srv.name].append(res)
                print(f"  {wl.key} round {rnd + 1}/{rounds} {srv.name:10s} "
                      f"{res['value']:12.1f} {wl.unit:10s} errors "
                      f"{res['errors']} ({time.time() - t0:.1f}s)",
                      flush=True)
                if not srv.alive():
                    print(f"  {srv.name} died; restarting", flush=True)
                    srv.stop()
                    srv.start(cfg.server_cpu, cfg.env, cfg.w.log)
        if wl.key == "W7":      # the next workloads start from a fresh heap
            for srv in srvs:
                srv.stop()
                srv.start(cfg.server_cpu, cfg.env, cfg.w.log)
    return results, commands


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=f"{HERE}/results")
    ap.add_argument("--work", default="/tmp/kttpd-bench")
    ap.add_argument("--kttpd", default=f"{REPO}/build/kttpd")
    ap.add_argument("--prefix", default=os.environ.get("BENCH_PREFIX", ""))
    ap.add_argument("--pgids", default="", help="file to record server "
                    "process groups in, for run.sh's trap")
    a = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))

    os.makedirs(a.work, exist_ok=True)
    w = Work(os.path.abspath(a.work))
    cfg = argparse.Namespace(w=w, quick=a.quick)
    cfg.tools = find_tools(a.prefix, os.path.abspath(a.kttpd))
    cfg.env = dict(os.environ, OPENSSL_CONF=openssl_conf(w))
    cfg.server_cpu = 0
    clients = client_cpus(cfg.server_cpu)
    nclient = len(clients)
    cfg.client_cpus = ",".join(map(str, clients))
    cfg.threads = nclient
    cfg.dur = 1 if a.quick else 8
    cfg.rounds = 3
    cfg.new_procs = 4 * nclient
    cfg.idle_rounds = 1 if a.quick else 3
    # W7: 10,000 connections; a QUICK run on a small machine (under 4
    # client CPUs: Python handshakes at ~300/s per core) holds 2,000.
    cfg.idle_conns = 2000 if a.quick and nclient < 4 else 10000
    cfg.idle_procs = nclient
    cfg.big_requests = 3 if a.quick else 20
    cfg.w8_rate, cfg.w8_conns = 2000, 16

    setup(w, cfg.tools, cfg.env)
    ktls, ulp = ktls_mode()
    info = facts(cfg.tools, cfg.env, a.quick)
    info.update(ktls=ktls, ulp=ulp, server_cpu=cfg.server_cpu,
                client_cpus=cfg.client_cpus, client_threads=cfg.threads,
                dur=cfg.dur, rounds=cfg.rounds, idle_rounds=cfg.idle_rounds,
                prefix=a.prefix or "(system)")
    print(f"mode: {'kTLS' if ktls else 'userspace TLS'} "
          f"(tcp_available_ulp: {ulp or '-'}); {info['mode']} run", flush=True)
    aes, aes_cmd = aes_speed(cfg.tools, cfg.env, cfg.server_cpu,
                             1 if a.quick else 3)
    info.update(aes_bytes_per_s=aes, aes_cmd=aes_cmd)

    srvs = servers.make_servers(w, cfg.tools, ktls)
    if a.pgids:
        servers.PGIDS = open(a.pgids, "a", buffering=1)
    try:
        for s in srvs:
            s.start(cfg.server_cpu, cfg.env, w.log)
            s.h2 = h2_offered(cfg.tools, cfg.env, s.port)
        info["negotiated"] = {s.name: negotiated(cfg.tools, cfg.env, s.port)
                              for s in srvs}
        info["h2"] = {s.name: s.h2 for s in srvs}
        info["server_cmds"] = {s.name: " ".join(s.argv) for s in srvs}
        info["server_confs"] = {s.name: s.conf_text for s in srvs}
        info["tls_stat_before"] = tls_stat()
        results, commands = run_all(cfg, srvs)
        info["tls_stat_after"] = tls_stat()
    finally:
        for s in srvs:
            s.stop()
    info["commands"] = commands
    info["labels"] = {s.name: s.label for s in srvs}
    info["workloads"] = [(wl.key, wl.title, wl.unit, wl.h2)
                         for wl in workloads(cfg)]
    os.makedirs(a.out, exist_ok=True)
    host = os.environ.get("BENCH_HOST") or info["host"]
    stem = f"{a.out}/{time.strftime('%Y-%m-%d')}-{host}"
    with open(stem + ".json", "w") as f:
        json.dump({"info": info, "results": results}, f, indent=1)
    report.write(stem)
    print(f"wrote {stem}.md", flush=True)


if __name__ == "__main__":
    main()
