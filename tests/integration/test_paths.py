"""Path handling: index files, redirects, hidden files, symlinks, traversal."""

import urllib.parse

import kt


def test_index_files():
    with kt.Server(kt.site()) as srv:
        for path, file in (("/", "/index.html"), ("/sub/", "/sub/index.html")):
            r = kt.curl(srv, path)
            assert r.status == 200 and r.body == srv.site.files[file], f"GET {path}: {r.status}"
            assert r.get("content-type", "").startswith("text/html"), \
                f"GET {path}: Content-Type {r.get('content-type')!r}"


def test_directory_without_slash_redirects():
    with kt.Server(kt.site()) as srv:
        r = kt.curl(srv, "/sub")
        assert r.status == 301, f"GET /sub: {r.status}, want 301"
        assert r.get("location", "").endswith("/sub/"), f"Location {r.get('location')!r}"
        r = kt.curl(srv, "/sub", "-L")
        assert r.status == 200 and r.body == srv.site.files["/sub/index.html"], \
            f"following the redirect: {r.status}"


def test_directory_without_index_403():
    with kt.Server(kt.site()) as srv:
        r = kt.curl(srv, "/noindex/")
        assert r.status == 403, f"GET /noindex/: {r.status}, want 403"
        assert b"file.txt" not in r.body, "a directory listing leaked"


def test_missing_404():
    with kt.Server(kt.site()) as srv:
        for path in ("/missing", "/missing/", "/sub/missing.html", "/size_1.bin/x"):
            r = kt.curl(srv, path)
            assert r.status == 404, f"GET {path}: {r.status}, want 404"


def test_dotfiles():
    with kt.Server(kt.site()) as srv:
        r = kt.curl(srv, "/.secret")
        assert r.status in (403, 404), f"GET /.secret: {r.status}, want 403 or 404"
        assert srv.site.files["/.secret"] not in r.body, "dotfile content served"
        r = kt.curl(srv, "/.well-known/acme-challenge/tok")
        assert r.status == 200 and r.body == srv.site.files["/.well-known/acme-challenge/tok"], \
            f"GET /.well-known/acme-challenge/tok: {r.status}, want 200"


def test_symlink_inside_root():
    with kt.Server(kt.site()) as srv:
        r = kt.curl(srv, "/link-in.bin")
        assert r.status == 200 and r.body == srv.site.files["/link-in.bin"], \
            f"symlink inside the root: {r.status}"


def test_symlink_outside_root():
    with kt.Server(kt.site()) as srv:
        for path in ("/link-out.txt", "/link-out-rel.txt", "/outside-dir/secret.txt"):
            r = kt.curl(srv, path)
            assert r.status != 200, f"GET {path} (symlink out of the root): 200"
            assert srv.site.marker.encode() not in r.body, f"GET {path}: the outside secret leaked"


def test_encoded_names():
    name = "/sp ace \u00e9.txt"
    cases = {urllib.parse.quote(name): name,               # upper-case hex
             "/sp%20ace%20%c3%a9.txt": name,                # lower-case hex
             "/%73ize_1.bin": kt.size_path(1)}             # an encoded plain letter
    with kt.Server(kt.site()) as srv:
        for path, file in cases.items():
            r = kt.curl(srv, path)
            assert r.status == 200 and r.body == srv.site.files[file], \
                f"GET {path}: {r.status}, want 200"


def test_query_string_ignored():
    with kt.Server(kt.site()) as srv:
        r = kt.curl(srv, kt.size_path(1) + "?a=1&b=%zz")
        assert r.status == 200 and r.body == srv.site.files[kt.size_path(1)], \
            f"GET with a query: {r.status}"


def test_unreadable_file_403():
    if kt.running_as_root():
        raise kt.Skip("running as root: chmod 000 does not stop root from reading")
    with kt.Server(kt.site()) as srv:
        r = kt.curl(srv, "/unreadable.txt")
        assert r.status == 403, f"GET /unreadable.txt (mode 000): {r.status}, want 403"


# Raw request targets that try to leave the root; none may succeed.
TRAVERSAL = [
    "/../outside-secret.txt",
    "/../../../../../../../../etc/passwd",
    "/sub/../../outside-secret.txt",
    "/%2e%2e/outside-secret.txt",
    "/%2E%2E/outside-secret.txt",
    "/%2e%2e%2foutside-secret.txt",
    "/..%2foutside-secret.txt",
    "/..%2Foutside-secret.txt",
    "//../outside-secret.txt",
    "/./../outside-secret.txt",
    "/.%2e/outside-secret.txt",
    "/%252e%252e/outside-secret.txt",
    "/%c0%ae%c0%ae/outside-secret.txt",
    "/%c0%ae%c0%ae%c0%afoutside-secret.txt",
    "/..\\outside-secret.txt",
    "/%5c..%5coutside-secret.txt",
    "/..%5coutside-secret.txt",
    "/link-out.txt/",
    "/outside-dir/../../outside-secret.txt",
    "/outside-dir/%2e%2e/outside-secret.txt",
    "../outside-secret.txt",
    "outside-secret.txt",
]


def raw_get(srv, target):
    """One raw request; a closed connection without response reads as None."""
    with srv.connect() as c:
        try:
            return c.exchange(kt.request(target))
        except kt.Closed:
            return None


def test_traversal():
    marker = kt.site().marker.encode()
    with kt.Server(kt.site()) as srv:
        bad = []
        for target in TRAVERSAL:
            r = raw_get(srv, target)
            if r is None:
                continue
            if r.status == 200:
                bad.append(f"{target} -> 200")
            if marker in r.body or b"root:x:0:0" in r.body:
                bad.append(f"{target} leaked an outside file")
        assert not bad, "; ".join(bad)
        kt.assert_serves(srv)


def test_traversal_canonicalizing_inside_root_allowed():
    """Dot segments that stay inside the root resolve (or are refused), never escape."""
    cases = {"/sub/../index.html": "/index.html", "/./index.html": "/index.html",
             "/sub/./index.html": "/sub/index.html"}
    with kt.Server(kt.site()) as srv:
        for target, file in cases.items():
            r = raw_get(srv, target)
            assert r is not None and r.status in (200, 301, 400), f"{target}: {r and r.status}"
            if r.status == 200:
                assert r.body == srv.site.files[file], f"{target}: body is not {file}"


def test_double_encoding_stays_literal():
    with kt.Server(kt.site()) as srv:
        r = raw_get(srv, "/%252e%252e/outside-secret.txt")
        assert r is not None and r.status == 404, \
            f"/%252e%252e/...: {r and r.status}, want 404 (decoded once, a literal name)"


def test_nul_and_bad_escape_400():
    with kt.Server(kt.site()) as srv:
        for target in ("/%00", "/size_1.bin%00.html", "/%zz", "/%4", "/%"):
            with srv.connect() as c:
                r = c.exchange(kt.request(target))
                kt.assert_bad_request_closes(c, r, 400, f"GET {target}")
        kt.assert_serves(srv)
