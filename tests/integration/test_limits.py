"""Request limits and request smuggling, on raw TLS sockets.

Every bad request must get its status (and `Connection: close`) and a
closed connection; a fresh connection is then served normally.
"""

import kt

OK_PATH = kt.size_path(1)


def pad_headers(count, size=20):
    return [(f"X-Pad-{i}", "v" * size) for i in range(count)]


def expect_rejected(srv, data, statuses, what):
    with srv.connect() as c:
        try:
            c.send(data)
        except kt.Closed:
            pass  # the server may stop reading early; its answer is still due
        try:
            r = c.read_response()
        except kt.Closed as e:
            raise AssertionError(f"{what}: no response ({e}); a server that closes with "
                                 f"unread input resets the connection and loses its answer")
        kt.assert_bad_request_closes(c, r, statuses, what)
    kt.assert_serves(srv)


def expect_ok(srv, data, what):
    with srv.connect() as c:
        r = c.exchange(data)
        assert r.status == 200 and r.body == srv.site.files[OK_PATH], f"{what}: {r.status}, want 200"


def test_head_too_large_431():
    with kt.Server(kt.site()) as srv:
        # small URI, 20 KiB of headers in a few fields
        data = kt.request(OK_PATH, headers=pad_headers(4, 5000))
        expect_rejected(srv, data, 431, "20 KiB request head")


def test_head_just_under_limit_ok():
    with kt.Server(kt.site()) as srv:
        data = kt.request(OK_PATH, headers=pad_headers(3, 5000))   # about 15.1 KiB
        assert len(data) < 16384 - 200
        expect_ok(srv, data, f"{len(data)}-byte request head")


def test_too_many_headers_431():
    with kt.Server(kt.site()) as srv:
        data = kt.request(OK_PATH, headers=pad_headers(100))   # + Host = 101 fields
        expect_rejected(srv, data, 431, "101 header fields")


def test_100_headers_ok():
    with kt.Server(kt.site()) as srv:
        expect_ok(srv, kt.request(OK_PATH, headers=pad_headers(99)), "100 header fields")


def uri_of_length(n):
    base = OK_PATH + "?"
    return base + "q" * (n - len(base))


def test_uri_too_long_414():
    with kt.Server(kt.site()) as srv:
        expect_rejected(srv, kt.request(uri_of_length(9000)), 414, "9000-byte URI")
        expect_rejected(srv, kt.request("/" + "a" * 9000), 414, "9000-byte path")


def test_h2_path_past_max_uri_414():
    """max_uri holds for HTTP/2's :path as for HTTP/1.1's target (it was
    only under max_request_head); the connection goes on serving."""
    with kt.Server(kt.site(), max_uri=1024) as srv:
        r = kt.h2_get(srv, uri_of_length(1100))
        assert r.status == 414, f"h2 :path of 1100 bytes, max_uri = 1024: {r.status}"
        r = kt.h2_get(srv, uri_of_length(1024))
        assert r.status == 200, f"h2 :path of 1024 bytes, max_uri = 1024: {r.status}"
        kt.assert_serves(srv)


def test_uri_8000_ok():
    with kt.Server(kt.site()) as srv:
        expect_ok(srv, kt.request(uri_of_length(8000)), "8000-byte URI")


def test_uri_and_headers_too_large():
    """An 8000-byte URI plus 9 KiB of headers crosses the head limit: 431 or 414."""
    with kt.Server(kt.site()) as srv:
        data = kt.request(uri_of_length(8000), headers=pad_headers(2, 4600))
        expect_rejected(srv, data, (431, 414), "8000-byte URI + 9 KiB headers")


def test_limits_configurable():
    with kt.Server(kt.site(), max_headers=10, max_uri=1024, max_request_head=4096) as srv:
        expect_ok(srv, kt.request(OK_PATH, headers=pad_headers(9)), "10 fields, max_headers = 10")
        expect_rejected(srv, kt.request(OK_PATH, headers=pad_headers(10)), 431,
                        "11 fields, max_headers = 10")
        expect_rejected(srv, kt.request(uri_of_length(1100)), 414, "1100-byte URI, max_uri = 1024")
        expect_rejected(srv, kt.request(OK_PATH, headers=pad_headers(2, 2500)), 431,
                        "5 KiB head, max_request_head = 4096")


def test_target_past_64k_not_cut_short():
    """max_uri may be up to 1 MiB, but http_parser_parse_url keeps offsets and
    lengths in 16 bits: a target past 65,535 bytes that the router leaves to
    it (absolute form, a byte outside printable ASCII) came back with its
    path cut to the length modulo 65,536, and another file was served
    (/size_1.bin + 65,536 more bytes named /size_1.bin). Such a target is
    refused with 414; the origin-form ASCII one the router splits itself is
    looked up whole (404: no such file)."""
    with kt.Server(kt.site(), max_uri=200000, max_request_head=300000) as srv:
        for target, what in (
                (b"https://a.test" + OK_PATH.encode() + b"a" * 65536, "absolute form"),
                (OK_PATH.encode() + b"\xc3\xa9" * 32768, "UTF-8 path")):
            what = f"{what}, {len(target)} bytes, max_uri = 200000"
            expect_rejected(srv, b"GET " + target + b" HTTP/1.1\r\nHost: a.test\r\n\r\n",
                            414, what)
        with srv.connect() as c:
            r = c.exchange(kt.request(OK_PATH + "a" * 65536))
            assert r.status == 404, f"origin-form ASCII, 65547 bytes: {r.status}, want 404"
        # HTTP/2's :path goes through the same router (mostly 'a': HPACK's
        # Huffman code keeps the field under nghttp2's 64 KiB a field)
        for path, want in ((OK_PATH + "\u00e9" + "a" * 65534, 414), (OK_PATH + "a" * 65536, 404)):
            r = kt.h2_get(srv, path)
            assert r.status == want, f"h2 :path of {len(path.encode())} bytes: {r.status}, want {want}"
        kt.assert_serves(srv)


def raw(*lines, body=b""):
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_content_length_and_transfer_encoding_400():
    with kt.Server(kt.site()) as srv:
        data = raw(f"GET {OK_PATH} HTTP/1.1", "Host: a.test", "Content-Length: 5",
                   "Transfer-Encoding: chunked", body=b"0\r\n\r\n")
        expect_rejected(srv, data, 400, "Content-Length + Transfer-Encoding")


def test_two_content_lengths_400():
    with kt.Server(kt.site()) as srv:
        data = raw(f"GET {OK_PATH} HTTP/1.1", "Host: a.test", "Content-Length: 5",
                   "Content-Length: 6", body=b"123456")
        expect_rejected(srv, data, 400, "two different Content-Length")
        data = raw(f"GET {OK_PATH} HTTP/1.1", "Host: a.test", "Content-Length: 5, 6",
                   body=b"123456")
        expect_rejected(srv, data, 400, "Content-Length: 5, 6")


def test_bad_content_length_400():
    with kt.Server(kt.site()) as srv:
        for value in ("-1", "abc", "+5", "0x10"):
            data = raw(f"GET {OK_PATH} HTTP/1.1", "Host: a.test", f"Content-Length: {value}")
            expect_rejected(srv, data, 400, f"Content-Length: {value}")


def test_obs_fold_400():
    with kt.Server(kt.site()) as srv:
        data = raw(f"GET {OK_PATH} HTTP/1.1", "Host: a.test", "X-Folded: one", " two")
        expect_rejected(srv, data, 400, "obs-fold header line")
        data = raw(f"GET {OK_PATH} HTTP/1.1", "Host: a.test", "X-Folded: one", "\ttwo")
        expect_rejected(srv, data, 400, "obs-fold header line (tab)")


def test_bare_lf_400():
    with kt.Server(kt.site()) as srv:
        data = f"GET {OK_PATH} HTTP/1.1\nHost: a.test\n\n".encode()
        expect_rejected(srv, data, 400, "bare LF line endings")
        data = f"GET {OK_PATH} HTTP/1.1\r\nHost: a.test\nX-A: b\r\n\r\n".encode()
        expect_rejected(srv, data, 400, "one bare LF among CRLFs")


def test_space_before_colon_400():
    with kt.Server(kt.site()) as srv:
        data = raw(f"GET {OK_PATH} HTTP/1.1", "Host: a.test", "X-A : b")
        expect_rejected(srv, data, 400, "whitespace between field name and colon")


def assert_no_hidden_response(srv, data, what):
    """data is one request whose body holds a second one. The hidden request
    must not be answered: after the first response the connection closes, or
    the next response answers our next real request."""
    with srv.connect() as c:
        c.send(data)
        r = c.read_response()
        assert r.status in (200, 400, 411, 413), f"{what}: first response {r.status}"
        if c.wait_closed(0.7):
            assert b"HTTP/1.1" not in c.buf, f"{what}: the hidden request got a response"
        else:
            assert not c.buf, f"{what}: unexpected bytes after the first response: {c.buf[:80]!r}"
            try:
                r2 = c.exchange(kt.request(kt.size_path(0)))
            except kt.Closed:
                return
            assert r2.get("content-length") == "0" and r2.body == b"", \
                f"{what}: the response to our next request is not size_0.bin: {r2}" \
                f" (the hidden request was answered)"
    kt.assert_serves(srv)


def test_smuggled_request_in_body():
    hidden = kt.request("/index.html")
    with kt.Server(kt.site()) as srv:
        data = raw(f"GET {OK_PATH} HTTP/1.1", "Host: a.test",
                   f"Content-Length: {len(hidden)}", body=hidden)
        assert_no_hidden_response(srv, data, "GET with a Content-Length body")
        chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(hidden), hidden)
        data = raw(f"GET {OK_PATH} HTTP/1.1", "Host: a.test", "Transfer-Encoding: chunked",
                   body=chunk)
        assert_no_hidden_response(srv, data, "GET with a chunked body")


def test_unknown_transfer_encoding():
    with kt.Server(kt.site()) as srv:
        data = raw(f"GET {OK_PATH} HTTP/1.1", "Host: a.test", "Transfer-Encoding: gzip",
                   body=b"xxxx")
        expect_rejected(srv, data, (400, 501), "Transfer-Encoding: gzip")


def test_control_bytes_in_field_value_400():
    """RFC 9110 5.5: a field value holds no control byte but HTAB."""
    with kt.Server(kt.site()) as srv:
        for bad in ("a\x01b", "a\x7fb", "a\x1bb"):
            data = raw(f"GET {OK_PATH} HTTP/1.1", "Host: a.test", f"X-A: {bad}")
            expect_rejected(srv, data, 400, f"field value {bad!r}")
        with srv.connect() as c:  # a tab is fine
            r = c.exchange(raw(f"GET {OK_PATH} HTTP/1.1", "Host: a.test", "X-A: a\tb"))
            assert r.status == 200, f"HTAB in a field value: {r.status}"
