"""TLS: protocol versions, ALPN, resumption, renegotiation, KeyUpdate."""

import re
import ssl
import time

import kt

# OpenSSL 3 clients refuse TLS 1.0/1.1 at their default security level;
# level 0 makes the client offer them, so a refusal is the server's doing.
OLD_CLIENT = ("-cipher", "DEFAULT@SECLEVEL=0")


def test_tls10_tls11_refused():
    with kt.Server(kt.site()) as srv:
        for flag in ("-tls1", "-tls1_1"):
            rc, out = kt.s_client(srv.port, flag, *OLD_CLIENT, servername="a.test")
            assert kt.tls_version_in(out) is None, \
                f"s_client {flag} negotiated {kt.tls_version_in(out)}"
            assert rc != 0, f"s_client {flag} exited 0"
        kt.assert_serves(srv)


def test_tls12_and_tls13_accepted():
    with kt.Server(kt.site()) as srv:
        for flag, want in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            rc, out = kt.s_client(srv.port, flag, servername="a.test")
            assert kt.tls_version_in(out) == want, \
                f"s_client {flag}: negotiated {kt.tls_version_in(out)}: {out[-300:]}"
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            with kt.tls_socket(srv.port, version=version, verify=True) as s:
                assert s.version() == version.name.replace("_", "."), s.version()
                r = kt.Conn(s).exchange(kt.request("/index.html"))
                assert r.status == 200, f"{version.name}: {r.status}"


def test_tls12_forward_secret_aead_only():
    """With the default cipher list a TLS 1.2 handshake uses ECDHE and an AEAD."""
    with kt.Server(kt.site()) as srv:
        rc, out = kt.s_client(srv.port, "-tls1_2", servername="a.test")
        m = re.search(r"Cipher is (\S+)", out)
        assert m and m.group(1).startswith("ECDHE-") and \
            ("GCM" in m.group(1) or "CHACHA20" in m.group(1)), f"TLS 1.2 cipher {m and m.group(1)}"
        rc, out = kt.s_client(srv.port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA",
                              servername="a.test")
        assert kt.tls_version_in(out) is None, "a CBC (non-AEAD) TLS 1.2 cipher was accepted"


def test_alpn_http11():
    with kt.Server(kt.site()) as srv:
        rc, out = kt.s_client(srv.port, "-alpn", "http/1.1", servername="a.test")
        assert "ALPN protocol: http/1.1" in out, f"ALPN http/1.1 not selected: {out[-400:]}"
        with kt.tls_socket(srv.port, alpn=["http/1.1"]) as s:
            assert s.selected_alpn_protocol() == "http/1.1", s.selected_alpn_protocol()
            r = kt.Conn(s).exchange(kt.request("/index.html"))
            assert r.status == 200, f"GET after ALPN http/1.1: {r.status}"


def s_client_resumes(srv, *args, rounds=4):
    """First s_client saves a session, later ones (new TCP connections,
    either worker) must resume it."""
    sess = srv.dir / "tls12.sess"
    rc, out = kt.s_client(srv.port, "-tls1_2", "-sess_out", str(sess), *args, servername="a.test")
    assert kt.tls_version_in(out) == "TLSv1.2", f"first handshake: {out[-300:]}"
    for i in range(rounds):
        rc, out = kt.s_client(srv.port, "-tls1_2", "-sess_in", str(sess), *args,
                              servername="a.test")
        assert kt.s_client_reused(out) and kt.tls_version_in(out) == "TLSv1.2", f"resumption {i + 1}/{rounds} failed ({' '.join(args)}): " \
                                         f"{kt.tls_version_in(out)} {out[-300:]}"


def test_resumption_tls12_ticket():
    with kt.Server(kt.site()) as srv:
        s_client_resumes(srv)


def test_resumption_tls12_session_cache():
    """Session IDs (no tickets) resume through the cache shared by all workers."""
    with kt.Server(kt.site()) as srv:
        s_client_resumes(srv, "-no_ticket")


def python_resumption_chain(srv, rounds=4):
    ctx = kt.client_context(ssl.TLSVersion.TLSv1_3)
    session = None
    for i in range(rounds + 1):
        with kt.tls_socket(srv.port, context=ctx, session=session) as s:
            if i:
                assert s.session_reused, f"TLS 1.3 resumption {i}/{rounds} failed"
            r = kt.Conn(s).exchange(kt.request("/index.html"))
            assert r.status == 200, f"GET on resumed connection: {r.status}"
            session = s.session
            assert session is not None and session.has_ticket, "server sent no TLS 1.3 ticket"


def test_resumption_tls13():
    with kt.Server(kt.site()) as srv:
        python_resumption_chain(srv)


def test_ticket_survives_reload():
    """Ticket keys are kept across SIGHUP: a session from before resumes after."""
    with kt.Server(kt.site()) as srv:
        ctx = kt.client_context(ssl.TLSVersion.TLSv1_3)
        with kt.tls_socket(srv.port, context=ctx) as s:
            kt.Conn(s).exchange(kt.request("/index.html"))
            session = s.session
        srv.reload()
        time.sleep(0.5)
        assert srv.alive(), "server died on SIGHUP"
        with kt.tls_socket(srv.port, context=ctx, session=session) as s:
            assert s.session_reused, "ticket from before the reload was not accepted"


def test_tls12_renegotiation_refused():
    with kt.Server(kt.site()) as srv:
        req = kt.request("/index.html", headers={"Connection": "close"})
        rc, out = kt.s_client_script(srv.port, "-tls1_2", script=[(b"R\n", 1.0), (req, 1.0)])
        assert "RENEGOTIATING" in out, f"s_client did not try to renegotiate: {out[-300:]}"
        after = out.split("RENEGOTIATING", 1)[1]
        assert "verify return" not in after, "client-initiated renegotiation completed"
        assert not re.search(r"HTTP/1\.[01] \d{3}", after), "request served after a renegotiation"
        kt.assert_serves(srv)


def test_tls13_key_update():
    """KeyUpdate (with update_requested): served in userspace TLS; under kTLS
    without rekey the connection may end, but cleanly; others go on."""
    with kt.Server(kt.site()) as srv:
        req = kt.request("/index.html", headers={"Connection": "close"})
        rc, out = kt.s_client_script(srv.port, "-tls1_3", script=[(b"K\n", 0.5), (req, 1.0)])
        assert "KEYUPDATE" in out, f"s_client did not send a KeyUpdate: {out[-300:]}"
        if not kt.kernel_has_ktls():
            assert "HTTP/1.1 200" in out.split("KEYUPDATE", 1)[1], \
                f"userspace TLS: request after KeyUpdate not served: {out[-400:]}"
        kt.assert_serves(srv)
        assert srv.alive(), "server died after a KeyUpdate"
