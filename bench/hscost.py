#!/usr/bin/env python3
"""New TLS connection cost (issue 13, W6): A/B, instructions, syscalls.

    bench/hscost.py --before OLD/kttpd [--after build/kttpd] [--rounds 3]
                    [--seconds 5] [--procs 2] [--kinds ec,rsa] [--nginx]
    bench/hscost.py --before OLD/kttpd --callgrind [--seconds 20]
    bench/hscost.py --before OLD/kttpd --strace [--nginx] [--netns]
    bench/hscost.py ... --ktls on|off   (default auto: as bench.py)

The W6 setup of bench/bench.py: kttpd configured by bench/servers.py
(one worker, TLS 1.3 only, TLS_AES_128_GCM_SHA256 through one OPENSSL_CONF
for server and client, no access log, open_file_cache = 1000, tickets at
their default, ktls as the kernel allows), an ECDSA P-256 listener (ec)
and an RSA-2048 one (rsa, PORT+100), self-signed certificates made once
under --work. The server is pinned to --server-cpu, the clients
(--procs x `openssl s_time -new -time S -www /1k.bin`, a full handshake
per connection, the 1 KiB response read to the close) to --client-cpu.

Default mode: interleaved rounds (before, after; after, before; ...),
server CPU per connection (utime + stime of the server's processes from
/proc over the run / connections s_time completed) and per pair the
after/before ratio, robust on a shared machine. --nginx adds nginx
(bench/servers.py's config, the same certificates) to each round.

--callgrind: the server under valgrind --tool=callgrind, counters
zeroed after a warm-up, then s_time for --seconds: user-space
instructions per connection (exact, unmoved by other load; no kernel
time); callgrind_annotate output (inclusive and self) under --out.

--callgrind with --nginx: nginx runs with master_process off (one
process), as callgrind_control cannot reach a forked worker.

--strace: strace -c -f on the server's threads during a --seconds run:
syscalls per connection, by name (and nginx's, with --nginx), and TCP
segments per connection (OutSegs of /proc/net/snmp, both ends).
--netns: the whole run in a new network namespace (unshare -n, root),
so that segment count is this run's alone and no other program's.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import bench  # noqa: E402
import servers  # noqa: E402

PORT = 19451  # +100: RSA; nginx on PORT + 1


class Work:
    """What servers.py's config functions read (bench.py's Work)."""

    def __init__(self, path):
        self.dir = str(path)
        self.root = f"{path}/root"
        self.ec_crt, self.ec_key = f"{path}/ec.crt", f"{path}/ec.key"
        self.rsa_crt, self.rsa_key = f"{path}/rsa.crt", f"{path}/rsa.key"
        os.makedirs(self.root, exist_ok=True)
        os.makedirs(f"{path}/nginx-tmp", exist_ok=True)
        self.log = open(f"{path}/hscost.log", "a", buffering=1)


def setup(w):
    """Document root, certificates (as bench.py's), the OpenSSL config."""
    p = Path(w.root) / "1k.bin"
    if not p.exists():
        p.write_bytes(os.urandom(1024))
    (Path(w.root) / "index.html").write_text("<p>bench</p>\n")
    subj = ["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"]
    for crt, key, new in ((w.ec_crt, w.ec_key, ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
                          (w.rsa_crt, w.rsa_key, ["rsa:2048"])):
        if not os.path.exists(crt):
            subprocess.run(["openssl", "req", "-x509", "-newkey"] + new +
                           ["-nodes", "-days", "30", "-keyout", key, "-out", crt] + subj,
                           check=True, capture_output=True)
    conf = bench.openssl_conf(w)   # the same TLS 1.3 AES-128-GCM only
    return dict(os.environ, OPENSSL_CONF=conf)


KTLS = "auto"  # --ktls


def ktls_mode():
    """As bench.py: kTLS on where the kernel has the tls ULP (--ktls auto)."""
    if KTLS != "auto":
        return KTLS == "on"
    try:
        with open("/proc/sys/net/ipv4/tcp_available_ulp") as f:
            return "tls" in f.read().split()
    except OSError:
        return False


def make(w, name, binary, wrap=None):
    """A servers.Server for kttpd (binary) or nginx; wrap: argv before it."""
    ktls = ktls_mode()
    if name == "nginx":
        conf = f"{w.dir}/nginx.conf"
        return servers.Server("nginx", PORT + 1, (wrap or []) + [shutil.which("nginx") or "/usr/sbin/nginx",
                                                  "-e", f"{w.dir}/nginx.err", "-c", conf],
                              servers.nginx_conf(w, PORT + 1, ktls), conf)
    conf = f"{w.dir}/kttpd-{name}.conf"
    return servers.Server(name, PORT, (wrap or []) + [str(Path(binary).resolve()), "-c", conf],
                          servers.kttpd_conf(w, PORT, ktls), conf)


def start(srv, args, env, timeout=10.0):
    with open(srv.conf_path, "w") as f:
        f.write(srv.conf_text)
    argv = ["taskset", "-c", str(args.server_cpu)] + srv.argv
    srv.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                stdout=args.w.log, stderr=args.w.log,
                                start_new_session=True)
    servers.wait_ready(srv, srv.port, timeout)
    servers.wait_ready(srv, srv.rsa_port, timeout)
    for pid in srv.pids():   # every thread: the aio pool and the rotator too
        subprocess.run(["taskset", "-a", "-p", "-c", str(args.server_cpu), str(pid)],
                       check=True, capture_output=True)


def s_time(srv, kind, args, env, seconds):
    """--procs x s_time -new at once on --client-cpu: connections done."""
    port = srv.rsa_port if kind == "rsa" else srv.port
    argv = ["taskset", "-c", str(args.client_cpu), "openssl", "s_time", "-connect",
            f"127.0.0.1:{port}", "-new", "-time", str(seconds), "-www", "/1k.bin"]
    ps = [subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env=env)
          for _ in range(args.procs)]
    n = 0
    for p in ps:
        out = p.communicate(timeout=seconds + 120)[0]
        m = re.search(r"^(\d+) connections in \d+ real seconds, (\d+) bytes read per", out, re.M)
        if p.returncode != 0 or m is None or "ERROR" in out:
            raise SystemExit(f"s_time failed:\n{out}")
        # bytes read per connection: a whole 1 KiB response each time
        if int(m.group(2)) < 1024:
            raise SystemExit(f"short responses:\n{out}")
        n += int(m.group(1))
    return n


def out_segs():
    """TCP segments sent, both ends (/proc/net/snmp, this net namespace:
    run with --netns for a count no other program's traffic moves)."""
    with open("/proc/net/snmp") as f:
        rows = [ln.split() for ln in f if ln.startswith("Tcp:")]
    return int(rows[1][rows[0].index("OutSegs")])


def cpu_split(srv):
    """(user, system) CPU seconds of the server's processes (/proc)."""
    u = s = 0
    for pid in srv.pids():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        u, s = u + int(fields[11]), s + int(fields[12])
    return u / servers.HZ, s / servers.HZ


def cpu_one(w, name, binary, kind, args, env):
    """Connections, server CPU us per connection in all and in user space."""
    srv = make(w, name, binary)
    try:
        start(srv, args, env)
        s_time(srv, kind, args, env, 1)                       # warm up
        u0, s0 = cpu_split(srv)
        n = s_time(srv, kind, args, env, args.seconds)
        u1, s1 = cpu_split(srv)
    finally:
        srv.stop()
    return n, (u1 - u0 + s1 - s0) / n * 1e6, (u1 - u0) / n * 1e6


def callgrind_one(w, name, binary, kind, args, env):
    """Connections, user-space instructions per connection (callgrind:
    every process of the server, nginx's master and worker summed)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"{name}-{kind}.cg*"):
        old.unlink()
    srv = make(w, name, binary, ["valgrind", "-q", "--tool=callgrind",
                                 f"--callgrind-out-file={out}/{name}-{kind}.cg.%p"])
    # callgrind_control cannot reach a forked child: nginx in one process
    srv.conf_text = srv.conf_text.replace("master_process on;", "master_process off;")
    try:
        start(srv, args, env, timeout=120)
        s_time(srv, kind, args, env, 2)                       # warm up
        pids = [str(p) for p in srv.pids()]
        for pid in pids:
            subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
        n = s_time(srv, kind, args, env, args.seconds)
        for pid in pids:
            subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
    finally:
        srv.stop()
    total, texts = 0, []
    for pid in pids:   # the dump of each process: NAME-KIND.cg.PID.1
        dump = out / f"{name}-{kind}.cg.{pid}.1"
        r = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100",
                            str(dump)], capture_output=True, text=True)
        m = re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", r.stdout)
        total += int(m.group(1).replace(",", "")) if m else 0
        r2 = subprocess.run(["callgrind_annotate", str(dump)], capture_output=True, text=True)
        texts.append(r.stdout + "\n\n=== self ===\n" + r2.stdout)
    (out / f"{name}-{kind}.cg.txt").write_text("\n\n".join(texts))
    return n, total / n


def strace_one(w, name, binary, kind, args, env):
    srv = make(w, name, binary)
    txt = Path(w.dir) / f"strace-{name}-{kind}.txt"
    try:
        start(srv, args, env)
        s_time(srv, kind, args, env, 1)
        seg0 = out_segs()
        st = ["strace", "-f", "-qq", "-c", "-o", str(txt)]
        for pid in srv.pids():
            for t in os.listdir(f"/proc/{pid}/task"):
                st += ["-p", t]
        tr = subprocess.Popen(st, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        n = s_time(srv, kind, args, env, args.seconds)
        time.sleep(0.3)
        segs = out_segs() - seg0
        tr.terminate()
        tr.wait(10)
    finally:
        srv.stop()
    counts = {}
    for line in txt.read_text().splitlines():
        f = line.split()
        if len(f) >= 5 and f[-1].isidentifier() and f[3].isdigit():
            counts[f[-1]] = int(f[3])
    return n, counts, segs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", default=str(REPO / "build" / "kttpd"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--procs", type=int, default=2, help="s_time processes at once")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--kinds", default="ec,rsa")
    ap.add_argument("--nginx", action="store_true", help="nginx too, same certificates")
    ap.add_argument("--callgrind", action="store_true")
    ap.add_argument("--strace", action="store_true")
    ap.add_argument("--ktls", choices=("auto", "on", "off"), default="auto",
                    help="the servers' ktls setting (auto: on where the kernel has tls)")
    ap.add_argument("--netns", action="store_true",
                    help="run in a new network namespace (unshare -n, root): the "
                    "TCP segment count is then this run's alone")
    ap.add_argument("--work", default="/tmp/hscost-work")
    ap.add_argument("--out", default="/tmp/hscost-cg")
    args = ap.parse_args()
    if args.netns and os.environ.get("HSCOST_NETNS") != "1":
        inner = " ".join(["ip link set lo up &&", sys.executable] +
                         [f"'{a}'" for a in sys.argv])
        os.execvpe("unshare", ["unshare", "-n", "sh", "-c", inner],
                   dict(os.environ, HSCOST_NETNS="1"))
    global KTLS
    KTLS = args.ktls
    w = args.w = Work(args.work)
    env = setup(w)
    kinds = args.kinds.split(",")
    bins = [("before", args.before), ("after", args.after)]
    if args.nginx:
        bins.append(("nginx", None))
    print(f"ktls = {'true' if ktls_mode() else 'false'} (--ktls {args.ktls}); "
          f"{args.procs} x s_time -new",
          flush=True)
    if args.callgrind:
        for kind in kinds:
            for name, binary in bins:
                n, ir = callgrind_one(w, name, binary, kind, args, env)
                print(f"{name:6} {kind:4} {n:6} connections, {ir:10.0f} instructions/conn "
                      "(user space, callgrind)", flush=True)
        return
    if args.strace:
        for kind in kinds:
            for name, binary in bins:
                n, counts, segs = strace_one(w, name, binary, kind, args, env)
                total = counts.pop("total", 0)
                top = ", ".join(f"{k} {v / n:.2f}" for k, v in
                                sorted(counts.items(), key=lambda x: -x[1]) if v / n >= 0.005)
                print(f"{name:6} {kind:4} {n:6} connections, {segs / n:.2f} TCP segments/conn "
                      f"(both ends{'' if args.netns else ', and others on the machine'}), "
                      f"{total / n:.2f} syscalls/conn: {top}", flush=True)
        return
    res = {}
    print(f"{'round':>5} {'kind':4} {'server':6} {'conns':>7} {'us/conn':>8} {'user':>6}")
    for rnd in range(args.rounds):
        for kind in kinds:
            order = bins if rnd % 2 == 0 else bins[1::-1] + bins[2:]
            for name, binary in order:
                n, us, user = cpu_one(w, name, binary, kind, args, env)
                res.setdefault((kind, name), []).append(us)
                res.setdefault((kind, name, "user"), []).append(user)
                print(f"{rnd + 1:5} {kind:4} {name:6} {n:7} {us:8.1f} {user:6.1f}", flush=True)
    print("\nkind  server  us/conn median (min-max)   /before per pair: median (min-max)")
    for kind in kinds:
        b = res[(kind, "before")]
        for name, _ in bins:
            a = res[(kind, name)]
            ratios = [y / x for x, y in zip(b, a)]
            u = res[(kind, name, "user")]
            print(f"{kind:4}  {name:6}  {statistics.median(a):7.1f} ({min(a):.1f}-{max(a):.1f})"
                  f"      {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})"
                  f"   user {statistics.median(u):.1f}")


if __name__ == "__main__":
    main()
