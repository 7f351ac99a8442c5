#!/usr/bin/python3
"""Bounded soak of kttpd: clients and faults at once, then the accounts.

    /usr/bin/python3 tests/soak/soak.py [--time 60] [--bin build/kttpd]
                                         [--nofile 256] [--h1 4] [--h2 2]
                                         [--open-file-cache 64]

For --time seconds, against one server started with RLIMIT_NOFILE = --nofile:
  h1 clients   threads, HTTP/1.1 keep-alive over python ssl; random files,
               sometimes a Range, sometimes closing in the middle of a body
  h2 clients   threads, HTTP/2 (python h2), 4 streams at a time per
               connection, sometimes resetting a stream or dropping the
               connection mid-body
  mutator      every 50-150 ms: replace a file (write + rename over), truncate
               one in place, delete one, or bring a deleted one back
  reloader     SIGHUP every 3 s
  fd hog       every 5 s opens more connections than the server's fd limit
               and holds them for 1.5 s (the server hits EMFILE)
Every version of every file is kept by its ETag ("mtime-size" in hex; each
version gets its own mtime), so each completed response is checked byte for
byte against the version its ETag names.

Prints `PASS soak/NAME` / `FAIL soak/NAME: why` lines (tests/run.py --suite
reads them) and figures; exits 1 on any failure.
"""

import argparse
import hashlib
import os
import random
import resource
import signal
import socket
import ssl
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import kt  # noqa: E402

NFILES = 8
SIZES = (0, 1, 4096, 16384, 16385, 100_000, 1 << 20, 3 << 20)


class Versions:
    """ETag -> set of sha256 of the bytes a file had under that tag."""

    def __init__(self):
        self.by_tag = {}
        self.lock = threading.Lock()
        self.mtime = 1_600_000_000

    def add(self, path, data):
        st = os.stat(path)
        tag = f'"{int(st.st_mtime):x}-{st.st_size:x}"'
        with self.lock:
            self.by_tag.setdefault(tag, set()).add(hashlib.sha256(data).hexdigest())

    def add_tag(self, mtime, size, data):
        tag = f'"{mtime:x}-{size:x}"'
        with self.lock:
            self.by_tag.setdefault(tag, set()).add(hashlib.sha256(data).hexdigest())

    def next_mtime(self):
        with self.lock:
            self.mtime += 1
            return self.mtime

    def matches(self, tag, body):
        with self.lock:
            known = self.by_tag.get(tag)
        if known is None:
            return None
        return hashlib.sha256(body).hexdigest() in known


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}
        self.bad = []
        self.notes = {}

    def inc(self, k, n=1):
        with self.lock:
            self.c[k] = self.c.get(k, 0) + n

    def note(self, msg):
        with self.lock:
            self.notes[msg] = self.notes.get(msg, 0) + 1

    def fail(self, msg):
        with self.lock:
            if len(self.bad) < 20:
                self.bad.append(msg)
            self.c["mismatch"] = self.c.get("mismatch", 0) + 1


def write_version(root, name, data, versions, rename=True):
    path = root / name
    tmp = root / f".tmp-{name}-{threading.get_ident()}"
    tmp.write_bytes(data)
    m = versions.next_mtime()
    os.utime(tmp, (m, m))
    versions.add(tmp, data)   # known before anyone can see it
    os.rename(tmp, path)


def check(stats, versions, what, status, headers, body, requested_range):
    if status not in (200, 206):
        stats.inc(f"status_{status}")
        return
    tag = headers.get("etag")
    clen = headers.get("content-length")
    if clen is not None and int(clen) != len(body):
        stats.fail(f"{what}: {len(body)} body bytes for Content-Length {clen}")
        return
    if status == 206:
        cr = headers.get("content-range", "")
        try:
            span, total = cr.split(" ", 1)[1].split("/")
            a, b = (int(x) for x in span.split("-"))
        except ValueError:
            stats.fail(f"{what}: bad Content-Range {cr!r}")
            return
        # compare against every full version under this tag: slice it
        full = stats.full.get(tag, [])
        if not full:
            stats.inc("206_unverified")
            return
        if not any(f[a:b + 1] == body for f in full):
            stats.fail(f"{what}: 206 {cr} bytes differ from version {tag}")
        else:
            stats.inc("verified")
        return
    ok = versions.matches(tag, body)
    if ok is None:
        stats.fail(f"{what}: ETag {tag} names no version we ever wrote ({len(body)} bytes)")
    elif not ok:
        stats.fail(f"{what}: body ({len(body)} bytes) differs from version {tag}")
    else:
        stats.inc("verified")


# ------------------------------------------------------------------ clients

def h1_client(port, stop, stats, versions, names, rnd):
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = kt.Conn(kt.tls_socket(port, timeout=10))
                stats.inc("h1_connections")
            name = rnd.choice(names)
            hdrs, rng = [], None
            if rnd.random() < 0.2:
                a = rnd.randrange(0, 200_000)
                rng = (a, a + rnd.randrange(0, 100_000))
                hdrs.append(("Range", f"bytes={rng[0]}-{rng[1]}"))
            conn.send(kt.request("/" + name, headers=hdrs))
            if rnd.random() < 0.1:   # abort in the middle of the body
                conn.read_head()
                conn._recv()
                conn.close()
                conn = None
                stats.inc("h1_aborted")
                continue
            r = conn.read_response()
            stats.inc("h1_responses")
            check(stats, versions, f"h1 GET /{name}", r.status, r.headers, r.body, rng)
            if "close" in r.get("connection", "").lower():
                conn.close()
                conn = None
        except (kt.Closed, OSError, ssl.SSLError, AssertionError, ValueError) as e:
            stats.inc("h1_cut")   # truncation under us, timeouts, reload, EMFILE
            stats.inc(f"h1_cut_{type(e).__name__}")
            stats.note(f"h1 {type(e).__name__}: {str(e)[:120]}")
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.05)
    if conn is not None:
        conn.close()


def h2_client(port, stop, stats, versions, names, rnd):
    c = None
    while not stop.is_set():
        try:
            if c is None or c.closed or c.goaway:
                if c is not None:
                    c.close()
                c = kt.H2Client(port, timeout=10)
                stats.inc("h2_connections")
            sids = {}
            for _ in range(4):
                name = rnd.choice(names)
                sids[c.request("/" + name)] = name
            if rnd.random() < 0.08:   # drop the connection mid-body
                c.pump(0.05)
                c.close()
                c = None
                stats.inc("h2_aborted")
                continue
            if rnd.random() < 0.1:    # reset one stream
                sid = next(iter(sids))
                try:
                    c.h2.reset_stream(sid)
                    c.flush()
                except Exception:
                    pass
                sids.pop(sid)
                stats.inc("h2_reset")
            rs = c.finish(list(sids), timeout=15)
            for r in rs:
                if not r.ended:
                    stats.inc("h2_stream_cut")
                    continue
                stats.inc("h2_responses")
                check(stats, versions, f"h2 GET /{sids[r.sid]}", r.status, r.headers, r.body, None)
        except Exception as e:   # noqa: BLE001 (h2 raises many kinds)
            stats.inc("h2_cut")
            stats.inc(f"h2_cut_{type(e).__name__}")
            stats.note(f"h2 {type(e).__name__}: {str(e)[:120]}")
            if c is not None:
                c.close()
            c = None
            time.sleep(0.05)
    if c is not None:
        c.close()


# ------------------------------------------------------------------ faults

def mutator(root, stop, stats, versions, names, rnd):
    deleted = set()
    while not stop.is_set():
        time.sleep(rnd.uniform(0.05, 0.15))
        name = rnd.choice(names)
        try:
            if name in deleted:
                write_version(root, name, os.urandom(rnd.choice(SIZES)), versions)
                deleted.discard(name)
                stats.inc("fault_recreate")
                continue
            op = rnd.random()
            if op < 0.5:
                data = os.urandom(rnd.choice(SIZES) + rnd.randrange(0, 64))
                write_version(root, name, data, versions)
                stats.full_add(versions, root / name, data)
                stats.inc("fault_replace")
            elif op < 0.8:
                path = root / name
                data = path.read_bytes()
                old_mtime = int(os.stat(path).st_mtime)
                keep = rnd.randrange(0, len(data) + 1)
                # register the tags before anyone can see them: truncate
                # sets the mtime to now, then we give it its own. And the
                # kernel sets the new size before the new mtime, so a stat
                # in between sees the old mtime with the new size: that
                # state names data[:keep] too (no other version can have
                # the same pair, so the tag stays unambiguous)
                now = int(time.time())
                for t in (now, now + 1, old_mtime):
                    versions.add_tag(t, keep, data[:keep])
                with open(path, "r+b") as f:
                    f.truncate(keep)
                m = versions.next_mtime()
                versions.add_tag(m, keep, data[:keep])
                os.utime(path, (m, m))
                stats.full_add(versions, path, data[:keep])
                stats.inc("fault_truncate")
            else:
                os.unlink(root / name)
                deleted.add(name)
                stats.inc("fault_delete")
        except FileNotFoundError:
            pass


def reloader(srv, stop, stats):
    while not stop.wait(3):
        srv.reload()
        stats.inc("fault_sighup")


def fd_hog(port, nofile, stop, stats):
    while not stop.wait(5):
        socks = []
        for _ in range(nofile + 64):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), 2))
            except OSError:
                break
        stats.inc("fault_fd_exhaustion")
        stats.inc("fd_hog_connections", len(socks))
        time.sleep(1.5)
        for s in socks:
            s.close()


# ------------------------------------------------------------------ main

def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--time", type=float, default=float(os.environ.get("SOAK_TIME", 60)))
    ap.add_argument("--bin", default=os.environ.get("KTTPD_BIN", str(REPO / "build" / "kttpd")))
    ap.add_argument("--nofile", type=int, default=256)
    # issue 13: the open-file cache (inotify-watched, small bodies in memory)
    # under the mutator; 0 turns it off
    ap.add_argument("--open-file-cache", type=int, default=64)
    ap.add_argument("--h1", type=int, default=4)
    ap.add_argument("--h2", type=int, default=2)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    kt.BIN = str(Path(args.bin).resolve())
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    print(f"soak: {args.time:.0f}s, {args.h1} h1 + {args.h2} h2 clients, server nofile "
          f"{args.nofile}, seed {args.seed}", flush=True)

    site = kt.site()
    root = site.dir / "soak-root"
    root.mkdir()
    versions = Versions()
    stats = Stats()
    stats.full = {}
    full_lock = threading.Lock()

    def full_add(versions_, path, data):
        st = os.stat(path)
        tag = f'"{int(st.st_mtime):x}-{st.st_size:x}"'
        with full_lock:
            lst = stats.full.setdefault(tag, [])
            if len(lst) < 2:
                lst.append(data)
    stats.full_add = full_add
    names = [f"f{i}.bin" for i in range(NFILES)]
    for i, name in enumerate(names):
        data = os.urandom(SIZES[i % len(SIZES)])
        write_version(root, name, data, versions)
        full_add(versions, root / name, data)

    results = []

    def result(name, ok, why=""):
        results.append(ok)
        print(f"PASS soak/{name}" if ok else f"FAIL soak/{name}: {why}", flush=True)

    srv = kt.Server(site, vhost_a=dict(root=str(root)), log_level="info",
                    handshake_timeout=3, header_timeout=3, keepalive_timeout=3,
                    send_timeout=5, shutdown_timeout=3,
                    open_file_cache=args.open_file_cache or None)
    try:
        resource.prlimit(srv.pid, resource.RLIMIT_NOFILE, (args.nofile, args.nofile))
        for _ in range(3):
            with srv.connect() as c:
                c.exchange(kt.request("/" + names[2]))
        time.sleep(0.3)
        fd0 = fd_count(srv.pid)
        rss0 = kt.proc_rss_kib(srv.pid)

        stop = threading.Event()
        rnd = random.Random(args.seed)
        threads = []
        for i in range(args.h1):
            threads.append(threading.Thread(target=h1_client, args=(
                srv.port, stop, stats, versions, names, random.Random(rnd.random()))))
        for i in range(args.h2):
            threads.append(threading.Thread(target=h2_client, args=(
                srv.port, stop, stats, versions, names, random.Random(rnd.random()))))
        threads.append(threading.Thread(target=mutator, args=(
            root, stop, stats, versions, names, random.Random(rnd.random()))))
        threads.append(threading.Thread(target=reloader, args=(srv, stop, stats)))
        threads.append(threading.Thread(target=fd_hog, args=(srv.port, args.nofile, stop, stats)))
        for t in threads:
            t.daemon = True
            t.start()
        t0 = time.monotonic()
        fd_peak = rss_peak = 0
        while time.monotonic() - t0 < args.time and srv.alive():
            time.sleep(0.5)
            fd_peak = max(fd_peak, fd_count(srv.pid))
            rss_peak = max(rss_peak, kt.proc_rss_kib(srv.pid))
        stop.set()
        for t in threads:
            t.join(20)
        hung = [t.name for t in threads if t.is_alive()]

        alive = srv.alive()
        result("no_crash", alive, f"server exited with {srv.proc.returncode}")
        if not alive:
            print(srv.log_tail(40))
            return 1
        result("clients_finished", not hung, f"client threads still running: {hung}")
        with srv.connect() as c:
            r = c.exchange(kt.request("/" + names[3]))
        result("serves_after", r.status in (200, 404), f"status {r.status}")

        # every connection ends within keepalive_timeout + linger
        # (the open-file cache may keep each file open in each worker, but
        # never a file that was deleted or replaced: that would be stale)
        cached = NFILES * int(srv.options.get("workers", 2)) if args.open_file_cache else 0
        back = kt.wait_until(lambda: fd_count(srv.pid) <= fd0 + cached, 12, 0.2)
        fd1 = fd_count(srv.pid)
        rss1 = kt.proc_rss_kib(srv.pid)
        result("fds_back", bool(back), f"{fd1} descriptors at the end, {fd0} at the start"
               f" (+{cached} allowed for the open-file cache)")
        gone = []
        for fd in os.listdir(f"/proc/{srv.pid}/fd"):
            try:
                if os.readlink(f"/proc/{srv.pid}/fd/{fd}").endswith("(deleted)"):
                    gone.append(fd)
            except OSError:
                pass
        result("no_deleted_files_open", not gone,
               f"{len(gone)} descriptors of deleted or replaced files still open")
        rss_ok = rss1 <= max(rss0 * 2, rss0 + 32 * 1024)
        result("rss_back", rss_ok, f"RSS {rss1} KiB at the end, {rss0} KiB at the start")

        c = stats.c
        n_resp = c.get("h1_responses", 0) + c.get("h2_responses", 0)
        result("responses_match_etag", not stats.bad and c.get("verified", 0) > 0,
               "; ".join(stats.bad[:5]) or "no response verified")
        result("progress", n_resp >= 20 * args.time / 60, f"only {n_resp} responses")

        # the error log: what each fault left there
        log = srv.error_log()
        lines = log.splitlines()
        patterns = {
            "reload (SIGHUP)": "reloaded",
            "fd exhaustion (EMFILE)": "Too many open files",
            "file shrank under a transfer": "shrank",
            "body read failed": "read of body failed",
            "sendfile failed": "sendfile",
            "send timeout": "send timeout",
            "request timeout": "request timeout",
            "handshake timeout": "handshake timeout",
        }
        print("figures:")
        print(f"  duration {time.monotonic() - t0:.0f}s; responses h1 {c.get('h1_responses', 0)}, "
              f"h2 {c.get('h2_responses', 0)}; verified byte-exact {c.get('verified', 0)}; "
              f"206 unverified {c.get('206_unverified', 0)}")
        print(f"  client aborts h1 {c.get('h1_aborted', 0)}, h2 conn drops {c.get('h2_aborted', 0)}, "
              f"h2 stream resets {c.get('h2_reset', 0)}; cut by server h1 {c.get('h1_cut', 0)}, "
              f"h2 {c.get('h2_cut', 0)}, h2 streams {c.get('h2_stream_cut', 0)}")
        print("  faults: " + ", ".join(f"{k[6:]} {v}" for k, v in sorted(c.items()) if k.startswith("fault_")))
        print("  other: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())
                                      if not k.startswith("fault_") and "_cut_" in k or k.startswith("status_")))
        print(f"  fds {fd0} -> peak {fd_peak} -> {fd1}; RSS {rss0} -> peak {rss_peak} -> {rss1} KiB; "
              f"versions {len(versions.by_tag)}")
        print("  error log lines: " + ", ".join(
            f"{what}: {sum(1 for l in lines if pat in l)}" for what, pat in patterns.items()))
        levels = {}
        for l in lines:
            parts = l.split(" ", 3)
            if len(parts) > 2:
                levels[parts[2]] = levels.get(parts[2], 0) + 1
        print(f"  error log by level: {levels}")
        import re
        shapes = {}
        for l in lines:
            msg = l.split(" ", 2)[-1] if l.count(" ") >= 2 else l
            msg = re.sub(r"\d+(\.\d+)*", "N", msg)
            shapes[msg] = shapes.get(msg, 0) + 1
        print("  error log messages:")
        for msg, n in sorted(shapes.items(), key=lambda x: -x[1]):
            print(f"    {n:6d}  {msg[:150]}")
        if stats.notes:
            print("  client-side errors:")
            for msg, n in sorted(stats.notes.items(), key=lambda x: -x[1])[:12]:
                print(f"    {n:6d}  {msg}")
        # every SIGHUP leaves one line: "reloaded", or "reload: ... previous
        # config" (a reload can fail while the fd hog holds every descriptor)
        reloads = sum(1 for l in lines if "reloaded" in l or "reload: " in l)
        result("log_reloads", reloads == c.get("fault_sighup", 0),
               f"{reloads} reload lines for {c.get('fault_sighup', 0)} SIGHUPs")
        emfile = sum(1 for l in lines if "Too many open files" in l)
        result("log_emfile", emfile >= 1 or c.get("fault_fd_exhaustion", 0) == 0,
               f"no EMFILE line for {c.get('fault_fd_exhaustion', 0)} fd exhaustions")
        shrank = sum(1 for l in lines if "shrank" in l or "read of body failed" in l
                     or "sendfile" in l)
        print(f"  truncations {c.get('fault_truncate', 0)}, body-read/shrank lines {shrank}")
        return 0 if all(results) else 1
    finally:
        srv.kill()
        if getattr(srv, "output", None):
            srv.output.close()
        kt.cleanup()


if __name__ == "__main__":
    sys.exit(main())
