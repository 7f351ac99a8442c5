"""PROXY protocol v1/v2 on listeners marked `proxy`, TLS and plain: the
client address from the header reaches the access log and allow lists;
split headers work; malformed or slow headers are refused."""

import ipaddress
import os
import select
import socket
import ssl
import struct
import time

import kt

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, dst="192.0.2.1", sport=40000, dport=443):
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src=None, dst=None, sport=40000, dport=443, cmd=0x1, tlv=b"", length=None, ver=0x2):
    if src is None:
        fam, addr = 0x00, b""
    elif ":" in src:
        fam = 0x21
        addr = ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst or "2001:db8::1").packed \
            + struct.pack("!HH", sport, dport)
    else:
        fam = 0x11
        addr = ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst or "192.0.2.1").packed \
            + struct.pack("!HH", sport, dport)
    body = addr + tlv
    return V2_SIG + bytes([(ver << 4) | cmd, fam]) + struct.pack("!H", len(body) if length is None else length) + body


def _raw(port):
    s = socket.create_connection(("127.0.0.1", port), kt.IO_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _send_pieces(sock, data, pieces=1, pause=0.0):
    step = max(1, -(-len(data) // pieces))
    for i in range(0, len(data), step):
        sock.sendall(data[i:i + step])
        if pause and i + step < len(data):
            time.sleep(pause)


def tls_via_proxy(port, header, path="/index.html", pieces=1, pause=0.0, with_hello=False):
    """Send header (maybe in pieces), then TLS and one GET; a Response."""
    sock = _raw(port)
    try:
        if with_hello:
            return _bio_request(sock, header, path)
        _send_pieces(sock, header, pieces, pause)
        tls = kt.client_context().wrap_socket(sock, server_hostname="a.test")
        with kt.Conn(tls) as c:
            return c.exchange(kt.request(path))
    finally:
        sock.close()


def _bio_request(sock, header, path):
    """The header and the ClientHello in one segment (MemoryBIO client)."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = kt.client_context().wrap_bio(inc, out, server_hostname="a.test")
    first = True
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            data = out.read()
            sock.sendall((header if first else b"") + data)
            first = False
            got = sock.recv(65536)
            assert got, "closed during the handshake"
            inc.write(got)
    obj.write(kt.request(path))
    sock.sendall(out.read())
    buf = b""
    while b"\r\n\r\n" not in buf:
        try:
            buf += obj.read(65536)
        except ssl.SSLWantReadError:
            sock.sendall(out.read())
            got = sock.recv(65536)
            assert got, "closed before the response"
            inc.write(got)
    return kt.parse_head(buf.split(b"\r\n\r\n")[0])


def plain_via_proxy(port, header, path="/index.html", pieces=1, pause=0.0):
    with _raw(port) as sock:
        _send_pieces(sock, header, pieces, pause)
        with kt.Conn(sock) as c:
            return c.exchange(kt.request(path))


def refused(port, data, tls, timeout=3):
    """Send data (then a ClientHello or a request): the server closes and
    answers nothing. Returns a reason string when it does not."""
    sock = _raw(port)
    try:
        sock.sendall(data)
        if tls:
            try:
                t = kt.client_context().wrap_socket(sock, server_hostname="a.test",
                                                    do_handshake_on_connect=False)
                t.settimeout(timeout)
                t.do_handshake()
            except (ssl.SSLError, OSError) as e:
                if isinstance(e, socket.timeout):
                    return "handshake neither finished nor was refused"
                return None
            return "the TLS handshake completed"
        try:
            sock.sendall(kt.request("/index.html"))
        except OSError:
            return None
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([sock], [], [], deadline - time.monotonic())
            if not r:
                continue
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return f"answered {got[:60]!r}" if got else None
            got += chunk
        return f"not closed within {timeout}s (got {got[:60]!r})"
    finally:
        sock.close()


def _server(**opts):
    site = kt.site()
    root = site.new_root("edge-proxy")
    for rel, data in (("index.html", b"proxy index\n"), ("allowed/x.txt", b"allowed file\n")):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    ptls, pplain = kt.free_port(), kt.free_port()
    srv = kt.Server(site, vhost_a=dict(root=str(root)),
                    listen_a=[f"127.0.0.1:{ptls} tls proxy", f"127.0.0.1:{pplain} proxy"],
                    locations={"/allowed/": {"allow": ["203.0.113.0/24"]}}, **opts)
    return srv, ptls, pplain


def _last_client(srv, n):
    lines = srv.wait_access_lines(n)
    assert len(lines) >= n, f"access log has {len(lines)} lines, want {n}"
    return lines[n - 1].split()[0]


def test_proxy_headers_name_the_client():
    srv, ptls, pplain = _server()
    with srv:
        cases = [
            ("v1 TCP4", v1("192.0.2.10"), "192.0.2.10"),
            ("v1 TCP6", v1("2001:db8::7", "2001:db8::1"), "2001:db8::7"),
            ("v1 UNKNOWN", b"PROXY UNKNOWN\r\n", "127.0.0.1"),
            ("v2 IPv4", v2("198.18.0.5"), "198.18.0.5"),
            ("v2 IPv6", v2("2001:db8:ffff::42", "2001:db8::1"), "2001:db8:ffff::42"),
            ("v2 IPv4 + TLVs", v2("198.18.0.6", tlv=b"\x04\x00\x03abc" + b"\x20\x00\x05\x01\x00\x00\x00\x00"),
             "198.18.0.6"),
            ("v2 LOCAL", v2(cmd=0x0), "127.0.0.1"),
        ]
        n = 0
        for what, header, client in cases:
            for port, via in ((ptls, "tls"), (pplain, "plain")):
                r = tls_via_proxy(port, header) if via == "tls" else plain_via_proxy(port, header)
                assert r.status == 200 and r.body == b"proxy index\n", f"{what} ({via}): {r.status}"
                n += 1
                got = _last_client(srv, n)
                assert got == client, f"{what} ({via}): access log client {got!r}, want {client!r}"
        # header and ClientHello in one segment: nothing past the header is eaten
        r = tls_via_proxy(ptls, v1("192.0.2.77"), with_hello=True)
        assert r.status == 200, f"header + ClientHello in one segment: {r.status}"
        n += 1
        assert _last_client(srv, n) == "192.0.2.77"
        # header and request in one segment (plain)
        with _raw(pplain) as sock, kt.Conn(sock) as c:
            r = c.exchange(v1("192.0.2.78") + kt.request("/index.html"))
            assert r.status == 200, f"plain: header + request in one segment: {r.status}"
        n += 1
        assert _last_client(srv, n) == "192.0.2.78"
        # split across segments with pauses
        for what, header in (("v1", v1("192.0.2.91")), ("v2", v2("192.0.2.92"))):
            r = tls_via_proxy(ptls, header, pieces=4, pause=0.1)
            assert r.status == 200, f"{what} split, tls: {r.status}"
            n += 1
            assert _last_client(srv, n) == ("192.0.2.91" if what == "v1" else "192.0.2.92"), what
            r = plain_via_proxy(pplain, header, pieces=len(header), pause=0.01)
            assert r.status == 200, f"{what} byte by byte, plain: {r.status}"
            n += 1
        # the listener without proxy still takes plain TLS
        assert srv.get("/index.html").status == 200
        n += 1
        assert _last_client(srv, n) == "127.0.0.1"


def test_proxy_malformed_refused():
    srv, ptls, pplain = _server()
    with srv:
        bad = [
            ("bad signature", b"PROXX TCP4 192.0.2.1 192.0.2.2 1 2\r\n"),
            ("v1 lowercase", b"proxy TCP4 192.0.2.1 192.0.2.2 1 2\r\n"),
            ("v1 no CRLF in 107 bytes", b"PROXY TCP4 " + b"1" * 120),
            ("v1 LF only", b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n"),
            ("v1 bad address", b"PROXY TCP4 999.0.2.1 192.0.2.2 1 2\r\n"),
            ("v1 IPv6 in TCP4", b"PROXY TCP4 2001:db8::1 192.0.2.2 1 2\r\n"),
            ("v1 bad port", b"PROXY TCP4 192.0.2.1 192.0.2.2 70000 2\r\n"),
            ("v1 missing field", b"PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n"),
            ("v1 trailing junk", b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2 x\r\n"),
            ("v1 bad protocol", b"PROXY UDP4 192.0.2.1 192.0.2.2 1 2\r\n"),
            ("v2 huge length", v2("192.0.2.1", length=0xFFFF)),
            ("v2 version 1", v2("192.0.2.1", ver=0x1)),
            ("v2 bad command", v2("192.0.2.1", cmd=0x5)),
            ("v2 UDP", v2("192.0.2.1")[:13] + b"\x12" + v2("192.0.2.1")[14:]),
            ("v2 IPv4 too short", v2("192.0.2.1")[:14] + b"\x00\x04" + b"\xc0\x00\x02\x01"),
        ]
        for what, data in bad:
            for port, tls in ((ptls, True), (pplain, False)):
                why = refused(port, data, tls)
                assert why is None, f"{what} ({'tls' if tls else 'plain'}): {why}"
        # no header at all
        why = refused(pplain, b"", tls=False)
        assert why is None, f"plain HTTP without a PROXY header: {why}"
        why = refused(ptls, b"", tls=True)
        assert why is None, f"TLS without a PROXY header: {why}"
        assert srv.alive(), "server died"
        assert srv.get("/index.html").status == 200, "server no longer serves"
        assert tls_via_proxy(ptls, v1("192.0.2.5")).status == 200, "a good header after the bad ones"


def test_proxy_slow_header_closed():
    srv, ptls, pplain = _server(handshake_timeout=1)
    with srv:
        header = v1("192.0.2.1")
        for port in (ptls, pplain):
            with _raw(port) as sock:
                t0 = time.monotonic()
                closed_at = None
                for b in header:
                    try:
                        sock.sendall(bytes([b]))
                    except OSError:
                        closed_at = time.monotonic()
                        break
                    r, _, _ = select.select([sock], [], [], 0.15)
                    if r:
                        try:
                            data = sock.recv(100)
                        except ConnectionResetError:
                            data = b""
                        assert data == b"", f"port {port}: answered {data!r} to a partial header"
                        closed_at = time.monotonic()
                        break
                assert closed_at is not None, \
                    f"port {port}: still open after trickling {len(header)}B for {time.monotonic() - t0:.1f}s"
                took = closed_at - t0
                assert 0.7 <= took <= 3, f"port {port}: closed after {took:.2f}s, handshake_timeout 1s"
        # a partial header, then silence
        with _raw(ptls) as sock:
            sock.sendall(b"PROXY TCP4 19")
            t0 = time.monotonic()
            r, _, _ = select.select([sock], [], [], 4)
            assert r, "partial header then silence: not closed within 4s"
            assert time.monotonic() - t0 <= 3, f"closed after {time.monotonic() - t0:.2f}s"
        # a prompt split header is fine with the same timeout
        assert tls_via_proxy(ptls, v1("192.0.2.2"), pieces=3, pause=0.1).status == 200


def test_proxy_allow_list_sees_proxy_address():
    srv, ptls, pplain = _server()
    with srv:
        for header, want in ((v1("203.0.113.9"), 200), (v1("198.51.100.1"), 403),
                             (v2("203.0.113.200"), 200), (v2("198.51.100.2"), 403),
                             (v2(cmd=0x0), 403), (v1("2001:db8::9", "2001:db8::1"), 403)):
            for port, via in ((ptls, "tls"), (pplain, "plain")):
                r = tls_via_proxy(port, header, "/allowed/x.txt") if via == "tls" else \
                    plain_via_proxy(port, header, "/allowed/x.txt")
                assert r.status == want, f"{header[:40]!r} ({via}): {r.status}, want {want}"
                if want == 200:
                    assert r.body == b"allowed file\n"
        # the real peer (127.0.0.1) is not in the list
        assert srv.get("/allowed/x.txt").status == 403, "direct client allowed"
        # HTTP/2 through the proxy listener
        sock = _raw(ptls)
        sock.sendall(v1("203.0.113.10"))
        tls = kt.client_context(alpn=["h2"]).wrap_socket(sock, server_hostname="a.test")
        assert tls.selected_alpn_protocol() == "h2"
        tls.close()
