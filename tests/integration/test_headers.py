"""Response headers and conditional requests (If-None-Match, If-Modified-Since)."""

import re
import time

import kt

LAST_MODIFIED = kt.http_date(kt.MTIME)


def test_standard_headers():
    with kt.Server(kt.site()) as srv:
        r = kt.curl(srv, "/index.html")
        assert r.status == 200, f"GET /index.html: {r.status}"
        date = r.get("date")
        assert date and abs(kt.parse_http_date(date) - time.time()) < 5, f"Date {date!r}"
        assert date.endswith(" GMT"), f"Date not in IMF-fixdate: {date!r}"
        server = r.get("server", "")
        assert server.split("/")[0] == "kttpd", f"Server {server!r}, want kttpd"
        assert r.get("content-type", "").split(";")[0].strip() == "text/html", \
            f"Content-Type {r.get('content-type')!r}"
        assert r.get("content-length") == str(len(srv.site.files["/index.html"])), \
            f"Content-Length {r.get('content-length')!r}"
        assert r.get("last-modified") == LAST_MODIFIED, \
            f"Last-Modified {r.get('last-modified')!r}, want {LAST_MODIFIED}"
        etag = r.get("etag", "")
        assert re.fullmatch(r'(W/)?"[^"]+"', etag), f"ETag {etag!r} is not a quoted entity-tag"
        assert r.get("accept-ranges") == "bytes", f"Accept-Ranges {r.get('accept-ranges')!r}"
        for name in ("date", "server", "content-type", "content-length", "etag"):
            assert r.count(name) == 1, f"{name} sent {r.count(name)} times"


def test_etag_stable_and_distinct():
    with kt.Server(kt.site()) as srv:
        e1 = kt.curl(srv, kt.size_path(1)).get("etag")
        e2 = kt.curl(srv, kt.size_path(1)).get("etag")
        e3 = kt.curl(srv, kt.size_path(16384)).get("etag")
        assert e1 and e1 == e2, f"ETag not stable: {e1!r} then {e2!r}"
        assert e1 != e3, f"two different files share the ETag {e1!r}"


def test_content_types():
    want = {"/index.html": "text/html", "/style.css": "text/css", "/notes.txt": "text/plain",
            "/data.kqzx": "application/octet-stream"}
    with kt.Server(kt.site()) as srv:
        for path, ctype in want.items():
            got = kt.curl(srv, path).get("content-type", "")
            assert got.split(";")[0].strip() == ctype, f"{path}: Content-Type {got!r}, want {ctype}"


def test_server_tokens_off():
    with kt.Server(kt.site(), server_tokens=False) as srv:
        r = kt.curl(srv, "/index.html")
        assert r.status == 200 and "server" not in r.headers, \
            f"server_tokens = false still sends Server: {r.get('server')!r}"
        r = kt.curl(srv, "/missing")
        assert "server" not in r.headers, "server_tokens = false: an error response sends Server"


def test_location_cache_headers():
    with kt.Server(kt.site()) as srv:
        r = kt.curl(srv, "/cached/c.txt")
        assert r.status == 200, f"GET /cached/c.txt: {r.status}"
        assert r.get("cache-control") == "max-age=60", f"Cache-Control {r.get('cache-control')!r}"
        expires = r.get("expires")
        assert expires, "no Expires header in /cached/"
        delta = kt.parse_http_date(expires) - kt.parse_http_date(r.get("date"))
        assert 58 <= delta <= 62, f"Expires {expires!r} is {delta:.0f}s after Date, want 60"
        r = kt.curl(srv, "/index.html")
        assert "cache-control" not in r.headers and "expires" not in r.headers, \
            "cache headers outside the /cached/ location"


def conditional(srv, path, **headers):
    """One GET with headers (If_None_Match=... -> If-None-Match) on a raw
    connection; a 304 must be followed by nothing (no stray body bytes)."""
    hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
    with srv.connect() as c:
        r = c.exchange(kt.request(path, headers=hdrs))
        if r.status == 304:
            closed = c.wait_closed(0.2)
            assert not c.buf, f"{hdrs}: {len(c.buf)} bytes follow a 304: {c.buf[:60]!r}"
            assert not closed, f"{hdrs}: connection closed after a 304" \
                               f" (reset={c.reset}, tls error={c.error})"
        return r


def assert_304(r, what):
    assert r.status == 304, f"{what}: {r.status}, want 304"


def test_if_none_match():
    path = kt.size_path(16385)
    with kt.Server(kt.site()) as srv:
        etag = kt.curl(srv, path).get("etag")
        assert etag, "no ETag to test with"
        r = conditional(srv, path, If_None_Match=etag)
        assert_304(r, "If-None-Match: ETag")
        assert r.get("etag") == etag, f"304 carries ETag {r.get('etag')!r}, want {etag}"
        assert_304(conditional(srv, path, If_None_Match=f'"nope", {etag}, "other"'),
                   "If-None-Match: list with the ETag")
        assert_304(conditional(srv, path, If_None_Match="*"), "If-None-Match: *")
        r = conditional(srv, path, If_None_Match='"nope"')
        assert r.status == 200 and r.body == srv.site.files[path], \
            f"If-None-Match: other tag: {r.status}"


def test_if_modified_since():
    path = kt.size_path(16385)
    with kt.Server(kt.site()) as srv:
        assert_304(conditional(srv, path, If_Modified_Since=LAST_MODIFIED),
                   "If-Modified-Since = Last-Modified")
        assert_304(conditional(srv, path, If_Modified_Since=kt.http_date(kt.MTIME + 3600)),
                   "If-Modified-Since later than Last-Modified")
        r = conditional(srv, path, If_Modified_Since=kt.http_date(kt.MTIME - 3600))
        assert r.status == 200 and r.body == srv.site.files[path], \
            f"If-Modified-Since older: {r.status}"
        r = conditional(srv, path, If_Modified_Since="not a date")
        assert r.status == 200, f"If-Modified-Since garbage: {r.status}, want 200 (ignored)"


def test_if_none_match_wins_over_if_modified_since():
    """RFC 9110 13.2.2: with If-None-Match present, If-Modified-Since is ignored."""
    path = kt.size_path(16385)
    with kt.Server(kt.site()) as srv:
        r = conditional(srv, path, If_None_Match='"nope"', If_Modified_Since=LAST_MODIFIED)
        assert r.status == 200, f"If-None-Match mismatch + If-Modified-Since equal: {r.status}"
