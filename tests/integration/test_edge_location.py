"""Per-location features: custom error pages and directory listings
(autoindex). Cache-Control and Expires per location: test_headers."""

import html
import os
import re
import urllib.parse

import kt

ODD = "a<b>&\"c'.txt"


def _write(root, rel, data):
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (kt.MTIME, kt.MTIME))
    return path


def _site_root():
    root = kt.site().new_root("edge-loc")
    files = {
        "/err/404.html": b"<html><body>CUSTOM-404-PAGE</body></html>\n",
        "/err/404.txt": b"custom 404 as text\n",
        "/err/403.html": b"<p>CUSTOM-403</p>\n",
        "/ep/exists.txt": b"exists\n",
        "/list/" + ODD: b"odd name\n",
        "/list/sp ace \u00e9.txt": b"space and utf-8\n",
        "/list/100%.txt": b"percent\n",
        "/list/q?x#y.txt": b"query and fragment chars\n",
        "/list/.hidden": b"dotfile\n",
        "/list/sub/inner.txt": b"inner\n",
        "/list/sub/.dotdir/x": b"x\n",
        "/noauto/file.txt": b"no index here\n",
        "/noauto2/file.txt": b"no index here either\n",
    }
    for rel, data in files.items():
        _write(root, rel, data)
    (root / "list" / "emptydir").mkdir()
    return root, files


def _server(root):
    return kt.Server(kt.site(), vhost_a=dict(root=str(root)), locations={
        "/ep/": {"error_page": ["404 /err/404.html", "403 /err/403.html"]},
        "/eptxt/": {"error_page": ["404 /err/404.txt"]},
        "/epmissing/": {"error_page": ["404 /err/nope.html"]},
        "/list/": {"autoindex": True},
        "/noauto/": {"autoindex": False},
    })


def test_error_page():
    root, files = _site_root()
    with _server(root) as srv:
        r = srv.get("/ep/missing.txt")
        assert r.status == 404, f"custom 404: {r.status}"
        assert r.body == files["/err/404.html"], f"custom 404 body {r.body[:80]!r}"
        assert r.get("content-type", "").startswith("text/html"), f"type {r.get('content-type')}"
        assert r.get("content-length") == str(len(r.body)), "Content-Length"
        r = srv.get("/ep/exists.txt")
        assert r.status == 200 and r.body == b"exists\n", "a file under the location"
        # HEAD: the status and headers, no body
        r = srv.get("/ep/missing.txt", method="HEAD")
        assert r.status == 404 and r.body == b"", f"HEAD: {r.status}"
        # its own type
        r = srv.get("/eptxt/missing")
        assert r.status == 404 and r.body == files["/err/404.txt"], f"txt page: {r.status} {r.body!r}"
        assert r.get("content-type", "").startswith("text/plain"), f"txt page type {r.get('content-type')}"
        # a missing page file: the built-in page, still 404
        r = srv.get("/epmissing/missing")
        assert r.status == 404, f"missing page: {r.status}"
        assert b"404" in r.body and b"Not Found" in r.body, f"built-in page expected: {r.body[:100]!r}"
        # outside the location: built-in
        r = srv.get("/missing-elsewhere")
        assert r.status == 404 and b"CUSTOM-404" not in r.body, "error_page leaked to another location"
        # HTTP/2
        h = kt.h2_get(srv, "/ep/missing.txt")
        assert h.status == 404 and h.body == files["/err/404.html"], f"h2 custom 404: {h}"
        # a server still runs after all that
        assert srv.get("/ep/exists.txt").status == 200


def test_error_page_server_level_inherited():
    root, files = _site_root()
    with kt.Server(kt.site(), vhost_a=dict(root=str(root), error_page=["404 /err/404.html"]),
                   locations={"/other/": {"cache_control": "no-store"},
                              "/eptxt/": {"error_page": ["404 /err/404.txt"]}}) as srv:
        for path in ("/nothing", "/other/nothing"):
            r = srv.get(path)
            assert r.status == 404 and r.body == files["/err/404.html"], \
                f"{path}: server-level error_page not used: {r.status} {r.body[:60]!r}"
        r = srv.get("/eptxt/nothing")
        assert r.status == 404 and r.body == files["/err/404.txt"], f"location overrides server: {r.body!r}"


def test_error_page_for_dotfile_403():
    """A location's 403 page also covers the 403 for a dotfile under it."""
    root, files = _site_root()
    with _server(root) as srv:
        r = srv.get("/ep/.dotfile")
        assert r.status == 403, f"dotfile: {r.status}"
        assert r.body == files["/err/403.html"], \
            f"dotfile 403 under /ep/ got the built-in page, not the location's error_page: {r.body[:60]!r}"


def test_autoindex_listing():
    root, files = _site_root()
    with _server(root) as srv:
        r = srv.get("/list/")
        assert r.status == 200, f"listing: {r.status}"
        assert r.get("content-type", "").startswith("text/html"), f"type {r.get('content-type')}"
        page = r.body.decode("utf-8")
        assert "<b>" not in page and "a<b" not in page, "a name was not HTML-escaped"
        esc = html.escape(ODD, quote=True)
        shown = {html.unescape(m) for m in re.findall(r">([^<]*)</a>", page)}
        assert ODD in shown, f"{ODD!r} not shown (escaped as {esc!r}?): {sorted(shown)}"
        assert ".hidden" not in page, "dotfile listed"
        assert "sub/" in shown and "emptydir/" in shown, f"directories must end in /: {sorted(shown)}"
        hrefs = re.findall(r'href="([^"]*)"', page)
        names = [h for h in hrefs if h not in ("../", "./")]
        for h in names:
            assert re.fullmatch(r"[A-Za-z0-9\-._~/%]+", h), f"href {h!r} is not percent-encoded"
        want = {ODD, "sp ace \u00e9.txt", "100%.txt", "q?x#y.txt", "sub/", "emptydir/"}
        got = {urllib.parse.unquote(h) for h in names}
        assert got == want, f"hrefs decode to {sorted(got)}, want {sorted(want)}"
        # follow each link
        with srv.connect() as c:
            for h in names:
                rr = c.exchange(kt.request("/list/" + h))
                name = urllib.parse.unquote(h)
                assert rr.status == 200, f"GET /list/{h}: {rr.status}"
                if not name.endswith("/"):
                    assert rr.body == files["/list/" + name], f"GET /list/{h}: bytes"
        # a subdirectory lists too, without its dotdir
        r = srv.get("/list/sub/")
        assert r.status == 200 and b"inner.txt" in r.body and b".dotdir" not in r.body, \
            f"sub listing: {r.status} {r.body[:200]!r}"
        # the same over HTTP/2
        h = kt.h2_get(srv, "/list/")
        assert h.status == 200, f"h2 listing {h}"
        assert h.body == srv.get("/list/").body, "h2 listing differs from HTTP/1.1's"
        # no autoindex: a directory without index is 403 (explicitly off, and by default)
        for path in ("/noauto/", "/noauto2/"):
            r = srv.get(path)
            assert r.status == 403, f"{path} without autoindex: {r.status}"
            assert b"file.txt" not in r.body, f"{path}: 403 page lists files"
