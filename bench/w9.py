#!/usr/bin/env python3
"""W9: latency of hot 1 KiB requests while cold large files stream from a
slow disk on the same worker, with and without the readahead pool.

    bench/w9.py [--bin build/kttpd] [--seconds 5] [--streams 2] [--delay 0.02]
                [--nginx]

Root and python3-fusepy: the slow disk is tests/integration/slowfs.py (a
FUSE view whose every read sleeps --delay s; each open starts cold). One
worker; --streams curl loops download a 6 MiB file over and over while one
keep-alive TLS connection asks for 1 KiB as fast as answers come. Prints
one line per aio_threads setting: requests, p50, p99, max in ms.
Kept apart from bench/bench.py (another engineer's), same conventions.
"""

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import kt  # noqa: E402


def streamer(srv, stop):
    while not stop.is_set():
        kt.curl(srv, "/slow/big", check=False, timeout=60)


def hot_loop(c, streamers, seconds):
    """1 KiB over keep-alive connection c as fast as answers come, while
    the streamers run; returns each request's latency."""
    lat = []
    c.send(kt.request("/hot.txt"))
    c.read_response()
    for t in streamers:
        t.start()
    time.sleep(0.2)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        c.send(kt.request("/hot.txt"))
        r = c.read_response()
        lat.append(time.monotonic() - t0)
        assert r.status == 200 and len(r.body) == 1024
    return lat


def run(root, threads, seconds, streams):
    with kt.Server(kt.site(), vhost_a=dict(root=str(root)), workers=1,
                   aio_threads=threads, log_level="warn",
                   keepalive_requests=100000000) as srv:
        stop = threading.Event()
        ts = [threading.Thread(target=streamer, args=(srv, stop)) for _ in range(streams)]
        with srv.connect() as c:
            lat = hot_loop(c, ts, seconds)
        stop.set()
        for t in ts:
            t.join()
    report(f"kttpd aio_threads={threads}", lat)


def nginx_conf(root, port, crt, key, aio, workdir):
    return f"""daemon off;
worker_processes 1;
pid {workdir}/nginx-w9.pid;
error_log {workdir}/nginx-w9.err warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    {"aio threads;" if aio else ""}
    keepalive_requests 100000000;
    client_body_temp_path {workdir}/nginx-tmp;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        root {root};
    }}
}}
"""


def run_nginx(root, aio, seconds, streams, site):
    """The same measurement against nginx, with and without `aio threads`."""
    port = kt.free_port()
    crt, key = site.certs["a.test"]
    workdir = site.dir
    (workdir / "nginx-tmp").mkdir(exist_ok=True)
    conf = workdir / f"nginx-w9-{int(aio)}.conf"
    conf.write_text(nginx_conf(root, port, crt, key, aio, workdir))
    p = subprocess.Popen(["nginx", "-c", str(conf)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    lat = []
    stop = threading.Event()

    def stream():
        while not stop.is_set():
            subprocess.run(["curl", "-sk", "-o", "/dev/null", "--max-time", "60",
                            f"https://127.0.0.1:{port}/slow/big"])
    try:
        if not kt.wait_until(lambda: kt.port_accepts(port), 5):
            print("W9 nginx: did not start", flush=True)
            return
        ts = [threading.Thread(target=stream) for _ in range(streams)]
        with kt.Conn(kt.tls_socket(port, None)) as c:
            lat = hot_loop(c, ts, seconds)
        stop.set()
        for t in ts:
            t.join()
    finally:
        stop.set()
        os.killpg(p.pid, 15)
        p.wait()
    report(f"nginx {'aio threads' if aio else 'no aio'}", lat)


def report(what, lat):
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
    print(f"W9 {what}: {len(lat)} hot requests, p50 {pct(0.5):.2f} ms, "
          f"p99 {pct(0.99):.2f} ms, max {lat[-1] * 1000:.2f} ms", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(REPO / "build" / "kttpd"))
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--streams", type=int, default=2)
    ap.add_argument("--delay", type=float, default=0.02)
    ap.add_argument("--nginx", action="store_true",
                    help="also nginx, without and with `aio threads`")
    a = ap.parse_args()
    kt.BIN = os.path.abspath(a.bin)
    site = kt.site()
    base = site.new_root("w9")
    src = base.parent / "w9-src"
    src.mkdir(exist_ok=True)
    (src / "big").write_bytes(os.urandom(6 << 20))
    (base / "hot.txt").write_bytes(b"h" * 1024)
    mnt = base / "slow"
    mnt.mkdir(exist_ok=True)
    fs = subprocess.Popen([sys.executable, str(REPO / "tests/integration/slowfs.py"),
                           str(src), str(mnt), str(a.delay)])
    try:
        if not kt.wait_until(lambda: os.path.ismount(mnt), 10):
            sys.exit("w9: cannot mount the slow FUSE view (root, /dev/fuse, python3-fusepy?)")
        for threads in (0, 2):
            run(base, threads, a.seconds, a.streams)
        if a.nginx:
            for aio in (False, True):
                run_nginx(base, aio, a.seconds, a.streams, site)
    finally:
        subprocess.run(["umount", "-l", str(mnt)])
        fs.kill()
        kt.cleanup()


if __name__ == "__main__":
    main()
