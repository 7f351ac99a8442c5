"""HTTP/2 under abuse and at the end of a connection: concurrency limit,
header list size, rapid reset, SETTINGS/PING/empty-DATA/CONTINUATION floods,
idle timeout, flow-control stalls, GOAWAY on SIGTERM and SIGHUP.

Raw frames come from kt.H2Raw (hyperframe + hpack over ssl); well-behaved
traffic from kt.H2Client (python h2). After each attack a fresh connection
must be served."""

import signal
import struct
import threading
import time

import kt

BIG = kt.size_path(1 << 20)
RSS_GROWTH_KIB = 64 << 10      # generous: 64 MiB over the idle server


def assert_fresh(srv, what):
    assert srv.alive(), f"{what}: server died"
    kt.assert_serves_h2(srv)
    kt.assert_serves(srv)      # and HTTP/1.1


class Background(threading.Thread):
    """A well-behaved h2 client fetching on its own connection(s) meanwhile."""

    def __init__(self, srv, seconds):
        super().__init__(daemon=True)
        self.srv, self.seconds = srv, seconds
        self.ok, self.errors = 0, []

    def run(self):
        deadline = time.monotonic() + self.seconds
        files = self.srv.site.files
        while time.monotonic() < deadline:
            try:
                with kt.H2Client(self.srv.port) as c:
                    for path in (kt.size_path(16385), kt.size_path(1), kt.size_path(16384)):
                        r = c.get(path)
                        if r.status != 200 or r.body != files[path]:
                            self.errors.append(f"{path}: {r}")
                        else:
                            self.ok += 1
            except Exception as e:      # noqa: BLE001 - reported by the test
                self.errors.append(f"{type(e).__name__}: {e}")
            time.sleep(0.02)


def frame_summary(c, limit=12):
    out = []
    for f in c.frames:
        name = type(f).__name__.replace("Frame", "")
        if name in ("Data", "Settings"):
            continue
        out.append((name, f.stream_id, getattr(f, "error_code", None), getattr(f, "last_stream_id", None)))
    return out[:limit]


# ---------------------------------------------------------------- limits

def test_max_concurrent_streams():
    site = kt.site()
    with kt.Server(site, http2_max_streams=10) as srv:
        # stream window 0: responses cannot finish, so every stream stays open
        with kt.H2Raw(srv.port, settings={kt.H2_SETTINGS_INITIAL_WINDOW_SIZE: 0}) as c:
            sids = [2 * i + 1 for i in range(15)]
            c.send(b"".join(c.headers(s, BIG) for s in sids))
            c.collect(lambda c: len(c.of_type("HeadersFrame")) + len(c.of_type("RstStreamFrame")) >= 15
                      or c.goaway(), 3)
            assert c.server_settings().get(kt.H2_SETTINGS_MAX_CONCURRENT_STREAMS) == 10, \
                f"server SETTINGS {c.server_settings()}: http2_max_streams = 10 not announced"
            answered = [s for s in sids if c.status(s) == 200]
            refused = {f.stream_id: f.error_code for f in c.of_type("RstStreamFrame")}
            g = c.goaway()
            assert answered == sids[:10], f"answered streams {answered} (frames {frame_summary(c)})"
            if g is None:
                assert refused == {s: kt.H2_REFUSED_STREAM for s in sids[10:]}, \
                    f"streams over the limit: RST_STREAM {refused}, expected REFUSED_STREAM for {sids[10:]}"
                # the admitted ones still complete once the client opens its windows
                c.send(c.window_update(0, 10 << 20) + b"".join(c.window_update(s, 1 << 20) for s in sids[:10]))
                c.collect(lambda c: all(c.ended(s) for s in sids[:10]), 10)
                for s in sids[:10]:
                    assert c.body(s) == site.files[BIG], f"stream {s}: {len(c.body(s))} bytes, not the file"
            else:   # a connection error is allowed too (RFC 9113 5.1.2)
                assert g.error_code in (kt.H2_PROTOCOL_ERROR, kt.H2_REFUSED_STREAM), f"GOAWAY {g.error_code}"
        assert_fresh(srv, "after max concurrent streams")


def test_header_list_too_large():
    site = kt.site()
    with kt.Server(site, max_request_head=4096) as srv:
        with kt.H2Raw(srv.port) as c:
            c.collect(lambda c: kt.H2_SETTINGS_MAX_HEADER_LIST_SIZE in c.server_settings(), 2)
            assert c.server_settings().get(kt.H2_SETTINGS_MAX_HEADER_LIST_SIZE) == 4096, \
                f"SETTINGS_MAX_HEADER_LIST_SIZE: {c.server_settings()} (max_request_head = 4096)"
            c.send(c.headers(1, "/index.html", extra=[("x-fill", "a" * 3000)]))
            c.collect(lambda c: c.ended(1), 3)
            assert c.status(1) == 200, f"3000-byte header under the limit: {c.status(1)}"
            cases = [("one 5000-byte field", [("x-big", "a" * 5000)], 16384),
                     ("100 fields of 60 bytes", [(f"x-h{i}", "v" * 20) for i in range(100)], 16384),
                     ("a 100 KB field in CONTINUATIONs", [("x-huge", "b" * 100000)], 16384)]
            sid = 1
            for what, extra, frag in cases:
                sid += 2
                c.send(c.headers(sid, "/index.html", extra=extra, fragment=frag))
                c.collect(lambda c: c.ended(sid) or c.goaway(), 3)
                g = c.goaway()
                if g is not None or c.closed:
                    break               # a connection error is acceptable
                st = c.status(sid)
                rst = [f.error_code for f in c.of_type("RstStreamFrame", sid)]
                assert st == 431 or rst, f"{what}: status {st}, RST {rst}, expected 431 or a stream error"
                assert b"x-big" not in c.body(sid)
            if not c.closed and c.goaway() is None:     # stream-level answers keep the connection
                sid += 2
                c.send(c.headers(sid, kt.size_path(16385)))
                c.collect(lambda c: c.ended(sid), 3)
                assert c.status(sid) == 200 and c.body(sid) == site.files[kt.size_path(16385)], \
                    "connection unusable after 431"
        # 1 MB of header block: must be refused without buffering it all
        with kt.H2Raw(srv.port) as c:
            try:
                c.send(c.headers(1, "/index.html", extra=[("x-huge", "c" * (1 << 20))]))
            except kt.Closed:
                pass
            c.collect(lambda c: c.ended(1), 3)
            assert c.closed or c.status(1) == 431 or c.of_type("RstStreamFrame", 1) or c.goaway(), \
                f"1 MB header block accepted: {frame_summary(c)}"
            assert c.status(1) != 200, "1 MB header block got 200"
        assert_fresh(srv, "after oversized header lists")


def test_continuation_flood():
    with kt.Server(kt.site()) as srv:
        rss0 = kt.proc_rss_kib(srv.pid)
        with kt.H2Raw(srv.port) as c:
            # HEADERS then CONTINUATIONs that never END_HEADERS (CVE-2024-27316 style)
            c.send(c.frame(0x1, 0x0, 1, c.enc.encode([(":method", "GET"), (":scheme", "https"),
                                                       (":authority", "a.test"), (":path", "/")])))
            block = c.frame(0x9, 0x0, 1, c.enc.encode([("x-c", "d" * 1000)]))
            try:
                for _ in range(200):
                    c.send(block * 50)      # 10,000 frames, ~10 MB
            except kt.Closed:
                pass
            assert c.wait_closed(3), f"CONTINUATION flood: connection still open ({frame_summary(c)})"
        grew = kt.proc_rss_kib(srv.pid) - rss0
        assert grew < RSS_GROWTH_KIB, f"RSS grew {grew} KiB under a CONTINUATION flood"
        assert_fresh(srv, "after CONTINUATION flood")


# ---------------------------------------------------------------- rapid reset

def test_rapid_reset():
    with kt.Server(kt.site()) as srv:           # http2_reset_burst 200, rate 33/s
        # a client cancelling fewer than the burst is left alone
        with kt.H2Raw(srv.port) as c:
            c.send(b"".join(c.headers(2 * i + 1, kt.size_path(1)) + c.rst(2 * i + 1) for i in range(150)))
            c.send(c.headers(1001, kt.size_path(16385)))
            c.collect(lambda c: c.ended(1001) or c.goaway(), 3)
            assert c.goaway() is None, f"GOAWAY after only 150 resets: {frame_summary(c)}"
            assert c.status(1001) == 200 and c.body(1001) == srv.site.files[kt.size_path(16385)], \
                "request after 150 resets not served"
        bg = Background(srv, 1.5)
        bg.start()
        time.sleep(0.1)
        with kt.H2Raw(srv.port) as c:
            t0 = time.monotonic()
            try:
                sids = list(range(1, 2001, 2))      # 1000 HEADERS + RST_STREAM pairs
                for i in range(0, len(sids), 100):
                    c.send(b"".join(c.headers(s, kt.size_path(16384)) + c.rst(s) for s in sids[i:i + 100]))
            except kt.Closed:
                pass
            c.collect(lambda c: c.goaway(), 3)
            g = c.goaway()
            assert g is not None, f"no GOAWAY after 1000 rapid resets ({frame_summary(c)})"
            assert g.error_code == kt.H2_ENHANCE_YOUR_CALM, \
                f"rapid reset GOAWAY error code {g.error_code}"
            assert c.wait_closed(3), "connection not closed after the rapid-reset GOAWAY"
            took = time.monotonic() - t0
        bg.join(5)
        assert not bg.errors, f"well-behaved client failed during the flood: {bg.errors[:3]}"
        assert bg.ok > 0, "well-behaved client got nothing during the flood"
        assert took < 5, f"rapid reset connection took {took:.1f}s to close"
        assert_fresh(srv, "after rapid reset")


def test_rapid_reset_config():
    with kt.Server(kt.site(), http2_reset_burst=20, http2_reset_rate=1) as srv:
        with kt.H2Raw(srv.port) as c:
            c.send(b"".join(c.headers(2 * i + 1, kt.size_path(1)) + c.rst(2 * i + 1) for i in range(15)))
            c.collect(lambda c: c.goaway(), 0.5)
            assert c.goaway() is None, f"GOAWAY after 15 resets with burst 20: {frame_summary(c)}"
            c.send(b"".join(c.headers(2 * i + 1, kt.size_path(1)) + c.rst(2 * i + 1) for i in range(15, 40)))
            c.collect(lambda c: c.goaway(), 3)
            assert c.goaway() is not None, f"no GOAWAY after 40 resets with http2_reset_burst = 20 ({frame_summary(c)})"
            assert c.wait_closed(3), "not closed after GOAWAY"
        assert_fresh(srv, "after reset burst")


# ---------------------------------------------------------------- floods

def flood(srv, frame, count, what):
    """Send count copies of frame without reading (small receive buffer); the
    server must stay responsive and bounded. Returns the connection."""
    rss0 = kt.proc_rss_kib(srv.pid)
    c = kt.H2Raw(srv.port, rcvbuf=8192, ack_settings=False)
    sent = 0
    try:
        while sent < count:
            c.send(frame * 1000)
            sent += 1000
            if sent % 20000 == 0:
                assert kt.serves(srv), f"{what}: a fresh connection not served during the flood ({sent} sent)"
    except kt.Closed:
        pass
    rss = kt.proc_rss_kib(srv.pid)
    assert rss - rss0 < RSS_GROWTH_KIB, f"{what}: RSS {rss0} -> {rss} KiB"
    assert srv.alive(), f"{what}: server died"
    assert kt.serves(srv), f"{what}: fresh connection not served after the flood"
    return c, sent


def test_settings_flood():
    with kt.Server(kt.site()) as srv:
        c, sent = flood(srv, kt.H2Raw.settings({}), 100000, "SETTINGS flood")
        with c:
            closed = c.wait_closed(5)
            g = c.goaway()
            assert closed or sent == 100000, "SETTINGS flood: neither closed nor all frames taken"
            assert g is None or g.error_code == kt.H2_ENHANCE_YOUR_CALM, f"GOAWAY {g.error_code}"
        # too many entries in one SETTINGS frame (max_settings 32)
        with kt.H2Raw(srv.port) as c:
            c.send(c.frame(0x4, 0x0, 0, struct.pack("!HI", 0x4, 65535) * 40))
            c.collect(lambda c: c.goaway(), 3)
            g = c.goaway()
            assert g is not None and g.error_code == kt.H2_ENHANCE_YOUR_CALM, \
                f"SETTINGS with 40 entries: {frame_summary(c)}"
            assert c.wait_closed(3), "not closed after 40-entry SETTINGS"
        assert_fresh(srv, "after SETTINGS floods")


def test_ping_flood():
    with kt.Server(kt.site()) as srv:
        c, sent = flood(srv, kt.H2Raw.ping(b"12345678"), 200000, "PING flood")
        with c:
            closed = c.wait_closed(5)
            assert closed or sent == 200000, "PING flood: neither closed nor all frames taken"
        assert_fresh(srv, "after PING flood")


def test_empty_data_flood():
    with kt.Server(kt.site()) as srv:
        rss0 = kt.proc_rss_kib(srv.pid)
        with kt.H2Raw(srv.port, settings={kt.H2_SETTINGS_INITIAL_WINDOW_SIZE: 0}) as c:
            c.send(c.headers(1, BIG, end_stream=False))      # stream stays open our side
            c.collect(lambda c: c.status(1), 3)
            assert c.status(1) == 200, f"no response to the request: {frame_summary(c)}"
            try:
                for _ in range(10):
                    c.send(c.data(1) * 1000)
            except kt.Closed:
                pass
            assert c.wait_closed(3), "empty DATA flood: connection still open"
        assert kt.proc_rss_kib(srv.pid) - rss0 < RSS_GROWTH_KIB
        assert_fresh(srv, "after empty DATA flood")


# ---------------------------------------------------------------- time

def test_idle_timeout():
    with kt.Server(kt.site(), keepalive_timeout=1) as srv:
        with kt.H2Client(srv.port) as c, kt.H2Client(srv.port) as unused:
            t0 = time.monotonic()
            assert c.get(kt.size_path(1)).status == 200
            assert c.wait_closed(4), "idle h2 connection (after a request) not closed"
            took = time.monotonic() - t0
            assert 0.7 < took < 3, f"idle h2 connection closed after {took:.1f}s (keepalive_timeout 1)"
            assert unused.wait_closed(2), "h2 connection without requests not closed"
        # a stream in flight is not idle
        with kt.H2Client(srv.port, settings={kt.H2_SETTINGS_INITIAL_WINDOW_SIZE: 0},
                         auto_window=False) as c:
            sid = c.request(BIG)
            c.wait(lambda: c.streams[sid].status, 2)
            c.wait(lambda: False, 1.5)
            assert not c.closed, "connection with a stream waiting on flow control closed at keepalive_timeout"
        assert_fresh(srv, "after idle timeouts")


def test_stalled_window_resumes():
    site = kt.site()
    with kt.Server(site, send_timeout=5) as srv:
        with kt.H2Client(srv.port, settings={kt.H2_SETTINGS_INITIAL_WINDOW_SIZE: 0},
                         auto_window=False) as c:
            sids = [c.request(BIG), c.request(kt.size_path(16385))]
            c.wait(lambda: all(c.streams[s].status for s in sids), 3)
            assert [c.streams[s].status for s in sids] == [200, 200]
            c.wait(lambda: False, 0.6)
            assert all(c.streams[s].body == b"" for s in sids), "DATA sent into a zero window"
            c.open_window(sids[0], 16384)
            c.wait(lambda: len(c.streams[sids[0]].body) >= 16384, 3)
            c.wait(lambda: False, 0.6)
            assert len(c.streams[sids[0]].body) == 16384, \
                f"window of 16384: got {len(c.streams[sids[0]].body)} bytes"
            c.auto_window = True
            for s in sids:
                c.open_window(s, 65535)
            rs = c.finish(sids, 15)
            for s, path in zip(sids, (BIG, kt.size_path(16385))):
                r = c.streams[s]
                assert r.ended and r.body == site.files[path], f"{path} after the stall: {r}"
            assert rs and not c.closed
        assert_fresh(srv, "after stalled windows")


# ---------------------------------------------------------------- GOAWAY

def drain_slowly(c, sid, step=128 << 10, pause=0.05, timeout=10):
    """Open sid's window step by step (a slow reader) until it ends."""
    deadline = time.monotonic() + timeout
    c.send(c.window_update(0, 64 << 20))
    while not c.ended(sid) and not c.closed and time.monotonic() < deadline:
        c.send(c.window_update(sid, step))
        c.collect(None, pause)
    c.collect(lambda c: c.ended(sid), 2)


def test_sigterm_goaway_finishes_stream():
    site = kt.site()
    with kt.Server(site, shutdown_timeout=10) as srv:
        with kt.H2Raw(srv.port, settings={kt.H2_SETTINGS_INITIAL_WINDOW_SIZE: 0}) as c:
            c.send(c.headers(1, BIG))
            c.collect(lambda c: c.status(1), 3)
            assert c.status(1) == 200
            t0 = time.monotonic()
            srv.signal(signal.SIGTERM)
            c.collect(lambda c: c.goaway(), 3)
            g = c.goaway()
            assert g is not None, f"no GOAWAY on SIGTERM ({frame_summary(c)})"
            assert g.error_code == kt.H2_NO_ERROR and g.last_stream_id >= 1, \
                f"GOAWAY error {g.error_code}, last stream {g.last_stream_id}"
            assert kt.wait_until(lambda: not kt.port_accepts(srv.port), 2), "still accepting after SIGTERM"
            assert not c.closed, "connection closed with a stream in flight"
            drain_slowly(c, 1)
            assert c.ended(1) and kt.sha256(c.body(1)) == kt.sha256(site.files[BIG]), \
                f"in-flight stream after SIGTERM: {len(c.body(1))} bytes, ended={c.ended(1)}"
            assert c.wait_closed(3), "connection not closed after its last stream"
        rc = srv.proc.wait(timeout=max(1, 8 - (time.monotonic() - t0)))
        assert rc == 0, f"exit status {rc}"


def test_sighup_goaway_then_new_config():
    site = kt.site()
    with kt.Server(site) as srv:
        idle = kt.H2Raw(srv.port)
        busy = kt.H2Raw(srv.port, settings={kt.H2_SETTINGS_INITIAL_WINDOW_SIZE: 0})
        with idle, busy:
            busy.send(busy.headers(1, BIG))
            busy.collect(lambda c: c.status(1), 3)
            h1 = dict(busy.of_type("HeadersFrame", 1)[0].decoded)
            assert h1.get("server") == "kttpd"
            srv.write_config(server_tokens=False)
            srv.reload()
            assert idle.collect(lambda c: c.goaway(), 3), "idle h2 connection: no GOAWAY on SIGHUP"
            assert idle.goaway().error_code == kt.H2_NO_ERROR
            assert idle.wait_closed(3), "idle h2 connection not closed after its GOAWAY"
            busy.collect(lambda c: c.goaway(), 3)
            g = busy.goaway()
            assert g is not None and g.error_code == kt.H2_NO_ERROR and g.last_stream_id >= 1, \
                f"busy connection after SIGHUP: {frame_summary(busy)}"
            # a new connection is served with the new config meanwhile,
            # once every worker has taken it (main logs "reloaded" then)
            assert kt.wait_until(lambda: "reloaded" in srv.error_log(), 5), \
                "no 'reloaded' line after SIGHUP"
            r = kt.h2_get(srv, kt.size_path(16385))
            assert r.status == 200 and r.body == site.files[kt.size_path(16385)]
            assert r.get("server") is None, "new h2 connection still on the old config"
            drain_slowly(busy, 1)
            assert busy.ended(1) and busy.body(1) == site.files[BIG], \
                f"in-flight stream across SIGHUP: {len(busy.body(1))} bytes"
            assert busy.wait_closed(3), "old connection not closed after its stream finished"
        assert srv.alive()
        assert_fresh(srv, "after SIGHUP")


def goaways(c):
    return c.of_type("GoAwayFrame")


def test_goaway_notice_then_final_after_ping():
    """Reload: a PING and GOAWAY 2^31-1 first; a request the client sent
    before it saw them is still served; the final GOAWAY (once the PING is
    answered) names it as the last stream."""
    site = kt.site()
    small = kt.size_path(16385)
    with kt.Server(site) as srv:
        with kt.H2Raw(srv.port) as c:
            c.send(c.headers(1, small))
            c.collect(lambda c: c.ended(1), 3)
            assert c.status(1) == 200
            srv.write_config(server_tokens=False)
            srv.reload()
            c.collect(lambda c: goaways(c) and c.of_type("PingFrame"), 3)
            g = goaways(c)
            assert g and g[0].error_code == kt.H2_NO_ERROR and g[0].last_stream_id == 2**31 - 1, \
                f"first GOAWAY is not the notice: {frame_summary(c)}"
            pings = [f for f in c.of_type("PingFrame") if "ACK" not in f.flags]
            assert pings and c.frames.index(pings[0]) < c.frames.index(g[0]), \
                f"no PING ahead of the GOAWAY notice: {frame_summary(c)}"
            # in flight when the notice came: a request, and only then the PING's answer
            c.send(c.headers(3, small))
            c.send(kt.H2Raw.frame(6, 1, 0, pings[0].opaque_data))  # PING, ACK
            c.collect(lambda c: c.ended(3) and len(goaways(c)) > 1, 3)
            assert c.status(3) == 200 and c.body(3) == site.files[small], \
                f"request sent before the notice arrived not served: {frame_summary(c)}"
            g = goaways(c)
            assert len(g) == 2 and g[1].error_code == kt.H2_NO_ERROR and g[1].last_stream_id == 3, \
                f"final GOAWAY: {frame_summary(c)}"
            assert c.wait_closed(3), "not closed after the final GOAWAY and its last stream"


def test_goaway_final_without_ping_answer():
    """A client that never answers the notice's PING gets the final GOAWAY
    (last stream: the one it had) about KT_H2_NOTICE_MS (1 s) later."""
    site = kt.site()
    with kt.Server(site) as srv:
        with kt.H2Raw(srv.port) as c:
            c.send(c.headers(1, kt.size_path(1)))
            c.collect(lambda c: c.ended(1), 3)
            srv.write_config(server_tokens=False)
            srv.reload()
            c.collect(lambda c: goaways(c), 3)
            t0 = time.monotonic()
            c.collect(lambda c: len(goaways(c)) > 1, 5)
            waited = time.monotonic() - t0
            g = goaways(c)
            assert len(g) == 2 and g[0].last_stream_id == 2**31 - 1 and g[1].last_stream_id == 1, \
                f"GOAWAYs: {frame_summary(c)}"
            assert 0.5 < waited < 4, f"final GOAWAY {waited:.2f}s after the notice, expected ~1s"
            assert c.wait_closed(3), "not closed after the final GOAWAY"


def test_goaway_final_then_rest_of_header_block_served():
    """A stream whose HEADERS came before the final GOAWAY is one it names,
    so it is served even when its CONTINUATION (END_HEADERS) comes after."""
    site = kt.site()
    small = kt.size_path(16385)
    with kt.Server(site) as srv:
        with kt.H2Raw(srv.port) as c:
            c.send(c.headers(1, kt.size_path(1)))
            c.collect(lambda c: c.ended(1), 3)
            block = c.headers(3, small, fragment=8)
            first = 9 + int.from_bytes(block[:3], "big")
            c.send(block[:first])                      # HEADERS, no END_HEADERS
            srv.write_config(server_tokens=False)
            srv.reload()
            c.collect(lambda c: len(goaways(c)) > 1, 5)  # the PING unanswered
            g = goaways(c)
            assert len(g) == 2 and g[1].last_stream_id == 3, f"GOAWAYs: {frame_summary(c)}"
            c.send(block[first:])                      # the CONTINUATIONs
            c.collect(lambda c: c.ended(3), 3)
            assert c.status(3) == 200 and c.body(3) == site.files[small], \
                f"stream 3 (named by the final GOAWAY) not served: {frame_summary(c)}"
            assert c.wait_closed(3), "not closed after the final GOAWAY and its last stream"


def goaway_slow_reader(sig):
    """The whole response is already in the kernel's buffers when the signal
    comes; the client reads it slowly, giving WINDOW_UPDATEs as it goes (as
    clients do). It must get every byte."""
    site = kt.site()
    with kt.Server(site, shutdown_timeout=5) as srv:
        with kt.H2Raw(srv.port, settings={kt.H2_SETTINGS_INITIAL_WINDOW_SIZE: 1 << 20},
                      rcvbuf=65536) as c:
            c.send(c.window_update(0, 1 << 20) + c.headers(1, BIG))
            c.collect(lambda c: c.status(1), 3)
            time.sleep(0.5)             # the server has written all it may
            if sig == signal.SIGHUP:
                srv.write_config(server_tokens=False)
            srv.signal(sig)
            given, deadline = 0, time.monotonic() + 6
            while not c.ended(1) and not c.closed and time.monotonic() < deadline:
                c.read(0.3)
                n = len(c.body(1))
                if n - given >= 256 << 10:
                    try:
                        c.send(c.window_update(0, n - given) + c.window_update(1, n - given))
                    except kt.Closed:
                        pass
                    given = n
                time.sleep(0.02)
            got = len(c.body(1))
            assert c.ended(1) and c.body(1) == site.files[BIG], \
                (f"{signal.Signals(sig).name} with a slow reader: got {got} of {len(site.files[BIG])} "
                 f"bytes, ended={c.ended(1)}, closed={c.closed} (the server closed without lingering: "
                 f"our WINDOW_UPDATE drew a TCP RST that dropped the rest)")
        srv.kill()


def test_sighup_slow_reader_gets_whole_response():
    goaway_slow_reader(signal.SIGHUP)


def test_sigterm_slow_reader_gets_whole_response():
    goaway_slow_reader(signal.SIGTERM)
