"""Range requests: single ranges, unsatisfiable ranges, If-Range, malformed ranges."""

import kt

PATH = kt.size_path(16385)
SIZE = 16385


def get_range(srv, spec, *extra, path=PATH):
    return kt.curl(srv, path, "-H", f"Range: {spec}", *extra)


def test_single_ranges():
    data = kt.site().files[PATH]
    cases = {  # Range -> (first, last)
        "bytes=0-0": (0, 0),
        "bytes=16383-": (16383, SIZE - 1),
        "bytes=-1": (SIZE - 1, SIZE - 1),
        "bytes=100-199": (100, 199),
        "bytes=16380-99999": (16380, SIZE - 1),   # last clamped to the size
        "bytes=-100000": (0, SIZE - 1),           # suffix longer than the file
    }
    with kt.Server(kt.site()) as srv:
        for spec, (first, last) in cases.items():
            r = get_range(srv, spec)
            assert r.status == 206, f"{spec}: {r.status}, want 206"
            want_cr = f"bytes {first}-{last}/{SIZE}"
            assert r.get("content-range") == want_cr, f"{spec}: Content-Range {r.get('content-range')!r}, want {want_cr}"
            assert r.get("content-length") == str(last - first + 1), \
                f"{spec}: Content-Length {r.get('content-length')}"
            assert r.body == data[first:last + 1], f"{spec}: bytes differ"


def test_range_unsatisfiable_416():
    with kt.Server(kt.site()) as srv:
        r = get_range(srv, "bytes=99999999-")
        assert r.status == 416, f"bytes=99999999-: {r.status}, want 416"
        assert r.get("content-range") == f"bytes */{SIZE}", f"416 Content-Range {r.get('content-range')!r}"
        assert srv.site.files[PATH][:64] not in r.body, "416 body contains file bytes"
        r = get_range(srv, "bytes=0-0", path=kt.size_path(0))
        assert r.status == 416, f"bytes=0-0 of an empty file: {r.status}, want 416"
        assert r.get("content-range") == "bytes */0", f"Content-Range {r.get('content-range')!r}"


def test_if_range():
    data = kt.site().files[PATH]
    with kt.Server(kt.site()) as srv:
        etag = kt.curl(srv, PATH).get("etag")
        assert etag, "no ETag to test with"
        r = get_range(srv, "bytes=100-199", "-H", f"If-Range: {etag}")
        if etag.startswith("W/"):
            # weak tags never match If-Range (RFC 9110 13.1.5): full response
            assert r.status == 200, f"If-Range weak ETag: {r.status}"
        else:
            assert r.status == 206 and r.body == data[100:200], f"If-Range matching ETag: {r.status}"
        r = get_range(srv, "bytes=100-199", "-H", 'If-Range: "stale-tag"')
        assert r.status == 200 and r.body == data, f"If-Range stale ETag: {r.status}, want 200 full"


def test_malformed_range_ignored():
    data = kt.site().files[PATH]
    with kt.Server(kt.site()) as srv:
        for spec in ("bytes=abc", "bytes=5-1", "items=0-1", "bytes=", "bytes=1-2-3", "bytes=--1"):
            r = get_range(srv, spec)
            assert r.status == 200, f"Range {spec!r}: {r.status}, want 200 (ignored)"
            assert r.body == data, f"Range {spec!r}: body is not the full file"


def test_range_on_head_and_pipelined():
    """Ranges on one keep-alive connection, mixed with full GETs."""
    data = kt.site().files[PATH]
    with kt.Server(kt.site()) as srv, srv.connect() as c:
        reqs = [kt.request(PATH, headers={"Range": "bytes=1-2"}),
                kt.request(PATH),
                kt.request(PATH, headers={"Range": "bytes=-3"})]
        r1, r2, r3 = c.exchange(b"".join(reqs), n=3)
        assert (r1.status, r1.body) == (206, data[1:3]), f"first: {r1.status} {r1.body!r}"
        assert (r2.status, r2.body) == (200, data), f"second: {r2.status}"
        assert (r3.status, r3.body) == (206, data[-3:]), f"third: {r3.status} {r3.body!r}"
