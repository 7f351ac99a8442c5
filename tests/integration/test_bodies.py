"""Bodies arrive byte-exact over TLS 1.2, TLS 1.3, plain TCP; HEAD; the sparse 5 GiB file."""

import socket

import kt

TLS12 = ("--tlsv1.2", "--tls-max", "1.2")
TLS13 = ("--tlsv1.3",)


def check_all_sizes(srv, *curl_args, plain=False):
    bad = []
    for n in kt.SIZES:
        path = kt.size_path(n)
        r = kt.curl(srv, path, *curl_args, plain=plain)
        want = srv.site.files[path]
        if r.status != 200:
            bad.append(f"{path}: status {r.status}")
        elif kt.sha256(r.body) != kt.sha256(want):
            bad.append(f"{path}: {len(r.body)} bytes, sha256 differs (want {len(want)})")
        elif r.get("content-length") != str(n):
            bad.append(f"{path}: Content-Length {r.get('content-length')}")
    assert not bad, "; ".join(bad)


def test_bodies_tls12():
    with kt.Server(kt.site()) as srv:
        check_all_sizes(srv, *TLS12)


def test_bodies_tls13():
    with kt.Server(kt.site()) as srv:
        check_all_sizes(srv, *TLS13)


def test_bodies_plain_listener():
    with kt.Server(kt.site(), plain=True) as srv:
        check_all_sizes(srv, plain=True)


def test_bodies_ipv6():
    try:
        kt.free_port(socket.AF_INET6, "::1")
    except OSError as e:
        raise kt.Skip(f"no IPv6 loopback here: {e}")
    with kt.Server(kt.site(), ipv6=True) as srv:
        path = kt.size_path(16385)
        r = kt.curl(srv, path, port=srv.ipv6_port, addr="[::1]", check=False)
        assert r.status == 200, f"GET over [::1]: {r.status} {getattr(r, 'stderr', '')}"
        assert r.body == srv.site.files[path], "GET over [::1]: body differs"


def test_bodies_python_tls_client():
    """The same files through Python's ssl on one keep-alive connection."""
    with kt.Server(kt.site()) as srv, srv.connect() as c:
        for n in kt.SIZES:
            path = kt.size_path(n)
            r = c.exchange(kt.request(path))
            assert r.status == 200 and r.body == srv.site.files[path], \
                f"{path}: status {r.status}, {len(r.body)} bytes, exact={r.body == srv.site.files[path]}"


def test_head_has_length_no_body():
    with kt.Server(kt.site()) as srv:
        for n in kt.SIZES:
            r = kt.curl(srv, kt.size_path(n), "-I")
            assert r.status == 200, f"HEAD {kt.size_path(n)}: {r.status}"
            assert r.get("content-length") == str(n), \
                f"HEAD {kt.size_path(n)}: Content-Length {r.get('content-length')}, want {n}"
        # curl reads no body after HEAD: check on a raw connection that no
        # body bytes follow the head (they would precede the next response)
        with srv.connect() as c:
            for n in kt.SIZES:
                h = c.exchange(kt.request(kt.size_path(n), method="HEAD"), head=True)
                assert h.status == 200, f"raw HEAD {kt.size_path(n)}: {h.status}"
                assert c.idle_open(0.1) and not c.buf, \
                    f"HEAD {kt.size_path(n)}: {len(c.buf)} bytes follow the head"
            g = c.exchange(kt.request(kt.size_path(1)))
            assert g.status == 200 and g.body == srv.site.files[kt.size_path(1)], \
                f"GET after HEADs: {g.status}, body exact: {g.body == srv.site.files[kt.size_path(1)]}"


def test_sparse_5g_length():
    with kt.Server(kt.site()) as srv:
        r = srv.get("/big-5g.bin", method="HEAD")
        assert r.status == 200, f"HEAD /big-5g.bin: {r.status}"
        assert r.get("content-length") == str(kt.BIG_SIZE), \
            f"Content-Length {r.get('content-length')}, want {kt.BIG_SIZE}"


def test_sparse_5g_range_at_end():
    with kt.Server(kt.site()) as srv:
        first, last = kt.BIG_SIZE - kt.BIG_TAIL, kt.BIG_SIZE - 1
        r = kt.curl(srv, "/big-5g.bin", "-H", f"Range: bytes={first}-")
        assert r.status == 206, f"Range bytes={first}-: {r.status}"
        assert r.get("content-range") == f"bytes {first}-{last}/{kt.BIG_SIZE}", \
            f"Content-Range {r.get('content-range')}"
        assert kt.sha256(r.body) == kt.sha256(srv.site.big_tail), \
            f"tail bytes differ ({len(r.body)} bytes)"

        # a range straddling the hole and the data, past 4 GiB (32-bit offsets)
        first = kt.BIG_SIZE - kt.BIG_TAIL - 100
        r = kt.curl(srv, "/big-5g.bin", "-H", f"Range: bytes={first}-{first + 199}")
        assert r.status == 206, f"straddling range: {r.status}"
        assert r.body == bytes(100) + srv.site.big_tail[:100], "straddling range: bytes differ"

        r = kt.curl(srv, "/big-5g.bin", "-H", "Range: bytes=-5")
        assert r.status == 206 and r.body == srv.site.big_tail[-5:], \
            f"suffix range: {r.status}, {r.body!r}"
