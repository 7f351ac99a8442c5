"""The health endpoint and the drain (SIGUSR2) on one node: health flips to
503 while everything else is still served, keep-alive connections get
`Connection: close` (HTTP/1.1) or a GOAWAY (HTTP/2), and the process stops
after drain_timeout, or sooner once idle for drain_idle."""

import signal
import socket
import subprocess
import time

import kt

HEALTH = {"/health": {"health": True}, "/metrics": {"metrics": True, "allow": ["127.0.0.1"]}}
BIG = kt.size_path(1 << 20)
SMALL = kt.size_path(16385)


def server(**options):
    opts = dict(drain_timeout=20, drain_idle=0)
    opts.update(options)
    return kt.Server(kt.site(), locations=HEALTH, **opts)


def health(srv):
    r = srv.get("/health")
    return r.status, r.body


def metric(srv, name):
    text = srv.get("/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in the metrics")


def wait_exit(srv, timeout):
    try:
        return srv.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def assert_exact(r, path, srv, what):
    assert r.status == 200, f"{what}: GET {path} -> {r.status}"
    assert kt.sha256(r.body) == kt.sha256(srv.site.files[path]), f"{what}: GET {path}: body differs"


def test_health_ok_while_serving():
    with server() as srv:
        assert health(srv) == (200, b"ok\n"), f"health while serving: {health(srv)}"
        r = srv.get("/health", method="HEAD")
        assert r.status == 200, f"HEAD /health -> {r.status}"
        assert metric(srv, 'kttpd_health_checks_total{status="200"}') == 2
        assert metric(srv, "kttpd_draining") == 0


def test_drain_h1_health_fails_others_served():
    with server() as srv, srv.connect() as kept:
        assert_exact(kept.exchange(kt.request(SMALL)), SMALL, srv, "before the drain")
        srv.signal(signal.SIGUSR2)
        assert kt.wait_until(lambda: health(srv)[0] == 503, 3), "health not 503 after SIGUSR2"
        assert health(srv) == (503, b"draining\n")
        # a new connection during the drain is served, and told to go
        r = srv.get(SMALL)
        assert_exact(r, SMALL, srv, "new connection during the drain")
        assert r.get("connection", "").lower() == "close", \
            f"drain: response without Connection: close ({r.headers})"
        # the keep-alive connection opened before: served, then closed
        r = kept.exchange(kt.request(SMALL))
        assert_exact(r, SMALL, srv, "keep-alive connection during the drain")
        assert r.get("connection", "").lower() == "close", "keep-alive: no Connection: close"
        assert kept.wait_closed(3), "keep-alive connection not closed after its drain response"
        assert metric(srv, "kttpd_draining") == 1
        assert metric(srv, 'kttpd_health_checks_total{status="503"}') >= 2
        assert srv.alive(), "kttpd exited during the drain (drain_timeout 20, drain_idle 0)"


def test_drain_h1_in_flight_download_finishes():
    with server() as srv:
        sock = socket.create_connection(("127.0.0.1", srv.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c = kt.Conn(kt.client_context().wrap_socket(sock, server_hostname="a.test"))
        with c:
            c.send(kt.request(BIG))
            head = c.read_head()
            first = c.read_exact(1000)  # the rest sits in the server's socket
            assert first == srv.site.files[BIG][:1000]
            srv.signal(signal.SIGUSR2)
            assert kt.wait_until(lambda: health(srv)[0] == 503, 3), "health not 503"
            rest = c.read_exact(int(head.headers["content-length"]) - 1000)
            assert head.status == 200
            assert kt.sha256(srv.site.files[BIG][:1000] + rest) == kt.sha256(srv.site.files[BIG]), \
                "download in flight when the drain began: body differs"


def test_drain_h2_goaway_streams_served():
    with server() as srv, kt.H2Client(srv.port) as old:
        r = old.get(SMALL)
        assert_exact(r, SMALL, srv, "h2 before the drain")
        srv.signal(signal.SIGUSR2)
        assert old.wait(lambda: old.goaway is not None, 3), "h2 connection open before: no GOAWAY"
        assert old.goaway[0] == 0, f"GOAWAY error code {old.goaway}"
        assert old.wait_closed(3), "idle h2 connection not closed after its GOAWAY"
        with kt.H2Client(srv.port) as new:
            h = new.get("/health")
            assert h.status == 503 and h.body == b"draining\n", f"h2 /health during the drain: {h}"
        with kt.H2Client(srv.port) as new:
            # two streams in one write: both reach the server before the
            # first ends (a stream sent after our GOAWAY would be refused
            # as unprocessed, RFC 9113 6.8, and is the client's to retry)
            sids = []
            for path in (SMALL, BIG):
                sid = new.h2.get_next_available_stream_id()
                new.h2.send_headers(sid, [(":method", "GET"), (":scheme", "https"),
                                          (":authority", "a.test"), (":path", path)],
                                    end_stream=True)
                new.streams[sid] = kt.H2Response(sid)
                sids.append(sid)
            new.flush()
            for r, path in zip(new.finish(sids), (SMALL, BIG)):
                assert_exact(r, path, srv, "h2 during the drain")
            # the notice (last stream 2^31-1), then the final GOAWAY
            assert new.wait(lambda: new.goaway is not None and new.goaway[1] != 2**31 - 1, 3), \
                f"h2 during the drain: no final GOAWAY ({new.goaway})"
            assert new.goaway == (0, max(sids)), f"GOAWAY {new.goaway}, streams {sids}"
        assert srv.alive()


def test_drain_exits_after_drain_timeout():
    with server(drain_timeout=2, drain_idle=0, shutdown_timeout=1) as srv, srv.connect() as kept:
        assert kept.exchange(kt.request(SMALL)).status == 200  # stays open, idle
        t0 = time.monotonic()
        srv.signal(signal.SIGUSR2)
        assert wait_exit(srv, 1.5) is None, "exited before drain_timeout (2 s)"
        rc = wait_exit(srv, 5)
        took = time.monotonic() - t0
        assert rc == 0, f"after drain_timeout: exit {rc} ({took:.1f}s)"
        assert 1.9 <= took <= 5, f"drain of drain_timeout 2 s took {took:.1f}s"
        assert "drain over: stopping" in srv.error_log(), srv.log_tail()


def test_drain_exits_when_idle():
    with server(drain_timeout=30, drain_idle=1) as srv:
        kept = srv.connect()
        assert kept.exchange(kt.request(SMALL)).status == 200
        srv.signal(signal.SIGUSR2)
        # an open connection is not idle: still draining after 2 s
        assert wait_exit(srv, 2) is None, "exited while a connection was open (drain_idle 1)"
        kept.close()
        t0 = time.monotonic()
        rc = wait_exit(srv, 5)
        took = time.monotonic() - t0
        assert rc == 0, f"idle drain: exit {rc}"
        assert took <= 3, f"idle for drain_idle (1 s) but exit took {took:.1f}s"


def test_sigterm_during_drain_stops_now():
    with server(drain_timeout=60) as srv:
        srv.signal(signal.SIGUSR2)
        assert kt.wait_until(lambda: health(srv)[0] == 503, 3)
        assert srv.stop(grace=5) == 0, "SIGTERM during a drain"


def test_sigterm_fails_health_first():
    """A health check in flight when SIGTERM arrives is answered 503."""
    with server() as srv, srv.connect() as c:
        c.send(b"GET /health HTTP/1.1\r\nHost: a.test\r\n")  # head not finished
        time.sleep(0.2)
        srv.signal(signal.SIGTERM)
        time.sleep(0.3)
        r = c.exchange(b"\r\n")
        assert (r.status, r.body) == (503, b"draining\n"), f"health during the stop: {r.status} {r.body!r}"
        assert r.get("connection", "").lower() == "close"
        assert wait_exit(srv, 5) == 0, "kttpd did not stop after SIGTERM"


def test_drain_options_checked():
    for bad in ("drain_timeout = -1", "drain_idle = 100000"):
        srv = kt.Server(kt.site(), start=False, raw_tail=bad)
        p = subprocess.run([kt.BIN, "-t", "-c", str(srv.conf_path)], capture_output=True, timeout=10)
        err = p.stderr.decode()
        assert p.returncode != 0, f"-t accepted `{bad}`"
        where = f"{srv.conf_path}:{kt.line_of(srv.config, bad)}:"
        assert where in err, f"`{bad}`: stderr does not name {where}: {err!r}"


def test_example_node_config_is_valid():
    """conf/haproxy/kttpd-node.conf, with this machine's certificate and
    root, passes -t (its addresses are only parsed, not bound)."""
    import re
    site = kt.site()
    text = (kt.REPO / "conf" / "haproxy" / "kttpd-node.conf").read_text()
    crt, key = site.certs["a.test"]
    text = re.sub(r'"/etc/kttpd/[\w.-]+\.crt"', f'"{crt}"', text)
    text = re.sub(r'"/etc/kttpd/[\w.-]+\.key"', f'"{key}"', text)
    text = re.sub(r'"/srv/[\w.-]+"', f'"{site.root["a.test"]}"', text)
    path = site.dir / "node.conf"
    path.write_text(text)
    p = subprocess.run([kt.BIN, "-t", "-c", str(path)], capture_output=True, timeout=10)
    assert p.returncode == 0, f"kttpd-node.conf -t: {p.returncode}: {p.stderr.decode().strip()}"
