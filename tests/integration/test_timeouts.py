"""Timeouts (handshake, header, keep-alive, send) and the connection limit."""

import socket
import threading
import time

import kt

SHORT = dict(handshake_timeout=1, header_timeout=1, keepalive_timeout=1)


def test_handshake_timeout():
    with kt.Server(kt.site(), **SHORT) as srv:
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", srv.port), kt.IO_TIMEOUT) as s:
            kt.assert_serves(srv)   # others are served meanwhile
            closed = kt.Conn(s).wait_closed(4)
            took = time.monotonic() - t0
            assert closed, f"a connection that never sent a ClientHello is open after {took:.1f}s"
            assert took > 0.5, f"closed after {took:.2f}s, before handshake_timeout = 1"


def test_header_timeout_trickle():
    """header_timeout bounds the whole head, however steadily it trickles in."""
    with kt.Server(kt.site(), **SHORT) as srv, srv.connect() as c:
        head = kt.request(kt.size_path(1), headers=[("X-Slow", "x" * 40)])
        t0 = time.monotonic()
        closed = False
        for i in range(len(head) - 4):
            try:
                c.send(head[i:i + 1])
            except kt.Closed:
                closed = True
                break
            if c.wait_closed(0.3):
                closed = True
                break
            if time.monotonic() - t0 > 4:
                break
        took = time.monotonic() - t0
        assert closed, f"trickled request head still accepted after {took:.1f}s (header_timeout = 1)"
        if c.buf:
            r = kt.parse_head(c.buf.split(b"\r\n\r\n")[0])
            assert r.status == 408, f"trickled head answered {r.status}, want 408 or a plain close"
        kt.assert_serves(srv)


def test_keepalive_timeout():
    with kt.Server(kt.site(), **SHORT) as srv, srv.connect() as c:
        r = c.exchange(kt.request(kt.size_path(1)))
        assert r.status == 200, f"first request: {r.status}"
        assert c.idle_open(0.3), "keep-alive connection closed at once"
        kt.assert_serves(srv)
        assert c.wait_closed(3.5), \
            "idle keep-alive connection still open 3.8s after its request (keepalive_timeout = 1)"
        assert b"HTTP/" not in c.buf, "idle close sent a response"


def test_send_timeout():
    """A client that stops reading a 5 GiB body is dropped after send_timeout."""
    with kt.Server(kt.site(), send_timeout=1) as srv, srv.connect() as c:
        c.send(kt.request("/big-5g.bin"))
        time.sleep(3)  # socket buffers fill, the server stalls
        received, t0 = 0, time.monotonic()
        while not c.eof and received < (256 << 20) and time.monotonic() - t0 < 10:
            try:
                c._recv(timeout=2)
            except TimeoutError:
                break
            received += len(c.buf)
            c.buf = b""
        assert c.eof, f"stalled 5 GiB download not dropped (read {received >> 20} MiB after " \
                      f"3s of stall, send_timeout = 1)"
        kt.assert_serves(srv)


def try_request(port, results, i, hold):
    try:
        s = kt.tls_socket(port, timeout=2)
        c = kt.Conn(s)
        r = c.exchange(kt.request(kt.size_path(1)))
        results[i] = r.status
        hold.wait(10)
        c.close()
    except Exception as e:
        results[i] = type(e).__name__


def test_max_connections():
    with kt.Server(kt.site(), max_connections=20) as srv:
        hold = threading.Event()
        results = [None] * 30
        threads = [threading.Thread(target=try_request, args=(srv.port, results, i, hold))
                   for i in range(30)]
        for t in threads:
            t.start()
            time.sleep(0.01)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(r is None for r in results):
            time.sleep(0.05)
        served = sum(1 for r in results if r == 200)
        hold.set()
        for t in threads:
            t.join(10)
        assert served <= 21, f"{served} of 30 connections served with max_connections = 20"
        assert served >= 15, f"only {served} of 30 connections served: {results}"
        ok = kt.wait_until(lambda: kt.serves(srv), 3, 0.2)
        assert ok, "no connection served after the others closed"
        assert srv.alive(), "server died"
