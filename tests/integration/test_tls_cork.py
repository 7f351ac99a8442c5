"""Issue 13: the socket is corked from the first TLS 1.3 session ticket
until the handshake's turn ends, so that tickets, the first response and
close_notify share a segment. Nothing may stay held after that turn: a
socket left corked would hold a small response up to 200 ms (Linux's
TCP_CORK ceiling). Responses right after the handshake and a keep-alive
one later, over TLS 1.2 and 1.3, HTTP/1.1 and HTTP/2, come at once."""

import ssl
import statistics
import time

import kt

SLOW = 0.15  # a held segment waits 0.2 s


def timed(c, path):
    t = time.monotonic()
    c.send(kt.request(path))
    r = c.read_response()
    assert r.status == 200 and r.body == kt.site().files[path], r.status
    return time.monotonic() - t


def test_tls_cork_released_after_the_handshake_turn():
    path = kt.size_path(1)
    with kt.Server(kt.site()) as srv:
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            first, later = [], []
            for _ in range(5):
                with kt.Conn(kt.tls_socket(srv.port, version=version)) as c:
                    first.append(timed(c, path))
                    time.sleep(0.05)   # the next request: another turn
                    later.append(timed(c, path))
            assert statistics.median(first) < SLOW, (version, first)
            assert statistics.median(later) < SLOW, (version, later)


def test_tls_cork_released_h2():
    with kt.Server(kt.site()) as srv:
        times = []
        for _ in range(5):
            t = time.monotonic()
            kt.assert_serves_h2(srv, kt.size_path(1))
            times.append(time.monotonic() - t)
        assert statistics.median(times) < SLOW, times
