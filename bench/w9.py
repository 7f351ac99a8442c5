#!/usr/bin/env python3
"""W9: latency of hot 1 KiB requests while cold large files stream from a
slow disk on the same worker, with and without the readahead pool.

    bench/w9.py [--bin build/kttpd] [--seconds 5] [--streams 2] [--delay 0.02]

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


def run(root, threads, seconds, streams):
    lat = []
    with kt.Server(kt.site(), vhost_a=dict(root=str(root)), workers=1,
                   aio_threads=threads, log_level="warn",
                   keepalive_requests=100000000) as srv:
        stop = threading.Event()
        ts = [threading.Thread(target=streamer, args=(srv, stop)) for _ in range(streams)]
        with srv.connect() as c:
            c.send(kt.request("/hot.txt"))
            c.read_response()
            for t in ts:
                t.start()
            time.sleep(0.2)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                t0 = time.monotonic()
                c.send(kt.request("/hot.txt"))
                r = c.read_response()
                lat.append(time.monotonic() - t0)
                assert r.status == 200 and len(r.body) == 1024
        stop.set()
        for t in ts:
            t.join()
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
    print(f"W9 aio_threads={threads}: {len(lat)} hot requests, p50 {pct(0.5):.2f} ms, "
          f"p99 {pct(0.99):.2f} ms, max {lat[-1] * 1000:.2f} ms", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(REPO / "build" / "kttpd"))
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--streams", type=int, default=2)
    ap.add_argument("--delay", type=float, default=0.02)
    a = ap.parse_args()
    kt.BIN = os.path.abspath(a.bin)
    base = kt.site().new_root("w9")
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
    finally:
        subprocess.run(["umount", "-l", str(mnt)])
        fs.kill()
        kt.cleanup()


if __name__ == "__main__":
    main()
