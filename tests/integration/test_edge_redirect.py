"""Redirects: `return = "3xx TARGET"` in a location, with $scheme $host
$server_name $request_uri $uri $args $query_string $is_args; and a
server's `https_redirect` on its plain listener (ACME's challenge path
still served). HTTP/1.1 and HTTP/2; a Host naming no server of ours never
reaches a Location."""

import kt

LOCS = {
    "/old/": {"return": "301 https://example.com$request_uri"},
    "/moved/": {"return": "308 /new$uri$is_args$args"},
    "/found/": {"return": "302 $scheme://$host/landing?from=$uri"},
    "/other/": {"return": "303 https://$server_name/q/$query_string"},
    "/temp/": {"return": "307 http://backup.example/$args"},
}


def server(**kw):
    return kt.Server(kt.site(), locations=LOCS, **kw)


def check(r, status, location, what):
    assert r.status == status, f"{what}: status {r.status} ({r})"
    got = r.get("location")
    assert got == location, f"{what}: Location {got!r}, want {location!r}"


def both(srv, path, host="a.test"):
    """The same request over HTTP/1.1 and HTTP/2."""
    r1 = srv.get(path, host=host, servername="a.test")
    r2 = kt.h2_get(srv, path, authority=host)
    return (("h1", r1), ("h2", r2))


def test_return_variables_http1_and_http2():
    cases = [
        ("/old/a/b.html?x=1&y=%20", 301, "https://example.com/old/a/b.html?x=1&y=%20"),
        ("/old/", 301, "https://example.com/old/"),
        ("/moved/a%20b/c.txt?k=v", 308, "/new/moved/a%20b/c.txt?k=v"),
        ("/moved/x", 308, "/new/moved/x"),
        ("/moved/../moved/%7e", 308, "/new/moved/~"),
        ("/found/p", 302, "https://a.test/landing?from=/found/p"),
        ("/other/z?a=b", 303, "https://a.test/q/a=b"),
        ("/temp/z?a=b", 307, "http://backup.example/a=b"),
    ]
    with server() as srv:
        for path, status, loc in cases:
            for proto, r in both(srv, path):
                check(r, status, loc, f"{proto} {path}")
                if proto == "h1":
                    assert r.get("content-type") == "text/html", r.headers
                    assert int(r.get("content-length")) == len(r.body) > 0
                    assert str(status).encode() in r.body
        r = srv.get("/old/x", method="HEAD")
        check(r, 301, "https://example.com/old/x", "HEAD")
        assert r.body == b""
        # outside the redirect locations, files as before
        assert srv.get("/index.html").status == 200


def test_return_host_validated():
    """$host is the client's name only when it names this server."""
    with server() as srv:
        for host, want in (("www.a.test", "www.a.test"), ("WWW.A.TEST", "www.a.test"),
                           ("a.test:443", "a.test"), ("evil.example", "a.test"),
                           ("a.test@evil.example", "a.test"), ("[::1]", "a.test")):
            for proto, r in both(srv, "/found/p", host=host):
                if r.status == 400:     # h2 or http-parser refused the name itself
                    continue
                check(r, 302, f"https://{want}/landing?from=/found/p", f"{proto} Host {host}")


def test_return_curl_http1_and_http2():
    with server() as srv:
        for proto in ("--http1.1", "--http2"):
            r = kt.curl(srv, "/old/q?z=1", proto)
            check(r, 301, "https://example.com/old/q?z=1", f"curl {proto}")
            r = kt.curl(srv, "/found/q", proto, host="www.a.test")
            check(r, 302, "https://www.a.test/landing?from=/found/q", f"curl {proto} www")


def test_return_with_add_header_and_allow():
    """A redirect is a 3xx: non-always add_header applies; like nginx the
    return comes before allow."""
    locs = dict(LOCS)
    locs["/old/"] = dict(LOCS["/old/"], allow=["10.9.9.9"], add_header=["X-R: 1"])
    with kt.Server(kt.site(), locations=locs) as srv:
        for proto, r in both(srv, "/old/a"):
            check(r, 301, "https://example.com/old/a", proto)
            assert r.get("x-r") == "1", (proto, r.headers)


def test_https_redirect_plain_listener():
    with kt.Server(kt.site(), plain=True, vhost_a={"https_redirect": True},
                   locations={"/health": {"health": True}}) as srv:
        port = srv.port
        with srv.connect_plain() as c:
            c.send(kt.request("/index.html?q=1"))
            r = c.read_response()
        check(r, 301, f"https://a.test:{port}/index.html?q=1", "plain")
        assert r.get("content-length") == str(len(r.body))
        r = kt.curl(srv, "/sub/", plain=True, host="www.a.test")
        check(r, 301, f"https://www.a.test:{port}/sub/", "curl plain www")
        r = kt.curl(srv, "/x", plain=True, host="evil.example")
        check(r, 301, f"https://a.test:{port}/x", "curl plain forged Host")
        # curl -L follows it to the TLS listener
        r = kt.curl(srv, "/index.html", "-L", "--resolve", f"a.test:{port}:127.0.0.1",
                    plain=True)
        assert r.status == 200 and r.body == srv.site.files["/index.html"]
        # ACME's challenge stays a file on the plain listener
        r = kt.curl(srv, "/.well-known/acme-challenge/tok", plain=True)
        assert r.status == 200 and r.body == b"acme-token-content\n", r
        r = kt.curl(srv, "/.well-known/acme-challenge/missing", plain=True)
        assert r.status == 404
        # a balancer's plain health check gets the health answer
        r = kt.curl(srv, "/health", plain=True)
        assert r.status == 200 and r.get("location") is None, r
        # TLS is untouched, over both protocols
        assert srv.get("/index.html").status == 200
        assert kt.h2_get(srv, "/index.html").status == 200


def test_return_nghttp():
    import test_http2
    with server() as srv:
        rc, body, err = test_http2.nghttp(srv, "/old/n?k=v", "-v")
        assert rc == 0, err
        text = body.decode(errors="replace")
        assert ":status: 301" in text and "location: https://example.com/old/n?k=v" in text, \
            text[-1500:]
