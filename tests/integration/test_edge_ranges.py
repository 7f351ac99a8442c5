"""Several ranges: multipart/byteranges (sorted, merged, bounded by
max_ranges), 416 for an all-unsatisfiable set, HEAD, and HTTP/2."""

import email
import email.policy
import re

import kt

PATH = kt.size_path(1 << 20)
SIZE = 1 << 20


def parse_multipart(ctype, body):
    """[(Content-Range, bytes)] of a multipart/byteranges body, by the
    email package, cross-checked against a plain boundary split."""
    m = re.match(r"multipart/byteranges;\s*boundary=(\S+)$", ctype)
    assert m, f"Content-Type {ctype!r} is not multipart/byteranges with a boundary"
    boundary = m.group(1).strip('"').encode()
    msg = email.message_from_bytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body,
                                   policy=email.policy.HTTP)
    assert msg.is_multipart(), "email: body is not multipart"
    assert not msg.defects, f"email: defects {msg.defects}"
    parts = []
    for part in msg.iter_parts():
        assert not part.defects, f"email part defects {part.defects}"
        parts.append((part["Content-Range"], part.get_content_type(),
                      part.get_payload(decode=True)))
    # by hand: --B CRLF headers CRLF CRLF data CRLF ... --B-- CRLF
    raw = []
    chunks = body.split(b"\r\n--" + boundary)
    assert chunks[0] == b"", f"bytes before the first boundary: {chunks[0][:60]!r}"
    assert chunks[-1] in (b"--\r\n", b"--"), f"bad closing delimiter {chunks[-1][:60]!r}"
    for c in chunks[1:-1]:
        head, _, data = c[2:].partition(b"\r\n\r\n")
        cr = re.search(rb"(?im)^content-range:\s*(.+)$", head)
        raw.append((cr.group(1).decode().strip(), data))
    assert len(raw) == len(parts), f"email found {len(parts)} parts, split found {len(raw)}"
    for (cr, _, data), (rcr, rdata) in zip(parts, raw):
        assert cr == rcr and data == rdata, f"email and split disagree on part {rcr}"
    return parts


def check_parts(parts, want, data, what):
    got = [p[0] for p in parts]
    exp = [f"bytes {a}-{b}/{len(data)}" for a, b in want]
    assert got == exp, f"{what}: parts {got}, want {exp}"
    for (cr, ctype, body), (a, b) in zip(parts, want):
        assert ctype == "application/octet-stream", f"{what}: part type {ctype}"
        assert body == data[a:b + 1], f"{what}: part {cr}: bytes differ"


CASES = [  # Range -> parts after sorting and merging
    ("bytes=0-99,200-299,1000-1099", [(0, 99), (200, 299), (1000, 1099)]),
    ("bytes=5000-5099,0-9", [(0, 9), (5000, 5099)]),                   # sorted
    ("bytes=500-599,0-99,50-149,150-160", [(0, 160), (500, 599)]),     # overlap + adjacent merged
    ("bytes=0-9,-10", [(0, 9), (SIZE - 10, SIZE - 1)]),                 # suffix
    ("bytes=100-199,100-199", [(100, 199)]),                            # duplicate: single part
]


def test_multipart_byteranges_h1():
    data = kt.site().files[PATH]
    with kt.Server(kt.site(), max_ranges=4) as srv, srv.connect() as c:
        for spec, want in CASES:
            r = c.exchange(kt.request(PATH, headers={"Range": spec}))
            assert r.status == 206, f"{spec}: {r.status}"
            if len(want) == 1:
                a, b = want[0]
                assert r.get("content-range") == f"bytes {a}-{b}/{SIZE}", \
                    f"{spec}: Content-Range {r.get('content-range')!r}"
                assert r.body == data[a:b + 1], f"{spec}: bytes differ"
                continue
            assert r.get("content-range") is None, f"{spec}: multipart with a Content-Range header"
            assert r.get("content-length") == str(len(r.body)), f"{spec}: Content-Length"
            check_parts(parse_multipart(r.get("content-type"), r.body), want, data, spec)
            total = sum(b - a + 1 for a, b in want)
            assert len(r.body) < total + 200 * len(want) + 100, f"{spec}: body {len(r.body)}B too big"

        # more than max_ranges (4): the header is ignored
        r = c.exchange(kt.request(PATH, headers={"Range": "bytes=0-0,10-10,20-20,30-30,40-40"}))
        assert r.status == 200 and r.body == data, f"5 ranges > max_ranges 4: {r.status}"
        r = c.exchange(kt.request(PATH, headers={"Range": "bytes=0-0,1000-1000,2000-2000,3000-3000"}))
        assert r.status == 206 and "multipart" in r.get("content-type", ""), f"4 ranges: {r.status}"
        # none satisfiable: 416 (on its own connection: the server may close after it)
        r = srv.get(PATH, headers={"Range": f"bytes={SIZE}-{SIZE + 10},{SIZE + 100}-"})
        assert r.status == 416 and r.get("content-range") == f"bytes */{SIZE}", \
            f"all unsatisfiable: {r.status} {r.get('content-range')}"
        assert data[:32] not in r.body, "416 body carries file bytes"
        # one satisfiable of several: a single part
        r = c.exchange(kt.request(PATH, headers={"Range": f"bytes=10-19,{SIZE + 5}-"}))
        assert r.status == 206 and r.get("content-range") == f"bytes 10-19/{SIZE}" \
            and r.body == data[10:20], f"one satisfiable: {r.status} {r.get('content-range')}"
        assert "multipart" not in r.get("content-type", ""), "one part sent as multipart"
        # HEAD with several ranges: the head only; the connection stays in step
        h = c.exchange(kt.request(PATH, method="HEAD", headers={"Range": "bytes=0-9,100-109"}), head=True)
        assert h.status == 206 and "multipart/byteranges" in h.get("content-type", ""), \
            f"HEAD ranges: {h.status} {h.headers}"
        r = c.exchange(kt.request(PATH, headers={"Range": "bytes=0-3"}))
        assert r.status == 206 and r.body == data[:4], \
            f"request after HEAD: {r.status} {r.body[:20]!r} (HEAD sent a body?)"


def test_multipart_byteranges_curl():
    data = kt.site().files[PATH]
    with kt.Server(kt.site(), max_ranges=4) as srv:
        r = kt.curl(srv, PATH, "-r", "300-399,0-49")
        assert r.status == 206, f"curl -r: {r.status}"
        check_parts(parse_multipart(r.get("content-type"), r.body), [(0, 49), (300, 399)], data, "curl -r")


def test_multipart_byteranges_h2():
    data = kt.site().files[PATH]
    with kt.Server(kt.site(), max_ranges=4) as srv:
        with kt.H2Client(srv.port) as c:
            for spec, want in CASES:
                h = c.get(PATH, headers=[("range", spec)])
                assert h.status == 206, f"h2 {spec}: {h}"
                if len(want) == 1:
                    a, b = want[0]
                    assert h.body == data[a:b + 1], f"h2 {spec}: bytes"
                    continue
                assert h.get("content-length") in (None, str(len(h.body))), f"h2 {spec}: content-length"
                check_parts(parse_multipart(h.get("content-type"), h.body), want, data, f"h2 {spec}")
            h = c.get(PATH, headers=[("range", "bytes=0-0,10-10,20-20,30-30,40-40")])
            assert h.status == 200 and h.body == data, f"h2 > max_ranges: {h}"
            h = c.get(PATH, headers=[("range", f"bytes={SIZE}-,{SIZE + 1}-")])
            assert h.status == 416, f"h2 unsatisfiable set: {h}"
            h = c.get(PATH, method="HEAD", headers=[("range", "bytes=0-9,100-109")])
            assert h.status == 206 and h.body == b"", f"h2 HEAD ranges: {h}"
        r = kt.curl(srv, PATH, "--http2", "-r", "0-9,100-109")
        assert r.status == 206, f"curl --http2 -r: {r.status}"
        check_parts(parse_multipart(r.get("content-type"), r.body), [(0, 9), (100, 109)], data, "curl h2")
