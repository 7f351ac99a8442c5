"""add_header: operator headers per server and location, nginx's rules.

By default only on 200, 201, 204, 206, 301, 302, 303, 304, 307, 308;
`always` on every response, errors included (HSTS); a location with its
own add_header list inherits nothing from the server. HTTP/1.1 (raw and
curl --http1.1) and HTTP/2 (python h2 and curl --http2, names lowercase)."""

import kt

HSTS = "max-age=63072000; includeSubDomains"
SERVER_HEADERS = [f"Strict-Transport-Security: {HSTS} always",
                  "X-Frame-Options: DENY",
                  "X-Content-Type-Options:   nosniff   "]


def server(**kw):
    return kt.Server(kt.site(), vhost_a={"add_header": SERVER_HEADERS},
                     locations={"/sub/": {"add_header": ["X-Loc: sub", "X-Err: yes always"]}},
                     **kw)


def h1(srv, path, headers=(), method="GET"):
    return srv.get(path, headers=headers, method=method)


def h2(srv, path, headers=(), method="GET"):
    return kt.h2_get(srv, path, headers=list(headers), method=method)


def expect(r, want, what):
    """want: {name: value or None (absent)}"""
    for name, value in want.items():
        got = r.get(name)
        assert got == value, f"{what}: {name} = {got!r}, want {value!r} ({r})"


BOTH = {"strict-transport-security": HSTS, "x-frame-options": "DENY",
        "x-content-type-options": "nosniff"}
ALWAYS_ONLY = {"strict-transport-security": HSTS, "x-frame-options": None,
               "x-content-type-options": None}


def cases(srv):
    lm = h1(srv, "/index.html").get("last-modified")
    return [
        ("200", "/index.html", (), 200, BOTH),
        ("HEAD 200", "/index.html", (), 200, BOTH),
        ("206", kt.size_path(16385), [("Range", "bytes=0-9")], 206, BOTH),
        ("304", "/index.html", [("If-Modified-Since", lm)], 304, BOTH),
        ("301 directory", "/noindex", (), 301, BOTH),
        ("404", "/nope.html", (), 404, ALWAYS_ONLY),
        ("403 dotfile", "/.secret", (), 403, ALWAYS_ONLY),
        ("416", kt.size_path(1), [("Range", "bytes=50-60")], 416, ALWAYS_ONLY),
        ("cached location inherits", "/cached/c.txt", (), 200, BOTH),
        ("own list 200", "/sub/", (), 200,
         {"x-loc": "sub", "x-err": "yes", "strict-transport-security": None,
          "x-frame-options": None}),
        ("own list 404", "/sub/missing", (), 404,
         {"x-loc": None, "x-err": "yes", "strict-transport-security": None}),
    ]


def test_add_header_http1_and_http2():
    with server() as srv:
        for what, path, hdrs, status, want in cases(srv):
            method = "HEAD" if what.startswith("HEAD") else "GET"
            for proto, get in (("h1", h1), ("h2", h2)):
                r = get(srv, path, hdrs, method)
                assert r.status == status, f"{proto} {what}: {r.status}"
                expect(r, want, f"{proto} {what}")
        # HTTP/2 names are lowercase on the wire (h2 rejects others anyway)
        r = h2(srv, "/index.html")
        assert "strict-transport-security" in r.headers, r.headers


def test_add_header_once_and_in_order_http1():
    with server() as srv:
        r = h1(srv, "/index.html")
        names = [k for k, _ in r.header_list]
        for n in ("Strict-Transport-Security", "X-Frame-Options", "X-Content-Type-Options"):
            assert names.count(n) == 1, f"{n} x{names.count(n)}: {names}"
        i = [names.index(n) for n in ("Strict-Transport-Security", "X-Frame-Options",
                                      "X-Content-Type-Options")]
        assert i == sorted(i), names
        assert r.get("content-length") == str(len(r.body))


def test_add_header_on_early_errors():
    """A 400 before any routing still carries the always headers (the
    server's "/" set), and a 405 too."""
    with server() as srv:
        with srv.connect() as c:
            c.send(b"GET /index.html HTTP/1.1\r\nHost: a.test\r\nX: a\x01b\r\n\r\n")
            r = c.read_response()
        assert r.status == 400
        expect(r, ALWAYS_ONLY, "400")
        r = h1(srv, "/index.html", method="DELETE")
        assert r.status == 405
        expect(r, ALWAYS_ONLY, "405")
        r = h2(srv, "/index.html", method="DELETE")
        assert r.status == 405
        expect(r, ALWAYS_ONLY, "h2 405")


def test_add_header_curl_http1_and_http2():
    with server() as srv:
        for proto in ("--http1.1", "--http2"):
            r = kt.curl(srv, "/index.html", proto)
            assert r.status == 200
            expect(r, BOTH, f"curl {proto} 200")
            r = kt.curl(srv, "/nope", proto)
            assert r.status == 404
            expect(r, ALWAYS_ONLY, f"curl {proto} 404")


def test_add_header_other_server_untouched_and_reload():
    with server() as srv:
        r = srv.get("/index.html", host="b.test")
        assert r.status == 200 and r.get("strict-transport-security") is None
        srv.vhost_a["add_header"] = ["X-New: 2 always"]
        srv.write_config()
        srv.reload()
        assert kt.wait_until(lambda: h1(srv, "/index.html").get("x-new") == "2", 5), \
            srv.log_tail()
        r = h1(srv, "/nope")
        assert r.get("x-new") == "2" and r.get("strict-transport-security") is None


def test_add_header_limits_and_errors_refused():
    """Refused at load with FILE:LINE (more cases in unit_config)."""
    import test_cli
    for bad, needle, msg in (
            (["Transfer-Encoding: chunked"], "Transfer-Encoding", "sets this header itself"),
            (["Bad Name: v"], "Bad Name", "token"),
            (["X-A: " + "v" * 4100], "X-A", "bytes of headers"),
            ([f"H{i}: v" for i in range(33)], "H32", "at most 32")):
        srv = kt.Server(kt.site(), start=False, vhost_a={"add_header": bad})
        line = kt.line_of(srv.config, needle)
        rc, out, err = test_cli.kttpd("-t", "-c", str(srv.conf_path))
        assert rc != 0 and msg in err and f"{srv.conf_path}:{line}:" in err, (bad[:1], err)


def test_add_header_nghttp():
    """nghttp -v shows the HEADERS frame: lowercase names, each once."""
    import test_http2
    with server() as srv:
        rc, body, err = test_http2.nghttp(srv, "/index.html", "-v")
        assert rc == 0, err
        text = body.decode(errors="replace")
        assert text.count(f"strict-transport-security: {HSTS}") == 1, text[-1500:]
        assert text.count("x-frame-options: DENY") == 1, text[-1500:]
        rc, body, err = test_http2.nghttp(srv, "/nope", "-v")
        text = body.decode(errors="replace")
        assert ":status: 404" in text and "strict-transport-security" in text
        assert "x-frame-options" not in text, text[-1500:]
