"""Session ticket keys (server/ticket.c): rotated every
session_ticket_rotate seconds, the previous key kept for one period (its
tickets resume and are re-issued under the new key), gone after two; or
read from session_ticket_key_file (nginx's 80-byte keys) so that two
kttpd processes resume each other's sessions, reloaded on SIGHUP, a bad
file refused with FILE:LINE and the old keys kept. Python ssl and
openssl s_client, TLS 1.2 and 1.3; session_cache = 0, so that only a
ticket can resume."""

import os
import ssl
import subprocess
import time

import kt
from test_edge_metrics import parse, v

METRICS = {"/metrics": {"metrics": True, "allow": ["127.0.0.1"]}}
PERIOD = 2
VERSIONS = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
CTX = {}  # Python resumes a session only through the context that made it


def metrics(srv):
    r = srv.get("/metrics")
    assert r.status == 200, f"scrape: {r.status}"
    return parse(r.body.decode())


def session_of(srv, version, session=None, port=None):
    """One GET on a new connection (offering session); returns
    (reused, new session)."""
    ctx = CTX.setdefault(version, kt.client_context(version))  # a session
    with kt.tls_socket(port or srv.port, context=ctx, session=session) as s:
        r = kt.Conn(s).exchange(kt.request("/index.html"))
        assert r.status == 200, f"GET: {r.status}"
        return s.session_reused, s.session


CLOSE = kt.request("/index.html", headers={"Connection": "close"})


def s_client_session(port, flag, sess, *extra):
    rc, out = kt.s_client(port, flag, *extra, "-ign_eof", servername="a.test", input=CLOSE)
    assert " 200 " in out, f"s_client {flag} {' '.join(extra)}: no 200: {out[-400:]}"
    return kt.s_client_reused(out)


def wait_rotation(srv, timeout=PERIOD * 3):
    """Return right after a rotation, with the metrics of that moment."""
    n = v(metrics(srv), "kttpd_tls_ticket_key_rotations_total")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = metrics(srv)
        if v(m, "kttpd_tls_ticket_key_rotations_total") > n:
            return time.monotonic(), m
        time.sleep(0.05)
    raise AssertionError(f"no ticket key rotation within {timeout}s (period {PERIOD}s)")


def sleep_until(t):
    d = t - time.monotonic()
    if d > 0:
        time.sleep(d)


def test_rotation_resumes_across_one_period_not_two():
    with kt.Server(kt.site(), session_ticket_rotate=PERIOD, session_cache=0,
                   locations=METRICS) as srv:
        t0, m0 = wait_rotation(srv)
        assert v(m0, "kttpd_tls_ticket_keys") == 2, "want {current, previous}"
        first = {}
        d = srv.dir
        for ver in VERSIONS:
            reused, first[ver] = session_of(srv, ver)
            assert not reused
            reused, _ = session_of(srv, ver, first[ver])
            assert reused, f"{ver.name}: no resumption within the period"
        # s_client, TLS 1.2 and 1.3, saves a session each
        for flag in ("-tls1_2", "-tls1_3"):
            s_client_session(srv.port, flag, None, "-sess_out", str(d / f"{flag}.sess"))
            assert s_client_session(srv.port, flag, None, "-sess_in", str(d / f"{flag}.sess")), \
                f"s_client {flag}: no resumption within the period"

        # one rotation later: the previous key still opens them, and the
        # ticket is re-issued under the new key
        sleep_until(t0 + PERIOD * 1.5)
        renewed_before = v(metrics(srv), "kttpd_tls_tickets_total", result="older_key")
        second = {}
        for ver in VERSIONS:
            reused, second[ver] = session_of(srv, ver, first[ver])
            assert reused, f"{ver.name}: a ticket from one period ago did not resume"
        for flag in ("-tls1_2", "-tls1_3"):
            assert s_client_session(srv.port, flag, None, "-sess_in", str(d / f"{flag}.sess")), \
                f"s_client {flag}: no resumption one rotation later"
        m = metrics(srv)
        assert v(m, "kttpd_tls_tickets_total", result="older_key") >= renewed_before + 4, \
            "resumptions under the previous key not counted as older_key"

        # two rotations after the first sessions: their key is gone; a
        # full handshake, still served. The re-issued tickets resume.
        sleep_until(t0 + PERIOD * 2.5)
        for ver in VERSIONS:
            reused, _ = session_of(srv, ver, first[ver])
            assert not reused, f"{ver.name}: a ticket two periods old resumed"
            reused, _ = session_of(srv, ver, second[ver])
            assert reused, f"{ver.name}: the re-issued ticket did not resume"
        for flag in ("-tls1_2", "-tls1_3"):
            assert not s_client_session(srv.port, flag, None, "-sess_in",
                                        str(d / f"{flag}.sess")), \
                f"s_client {flag}: a two-period-old session resumed"
        assert v(metrics(srv), "kttpd_tls_tickets_total", result="unknown_key") >= 4


def key_file(path, *keys):
    path.write_bytes(b"".join(keys))
    return str(path)


def test_key_file_shared_by_two_processes_and_reloaded():
    site = kt.site()
    ka, kb = os.urandom(80), os.urandom(80)
    probe = kt.Server(site, start=False)
    kf = probe.dir / "ticket.key"
    key_file(kf, ka)
    common = dict(session_ticket_key_file=str(kf), session_cache=0, locations=METRICS)
    with kt.Server(site, **common) as a, kt.Server(site, **common) as b:
        for ver in VERSIONS:
            _, sess = session_of(a, ver)
            reused, _ = session_of(b, ver, sess)
            assert reused, f"{ver.name}: a session made on one process did not resume on the other"
        made_a = {ver: session_of(a, ver)[1] for ver in VERSIONS}
        # s_client: out on a, in on b
        sf = a.dir / "a.sess"
        s_client_session(a.port, "-tls1_2", None, "-sess_out", str(sf))
        assert s_client_session(b.port, "-tls1_2", None, "-sess_in", str(sf)), \
            "s_client: session from process a did not resume on b"
        assert v(metrics(b), "kttpd_tls_ticket_keys") == 1

        # the fleet rotates: a new first key, the old one kept to decrypt
        key_file(kf, kb, ka)
        b.reload()
        assert kt.wait_until(lambda: v(metrics(b), "kttpd_tls_ticket_keys") == 2, 3), \
            "SIGHUP did not reload the key file"
        for ver in VERSIONS:
            reused, renewed = session_of(b, ver, made_a[ver])
            assert reused, f"{ver.name}: ticket under the second key did not resume"
            made_a[ver] = renewed  # now under kb
        # the old key retired: its tickets no longer resume, still served
        _, old = session_of(a, VERSIONS[1])  # a still has only ka
        key_file(kf, kb)
        b.reload()
        assert kt.wait_until(lambda: v(metrics(b), "kttpd_tls_ticket_keys") == 1, 3)
        reused, _ = session_of(b, VERSIONS[1], old)
        assert not reused, "a ticket under a removed key resumed"
        for ver in VERSIONS:
            assert session_of(b, ver, made_a[ver])[0], f"{ver.name}: re-issued ticket (kb) did not resume"

        # a bad file: the reload is refused with FILE:LINE, the keys stay
        kf.write_bytes(os.urandom(81))
        b.reload()
        line = kt.line_of(b.config, "session_ticket_key_file")
        assert kt.wait_until(lambda: f"{b.conf_path}:{line}:" in b.error_log(), 3), \
            f"no FILE:LINE error for the bad key file: {b.log_tail()}"
        assert "81 bytes" in b.error_log()
        assert b.alive()
        for ver in VERSIONS:
            assert session_of(b, ver, made_a[ver])[0], \
                f"{ver.name}: keys lost after a refused reload"


def test_bad_key_file_is_a_config_error():
    srv = kt.Server(kt.site(), start=False)
    for content, needle in ((b"", "0 bytes"), (os.urandom(79), "79 bytes"),
                            (os.urandom(80 * 17), "1360 bytes")):
        kf = srv.dir / "bad.key"
        kf.write_bytes(content)
        srv.write_config(session_ticket_key_file=str(kf))
        line = kt.line_of(srv.config, "session_ticket_key_file")
        p = subprocess.run([kt.BIN, "-t", "-c", str(srv.conf_path)], capture_output=True,
                           text=True, timeout=10)
        assert p.returncode == 1, f"-t accepted a {len(content)}-byte key file"
        assert f"{srv.conf_path}:{line}:" in p.stderr and needle in p.stderr, p.stderr
    srv.write_config(session_ticket_key_file=str(srv.dir / "missing.key"))
    p = subprocess.run([kt.BIN, "-t", "-c", str(srv.conf_path)], capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 1 and "No such file" in p.stderr, p.stderr
    kf.write_bytes(os.urandom(160))
    srv.write_config(session_ticket_key_file=str(kf))
    p = subprocess.run([kt.BIN, "-t", "-c", str(srv.conf_path)], capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 0, f"two keys refused: {p.stderr}"
