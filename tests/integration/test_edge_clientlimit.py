"""Per-client limits (server/clientlimit.c): client_max_connections and
the client_rate token bucket, keyed by the real client address: source
addresses bound from 127.0.0.0/8, and PROXY v2 headers naming any address
(IPv6 keyed by its /64). The limits trip at N+1, other clients go on, the
table's memory stays bounded whatever the number of addresses, and the
limits reset when the client goes away or time passes."""

import os
import socket
import time

import kt
from test_edge_metrics import parse, v
from test_edge_proxy import v2

METRICS = {"/metrics": {"metrics": True, "allow": ["127.0.0.1"]}}
# the test's own scrapes come from 127.0.0.1: exempt it from the limits
BASE = dict(client_limit_exempt=["127.0.0.1"], locations=METRICS)


def scrape(srv):
    r = srv.get("/metrics")
    assert r.status == 200, f"scrape: {r.status}"
    return parse(r.body.decode())


def tls_from(port, src, alpn=None):
    """A TLS socket whose source address is src (127.0.0.N)."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.settimeout(kt.IO_TIMEOUT)
    try:
        raw.bind((src, 0))
        raw.connect(("127.0.0.1", port))
        return kt.client_context(alpn=alpn).wrap_socket(raw, server_hostname="a.test")
    except BaseException:
        raw.close()
        raise


def conn_from(srv, src):
    return kt.Conn(tls_from(srv.port, src))


def get_on(c, path="/index.html"):
    return c.exchange(kt.request(path))


def plain_proxy(port, src, request=True):
    """A plain connection through the proxy listener claiming src."""
    s = socket.create_connection(("127.0.0.1", port), kt.IO_TIMEOUT)
    s.sendall(v2(src))
    c = kt.Conn(s)
    return c


def test_client_max_connections_trips_at_n_plus_1_503():
    n = 3
    with kt.Server(kt.site(), client_max_connections=n, **BASE) as srv:
        held = [conn_from(srv, "127.0.0.2") for _ in range(n)]
        try:
            for c in held:
                kt.assert_status(get_on(c), 200, "within client_max_connections")
            extra = conn_from(srv, "127.0.0.2")
            r = get_on(extra)
            kt.assert_status(r, 503, f"connection {n + 1} of one client")
            assert r.get("connection") == "close", "over the limit: not closed"
            extra.close()
            # another client is not affected, nor are the held ones
            with conn_from(srv, "127.0.0.3") as other:
                kt.assert_status(get_on(other), 200, "another address")
            kt.assert_status(get_on(held[0]), 200, "a held connection after the refusal")
            # the client goes away (one connection): room for one again
            held.pop().close()
            refused = 1
            deadline = time.monotonic() + 3
            while True:  # the close reaches the server a moment later
                c2 = conn_from(srv, "127.0.0.2")
                if get_on(c2).status == 200:
                    held.append(c2)
                    break
                c2.close()
                refused += 1
                assert time.monotonic() < deadline, \
                    "a slot did not come back after a connection closed"
                time.sleep(0.05)
            refused += 1  # the next one, below
            with conn_from(srv, "127.0.0.2") as again:
                kt.assert_status(get_on(again), 503, "full again")
        finally:
            for c in held:
                c.close()
        m = scrape(srv)
        assert v(m, "kttpd_rejected_total", reason="client_max_connections") == refused
        # HTTP/2: streams on a connection over the limit get the status too
        held = [tls_from(srv.port, "127.0.0.4") for _ in range(n)]
        try:
            with H2From(srv.port, "127.0.0.4") as h:
                rs = h.finish([h.request("/index.html") for _ in range(3)])
                assert [r.status for r in rs] == [503] * 3, f"h2 over the limit: {rs}"
            with H2From(srv.port, "127.0.0.40") as h:
                assert h.get("/index.html").status == 200, "h2 from another address"
        finally:
            for s in held:
                s.close()


def test_client_conn_status_429_and_444():
    with kt.Server(kt.site(), client_max_connections=1, client_conn_status=429, **BASE) as srv:
        with conn_from(srv, "127.0.0.5") as a:
            kt.assert_status(get_on(a), 200, "first connection")
            with conn_from(srv, "127.0.0.5") as b:
                kt.assert_status(get_on(b), 429, "client_conn_status = 429")
    with kt.Server(kt.site(), client_max_connections=1, client_conn_status=444, **BASE) as srv:
        with conn_from(srv, "127.0.0.6") as a:
            kt.assert_status(get_on(a), 200, "first connection")
            try:
                s = tls_from(srv.port, "127.0.0.6")
                s.close()
                raise AssertionError("444: the handshake completed; want a close at accept")
            except (ssl_errors()):
                pass
        # the closed one left no count behind: a new one is served once
        # the server has read the close (another worker may accept the
        # next connection before the first one's worker sees its EOF)
        deadline = time.monotonic() + 5
        while True:
            try:
                with conn_from(srv, "127.0.0.6") as a:
                    kt.assert_status(get_on(a), 200, "after the first closed")
                break
            except ssl_errors():
                if time.monotonic() > deadline:
                    raise AssertionError("5 s after the first closed: still refused")
                time.sleep(0.05)


def ssl_errors():
    import ssl
    return (ssl.SSLError, ConnectionError, OSError)


def test_client_limit_via_proxy_and_ipv6_prefix():
    pport = kt.free_port()
    with kt.Server(kt.site(), plain=False, listen_a=[f"127.0.0.1:{pport} proxy"],
                   client_max_connections=2, **BASE) as srv:
        def get(src):
            c = plain_proxy(pport, src)
            c.send(kt.request("/index.html"))
            return c, c.read_response()

        # (claimed source, status): two per client, then 503
        steps = [("198.51.100.7", 200), ("198.51.100.7", 200), ("198.51.100.7", 503),
                 ("198.51.100.8", 200),  # another address, same TCP peer
                 # IPv6: one /64 is one client
                 ("2001:db8:1:2::1", 200), ("2001:db8:1:2::ffff", 200),
                 ("2001:db8:1:2:abcd::5", 503),
                 ("2001:db8:1:3::1", 200)]  # the next /64: another client
        held = []
        try:
            for src, want in steps:
                c, r = get(src)
                held.append(c)  # kept open: it counts
                kt.assert_status(r, want, f"PROXY source {src}")
        finally:
            for c in held:
                c.close()


def test_client_rate_429_retry_after_h1_and_h2():
    burst = 5
    with kt.Server(kt.site(), client_rate=1, client_burst=burst, **BASE) as srv:
        with conn_from(srv, "127.0.0.7") as c:
            for i in range(burst):
                kt.assert_status(get_on(c), 200, f"request {i + 1} of the burst")
            r = get_on(c)
            kt.assert_status(r, 429, f"request {burst + 1}")
            ra = int(r.get("retry-after", "0"))
            assert 1 <= ra <= 2, f"Retry-After {ra!r}"
            # the connection stays usable; others are unaffected
            with conn_from(srv, "127.0.0.8") as o:
                kt.assert_status(get_on(o), 200, "another client")
            time.sleep(1.1)
            kt.assert_status(get_on(c), 200, "a token came back after 1 s")
            kt.assert_status(get_on(c), 429, "and only one")
        # HTTP/2: one token per stream
        with H2From(srv.port, "127.0.0.9") as h:
            sids = [h.request("/index.html") for _ in range(burst + 2)]
            rs = h.finish(sids)
            st = [r.status for r in rs]
            assert st.count(200) == burst and st.count(429) == 2, f"h2 statuses {st}"
            refused = [r for r in rs if r.status == 429]
            assert int(refused[0].get("retry-after", "0")) >= 1, "h2 429 without retry-after"
        m = scrape(srv)
        assert v(m, "kttpd_rejected_total", reason="client_rate") == 4


class H2From(kt.H2Client):
    """kt.H2Client over a socket bound to a given source address."""

    def __init__(self, port, src):
        orig = kt.h2_socket

        def bound(p, servername="a.test", timeout=kt.IO_TIMEOUT, rcvbuf=None):
            return tls_from(p, src, alpn=["h2"])
        kt.h2_socket = bound
        try:
            super().__init__(port)
        finally:
            kt.h2_socket = orig


def test_client_table_bounded_100k_addresses():
    """100,000 distinct PROXY v2 source addresses through a 4096-slot
    table: entries stay at most the size, evictions count the rest, RSS
    does not grow with the addresses, and limits still trip after."""
    pport = kt.free_port()
    n = 100_000
    with kt.Server(kt.site(), listen_a=[f"127.0.0.1:{pport} proxy"],
                   client_max_connections=2, client_rate=1000, client_table_size=4096,
                   max_connections=5000, **BASE) as srv:
        rss0 = kt.proc_rss_kib(srv.pid)
        t0 = time.monotonic()
        done = flood(pport, n)
        took = time.monotonic() - t0
        m = scrape(srv)
        entries = v(m, "kttpd_client_table_entries")
        size = v(m, "kttpd_client_table_size")
        ev = v(m, "kttpd_client_table_evictions_total")
        rss1 = kt.proc_rss_kib(srv.pid)
        assert size == 4096, f"table size {size}"
        assert entries <= size, f"{entries} entries > {size}"
        assert ev >= done - size, f"{done} addresses, {entries} entries, only {ev} evictions"
        # (under ASan freed memory sits in its quarantine, 256 MiB: RSS
        # says nothing there; the entries and evictions still do)
        if not os.environ.get("ASAN_OPTIONS"):
            assert rss1 - rss0 < 16 * 1024, f"RSS grew {rss1 - rss0} KiB over {n} addresses"
        print(f"{done} addresses in {took:.1f}s; entries {entries:.0f}, evictions {ev:.0f}, "
              f"RSS {rss0} -> {rss1} KiB")
        # still limiting afterwards
        held = [plain_proxy(pport, "203.0.113.9") for _ in range(2)]
        try:
            for c in held:
                c.send(kt.request("/index.html"))
                kt.assert_status(c.read_response(), 200, "after the flood")
            c = plain_proxy(pport, "203.0.113.9")
            c.send(kt.request("/index.html"))
            kt.assert_status(c.read_response(), 503, "limit after the flood")
            c.close()
        finally:
            for c in held:
                c.close()


def flood(port, n, width=200):
    """n connections, each a PROXY v2 header from its own address, a
    request, read to the end; width at a time. Returns how many answered."""
    import selectors
    sel = selectors.DefaultSelector()
    req = b"GET /index.html HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
    nxt = ok = 0
    live = 0

    def start(i):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        a = 0x0A000000 + i  # 10.0.0.0/8 and up: distinct addresses
        src = socket.inet_ntoa(a.to_bytes(4, "big"))
        sel.register(s, selectors.EVENT_WRITE, [v2(src) + req, b""])

    deadline = time.monotonic() + 120
    while (nxt < n or live) and time.monotonic() < deadline:
        while live < width and nxt < n:
            start(nxt)
            nxt += 1
            live += 1
        for key, ev in sel.select(1):
            s, st = key.fileobj, key.data
            try:
                if ev & selectors.EVENT_WRITE:
                    s.send(st[0])
                    sel.modify(s, selectors.EVENT_READ, st)
                    continue
                d = s.recv(65536)
                if d:
                    st[1] += d
                    continue
                if st[1].startswith(b"HTTP/1.1 200"):
                    ok += 1
            except OSError:
                pass
            sel.unregister(s)
            s.close()
            live -= 1
    assert ok == n, f"{ok} of {n} flood connections answered 200"
    return ok


def test_client_limits_on_reload_and_444_after_proxy():
    """Off at start, on after SIGHUP (the table is there from the start);
    444 on a proxy listener closes right after the PROXY header."""
    pport = kt.free_port()
    with kt.Server(kt.site(), listen_a=[f"127.0.0.1:{pport} proxy"], **BASE) as srv:
        first = [plain_proxy(pport, "192.0.2.44") for _ in range(3)]
        for c in first:
            c.send(kt.request("/index.html"))
            kt.assert_status(c.read_response(), 200, "limits off")
        for c in first:
            c.close()
        srv.write_config(client_max_connections=1, client_conn_status=444)
        srv.reload()
        assert kt.wait_until(lambda: "reloaded" in srv.error_log(), 3), srv.log_tail()
        a = plain_proxy(pport, "192.0.2.44")
        try:
            a.send(kt.request("/index.html"))
            kt.assert_status(a.read_response(), 200, "first connection after the reload")
            b = plain_proxy(pport, "192.0.2.44")
            try:
                b.send(kt.request("/index.html"))
                r = b.read_response()
                raise AssertionError(f"444: got a response {r.status}; want a close")
            except (kt.Closed, ConnectionError):
                pass
            b.close()
        finally:
            a.close()
        m = scrape(srv)
        assert v(m, "kttpd_rejected_total", reason="client_max_connections") == 1
