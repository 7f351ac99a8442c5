"""HTTP/1.x semantics: methods, HTTP/1.0, keep-alive, pipelining."""

import kt


def test_methods_not_allowed():
    with kt.Server(kt.site()) as srv:
        for method in ("POST", "PUT", "DELETE"):
            r = kt.curl(srv, "/index.html", "-X", method, "-d", "x=1")
            assert r.status == 405, f"{method}: {r.status}, want 405"
            allow = {m.strip() for m in r.get("allow", "").split(",")}
            assert allow == {"GET", "HEAD"}, f"{method}: Allow {r.get('allow')!r}, want GET, HEAD"
        kt.assert_serves(srv)


def test_method_with_body_on_keepalive():
    """A 405 to a POST with a body: the body is not taken for the next request."""
    with kt.Server(kt.site()) as srv, srv.connect() as c:
        body = kt.request("/index.html")  # looks like a request, is a body
        c.send(kt.request("/x", method="POST", body=body,
                          headers={"Content-Length": str(len(body))}))
        r = c.read_response()
        assert r.status == 405, f"POST: {r.status}"
        try:
            r2 = c.exchange(kt.request(kt.size_path(1)))
        except kt.Closed:
            return  # closing after a 405 with a body is fine
        assert r2.status == 200 and r2.body == srv.site.files[kt.size_path(1)], \
            f"request after POST body: {r2.status}, {len(r2.body)} bytes (body parsed as a request?)"


def test_http10_closes():
    with kt.Server(kt.site()) as srv, srv.connect() as c:
        r = c.exchange(kt.request(kt.size_path(16385), host=None, version="HTTP/1.0"))
        assert r.status == 200 and r.body == srv.site.files[kt.size_path(16385)], \
            f"HTTP/1.0 GET: {r.status}"
        assert r.version in ("HTTP/1.0", "HTTP/1.1"), r.version
        assert c.wait_closed(3), "HTTP/1.0 without keep-alive: connection left open"


def test_http10_keepalive():
    with kt.Server(kt.site()) as srv, srv.connect() as c:
        ka = {"Connection": "keep-alive"}
        for path in (kt.size_path(1), kt.size_path(16384)):
            r = c.exchange(kt.request(path, version="HTTP/1.0", headers=ka))
            assert r.status == 200 and r.body == srv.site.files[path], f"HTTP/1.0 keep-alive {path}: {r.status}"
            assert "keep-alive" in r.get("connection", "").lower(), \
                f"HTTP/1.0 keep-alive answered without Connection: keep-alive ({r.headers})"
        assert c.idle_open(0.3), "HTTP/1.0 keep-alive connection closed"


def test_http11_connection_close():
    with kt.Server(kt.site()) as srv, srv.connect() as c:
        r = c.exchange(kt.request(kt.size_path(1), headers={"Connection": "close"}))
        assert r.status == 200, f"GET with Connection: close: {r.status}"
        assert "close" in r.get("connection", "").lower(), "no Connection: close in the answer"
        assert c.wait_closed(3), "Connection: close: connection left open"


def test_unsupported_version():
    with kt.Server(kt.site()) as srv:
        for version in ("HTTP/2.0", "HTTP/3.7", "HTTX/1.1"):
            with srv.connect() as c:
                try:
                    r = c.exchange(kt.request("/index.html", version=version))
                except kt.Closed:
                    continue
                assert r.status in (400, 505), f"{version}: {r.status}, want 400 or 505"
        kt.assert_serves(srv)


def test_pipelining():
    paths = [kt.size_path(16383), "/index.html", kt.size_path(1), kt.size_path(1 << 20)]
    with kt.Server(kt.site()) as srv, srv.connect() as c:
        rs = c.exchange(b"".join(kt.request(p) for p in paths), n=len(paths))
        for p, r in zip(paths, rs):
            assert r.status == 200 and r.body == srv.site.files[p], \
                f"pipelined {p}: {r.status}, {len(r.body)} bytes"
        # a HEAD in the middle of a pipeline must not eat the next response
        reqs = [kt.request(kt.size_path(16384)), kt.request(kt.size_path(16384), method="HEAD"),
                kt.request(kt.size_path(1))]
        c.send(b"".join(reqs))
        r1, r2, r3 = c.read_response(), c.read_response(head=True), c.read_response()
        assert (r1.status, r2.status, r3.status) == (200, 200, 200), (r1, r2, r3)
        assert r3.body == srv.site.files[kt.size_path(1)], "response after a pipelined HEAD is wrong"


def test_pipelining_split_writes():
    """Requests that straddle TLS records and TCP writes."""
    with kt.Server(kt.site()) as srv, srv.connect() as c:
        data = b"".join(kt.request(kt.size_path(n)) for n in (1, 16384, 0))
        for i in range(0, len(data), 7):
            c.send(data[i:i + 7])
        for n in (1, 16384, 0):
            r = c.read_response()
            assert r.status == 200 and r.body == srv.site.files[kt.size_path(n)], \
                f"split pipelined {kt.size_path(n)}: {r.status}"


def test_keepalive_20_requests():
    with kt.Server(kt.site()) as srv, srv.connect() as c:
        for i in range(20):
            path = kt.size_path(kt.SIZES[i % len(kt.SIZES)])
            r = c.exchange(kt.request(path))
            assert r.status == 200 and r.body == srv.site.files[path], f"request {i + 1}: {r.status}"
            assert "close" not in r.get("connection", "").lower(), f"request {i + 1} closed the connection"


def test_keepalive_requests_limit():
    with kt.Server(kt.site(), keepalive_requests=3) as srv, srv.connect() as c:
        for i in range(3):
            r = c.exchange(kt.request(kt.size_path(1)))
            assert r.status == 200, f"request {i + 1}: {r.status}"
        assert "close" in r.get("connection", "").lower(), \
            "last request allowed by keepalive_requests = 3 lacks Connection: close"
        assert c.wait_closed(3), "connection open after keepalive_requests"


# Request targets at the edges of the router's split (issue 13 gave the
# origin form its own fast path): what each one routes to, as the
# redirect's $uri$is_args$args shows it, or the status it gets.
TARGET_LOCS = {"/split/": {"return": "302 /to$uri$is_args$args"}}
TARGETS = [
    (b"/split/a?x=1", 302, "/to/split/a?x=1"),
    (b"/split/a?", 302, "/to/split/a"),                 # an empty query is none
    (b"/split/a??x", 302, "/to/split/a??x"),            # the first '?' splits
    (b"/split/a?x?y", 302, "/to/split/a?x?y"),
    (b"/split/a#frag", 302, "/to/split/a"),             # a fragment is dropped
    (b"/split/a?x#f", 302, "/to/split/a?x"),
    (b"/split/a#f?x", 302, "/to/split/a"),
    (b"/split/%61?x=%20", 302, "/to/split/a?x=%20"),    # the path decoded, not the query
    (b"/split/a?%zz", 302, "/to/split/a?%zz"),
    (b"/split/\xc3\xa9?\xc3", 302, "/to/split/%C3%A9?%C3"),
    (b"//split/a", 302, "/to/split/a"),
    (b"https://a.test/split/a?x", 302, "/to/split/a?x"),  # absolute form
    (b"http://a.test:443/split/b", 302, "/to/split/b"),
    (b"https://b.test/split/a", 421, None),             # names another server
    (b"/size_1.bin?", 200, None),
    (b"/size_1.bin#x", 200, None),
    (b"*", 400, None),
    (b"split/a", 400, None),
    (b"/split/a%", 400, None),
    (b"/split/\x80", 400, None),
    (b"/split/a\x01", 400, None),
    (b"/split/a\x7f", 400, None),
    (b"/split/a\tb", 400, None),
    (b"/split/a\x0cb", 400, None),
]


def test_request_target_edges():
    with kt.Server(kt.site(), locations=TARGET_LOCS) as srv:
        for target, status, location in TARGETS:
            with srv.connect() as c:
                r = c.exchange(b"GET " + target + b" HTTP/1.1\r\nHost: a.test\r\n\r\n")
                what = f"GET {target!r}"
                if status == 400:
                    kt.assert_bad_request_closes(c, r, 400, what)
                    continue
                assert r.status == status, f"{what}: {r.status}, want {status}"
                assert r.get("location") == location, \
                    f"{what}: Location {r.get('location')!r}, want {location!r}"
                if status == 200:
                    assert r.body == srv.site.files[kt.size_path(1)], f"{what}: body"
        # the same split over HTTP/2 (:path goes through the same router)
        for target, status, location in TARGETS[:4] + TARGETS[7:9]:
            r = kt.h2_get(srv, target.decode())
            assert r.status == status, f"h2 {target!r}: {r.status}, want {status}"
            assert r.get("location") == location, \
                f"h2 {target!r}: Location {r.get('location')!r}, want {location!r}"
        kt.assert_serves(srv)
