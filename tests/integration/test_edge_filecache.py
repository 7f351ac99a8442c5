"""open_file_cache: never a stale descriptor (rename-over, in-place rewrite,
truncation, deletion), a bounded number of open files, and a file that
shrinks during a transfer never yields bytes it does not hold."""

import os
import time

import kt

OFC = 100


def _write(root, rel, data, mtime=kt.MTIME):
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def _fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def _server(root, **opts):
    return kt.Server(kt.site(), vhost_a=dict(root=str(root)), open_file_cache=OFC,
                     workers=1, **opts)


def _expect(c, path, data, what):
    r = c.exchange(kt.request(path))
    assert r.status == 200, f"{what}: {r.status}"
    assert r.body == data, f"{what}: stale or wrong bytes ({len(r.body)}B, want {len(data)}B; " \
        f"got {r.body[:24]!r} want {data[:24]!r})"
    assert r.get("content-length") == str(len(data)), f"{what}: Content-Length {r.get('content-length')}"


def test_open_file_cache_never_stale():
    root = kt.site().new_root("edge-ofc")
    v1 = b"version-1 " * 1000
    f = _write(root, "/f.txt", v1)
    with _server(root) as srv, srv.connect() as c:
        for _ in range(3):            # cached and hit
            _expect(c, "/f.txt", v1, "warm")

        # rename over: same size, same mtime; only the inode differs
        v2 = b"version-2 " * 1000
        tmp = _write(root, "/f.txt.tmp", v2)
        os.rename(tmp, f)
        _expect(c, "/f.txt", v2, "renamed over")
        _expect(c, "/f.txt", v2, "renamed over, again")

        # rewritten in place: same inode, same size, mtime put back
        time.sleep(0.02)              # past the filesystem's ctime tick
        v3 = b"version-3 " * 1000
        with open(f, "r+b") as fh:
            fh.write(v3)
        os.utime(f, (kt.MTIME, kt.MTIME))
        _expect(c, "/f.txt", v3, "rewritten in place (same size and mtime)")

        # rewritten in place with new content and a new mtime
        v4 = b"version-4 longer " * 900
        _write(root, "/f.txt", v4, mtime=kt.MTIME + 10)
        _expect(c, "/f.txt", v4, "rewritten with a new mtime")

        # truncated
        os.truncate(f, 100)
        _expect(c, "/f.txt", v4[:100], "truncated")
        os.truncate(f, 0)
        _expect(c, "/f.txt", b"", "truncated to 0")

        # deleted: 404; created again: the new bytes
        os.unlink(f)
        r = c.exchange(kt.request("/f.txt"))
        assert r.status == 404, f"deleted: {r.status} (served {len(r.body)}B from a stale fd?)"
        v5 = b"version-5 " * 10
        _write(root, "/f.txt", v5)
        _expect(c, "/f.txt", v5, "created again")

        # the same over HTTP/2
        with kt.H2Client(srv.port) as h:
            r = h.get("/f.txt")
            assert r.status == 200 and r.body == v5, f"h2 warm: {r}"
            v6 = b"version-6 " * 10
            tmp = _write(root, "/f.txt.tmp", v6)
            os.rename(tmp, f)
            r = h.get("/f.txt")
            assert r.status == 200 and r.body == v6, f"h2 renamed over: {r} {r.body[:20]!r}"
            os.unlink(f)
            r = h.get("/f.txt")
            assert r.status == 404, f"h2 deleted: {r}"


def test_open_file_cache_fd_bound():
    root = kt.site().new_root("edge-ofc-many")
    n = 160
    for i in range(n):
        _write(root, f"/m/{i}.txt", f"file {i}\n".encode())
    with _server(root) as srv, srv.connect() as c:
        _expect(c, "/m/0.txt", b"file 0\n", "first")
        base = _fds(srv.pid)
        peak = base
        for rnd in range(2):
            for i in range(n):
                _expect(c, f"/m/{i}.txt", f"file {i}\n".encode(), f"round {rnd} file {i}")
                if i % 10 == 0:
                    peak = max(peak, _fds(srv.pid))
        peak = max(peak, _fds(srv.pid))
        assert peak <= base + OFC + 5, \
            f"open files grew from {base} to {peak} with open_file_cache = {OFC}"
        assert peak >= base + OFC // 2, \
            f"open files only {base} -> {peak}: is the cache in use at all?"
    # deleted files still in the cache are not served and their fds go
    root2 = kt.site().new_root("edge-ofc-del")
    for i in range(50):
        _write(root2, f"/d/{i}.txt", b"x" * 10)
    with _server(root2) as srv, srv.connect() as c:
        for i in range(50):
            _expect(c, f"/d/{i}.txt", b"x" * 10, "warm")
        for i in range(50):
            os.unlink(root2 / "d" / f"{i}.txt")
        for i in range(50):
            r = c.exchange(kt.request(f"/d/{i}.txt"))
            assert r.status == 404, f"deleted /d/{i}.txt: {r.status}"
        deleted = [l for l in os.listdir(f"/proc/{srv.pid}/fd")
                   if "(deleted)" in os.readlink(f"/proc/{srv.pid}/fd/{l}")]
        assert not deleted, f"{len(deleted)} descriptors of deleted files still open"


def test_truncated_during_transfer():
    """The file shrinks while a big response is in flight: the connection
    ends short, and every byte received is the old content's."""
    root = kt.site().new_root("edge-ofc-trunc")
    block = os.urandom(1 << 20)
    size = 24 << 20
    data = b"".join(bytes([i]) + block[1:] for i in range(size >> 20))
    f = _write(root, "/big.bin", data)
    with _server(root) as srv:
        # warm the cache so that the transfer uses the cached descriptor
        with srv.connect() as c:
            c.send(kt.request("/big.bin", method="HEAD"))
            c.read_response(head=True)
        for proto in ("h1", "h2"):
            f = _write(root, "/big.bin", data)
            if proto == "h1":
                sock = kt.tls_socket(srv.port)
                sock.setsockopt(kt.socket.SOL_SOCKET, kt.socket.SO_RCVBUF, 65536)
                c = kt.Conn(sock)
                c.send(kt.request("/big.bin"))
                head = c.read_head()
                assert head.status == 200 and head.get("content-length") == str(size), head.headers
                got = c.buf
                c.buf = b""
                while len(got) < (2 << 20):
                    chunk = sock.recv(65536)
                    assert chunk, "closed before the truncation"
                    got += chunk
                os.truncate(f, 3 << 20)
                deadline = time.monotonic() + 10
                closed = False
                while time.monotonic() < deadline:
                    try:
                        chunk = sock.recv(65536)
                    except (kt.ssl.SSLError, ConnectionResetError):
                        chunk = b""
                    if not chunk:
                        closed = True
                        break
                    got += chunk
                    if len(got) > size:
                        break
                sock.close()
            else:
                with kt.H2Client(srv.port, settings={kt.H2_SETTINGS_INITIAL_WINDOW_SIZE: 65535}) as h:
                    sid = h.request("/big.bin")
                    h.wait(lambda: len(h.streams[sid].body) >= (2 << 20), 10)
                    os.truncate(f, 3 << 20)
                    h.wait(lambda: h.streams[sid].done or len(h.streams[sid].body) >= size, 10)
                    s = h.streams[sid]
                    got = s.body
                    # a short stream must not end cleanly: reset, or the connection goes
                    closed = s.reset is not None or h.closed or h.goaway is not None or not s.ended
                    assert not (s.ended and len(got) < size), \
                        f"h2: stream ended cleanly with {len(got)}B of {size}B (a silent short body)"
            assert closed, f"{proto}: no close within 10s after the truncation ({len(got)}B)"
            assert len(got) < size, f"{proto}: received {len(got)}B, the whole {size}B, after truncation to 3 MiB"
            assert got == data[:len(got)], f"{proto}: bytes received are not a prefix of the old content"
            assert srv.alive(), "server died"
            # and the cache serves the short file now
            r = srv.get("/big.bin")
            assert r.status == 200 and r.body == data[:3 << 20], \
                f"{proto}: after truncation: {r.status} {len(r.body)}B"


# ---------------------------------------------------------------- issue 13
# Watched entries (inotify) make no system call on a hit and keep small
# bodies in memory; these tests change files while clients hammer them.

import random
import shutil
import threading

BASE = 1262304000     # 2010-01-01: every version gets mtime BASE + k


def _etag(st):
    return f'"{int(st.st_mtime):x}-{st.st_size:x}"'


class _Versions:
    """What each path looked like after each completed change: ETag -> bytes
    (None: the path was absent), and the current state."""

    def __init__(self):
        self.lock = threading.Lock()
        self.known = {}       # path -> {etag: bytes}
        self.now = {}         # path -> (etag, bytes) or None when deleted

    def record(self, root, path):
        f = root / path.lstrip("/")
        with self.lock:
            if not f.exists():
                self.now[path] = None
                return
            data = f.read_bytes()
            et = _etag(f.stat())
            old = self.known.setdefault(path, {}).get(et)
            assert old is None or old == data, \
                f"test bug: two versions of {path} share the ETag {et}"
            self.known[path][et] = data
            self.now[path] = (et, data)

    def check(self, path, status, etag, body, stats):
        """A response a hammer got: its bytes must be the version its ETag names."""
        if status == 404:
            stats["404"] += 1
            return None
        if status != 200:
            return f"{path}: status {status}"
        with self.lock:
            want = self.known.get(path, {}).get(etag)
        if want is None:      # mid-change (e.g. written, mtime not yet set)
            stats["transitional"] += 1
            return None
        stats["checked"] += 1
        if body != want:
            return (f"{path}: body ({len(body)}B {body[:20]!r}) is not the version its "
                    f"ETag {etag} names ({len(want)}B {want[:20]!r})")
        return None


def _content(path, k, size):
    unit = f"[{path} v{k:05d}]".encode()
    return (unit * (size // len(unit) + 1))[:size]


def _set(root, path, data, k):
    f = root / path.lstrip("/")
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(data)
    os.utime(f, (BASE + k, BASE + k))


def _hammer_h1(srv, paths, vers, stop, errors, stats):
    c = None
    while not stop.is_set():
        path = random.choice(paths)
        try:
            if c is None:
                c = srv.connect()
            r = c.exchange(kt.request(path))
        except (kt.Closed, OSError, kt.ssl.SSLError):
            # a file truncated under a response that was sent from its fd:
            # the connection ends short, never padded
            stats["closed"] += 1
            if c is not None:
                c.close()
            c = None
            continue
        err = vers.check(path, r.status, r.get("etag"), r.body, stats)
        if err:
            errors.append("h1 " + err)
    if c is not None:
        c.close()


def _hammer_h2(srv, paths, vers, stop, errors, stats):
    h = None
    while not stop.is_set():
        try:
            if h is None:
                h = kt.H2Client(srv.port)
            sids = [(h.request(p), p) for p in random.sample(paths, min(4, len(paths)))]
            h.wait(lambda: all(h.streams[s].done for s, _ in sids) or h.closed, 5)
        except (kt.Closed, OSError, kt.ssl.SSLError):
            stats["closed"] += 1
            h = None
            continue
        for sid, p in sids:
            s = h.streams.pop(sid)
            if not s.ended or s.reset is not None:
                stats["closed"] += 1
                continue
            err = vers.check(p, s.status, s.get("etag"), s.body, stats)
            if err:
                errors.append("h2 " + err)
        if h.closed or h.goaway is not None:
            h.close()
            h = None
    if h is not None:
        h.close()


def _fresh(srv, c, h, vers, path, what):
    """After a change completed: the next request sees exactly the new state."""
    want = vers.now[path]
    r = c.exchange(kt.request(path))
    s = h.get(path)
    for proto, status, etag, body in (("h1", r.status, r.get("etag"), r.body),
                                      ("h2", s.status, s.get("etag"), s.body)):
        if want is None:
            assert status == 404, f"{proto} {what} {path}: {status} after it was deleted"
        else:
            assert status == 200 and etag == want[0] and body == want[1], \
                f"{proto} {what} {path}: stale: {status} ETag {etag} {len(body)}B " \
                f"{body[:24]!r}, want ETag {want[0]} {len(want[1])}B {want[1][:24]!r}"


def _churn(srv, root, seconds, in_place=True):
    """Change files in every way while two HTTP/1.1 keep-alive clients and
    one HTTP/2 client hammer them; check every body against its ETag, and
    the state after each change. Returns the hammers' tally."""
    small, mid, big, deep = "/c/small.txt", "/c/mid.bin", "/c/big.bin", "/c/sub/deep.txt"
    sizes = {small: 1000, mid: 16384, big: 100000, deep: 3000}
    paths = list(sizes)
    vers = _Versions()
    for p in paths:
        _set(root, p, _content(p, 0, sizes[p]), 0)
        vers.record(root, p)
    stop = threading.Event()
    errors = []
    stats = {"checked": 0, "transitional": 0, "404": 0, "closed": 0}
    threads = [threading.Thread(target=_hammer_h1, args=(srv, paths, vers, stop, errors, stats)),
               threading.Thread(target=_hammer_h1, args=(srv, paths, vers, stop, errors, stats)),
               threading.Thread(target=_hammer_h2, args=(srv, paths, vers, stop, errors, stats))]
    for t in threads:
        t.start()
    ops = ["rewrite", "truncate", "rename", "delete", "chmod", "touch", "dirmove"]
    k = 0
    changes = {}
    try:
        with srv.connect() as c, kt.H2Client(srv.port) as h:
            for p in paths:
                _fresh(srv, c, h, vers, p, "first")
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not errors:
                k += 1
                op = ops[k % len(ops)]
                p = random.choice(paths)
                f = root / p.lstrip("/")
                if vers.now[p] is None and op != "dirmove":
                    op = "create"
                if op == "rewrite" and (p == big or not in_place):
                    op = "rename"   # in place under a response read from the fd: torn
                if op == "rewrite":       # the same inode: same size, then a new size
                    data = _content(p, k, sizes[p] if k % 2 else sizes[p] // 2 + k % 7)
                    with open(f, "r+b") as fh:
                        fh.write(data)
                        fh.truncate(len(data))
                    os.utime(f, (BASE + k, BASE + k))
                elif op == "truncate":
                    os.truncate(f, max(0, f.stat().st_size // 3 - k % 5))
                    os.utime(f, (BASE + k, BASE + k))
                elif op in ("rename", "create"):
                    tmp = f.with_name(f.name + ".tmp")
                    _set(root, str(tmp.relative_to(root)), _content(p, k, sizes[p]), k)
                    os.rename(tmp, f)
                elif op == "delete":
                    f.unlink()
                elif op == "chmod":
                    os.chmod(f, 0o600 if k % 2 else 0o644)
                elif op == "touch":       # the same bytes and size, a new mtime
                    os.utime(f, (BASE + k, BASE + k))
                elif op == "dirmove":     # the directory is replaced under the file
                    p = deep
                    d = root / "c" / "sub"
                    old = root / "c" / f"sub.old{k}"
                    os.rename(d, old)
                    _set(root, p, _content(p, k, sizes[p]), k)
                    shutil.rmtree(old)
                vers.record(root, p)
                changes[op] = changes.get(op, 0) + 1
                _fresh(srv, c, h, vers, p, op)
                time.sleep(random.random() * 0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert not errors, f"{len(errors)} bad bodies, first: {errors[0]}"
    assert srv.alive(), "server died"
    assert k >= 20 and stats["checked"] > 200, f"too little exercised: {k} changes, {stats}"
    stats["changes"] = changes
    return stats


def _churn_server(root, **opts):
    return kt.Server(kt.site(), vhost_a=dict(root=str(root)), open_file_cache=OFC,
                     workers=1, **opts)


def test_cache_changes_under_load_watched():
    """inotify on: files rewritten in place, truncated, renamed over, deleted,
    chmod'ed, touched and their directory replaced while HTTP/1.1 and HTTP/2
    clients hammer them: never a body its ETag does not name, and the next
    request after each change sees the new state."""
    root = kt.site().new_root("edge-ofc-churn")
    with _churn_server(root) as srv:
        stats = _churn(srv, root, 8)
        log = srv.error_log()
        assert "no change notification" not in log, log[-500:]
    print(f"    {stats}")


def test_cache_changes_under_load_unwatched():
    """open_file_cache_watch = false: every hit revalidated with fstatat, as
    before; the same churn (no in-place rewrite: a body read from the fd
    while it is rewritten is torn in any server that reads per request)."""
    root = kt.site().new_root("edge-ofc-churn-nw")
    with _churn_server(root, open_file_cache_watch=False) as srv:
        stats = _churn(srv, root, 5, in_place=False)
    print(f"    {stats}")


def _inotify_watches_used(uid=0):
    """Watches held by uid's processes (the limit is per user)."""
    n = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            for fd in os.listdir(f"/proc/{pid}/fdinfo"):
                with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
                    n += fh.read().count("inotify wd:")
        except OSError:
            pass
    return n


def test_cache_watch_limit_falls_back():
    """fs.inotify.max_user_watches nearly used up (root only: lowered for the
    test, then restored): the entries past the limit are revalidated with a
    stat per hit, said once in the log, and nothing is served stale."""
    knob = "/proc/sys/fs/inotify/max_user_watches"
    if not kt.running_as_root() or not os.access(knob, os.W_OK):
        raise kt.Skip("needs root to lower fs.inotify.max_user_watches")
    root = kt.site().new_root("edge-ofc-limit")
    with open(knob) as fh:
        saved = fh.read().strip()
    try:
        with open(knob, "w") as fh:   # room for the root and two more watches
            fh.write(str(_inotify_watches_used() + 3))
        with _churn_server(root) as srv:
            for i in range(20):
                _write(root, f"/l/{i}.txt", f"file {i}\n".encode())
            with srv.connect() as c:
                for i in range(20):
                    _expect(c, f"/l/{i}.txt", f"file {i}\n".encode(), "first")
                for i in range(20):
                    _write(root, f"/l/{i}.txt", f"file {i} changed\n".encode(),
                           mtime=kt.MTIME + 1)
                for i in range(20):
                    _expect(c, f"/l/{i}.txt", f"file {i} changed\n".encode(), "changed")
            kt.wait_until(lambda: "watch limit" in srv.error_log(), 2)
            assert "watch limit reached" in srv.error_log(), srv.log_tail()
            stats = _churn(srv, root, 3, in_place=False)
    finally:
        with open(knob, "w") as fh:
            fh.write(saved)
    print(f"    {stats}")


def test_cache_symlinks_and_hard_links():
    """A path through a symlinked directory or to a symlinked file falls back
    to a stat per hit; a file changed through a hard link elsewhere, or a
    symlink pointed elsewhere, is seen at once."""
    root = kt.site().new_root("edge-ofc-links")
    _write(root, "/real/f.txt", b"real one")
    os.symlink("real", root / "link")
    _write(root, "/t1.txt", b"target one")
    _write(root, "/t2.txt", b"target two")
    os.symlink("t1.txt", root / "ln.txt")
    _write(root, "/h/file.txt", b"hard 1")
    os.makedirs(root / "elsewhere", exist_ok=True)
    os.link(root / "h" / "file.txt", root / "elsewhere" / "file.txt")
    with _churn_server(root) as srv, srv.connect() as c:
        for _ in range(2):
            _expect(c, "/link/f.txt", b"real one", "via a symlinked dir")
            _expect(c, "/ln.txt", b"target one", "a symlink")
            _expect(c, "/h/file.txt", b"hard 1", "a hard link")
        _write(root, "/real/f.txt", b"real two", mtime=kt.MTIME + 1)
        _expect(c, "/link/f.txt", b"real two", "via a symlinked dir, changed")
        tmp = root / "ln.tmp"
        os.symlink("t2.txt", tmp)
        os.rename(tmp, root / "ln.txt")
        _expect(c, "/ln.txt", b"target two", "a symlink pointed elsewhere")
        with open(root / "elsewhere" / "file.txt", "r+b") as fh:
            fh.write(b"hard 2")
        os.utime(root / "elsewhere" / "file.txt", (kt.MTIME, kt.MTIME))
        _expect(c, "/h/file.txt", b"hard 2", "written through another hard link")


def test_cache_body_ranges_and_conditionals():
    """A body kept in memory: ranges, multipart ranges, HEAD, 304 and If-Range
    give the same bytes and headers as from the file, over HTTP/1.1 and 2."""
    root = kt.site().new_root("edge-ofc-ranges")
    data = bytes(random.Random(13).randrange(256) for _ in range(16384))
    _write(root, "/r.bin", data)
    with _churn_server(root) as srv, srv.connect() as c, kt.H2Client(srv.port) as h:
        for _ in range(3):
            r = c.exchange(kt.request("/r.bin"))
            assert r.status == 200 and r.body == data
        et = r.get("etag")
        lm = r.get("last-modified")
        assert r.get("content-length") == "16384" and r.get("accept-ranges") == "bytes"
        cases = [
            ([("Range", "bytes=0-0")], 206, data[:1]),
            ([("Range", "bytes=100-16383")], 206, data[100:]),
            ([("Range", "bytes=-10")], 206, data[-10:]),
            ([("Range", "bytes=20000-")], 416, None),
            ([("If-None-Match", et)], 304, b""),
            ([("If-Modified-Since", lm)], 304, b""),
            ([("Range", "bytes=5-9"), ("If-Range", et)], 206, data[5:10]),
            ([("Range", "bytes=5-9"), ("If-Range", '"other"')], 200, data),
        ]
        for hdrs, status, body in cases:
            r = c.exchange(kt.request("/r.bin", headers=hdrs))
            s = h.get("/r.bin", headers=[(k.lower(), v) for k, v in hdrs])
            for proto, st, b in (("h1", r.status, r.body), ("h2", s.status, s.body)):
                assert st == status, f"{proto} {hdrs}: {st}, want {status}"
                if body is not None:
                    assert b == body, f"{proto} {hdrs}: {len(b)}B differ"
        r = c.exchange(kt.request("/r.bin", headers=[("Range", "bytes=0-9,5000-5009,16380-")]))
        assert r.status == 206 and "multipart/byteranges" in r.get("content-type")
        for part in (data[0:10], data[5000:5010], data[16380:]):
            assert part in r.body, "multipart: a part is missing"
        r = c.exchange(kt.request("/r.bin", method="HEAD"), head=True)
        assert r.status == 200 and r.get("content-length") == "16384" and r.get("etag") == et


def test_cache_hit_makes_no_file_syscall():
    """strace -c: 300 hits (HTTP/1.1 keep-alive and HTTP/2, 1 KiB and 16 KiB)
    make no openat, fstatat, fstat, preadv2 or pread."""
    root = kt.site().new_root("edge-ofc-strace")
    _write(root, "/s1.txt", b"a" * 1024)
    _write(root, "/s16.bin", os.urandom(16384))
    with _churn_server(root) as srv, srv.connect() as c, kt.H2Client(srv.port) as h:
        for p in ("/s1.txt", "/s16.bin"):
            c.exchange(kt.request(p))
            h.get(p)

        def work():
            for i in range(100):
                p = "/s1.txt" if i % 2 else "/s16.bin"
                assert c.exchange(kt.request(p)).status == 200
            for i in range(0, 200, 4):
                sids = [h.request("/s1.txt" if k % 2 else "/s16.bin") for k in range(4)]
                assert all(r.status == 200 for r in h.finish(sids))
        counts = kt.strace_counts(srv, work)
    file_calls = {k: v for k, v in counts.items()
                  if k in ("openat", "openat2", "newfstatat", "fstatat64", "statx", "fstat",
                           "preadv2", "pread64", "read_nowait", "close")}
    assert counts.get("write", 0) > 0 or counts.get("sendto", 0) > 0, \
        f"strace saw no writes: {counts}"
    assert not file_calls, f"file syscalls during 300 cache hits: {file_calls} (all: {counts})"


def test_cache_body_limits():
    """open_file_cache_body: a file one byte over it is read from its fd on
    every hit, one at it is sent from memory. open_file_cache_memory: three
    bodies that do not fit together push each other out (read again on each
    hit, still byte-exact); with room for all three, no read at all."""
    root = kt.site().new_root("edge-ofc-limits")
    files = {f"/b{i}.bin": os.urandom(4000) for i in range(3)}
    files["/over.bin"] = os.urandom(4001)
    for p, d in files.items():
        _write(root, p, d)
    reads = ("preadv2", "pread64", "read_nowait")
    for memory, want_reads in ((12000, False), (11999, True)):
        with _churn_server(root, open_file_cache_body=4000,
                           open_file_cache_memory=memory) as srv, srv.connect() as c:
            for p in files:
                _expect(c, p, files[p], "warm")

            def small():
                for _ in range(10):
                    for p in ("/b0.bin", "/b1.bin", "/b2.bin"):
                        _expect(c, p, files[p], f"memory {memory}")
            got = kt.strace_counts(srv, small)
            n = sum(got.get(k, 0) for k in reads)
            if want_reads:
                assert n >= 20, f"memory {memory} < 3 bodies, yet {n} reads in 30 hits: {got}"
            else:
                assert n == 0, f"memory {memory} holds 3 bodies, yet {n} reads: {got}"

            def over():
                for _ in range(10):
                    _expect(c, "/over.bin", files["/over.bin"], "over the body limit")
            got = kt.strace_counts(srv, over)
            n = sum(got.get(k, 0) for k in reads)
            assert n >= 10, f"a file over open_file_cache_body: {n} reads in 10 hits: {got}"


def _head_fields(r):
    return {k: r.get(k) for k in ("content-type", "content-length", "last-modified", "etag")}


def test_cache_head_values_follow_the_file():
    """The head values a cached file's 200 carries (built once per entry):
    the same over HTTP/1.1 and 2 on every hit, and new ones, never the old,
    once the file changes size and time under the cache."""
    root = kt.site().new_root("edge-ofc-headvals")
    path = _write(root, "/v.txt", b"a" * 1000)
    with _server(root) as srv, srv.connect() as c, kt.H2Client(srv.port) as h:
        for version, (data, mtime) in enumerate(((b"a" * 1000, kt.MTIME),
                                                 (b"b" * 20001, kt.MTIME + 86400 * 400))):
            if version:
                tmp = root / "v.tmp"
                _write(root, "/v.tmp", data, mtime)
                os.rename(tmp, path)
            for i in range(4):
                r1 = c.exchange(kt.request("/v.txt"))
                r2 = h.get("/v.txt")
                assert r1.status == 200 and r2.status == 200, f"v{version} #{i}: {r1.status} {r2.status}"
                assert r1.body == data and r2.body == data, f"v{version} #{i}: stale bytes"
                f1, f2 = _head_fields(r1), _head_fields(r2)
                assert f1 == f2, f"v{version} #{i}: h1 {f1} != h2 {f2}"
                assert f2["content-length"] == str(len(data)), f"v{version} #{i}: {f2}"
                assert f2["content-type"].startswith("text/plain"), f"v{version} #{i}: {f2}"
                assert f2["last-modified"] == time.strftime(
                    "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(mtime)), f"v{version} #{i}: {f2}"
                assert f2["etag"] == f'"{mtime:x}-{len(data):x}"', f"v{version} #{i}: {f2}"


def test_cache_content_type_follows_mime_reload():
    """A cached file's Content-Type (kept with its entry) is the new one
    after a reload that maps its extension to another type."""
    root = kt.site().new_root("edge-ofc-mime")
    _write(root, "/m.kt1", b"m" * 100)
    mime = root.parent / "edge-ofc-mime.types"
    mime.write_text("text/x-one kt1\n")
    with _server(root, mime_types=str(mime)) as srv:
        for _ in range(3):
            assert srv.get("/m.kt1").get("content-type") == "text/x-one"
            assert kt.h2_get(srv, "/m.kt1").get("content-type") == "text/x-one"
        mime.write_text("text/x-two kt1\n")
        srv.reload()
        assert kt.wait_until(lambda: kt.h2_get(srv, "/m.kt1").get("content-type") == "text/x-two", 5), \
            "h2: Content-Type not the reloaded mime_types' (cached type kept?)"
        assert srv.get("/m.kt1").get("content-type") == "text/x-two"
        assert kt.h2_get(srv, "/m.kt1").get("content-type") == "text/x-two"
        assert srv.alive()
