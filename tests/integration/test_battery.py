"""Adversarial battery: what test_limits, test_timeouts and test_http1 leave
out. Many slow clients at once, connection floods past max_connections,
TLS garbage at every stage, clients that never read, more smuggling
shapes, and the exact edges of the size limits. After each attack a
well-behaved client is served and the server's descriptor count
(/proc/PID/fd) returns to what it was before.
"""

import os
import socket
import ssl
import threading
import time

import kt

OK_PATH = kt.size_path(1)
FAST = dict(handshake_timeout=2, header_timeout=2, keepalive_timeout=2, send_timeout=2)


def fd_count(srv):
    try:
        return len(os.listdir(f"/proc/{srv.pid}/fd"))
    except OSError:
        return -1


def baseline(srv):
    """The descriptor count of an idle server that has served once."""
    kt.assert_serves(srv)
    time.sleep(0.2)
    return fd_count(srv)


def assert_fds_back(srv, base, what, timeout=8):
    got = kt.wait_until(lambda: fd_count(srv) <= base, timeout, 0.1)
    n = fd_count(srv)
    assert got, f"{what}: server holds {n} descriptors {timeout}s later, {base} before"
    assert srv.alive(), f"{what}: server died"


def open_files():
    """Raise our own descriptor limit for hundreds of sockets."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 4096)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def client_hello(servername="a.test", alpn=None):
    """The bytes of a real ClientHello (and the SSLObject that made it)."""
    ctx = kt.client_context(alpn=alpn)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=servername)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read(), obj, inc, out


def closed_soon(sock, timeout):
    """True if the peer closes (EOF or reset) within timeout; data is read and dropped."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if sock.recv(65536) == b"":
                return True
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        except ssl.SSLError:
            return True
        except OSError:
            return True
    return False


# ------------------------------------------------------------ slowloris

def test_slowloris_300_connections():
    """300 clients trickle a byte every 0.25 s: 200 inside TLS (request
    heads), 100 below it (a ClientHello). header_timeout / handshake_timeout
    end every one; a well-behaved client is served all along; every
    descriptor comes back."""
    if open_files() < 700:
        raise kt.Skip("cannot raise our descriptor limit to 700")
    with kt.Server(kt.site(), **FAST) as srv:
        base = baseline(srv)
        hello = client_hello()[0]
        tls, raw = [], []
        for _ in range(200):
            s = kt.tls_socket(srv.port, timeout=5)
            tls.append(s)
        for _ in range(100):
            raw.append(socket.create_connection(("127.0.0.1", srv.port), 5))
        head = kt.request(OK_PATH, headers=[("X-Slow", "x" * 200)])
        t0 = time.monotonic()
        served, alive_tls, alive_raw, i = 0, list(tls), list(raw), 0
        fds_during = 0
        while (alive_tls or alive_raw) and time.monotonic() - t0 < 8:
            for s in list(alive_tls):
                try:
                    s.send(head[i:i + 1])
                except (OSError, ssl.SSLError):
                    alive_tls.remove(s)
            for s in list(alive_raw):
                try:
                    s.send(hello[i:i + 1])
                except OSError:
                    alive_raw.remove(s)
            i += 1
            fds_during = max(fds_during, fd_count(srv))
            if i % 4 == 0:
                assert kt.serves(srv), f"a well-behaved client was not served {time.monotonic() - t0:.1f}s into the attack"
                served += 1
            time.sleep(0.25)
        took = time.monotonic() - t0
        assert fds_during >= base + 250, \
            f"only {fds_during - base} of 300 slow connections reached the server at once"
        # EPIPE on send is how the client sees the close; recheck by reading
        still = [s for s in tls + raw if not closed_soon(s, 0.01)]
        assert not still, f"{len(still)} of 300 trickling connections open after {took:.1f}s " \
                          f"(header_timeout = handshake_timeout = 2)"
        assert took < 7, f"slow connections took {took:.1f}s to be closed (timeouts 2s)"
        assert served >= 1
        for s in tls + raw:
            s.close()
        assert_fds_back(srv, base, "after 300 slow clients")
        kt.assert_serves(srv)


# ------------------------------------------------------------ connection floods

def test_flood_past_max_connections_fds_back():
    """200 connections against max_connections = 20: the surplus is closed at
    once, the 20 are served, and all descriptors return after they go."""
    open_files()
    with kt.Server(kt.site(), max_connections=20, **FAST) as srv:
        base = baseline(srv)
        held = []
        for _ in range(20):
            c = srv.connect()
            r = c.exchange(kt.request(OK_PATH))
            assert r.status == 200
            held.append(c)
        extra = [socket.create_connection(("127.0.0.1", srv.port), 5) for _ in range(180)]
        closed = sum(1 for s in extra if closed_soon(s, 2))
        assert closed >= 170, f"only {closed} of 180 connections past max_connections were closed"
        assert fd_count(srv) <= base + 20 + 5, \
            f"{fd_count(srv) - base} descriptors above baseline with 20 allowed connections"
        for s in extra:
            s.close()
        for c in held:
            c.close()
        assert_fds_back(srv, base, "after a flood past max_connections")
        kt.assert_serves(srv)


def test_connect_and_vanish_flood():
    """500 connections opened and closed at once (some with RST): no leak."""
    open_files()
    with kt.Server(kt.site(), **FAST) as srv:
        base = baseline(srv)
        import struct
        for i in range(500):
            s = socket.create_connection(("127.0.0.1", srv.port), 5)
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        kt.assert_serves(srv)
        assert_fds_back(srv, base, "after 500 connect-and-close")


# ------------------------------------------------------------ TLS garbage

def garbage_cases():
    hello = client_hello()[0]
    rnd = os.urandom(2048)
    return [
        ("random bytes for a ClientHello", rnd),
        ("a handshake record header, then random bytes", b"\x16\x03\x01\x02\x00" + rnd[:512]),
        ("a record of 0xffff bytes announced", b"\x16\x03\x01\xff\xff" + rnd[:100]),
        ("an alert record before any hello", b"\x15\x03\x03\x00\x02\x02\x28"),
        ("an application_data record before any hello", b"\x17\x03\x03\x00\x10" + rnd[:16]),
        ("an SSLv2 hello", bytes.fromhex("8046010301002d0000001000000500000400000a0000ff")
         + rnd[:32]),
        ("plain HTTP on the TLS port", kt.request(OK_PATH)),
        ("a valid ClientHello, then garbage", hello + rnd[:600]),
        ("half a ClientHello, then garbage", hello[:len(hello) // 2] + rnd[:300]),
        ("a ClientHello with its body corrupted", hello[:40] + rnd[:len(hello) - 40]),
    ]


def test_tls_garbage_before_handshake():
    with kt.Server(kt.site(), **FAST) as srv:
        base = baseline(srv)
        for what, data in garbage_cases():
            with socket.create_connection(("127.0.0.1", srv.port), 5) as s:
                try:
                    s.sendall(data)
                except OSError:
                    pass
                assert closed_soon(s, 3.5), f"{what}: connection still open after 3.5s"
            assert kt.serves(srv), f"{what}: next client not served"
        assert_fds_back(srv, base, "after TLS garbage")
        assert srv.alive()


def test_tls_garbage_during_handshake():
    """ClientHello, the server's flight, then garbage instead of our Finished."""
    with kt.Server(kt.site(), **FAST) as srv:
        base = baseline(srv)
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            for garbage in (os.urandom(300), b"\x14\x03\x03\x00\x01\x01" + os.urandom(64),
                            b"\x16\x03\x03\x00\x30" + os.urandom(48)):
                ctx = kt.client_context(version=version)
                inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
                obj = ctx.wrap_bio(inc, out, server_hostname="a.test")
                with socket.create_connection(("127.0.0.1", srv.port), 5) as s:
                    try:
                        obj.do_handshake()
                    except ssl.SSLWantReadError:
                        pass
                    s.sendall(out.read())
                    s.settimeout(3)
                    got = s.recv(65536)  # the server's flight
                    assert got, f"{version.name}: no ServerHello"
                    s.sendall(garbage)
                    assert closed_soon(s, 3.5), \
                        f"{version.name}: garbage mid-handshake, connection still open"
                assert kt.serves(srv), f"{version.name}: next client not served"
        assert_fds_back(srv, base, "after garbage mid-handshake")


def test_tls_garbage_after_request():
    """A served request, then raw bytes on the socket under TLS: the
    connection ends (with an alert at most) and nothing else is affected;
    on HTTP/1.1 and HTTP/2, idle and with a response in flight."""
    with kt.Server(kt.site(), **FAST) as srv:
        base = baseline(srv)
        for alpn, inflight in ((["http/1.1"], False), (["http/1.1"], True),
                               (["h2"], False), (["h2"], True)):
            what = f"{alpn[0]}, {'response in flight' if inflight else 'idle'}"
            tls = kt.tls_socket(srv.port, alpn=alpn, timeout=5)
            try:
                if alpn == ["h2"]:
                    kt._need_h2()
                    import hpack
                    enc = hpack.Encoder()
                    hdr = enc.encode([(":method", "GET"), (":scheme", "https"),
                                      (":authority", "a.test"),
                                      (":path", "/big-5g.bin" if inflight else OK_PATH)])
                    tls.sendall(kt.H2_PREFACE + kt.H2Raw.settings({})
                                + kt.H2Raw.frame(1, 5, 1, hdr))
                else:
                    # HTTP/1.1 reads nothing while it sends: 1 MiB, then the garbage
                    tls.sendall(kt.request(kt.size_path(1 << 20) if inflight else OK_PATH))
                tls.settimeout(3)
                assert tls.recv(65536), f"{what}: no response"
                raw = socket.socket(fileno=os.dup(tls.fileno()))
                try:
                    raw.sendall(os.urandom(1000))
                except OSError:
                    pass
                raw.close()
                deadline = time.monotonic() + 4
                closed = False
                while time.monotonic() < deadline:
                    try:
                        tls.settimeout(0.5)
                        if tls.recv(1 << 20) == b"":
                            closed = True
                            break
                    except socket.timeout:
                        continue
                    except (ssl.SSLError, OSError):
                        closed = True
                        break
                assert closed, f"{what}: raw garbage after a request, connection still open"
            finally:
                tls.close()
            assert kt.serves(srv), f"{what}: next client not served"
        assert_fds_back(srv, base, "after garbage after a request")


# ------------------------------------------------------------ clients that never read

def test_many_clients_never_read():
    """20 HTTP/1.1 clients and 5 HTTP/2 clients ask for 5 GiB and never read:
    send_timeout drops each, the server serves others meanwhile, and every
    descriptor (sockets and file descriptors) comes back."""
    with kt.Server(kt.site(), **FAST) as srv:
        base = baseline(srv)
        socks = []
        for _ in range(20):
            s = kt.tls_socket(srv.port, timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(kt.request("/big-5g.bin"))
            socks.append(s)
        h2 = []
        try:
            kt._need_h2()
            for i in range(5):
                try:
                    c = kt.H2Raw(srv.port, rcvbuf=4096)
                except (OSError, ssl.SSLError) as e:
                    raise AssertionError(
                        f"HTTP/2 connection {i + 1} failed ({e!r}) while {i} HTTP/2 clients "
                        f"stall with a 1 GiB window: their worker is busy buffering the window "
                        f"(fd count {fd_count(srv)}, RSS {kt.proc_rss_kib(srv.pid)} KiB)")
                c.send(c.window_update(0, 1 << 30)
                       + c.settings({kt.H2_SETTINGS_INITIAL_WINDOW_SIZE: (1 << 31) - 1})
                       + c.headers(1, "/big-5g.bin"))
                h2.append(c)
        except kt.Skip:
            pass
        time.sleep(0.5)
        peak = fd_count(srv)
        assert peak >= base + 2 * (len(socks) + len(h2)) - 2, \
            f"{peak - base} descriptors above baseline with {len(socks) + len(h2)} stalled " \
            f"downloads (want a socket and a file each)"
        assert kt.serves(srv), "not served while 25 clients stall"
        assert_fds_back(srv, base, "after stalled downloads (send_timeout = 2)", timeout=10)
        for s in socks:
            s.close()
        for c in h2:
            c.close()
        kt.assert_serves(srv)


# ------------------------------------------------------------ smuggling

def raw(*lines, body=b""):
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def answer_then_close_or_clean(srv, data, what, statuses=(200, 400, 411, 413, 501)):
    """data is one request with a hidden second one behind it: one answer,
    and no answer to the hidden request (the connection closes, or our own
    next request gets its own answer)."""
    with srv.connect() as c:
        try:
            c.send(data)
        except kt.Closed:
            pass
        try:
            r = c.read_response()
        except kt.Closed as e:
            raise AssertionError(f"{what}: no response ({e})")
        assert r.status in statuses, f"{what}: status {r.status}, expected one of {statuses}"
        if c.wait_closed(0.7):
            assert b"HTTP/1.1" not in c.buf, f"{what}: the hidden request got a response: {c.buf[:120]!r}"
        else:
            assert not c.buf, f"{what}: unexpected bytes after the response: {c.buf[:80]!r}"
            try:
                r2 = c.exchange(kt.request(kt.size_path(0)))
            except kt.Closed:
                return r
            assert r2.get("content-length") == "0", \
                f"{what}: the response to our next request is not size_0.bin (hidden request answered)"
    kt.assert_serves(srv)
    return r


def test_smuggling_transfer_encoding_variants():
    hidden = kt.request("/index.html")
    chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(hidden), hidden)
    cases = [
        ("Transfer-Encoding twice", ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"]),
        ("Transfer-Encoding: chunked, chunked", ["Transfer-Encoding: chunked, chunked"]),
        ("Transfer-Encoding: identity, chunked", ["Transfer-Encoding: identity, chunked"]),
        ("Transfer-Encoding: chunked, identity", ["Transfer-Encoding: chunked, identity"]),
        ("Transfer-Encoding: CHUNKED", ["Transfer-Encoding: CHUNKED"]),
        ("Transfer-Encoding with tab", ["Transfer-Encoding:\tchunked"]),
        ("Transfer-Encoding with trailing space", ["Transfer-Encoding: chunked "]),
        ("Transfer-Encoding: xchunked", ["Transfer-Encoding: xchunked"]),
        ("Transfer-Encoding: chunked; q=1", ["Transfer-Encoding: chunked;q=1"]),
        ("TE + Content-Length: 0", ["Transfer-Encoding: chunked", "Content-Length: 0"]),
        ("Content-Length + TE (reversed order)", ["Content-Length: 4", "Transfer-Encoding: chunked"]),
    ]
    with kt.Server(kt.site()) as srv:
        for what, hdrs in cases:
            data = raw(f"GET {OK_PATH} HTTP/1.1", "Host: a.test", *hdrs, body=chunk)
            answer_then_close_or_clean(srv, data, what)
        # a vertical tab or other control byte in the value is not whitespace
        data = raw(f"GET {OK_PATH} HTTP/1.1", "Host: a.test", "Transfer-Encoding:\x0bchunked",
                   body=chunk)
        answer_then_close_or_clean(srv, data, "Transfer-Encoding with a vertical tab")


def test_smuggling_content_length_variants():
    hidden = kt.request("/index.html")
    with kt.Server(kt.site()) as srv:
        for value, must_reject in (("-5", True), ("+5", True), (" 5 , 5", False),
                                   ("5,5", False), ("05", False), ("5.0", True), ("5e0", True),
                                   ("", True), ("18446744073709551616", True),
                                   ("99999999999999999999999", True), ("0x5", True)):
            data = raw(f"GET {OK_PATH} HTTP/1.1", "Host: a.test", f"Content-Length: {value}",
                       body=hidden)
            r = answer_then_close_or_clean(srv, data, f"Content-Length: {value!r}")
            if must_reject:
                assert r.status == 400, f"Content-Length: {value!r}: {r.status}, want 400"


def test_smuggling_overlong_chunk_size():
    hidden = kt.request("/index.html")
    with kt.Server(kt.site()) as srv:
        for size in (b"f" * 17, b"1" + b"0" * 20, b"ffffffffffffffff", b"-1", b"0x5", b"5 ; ext=\"x\""):
            body = size + b"\r\n" + hidden + b"\r\n0\r\n\r\n"
            data = raw(f"GET {OK_PATH} HTTP/1.1", "Host: a.test", "Transfer-Encoding: chunked",
                       body=body)
            answer_then_close_or_clean(srv, data, f"chunk size {size!r}")


def test_smuggling_http10_and_odd_request_lines():
    hidden = kt.request("/index.html")
    with kt.Server(kt.site()) as srv:
        data = raw(f"GET {OK_PATH} HTTP/1.0", "Connection: keep-alive",
                   f"Content-Length: {len(hidden)}", body=hidden)
        answer_then_close_or_clean(srv, data, "HTTP/1.0 keep-alive with a body")
        for line in (f"GET {OK_PATH} HTTP/1.1 extra", f"GET {OK_PATH}\tHTTP/1.1",
                     f"GET {OK_PATH} HTTP/1.1\x00", f"GET {OK_PATH}?a\rb HTTP/1.1",
                     f"G\x00ET {OK_PATH} HTTP/1.1", f" GET {OK_PATH} HTTP/1.1",
                     f"GET {OK_PATH} http/1.1", f"GET {OK_PATH} HTTP/1.10"):
            data = raw(line, "Host: a.test")
            answer_then_close_or_clean(srv, data, f"request line {line!r}", statuses=(400,))
        # RFC 9112 3 lets a server split on runs of spaces; kttpd is strict
        for line in (f"GET  {OK_PATH} HTTP/1.1", f"GET {OK_PATH}  HTTP/1.1"):
            answer_then_close_or_clean(srv, raw(line, "Host: a.test"), f"request line {line!r}",
                                       statuses=(400,))
        for hdr in ("X-A: b\x00c", "X-\x00A: b", "Host: a.test\rX: y", "X-A: \x7f", "X-A: \x01"):
            data = raw(f"GET {OK_PATH} HTTP/1.1", "Host: a.test", hdr)
            r = answer_then_close_or_clean(srv, data, f"header {hdr!r}", statuses=(200, 400))
            if "\x00" in hdr or "\r" in hdr:
                assert r.status == 400, f"header {hdr!r}: {r.status}, want 400"


# ------------------------------------------------------------ exact limits

def head_of_size(n, path=OK_PATH):
    """A request head of exactly n bytes (one padding header)."""
    base = kt.request(path, headers=[("X-Pad", "")])
    return kt.request(path, headers=[("X-Pad", "p" * (n - len(base)))])


def test_request_head_exact_limit():
    """max_request_head = 4096: a 4096-byte head is served, 4097 is 431."""
    with kt.Server(kt.site(), max_request_head=4096) as srv:
        for n, ok in ((4096, True), (4097, False)):
            data = head_of_size(n)
            assert len(data) == n
            with srv.connect() as c:
                c.send(data)
                r = c.read_response()
                if ok:
                    assert r.status == 200, f"{n}-byte head: {r.status}, want 200"
                else:
                    kt.assert_bad_request_closes(c, r, 431, f"{n}-byte head")
        kt.assert_serves(srv)


def test_uri_exact_limit():
    """max_uri = 1024: a 1024-byte target is served, 1025 is 414."""
    with kt.Server(kt.site(), max_uri=1024) as srv:
        for n, ok in ((1024, True), (1025, False)):
            base = OK_PATH + "?"
            target = base + "q" * (n - len(base))
            assert len(target) == n
            with srv.connect() as c:
                c.send(kt.request(target))
                r = c.read_response()
                if ok:
                    assert r.status == 200, f"{n}-byte target: {r.status}, want 200"
                else:
                    kt.assert_bad_request_closes(c, r, 414, f"{n}-byte target")


def test_pipelined_heads_past_limit():
    """Many small pipelined requests in one write whose total is far beyond
    max_request_head: each is its own head, all answered."""
    with kt.Server(kt.site(), max_request_head=1024) as srv, srv.connect() as c:
        n = 60
        rs = c.exchange(kt.request(OK_PATH) * n, n=n)
        assert all(r.status == 200 for r in rs), [r.status for r in rs if r.status != 200][:5]


def test_h2_header_list_over_limit():
    """HTTP/2: a header block over max_request_head is refused (431, a stream
    reset or GOAWAY), and the next stream or connection is served."""
    kt._need_h2()
    with kt.Server(kt.site(), max_request_head=4096) as srv:
        with kt.H2Raw(srv.port) as c:
            c.send(c.headers(1, OK_PATH, extra=[("x-pad", "p" * 6000)]))
            c.collect(lambda c: c.status(1) or c.of_type("RstStreamFrame", 1) or c.goaway(), 5)
            st = c.status(1)
            assert st in (None, 431), f"over-limit header block answered {st}"
            assert st == 431 or c.of_type("RstStreamFrame", 1) or c.goaway() or c.closed, \
                "over-limit header block got no answer at all"
        kt.assert_serves_h2(srv, OK_PATH)
