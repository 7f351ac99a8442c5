"""aio_threads: a body on a slow disk never stalls the worker's other
connections, the readahead queue degrades to blocking sends when full,
and a connection closed mid-readahead is harmless.

The slow disk is a FUSE view (slowfs.py, python3-fusepy) whose every read
sleeps first; FUSE drops a file's page cache at each open, so every
download starts cold. Needs root and /dev/fuse; skipped otherwise.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import kt

DELAY = 0.02         # s per FUSE read (128 KiB at most)
BIG = 6 << 20        # the cold file
HOT = 1024           # the hot file


def _need_fuse():
    if not kt.running_as_root():
        raise kt.Skip("needs root to mount a FUSE filesystem")
    if not os.path.exists("/dev/fuse"):
        raise kt.Skip("no /dev/fuse (FUSE not in this kernel or container)")
    p = subprocess.run([sys.executable, "-c", "import fusepy"], capture_output=True)
    if p.returncode != 0:
        raise kt.Skip("python3-fusepy not installed (sys/debian-deps.sh check)")


@contextmanager
def _slow_root(name):
    """A docroot whose /slow/ is the slow FUSE view; yields (root, data)."""
    _need_fuse()
    base = kt.site().new_root(name)
    src = base.parent / (name + "-src")
    src.mkdir(exist_ok=True)
    data = os.urandom(BIG)
    (src / "big").write_bytes(data)
    (base / "hot.txt").write_bytes(b"h" * HOT)
    mnt = base / "slow"
    mnt.mkdir(exist_ok=True)
    fs = subprocess.Popen([sys.executable, str(Path(__file__).with_name("slowfs.py")),
                           str(src), str(mnt), str(DELAY)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not kt.wait_until(lambda: os.path.ismount(mnt) or fs.poll() is not None, 10) \
                or not os.path.ismount(mnt):
            fs.kill()
            err = fs.communicate(timeout=5)[1].decode(errors="replace")
            raise kt.Skip(f"cannot mount the slow FUSE view: {err.strip()[-200:]}")
        yield base, data
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        fs.kill()
        fs.wait(timeout=5)
        shutil.rmtree(src, ignore_errors=True)


def _metric(srv, name):
    with srv.connect() as c:
        c.send(kt.request("/metrics/"))
        r = c.read_response()
    for line in r.body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the metrics")


def _server(root, **opts):
    return kt.Server(kt.site(), vhost_a=dict(root=str(root)), workers=1,
                     locations={"/metrics/": dict(metrics=True)}, **opts)


def _cold_download(srv, results, i, *args):
    r = kt.curl(srv, "/slow/big", *args, check=False, timeout=60)
    results[i] = r


def _hot_latency_while_cold(srv, data, *args, need=1):
    """Download the cold file with curl; meanwhile time 1 KiB requests on
    a keep-alive connection to the same worker. Returns the slowest.
    need: how many must have been answered during the download. Without
    the pool the worker may stall in two or three long sendfile calls, so
    one answer (whose wait is then the stall) is all it can promise."""
    results = [None]
    t = threading.Thread(target=_cold_download, args=(srv, results, 0, *args))
    worst, n = 0.0, 0
    with srv.connect() as c:
        c.send(kt.request("/hot.txt"))     # handshake done before the clock
        assert c.read_response().status == 200
        t.start()
        while t.is_alive():
            t0 = time.monotonic()
            c.send(kt.request("/hot.txt"))
            r = c.read_response()
            worst = max(worst, time.monotonic() - t0)
            n += 1
            assert r.status == 200 and len(r.body) == HOT, f"hot: {r.status} {len(r.body)}B"
            time.sleep(0.005)
    t.join()
    r = results[0]
    assert r.status == 200, f"cold download failed: rc {r.rc} {r.stderr}"
    assert hashlib.sha256(r.body).digest() == hashlib.sha256(data).digest(), \
        f"cold download: {len(r.body)} bytes, not the file's {len(data)}"
    assert n >= need, f"only {n} hot requests while the cold file streamed"
    return worst


def test_aio_hot_requests_do_not_wait_for_the_disk():
    with _slow_root("aio-lat") as (root, data):
        worst = {}
        for threads in (0, 2):
            with _server(root, aio_threads=threads) as srv:
                for proto in ("--http1.1", "--http2"):
                    worst[threads, proto] = _hot_latency_while_cold(srv, data, proto,
                                                                    need=3 if threads else 1)
                if threads:
                    assert _metric(srv, "kttpd_aio_cold_total") > 0, "no cold chunk counted"
                    assert _metric(srv, "kttpd_aio_queue_depth") == 0
        print("aio worst hot latency (ms):",
              {k: round(v * 1000, 1) for k, v in worst.items()}, flush=True)
        for proto in ("--http1.1", "--http2"):
            off, on = worst[0, proto], worst[2, proto]
            # without the pool a sendfile waits for several slow reads
            if off < 4 * DELAY:
                raise kt.Skip(f"{proto}: the slow disk did not slow the worker "
                              f"without the pool ({off * 1000:.0f} ms)")
            assert on < off / 2, \
                f"{proto}: hot 1 KiB requests waited for the disk: worst {on * 1000:.0f} ms " \
                f"with aio_threads = 2, {off * 1000:.0f} ms without"


def test_aio_userspace_and_plain_byte_exact():
    """The pool in front of the userspace-TLS pread path and plain sendfile."""
    with _slow_root("aio-modes") as (root, data):
        with _server(root, ktls=False, plain=True) as srv:
            for args, plain in ((("--http1.1",), False), (("--http2",), False),
                                (("--http1.1",), True)):
                r = kt.curl(srv, "/slow/big", *args, plain=plain, timeout=60)
                assert r.status == 200 and r.body == data, \
                    f"{args} plain={plain}: {r.status}, {len(r.body)} bytes"
            r = kt.curl(srv, "/slow/big", "-r", "1000000-4999999", timeout=60)
            assert r.status == 206 and r.body == data[1000000:5000000], \
                f"range: {r.status}, {len(r.body)} bytes"
            assert _metric(srv, "kttpd_aio_cold_total") > 0


def test_aio_queue_full_degrades_to_blocking():
    with _slow_root("aio-full") as (root, data):
        with _server(root, aio_queue=1, aio_threads=1) as srv:
            results = [None] * 4
            ts = [threading.Thread(target=_cold_download, args=(srv, results, i, proto))
                  for i, proto in enumerate(["--http1.1", "--http2"] * 2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            for i, r in enumerate(results):
                assert r.status == 200 and r.body == data, \
                    f"download {i}: {r.status} rc {r.rc} {r.stderr}, {len(r.body)} bytes"
            assert _metric(srv, "kttpd_aio_queue_full_total") > 0, "the queue never filled"
            assert _metric(srv, "kttpd_aio_queue_depth") == 0


def test_aio_close_during_readahead():
    """Clients that go away while their readahead is in flight: the
    completion finds nobody, and the server goes on serving."""
    with _slow_root("aio-close") as (root, data):
        with _server(root) as srv:
            for _ in range(4):
                with srv.connect() as c:
                    c.send(kt.request("/slow/big"))
                    time.sleep(DELAY / 2)   # the job is queued or reading
            time.sleep(DELAY * 20)          # completions arrive for nobody
            assert srv.alive(), "kttpd died: " + srv.log_tail()
            r = kt.curl(srv, "/slow/big", timeout=60)
            assert r.status == 200 and r.body == data
            assert kt.wait_until(lambda: _metric(srv, "kttpd_aio_queue_depth") == 0, 5)


def test_aio_keepalive_next_request_after_cold_body():
    """A body that went through the I/O threads, then the next request on the same
    keep-alive connection: it is read and answered (the connection watches its
    socket again after sleeping on the pool)."""
    with _slow_root("aio-ka") as (root, data):
        with _server(root, aio_threads=2) as srv:
            with srv.connect() as c:
                c.send(kt.request("/slow/big"))
                r = c.read_response()
                assert r.status == 200 and hashlib.sha256(r.body).digest() == \
                    hashlib.sha256(data).digest(), f"cold body: {r.status} {len(r.body)}B"
                c.send(kt.request("/hot.txt"))
                r = c.read_response()
                assert r.status == 200 and len(r.body) == HOT, \
                    f"next request on the connection: {r.status} {len(r.body)}B"
            assert _metric(srv, "kttpd_aio_cold_total") > 0, "the body did not go through the pool"
