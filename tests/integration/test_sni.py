"""Virtual hosts on one port: certificate by SNI, request routing by Host."""

import kt


def test_sni_selects_certificate():
    with kt.Server(kt.site()) as srv:
        for name, want in (("a.test", "a.test"), ("b.test", "b.test"), ("www.a.test", "a.test")):
            rc, out = kt.s_client(srv.port, servername=name)
            assert kt.tls_version_in(out), f"SNI {name}: handshake failed: {out[-300:]}"
            assert kt.cert_cn(out) == want, f"SNI {name}: certificate CN {kt.cert_cn(out)}, want {want}"


def test_no_sni_gets_default_certificate():
    with kt.Server(kt.site()) as srv:
        rc, out = kt.s_client(srv.port)
        assert kt.tls_version_in(out), f"no SNI: handshake failed: {out[-300:]}"
        assert kt.cert_cn(out) == "a.test", f"no SNI: certificate CN {kt.cert_cn(out)}, want a.test"
        r = srv.get("/index.html", servername=None)
        assert r.status == 200 and r.body == srv.site.files["/index.html"], \
            f"no SNI, Host a.test: {r.status}"


def test_unknown_sni_gets_default_or_refused():
    """An unknown name: either the default certificate or a refused handshake."""
    with kt.Server(kt.site()) as srv:
        rc, out = kt.s_client(srv.port, servername="other.test")
        if kt.tls_version_in(out):
            assert kt.cert_cn(out) == "a.test", f"SNI other.test: CN {kt.cert_cn(out)}"
        kt.assert_serves(srv)


def test_verified_clients_per_host():
    """Verifying clients (curl with the CA) reach both hosts; bodies differ by host."""
    with kt.Server(kt.site()) as srv:
        a = kt.curl(srv, "/", host="a.test")
        b = kt.curl(srv, "/", host="b.test")
        assert a.status == 200 and a.body == srv.site.files["/index.html"], f"a.test /: {a.status}"
        assert b.status == 200 and b.body == srv.site.b_index, f"b.test /: {b.status}"


def test_host_mismatch_421():
    with kt.Server(kt.site()) as srv:
        r = srv.get("/index.html", servername="a.test", host="b.test")
        assert r.status == 421, f"SNI a.test, Host b.test: {r.status}, want 421"
        assert srv.site.b_index not in r.body, "Host b.test on an a.test connection served b's file"
        r = srv.get("/index.html", servername="b.test", host="a.test")
        assert r.status == 421, f"SNI b.test, Host a.test: {r.status}, want 421"


def test_host_alias_and_port():
    with kt.Server(kt.site()) as srv:
        for servername, host in (("a.test", "www.a.test"), ("www.a.test", "www.a.test"),
                                 ("www.a.test", "a.test"), ("a.test", f"a.test:{srv.port}"),
                                 ("a.test", "A.TEST")):
            r = srv.get("/index.html", servername=servername, host=host)
            assert r.status == 200 and r.body == srv.site.files["/index.html"], \
                f"SNI {servername}, Host {host}: {r.status}, want 200"


def test_http11_without_host_400():
    with kt.Server(kt.site()) as srv:
        with srv.connect() as c:
            r = c.exchange(kt.request("/index.html", host=None))
            kt.assert_bad_request_closes(c, r, 400, "HTTP/1.1 without Host")
        with srv.connect() as c:
            r = c.exchange(kt.request("/index.html", headers={"Host": "a.test"}))
            kt.assert_bad_request_closes(c, r, 400, "two Host headers")
        kt.assert_serves(srv)
