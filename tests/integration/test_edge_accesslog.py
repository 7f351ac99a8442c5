"""Buffered access log (access_log_buffer): lines leave on the one-second
timer, and none is lost on SIGHUP, SIGUSR1 (into the old file) or SIGTERM."""

import os
import signal
import time

import kt

BUF = dict(access_log_buffer=65536)


def _hit(srv, tag, n):
    """n requests on fresh connections (both workers get some), tagged."""
    for i in range(n):
        assert srv.get(f"/index.html?{tag}-{i}").status == 200


def _tags(lines, tag):
    return sorted(l.split(f"?{tag}-")[1].split()[0] for l in lines if f"?{tag}-" in l)


def _want(n):
    return sorted(str(i) for i in range(n))


def test_access_log_buffer_timer_flush():
    with kt.Server(kt.site(), **BUF) as srv:
        t0 = time.monotonic()
        _hit(srv, "timer", 6)
        lines = kt.wait_until(lambda: len(_tags(srv.access_log(), "timer")) >= 6 and srv.access_log(), 4)
        took = time.monotonic() - t0
        assert lines and _tags(lines, "timer") == _want(6), \
            f"after {took:.1f}s: {len(_tags(srv.access_log(), 'timer'))} of 6 lines"
        # the 1 s timer plus the six requests' handshakes (slow under ASan);
        # without the timer the lines would wait for a full buffer
        assert took <= 2.5, f"buffered lines took {took:.2f}s to appear (timer flush is 1s)"
        assert all(l.count('"') >= 6 for l in lines), "a line was cut"
        # many lines: more than one buffer's worth, none lost or torn
        with srv.connect() as c:
            for i in range(400):
                c.send(kt.request(f"/index.html?bulk-{i}", headers={"User-Agent": "x" * 200}))
                assert c.read_response().status == 200
        lines = kt.wait_until(lambda: len(_tags(srv.access_log(), "bulk")) >= 400 and srv.access_log(), 3)
        assert lines and _tags(lines, "bulk") == sorted(str(i) for i in range(400)), \
            f"bulk: {len(_tags(srv.access_log(), 'bulk'))} of 400 lines"
        assert all(l.startswith("127.0.0.1 ") for l in lines), "a torn line"


def test_access_log_buffer_signals():
    with kt.Server(kt.site(), **BUF) as srv:
        log = srv.access_log_path
        # SIGHUP: the lines before it are kept
        _hit(srv, "hup", 5)
        srv.reload()
        lines = kt.wait_until(lambda: len(_tags(srv.access_log(), "hup")) >= 5 and srv.access_log(), 3)
        assert lines and _tags(lines, "hup") == _want(5), f"SIGHUP lost lines: {_tags(srv.access_log(), 'hup')}"
        assert srv.alive()

        # SIGUSR1 after a rename: the lines so far land in the old file
        _hit(srv, "before", 5)
        old = log.with_name("access.log.1")
        os.rename(log, old)
        srv.signal(signal.SIGUSR1)
        assert kt.wait_until(log.exists, 3), "SIGUSR1 did not reopen the access log"
        _hit(srv, "after", 5)
        time.sleep(1.6)
        old_lines = kt.read_text(old).splitlines()
        new_lines = srv.access_log()
        assert _tags(old_lines, "before") == _want(5), \
            f"old file has {_tags(old_lines, 'before')} of the lines before SIGUSR1 " \
            f"(new file has {_tags(new_lines, 'before')})"
        assert _tags(new_lines, "before") == [], "lines from before the reopen in the new file"
        assert _tags(new_lines, "after") == _want(5), f"new file: {_tags(new_lines, 'after')}"
        assert _tags(old_lines, "after") == [], "lines after the reopen in the old file"

        # SIGTERM right after the requests: all lines there after exit
        _hit(srv, "term", 7)
        rc = srv.stop()
        assert rc == 0, f"exit status {rc}"
        assert _tags(srv.access_log(), "term") == _want(7), \
            f"SIGTERM lost lines: {_tags(srv.access_log(), 'term')}"


def test_access_log_buffer_keepalive_on_sigterm():
    """A line for a response on a connection still open at SIGTERM."""
    with kt.Server(kt.site(), **BUF) as srv:
        with srv.connect() as c:
            for i in range(3):
                assert c.exchange(kt.request(f"/index.html?ka-{i}")).status == 200
            with kt.H2Client(srv.port) as h:
                for i in range(3):
                    assert h.get(f"/index.html?ka-{3 + i}").status == 200
                t0 = time.monotonic()
                srv.signal(signal.SIGTERM)
                assert h.wait_closed(3), "h2: no GOAWAY and close within 3s of SIGTERM"
                assert h.goaway is not None, "h2: closed without a GOAWAY"
                h.close()                 # the server lingers until the client goes
                srv.proc.wait(timeout=10)
                took = time.monotonic() - t0
        assert took < 3, f"exit took {took:.1f}s with idle connections"
        assert _tags(srv.access_log(), "ka") == _want(6), f"lost: {_tags(srv.access_log(), 'ka')}"
