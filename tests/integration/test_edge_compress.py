"""Compression: precompressed .br/.gz siblings (gzip_static) and the
on-the-fly gzip cache (gzip, gzip_cache, gzip_cache_size), over HTTP/1.1
(raw sockets and curl --compressed) and HTTP/2."""

import gzip
import os
import time
import zlib

import kt


def _text(n, seed=b""):
    """n bytes of compressible text (words), different for each seed."""
    words = [b"alpha ", b"beta\n", b"gamma ", b"delta ", b"kttpd\n", b"edge ", b"cache ",
             (seed or b"x") + b" "]
    rnd = os.urandom(n // 4 + 16)
    return b"".join(words[c & 7] for c in rnd)[:n]


def _write(root, rel, data, mtime=kt.MTIME):
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def _entries(cache):
    return sorted(p for p in cache.iterdir() if not p.name.startswith("."))


def _get(srv, path, ae=None, extra=(), method="GET"):
    headers = [("Accept-Encoding", ae)] if ae is not None else []
    return srv.get(path, headers=headers + list(extra), method=method)


# ---------------------------------------------------------------- gzip_static

def _static_server(site):
    root = site.new_root("edge-gzs")
    orig = _text(20000, b"static")
    gz = gzip.compress(orig)
    br = b"BR-SIBLING-" + os.urandom(3000)      # served as is: never decoded by us
    _write(root, "/s/page.html", orig)
    _write(root, "/s/page.html.gz", gz)
    _write(root, "/s/page.html.br", br)
    _write(root, "/s/onlygz.css", orig)
    _write(root, "/s/onlygz.css.gz", gz)
    srv = kt.Server(site, vhost_a=dict(root=str(root)),
                    locations={"/s/": dict(gzip_static=True)})
    return srv, orig, gz, br


def test_gzip_static_negotiation():
    srv, orig, gz, br = _static_server(kt.site())
    with srv:
        cases = [  # Accept-Encoding -> (coding or None, body)
            ("gzip, br", "br", br),
            ("br;q=0.9, gzip;q=0.8", "br", br),
            ("gzip;q=0.5, br", "br", br),
            ("br;q=0, gzip", "gzip", gz),
            ("gzip, br;q=0", "gzip", gz),
            ("gzip;q=0, br;q=0", None, orig),
            ("identity", None, orig),
            ("*", "br", br),
            ("*;q=0", None, orig),
            ("GZIP", "gzip", gz),
            (None, None, orig),
        ]
        etags = {}
        for ae, coding, body in cases:
            r = _get(srv, "/s/page.html", ae)
            what = f"Accept-Encoding {ae!r}"
            assert r.status == 200, f"{what}: {r.status}"
            assert r.get("content-encoding") == coding, \
                f"{what}: Content-Encoding {r.get('content-encoding')!r}, want {coding!r}"
            assert r.body == body, f"{what}: body is not the {coding or 'identity'} bytes " \
                f"({len(r.body)}B, want {len(body)}B)"
            assert r.get("content-length") == str(len(body)), f"{what}: Content-Length {r.get('content-length')}"
            assert r.get("content-type", "").startswith("text/html"), \
                f"{what}: Content-Type {r.get('content-type')!r} (the original's type, please)"
            assert "accept-encoding" in r.get("vary", "").lower(), f"{what}: no Vary: Accept-Encoding ({r.headers})"
            assert r.count("vary") <= 1, f"{what}: {r.count('vary')} Vary headers"
            etags.setdefault(coding, set()).add(r.get("etag"))
        for coding, tags in etags.items():
            assert len(tags) == 1, f"{coding or 'identity'}: ETag not stable: {tags}"
        flat = [next(iter(t)) for t in etags.values()]
        assert len(set(flat)) == 3, f"ETags per encoding not distinct: {etags}"

        # a conditional with the br tag matches only the br representation
        br_tag = next(iter(etags["br"]))
        r = _get(srv, "/s/page.html", "br", [("If-None-Match", br_tag)])
        assert r.status == 304, f"If-None-Match br tag with br accepted: {r.status}"
        r = _get(srv, "/s/page.html", "gzip;q=0, br;q=0", [("If-None-Match", br_tag)])
        assert r.status == 200 and r.body == orig, f"br tag on an identity request: {r.status}"

        # no .br sibling: gzip is chosen even though br is preferred
        r = _get(srv, "/s/onlygz.css", "br, gzip")
        assert (r.status, r.get("content-encoding"), r.body) == (200, "gzip", gz), \
            f"onlygz.css: {r.status} {r.get('content-encoding')}"
        # HEAD: same headers, no body
        with srv.connect() as c:
            h = c.exchange(kt.request("/s/page.html", method="HEAD",
                                      headers={"Accept-Encoding": "gzip"}), head=True)
            assert h.get("content-encoding") == "gzip" and h.get("content-length") == str(len(gz)), \
                f"HEAD gzip: {h.headers}"
            r = c.exchange(kt.request("/index.html"))
            assert r.status in (200, 404), f"after HEAD the connection is out of step: {r.status}"


def test_gzip_static_prefers_higher_q():
    """RFC 9110 12.5.3: the coding with the higher q-value is preferred."""
    srv, orig, gz, br = _static_server(kt.site())
    with srv:
        r = _get(srv, "/s/page.html", "gzip;q=1.0, br;q=0.5")
        assert r.get("content-encoding") == "gzip" and r.body == gz, \
            f"gzip;q=1.0, br;q=0.5 -> Content-Encoding {r.get('content-encoding')!r}, want gzip"


# ---------------------------------------------------------------- gzip on the fly

def _dyn_server(site, **opts):
    root = site.new_root("edge-gz")
    cache = site.new_root("edge-gzcache") / "cache"      # made by the server
    files = {
        "/d/page.txt": _text(100000, b"page"),
        "/d/small.txt": _text(100, b"small"),
        "/d/image.png": _text(50000, b"png"),           # compressible bytes, but not a gzip_type
        "/d/blob.bin": _text(50000, b"bin"),
        "/d/style.css": _text(30000, b"css"),
    }
    for rel, data in files.items():
        _write(root, rel, data)
    options = dict(gzip_cache=str(cache))
    options.update(opts)
    srv = kt.Server(site, vhost_a=dict(root=str(root)),
                    locations={"/d/": dict(gzip=True)}, **options)
    return srv, root, cache, files


def test_gzip_on_the_fly_cache():
    srv, root, cache, files = _dyn_server(kt.site())
    orig = files["/d/page.txt"]
    with srv:
        # curl --compressed decodes to the original; Content-Length is the encoded size
        r = kt.curl(srv, "/d/page.txt", "--compressed")
        assert r.status == 200 and r.get("content-encoding") == "gzip", \
            f"curl --compressed: {r.status} {r.get('content-encoding')!r}"
        assert r.body == orig, "curl --compressed: decoded body differs from the file"
        assert "accept-encoding" in r.get("vary", "").lower(), f"no Vary ({r.headers})"
        clen = int(r.get("content-length"))
        assert clen < len(orig) // 2, f"Content-Length {clen} is not the compressed size"

        ents = _entries(cache)
        assert len(ents) == 1, f"cache holds {len(ents)} entries after one file: {ents}"
        entry = ents[0]
        assert entry.stat().st_size == clen, f"entry {entry.stat().st_size}B, Content-Length {clen}"
        mtime1 = entry.stat().st_mtime_ns

        # raw: the exact gzip bytes, decoded by python's gzip
        r1 = _get(srv, "/d/page.txt", "gzip")
        assert r1.get("content-encoding") == "gzip", f"raw gzip: {r1.headers}"
        assert gzip.decompress(r1.body) == orig, "gzip.decompress(body) != file"
        assert r1.body == entry.read_bytes(), "body is not the cache entry's bytes"
        ident = _get(srv, "/d/page.txt")
        assert ident.body == orig and ident.get("content-encoding") is None, "identity request"
        assert ident.get("etag") != r1.get("etag"), f"gzip and identity share ETag {ident.get('etag')}"
        assert "accept-encoding" in ident.get("vary", "").lower(), "identity answer lacks Vary"

        time.sleep(0.05)
        r2 = _get(srv, "/d/page.txt", "gzip")
        assert r2.body == r1.body, "second request: different bytes"
        assert _entries(cache) == [entry], f"second request made another entry: {_entries(cache)}"
        assert entry.stat().st_mtime_ns == mtime1, "second request rewrote the entry"

        # changed file: new content and mtime -> a new entry, the new content
        new = _text(90000, b"changed")
        _write(root, "/d/page.txt", new, mtime=kt.MTIME + 100)
        r3 = _get(srv, "/d/page.txt", "gzip")
        assert r3.get("content-encoding") == "gzip", f"changed file: {r3.headers}"
        assert gzip.decompress(r3.body) == new, "changed file: old content served"
        assert r3.get("etag") != r1.get("etag"), "changed file kept its ETag"
        assert len(_entries(cache)) == 2, f"changed file: {len(_entries(cache))} entries, want 2"

        # not gzip_types, below gzip_min_size: never encoded
        for path in ("/d/image.png", "/d/blob.bin", "/d/small.txt"):
            r = _get(srv, path, "gzip, br")
            assert r.status == 200 and r.get("content-encoding") is None, \
                f"{path}: Content-Encoding {r.get('content-encoding')!r}"
            assert r.body == files[path], f"{path}: body differs"
        assert len(_entries(cache)) == 2, f"uncompressible files made entries: {_entries(cache)}"

        # q=0 refuses gzip
        r = _get(srv, "/d/style.css", "gzip;q=0")
        assert r.get("content-encoding") is None and r.body == files["/d/style.css"], "gzip;q=0"


def test_gzip_range_applies_to_encoded_bytes():
    srv, root, cache, files = _dyn_server(kt.site())
    with srv:
        full = _get(srv, "/d/page.txt", "gzip").body
        n = len(full)
        assert n > 1000, f"compressed body only {n}B"
        for spec, (a, b) in (("bytes=10-99", (10, 99)), (f"bytes=-50", (n - 50, n - 1)),
                             (f"bytes={n - 5}-", (n - 5, n - 1))):
            r = _get(srv, "/d/page.txt", "gzip", [("Range", spec)])
            assert r.status == 206, f"{spec}: {r.status}"
            assert r.get("content-encoding") == "gzip", f"{spec}: {r.headers}"
            assert r.get("content-range") == f"bytes {a}-{b}/{n}", \
                f"{spec}: Content-Range {r.get('content-range')!r}, want bytes {a}-{b}/{n}"
            assert r.body == full[a:b + 1], f"{spec}: not the slice of the gzip body"
        r = _get(srv, "/d/page.txt", "gzip", [("Range", f"bytes={n}-")])
        assert r.status == 416 and r.get("content-range") == f"bytes */{n}", \
            f"past the encoded length: {r.status} {r.get('content-range')}"

        # HTTP/2: the same bytes, the same ranges
        with kt.H2Client(srv.port) as c:
            h = c.get("/d/page.txt", headers=[("accept-encoding", "gzip")])
            assert h.status == 200 and h.get("content-encoding") == "gzip", f"h2: {h} {h.headers}"
            assert h.body == full, "h2: gzip body differs from HTTP/1.1's"
            assert "accept-encoding" in h.get("vary", "").lower(), f"h2: no Vary {h.headers}"
            h = c.get("/d/page.txt", headers=[("accept-encoding", "gzip"), ("range", "bytes=100-1099")])
            assert h.status == 206 and h.get("content-range") == f"bytes 100-1099/{n}", \
                f"h2 range: {h} {h.headers}"
            assert h.body == full[100:1100], "h2 range: not the slice of the gzip body"
            h = c.get("/d/page.txt")
            assert h.status == 200 and h.get("content-encoding") is None and \
                h.body == files["/d/page.txt"], "h2 identity"
        r = kt.curl(srv, "/d/page.txt", "--http2", "--compressed")
        assert r.body == files["/d/page.txt"] and r.get("content-encoding") == "gzip", \
            f"curl --http2 --compressed: {r.headers}"


def test_gzip_cache_size_bound():
    bound = 1 << 20
    site = kt.site()
    srv, root, cache, _ = _dyn_server(site, gzip_cache_size=bound, workers=1)
    files = {}
    for i in range(10):
        data = os.urandom(150 * 1024).hex().encode()   # 300 KiB, gzips to ~55%
        files[f"/d/r{i}.txt"] = data
        _write(root, f"/d/r{i}.txt", data)
    with srv:
        gz_sizes = []
        for path, data in files.items():
            r = _get(srv, path, "gzip")
            assert r.status == 200, f"{path}: {r.status}"
            assert r.get("content-encoding") == "gzip", \
                f"{path}: not gzipped (Content-Encoding {r.get('content-encoding')!r}; " \
                f"entries {[e.name for e in _entries(cache)]})"
            assert zlib.decompress(r.body, 31) == data, f"{path}: body does not gunzip to the file"
            gz_sizes.append(len(r.body))
            total = sum(e.stat().st_size for e in _entries(cache))
            assert total <= bound, f"after {path}: cache holds {total}B > bound {bound}B"
        assert sum(gz_sizes) > bound, f"test data too small: {sum(gz_sizes)}B"
        left = _entries(cache)
        assert len(left) < len(files), f"nothing evicted: {len(left)} entries"
        # the newest entry survived, and is served again without being remade
        last = list(files)[-1]
        r = _get(srv, last, "gzip")
        assert zlib.decompress(r.body, 31) == files[last], "last file after eviction"
        # an evicted file is remade on demand
        first = list(files)[0]
        r = _get(srv, first, "gzip")
        assert r.get("content-encoding") == "gzip", \
            f"evicted file not remade: Content-Encoding {r.get('content-encoding')!r}, " \
            f"entries {[(e.name[:8], e.stat().st_size) for e in _entries(cache)]}"
        assert zlib.decompress(r.body, 31) == files[first], "remade entry does not gunzip to the file"
        total = sum(e.stat().st_size for e in _entries(cache))
        assert total <= bound, f"cache holds {total}B > bound"
