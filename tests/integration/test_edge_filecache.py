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
