"""HTTP/2: ALPN, real clients (nghttp, curl --http2, h2load), python h2 streams,
the request semantics over h2 (HEAD, conditionals, Range, errors, 421) and the
access log. Adversarial framing and GOAWAY are in test_http2_protect.py."""

import re
import shutil
import subprocess

import kt

H2_TIMEOUT = 20     # seconds, any one client process

# bytes at the end of the sparse 5 GiB file: the last 1000 bytes, and a range
# that starts in the hole and ends in the known tail
BIG_RANGES = ((kt.BIG_SIZE - 1000, kt.BIG_SIZE - 1),
              (kt.BIG_SIZE - kt.BIG_TAIL - 100, kt.BIG_SIZE - kt.BIG_TAIL + 4999))


def big_expected(site, lo, hi):
    start = kt.BIG_SIZE - kt.BIG_TAIL
    out = b""
    if lo < start:
        out += b"\0" * (min(hi + 1, start) - lo)
    if hi >= start:
        out += site.big_tail[max(lo, start) - start:hi + 1 - start]
    return out


def need(tool):
    if shutil.which(tool) is None:
        raise kt.Skip(f"{tool} not installed (nghttp2-client)")


def nghttp(srv, path, *args, authority="a.test"):
    """nghttp to 127.0.0.1 (no SNI: the listener's default, a.test); returns
    (returncode, stdout bytes: the body, stderr text)."""
    need("nghttp")
    cmd = ["nghttp", "-t", str(H2_TIMEOUT), "-H", f":authority: {authority}", *args,
           f"https://127.0.0.1:{srv.port}{path}"]
    p = subprocess.run(cmd, capture_output=True, timeout=H2_TIMEOUT + 5)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def curl2(srv, path, *args, **kw):
    """curl --http2 (the later --http2 wins over kt.curl's --http1.1)."""
    r = kt.curl(srv, path, "--http2", *args, **kw)
    if r.status:
        assert r.version == "HTTP/2", f"curl --http2 {path}: got {r.version}, not HTTP/2"
    return r


# ---------------------------------------------------------------- ALPN

def test_alpn_selects_h2():
    with kt.Server(kt.site()) as srv:
        for servername in ("a.test", "b.test", None):
            with kt.tls_socket(srv.port, servername, alpn=["h2", "http/1.1"]) as s:
                assert s.selected_alpn_protocol() == "h2", \
                    f"SNI {servername}: offered h2,http/1.1, server chose {s.selected_alpn_protocol()!r}"
        with kt.tls_socket(srv.port, "a.test", alpn=["http/1.1", "h2"]) as s:
            assert s.selected_alpn_protocol() == "h2", \
                f"offered http/1.1,h2: server chose {s.selected_alpn_protocol()!r} (README: h2 preferred)"
        with kt.tls_socket(srv.port, "a.test", alpn=["http/1.1"]) as s:
            assert s.selected_alpn_protocol() == "http/1.1", "offered only http/1.1"
            r = kt.raw_request(s, kt.request(kt.size_path(1)))
            assert r.status == 200 and r.version == "HTTP/1.1", f"http/1.1 after ALPN: {r}"
        r = curl2(srv, kt.size_path(16385))
        assert r.status == 200 and r.body == srv.site.files[kt.size_path(16385)], f"curl --http2: {r}"
        r = kt.curl(srv, kt.size_path(1))          # --http1.1
        assert r.status == 200 and r.version == "HTTP/1.1", f"curl --http1.1: {r.version}"


def test_alpn_http2_off_per_server():
    with kt.Server(kt.site(), vhost_a={"http2": False}) as srv:
        for servername in ("a.test", "www.a.test", None):   # None: default server a.test
            with kt.tls_socket(srv.port, servername, alpn=["h2", "http/1.1"]) as s:
                assert s.selected_alpn_protocol() == "http/1.1", \
                    f"http2 = false, SNI {servername}: server chose {s.selected_alpn_protocol()!r}"
                r = kt.raw_request(s, kt.request(kt.size_path(1)))
                assert r.status == 200, f"http/1.1 on an http2 = false server: {r}"
        # the other server on the same listener keeps h2
        with kt.tls_socket(srv.port, "b.test", alpn=["h2", "http/1.1"]) as s:
            assert s.selected_alpn_protocol() == "h2", \
                f"b.test (http2 default true) on the same listener: {s.selected_alpn_protocol()!r}"
        r = kt.curl(srv, "/index.html", "--http2")
        assert r.status == 200 and r.version == "HTTP/1.1", \
            f"curl --http2 against http2 = false: {r.version} {r.status}"


# ---------------------------------------------------------------- real clients

def test_nghttp_fetches_files():
    site = kt.site()
    with kt.Server(site) as srv:
        for n in kt.SIZES:
            path = kt.size_path(n)
            rc, body, err = nghttp(srv, path)
            assert rc == 0, f"nghttp {path}: rc {rc}: {err[-300:]}"
            assert len(body) == n and kt.sha256(body) == kt.sha256(site.files[path]), \
                f"nghttp {path}: {len(body)} bytes, sha256 differs (expected {n})"
        for lo, hi in BIG_RANGES:
            rc, body, err = nghttp(srv, "/big-5g.bin", "-H", f"range: bytes={lo}-{hi}")
            assert rc == 0, f"nghttp range {lo}-{hi}: rc {rc}: {err[-300:]}"
            assert kt.sha256(body) == kt.sha256(big_expected(site, lo, hi)), \
                f"nghttp big-5g.bin bytes={lo}-{hi}: {len(body)} bytes, content differs"
        # several streams on one nghttp connection, -v shows the statuses
        urls = [f"https://127.0.0.1:{srv.port}{kt.size_path(n)}" for n in kt.SIZES]
        p = subprocess.run(["nghttp", "-t", str(H2_TIMEOUT), "-n", "-v", "-H", ":authority: a.test",
                            *urls], capture_output=True, timeout=H2_TIMEOUT + 5)
        out = p.stdout.decode(errors="replace")
        statuses = re.findall(r"recv \(stream_id=\d+\) :status: (\d+)", out)
        assert p.returncode == 0 and statuses == ["200"] * len(urls), \
            f"nghttp {len(urls)} URIs on one connection: rc {p.returncode}, statuses {statuses}"
        assert srv.alive()


def test_curl_http2_fetches_files():
    site = kt.site()
    with kt.Server(site) as srv:
        for n in kt.SIZES:
            path = kt.size_path(n)
            r = curl2(srv, path)
            assert r.status == 200 and r.get("content-length") == str(n), f"curl --http2 {path}: {r} {r.headers}"
            assert kt.sha256(r.body) == kt.sha256(site.files[path]), f"curl --http2 {path}: body differs"
        for lo, hi in BIG_RANGES:
            r = curl2(srv, "/big-5g.bin", "-r", f"{lo}-{hi}")
            assert r.status == 206, f"curl --http2 -r {lo}-{hi}: {r.status}"
            assert r.get("content-range") == f"bytes {lo}-{hi}/{kt.BIG_SIZE}", r.headers
            assert kt.sha256(r.body) == kt.sha256(big_expected(site, lo, hi)), \
                f"curl --http2 big-5g.bin {lo}-{hi}: content differs"
        r = curl2(srv, "/big-5g.bin", "-I")
        assert r.status == 200 and r.get("content-length") == str(kt.BIG_SIZE), f"HEAD big: {r.headers}"
        # :authority naming the other server on an a.test connection
        r = curl2(srv, "/index.html", "-H", "Host: b.test")
        assert r.status == 421, f"curl --http2 SNI a.test, :authority b.test: {r.status}"


def h2load(srv, path, *args):
    need("h2load")
    cmd = ["h2load", *args, f"https://127.0.0.1:{srv.port}{path}"]
    p = subprocess.run(cmd, capture_output=True, timeout=H2_TIMEOUT + 10)
    out = p.stdout.decode(errors="replace")
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    c = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    assert m and c, f"h2load {' '.join(args)}: no summary (rc {p.returncode}): {out[-500:]} {p.stderr[-300:]!r}"
    proto = re.search(r"Application protocol: (\S+)", out)
    assert proto and proto.group(1) == "h2", f"h2load did not negotiate h2: {proto and proto.group(1)}"
    return [int(x) for x in m.groups()], [int(x) for x in c.groups()], p.returncode


def test_h2load_many_streams():
    with kt.Server(kt.site()) as srv:
        reqs, codes, rc = h2load(srv, kt.size_path(1), "-n", "2000", "-c", "8", "-m", "32")
        assert reqs == [2000, 2000, 2000, 2000, 0, 0, 0], f"h2load small file: requests {reqs}"
        assert codes == [2000, 0, 0, 0], f"h2load small file: status codes {codes}"
        reqs, codes, rc = h2load(srv, kt.size_path(1 << 20), "-n", "24", "-c", "3", "-m", "8")
        assert reqs == [24, 24, 24, 24, 0, 0, 0], f"h2load 1 MiB: requests {reqs}"
        assert codes == [24, 0, 0, 0], f"h2load 1 MiB: status codes {codes}"
        assert srv.alive()
        kt.assert_serves_h2(srv)


# ---------------------------------------------------------------- python h2

def test_many_concurrent_streams_one_connection():
    site = kt.site()
    paths = [kt.size_path(n) for n in kt.SIZES]
    with kt.Server(site) as srv, kt.H2Client(srv.port) as c:
        c.wait(lambda: kt.H2_SETTINGS_MAX_CONCURRENT_STREAMS in c.server_settings, 2)
        assert c.server_settings.get(kt.H2_SETTINGS_MAX_CONCURRENT_STREAMS) == 100, \
            f"server SETTINGS: {c.server_settings} (http2_max_streams default 100)"
        # 90 streams at once, two of them 1 MiB, all on one connection
        small = [p for p in paths if p != kt.size_path(1 << 20)]
        want = [small[i % len(small)] for i in range(88)]
        want[10:10] = [kt.size_path(1 << 20)]
        want[60:60] = [kt.size_path(1 << 20)]
        sids = [c.request(p) for p in want]
        rs = c.finish(sids, timeout=20)
        bad = [(p, r) for p, r in zip(want, rs)
               if r.status != 200 or r.body != site.files[p] or not r.ended]
        assert not bad, f"{len(bad)} of {len(sids)} streams wrong, e.g. {bad[:3]}"
        assert c.goaway is None and not c.closed, f"connection ended: goaway {c.goaway}"
        # and the connection is still good for another round
        r = c.get(kt.size_path(16384))
        assert r.status == 200 and r.body == site.files[kt.size_path(16384)], r


def test_parallel_large_bodies_exact():
    """issue 13: in userspace TLS the payloads of a stream's next DATA frames
    are read ahead with one preadv, used only where the frames land as
    predicted. Bodies must stay byte-exact when streams interleave, windows
    cut frames short, and small responses and ranges come in between."""
    site = kt.site()
    big = kt.size_path(1 << 20)
    with kt.Server(site, open_file_cache=1000) as srv:
        for settings in (None, {kt.H2_SETTINGS_INITIAL_WINDOW_SIZE: 40000}):
            with kt.H2Client(srv.port, settings=settings) as c:
                want = [big, kt.size_path(16385), big, kt.size_path(1), big, big]
                sids = [c.request(p) for p in want]
                rng = c.request(big, headers=[("range", "bytes=5000-300000")])
                # incremental (RFC 9218): nghttp2 takes turns, frame by frame
                inc = [c.request(p, headers=[("priority", "u=2, i")])
                       for p in (big, big, kt.size_path(16385))]
                want += [big, big, kt.size_path(16385)]
                sids += inc
                rs = c.finish(sids + [rng], timeout=30)
                bad = [(p, r) for p, r in zip(want, rs)
                       if r.status != 200 or r.body != site.files[p] or not r.ended]
                assert not bad, f"{len(bad)} of {len(sids)} streams wrong ({settings}): {bad[:2]}"
                r = rs[-1]
                assert r.status == 206 and r.body == site.files[big][5000:300001], \
                    f"range ({settings}): {r.status}, {len(r.body)} bytes"


def test_head_sends_no_data():
    site = kt.site()
    with kt.Server(site) as srv, kt.H2Raw(srv.port) as c:
        paths = [kt.size_path(0), kt.size_path(16385), kt.size_path(1 << 20), "/big-5g.bin"]
        c.send(b"".join(c.headers(2 * i + 1, p, method="HEAD") for i, p in enumerate(paths)))
        c.collect(lambda c: len(c.of_type("HeadersFrame")) == len(paths), 5)
        for i, p in enumerate(paths):
            sid = 2 * i + 1
            hf = c.of_type("HeadersFrame", sid)
            assert hf, f"HEAD {p}: no response (frames {c.frames})"
            h = dict(hf[0].decoded)
            size = kt.BIG_SIZE if p == "/big-5g.bin" else len(site.files[p])
            assert h[":status"] == "200" and h.get("content-length") == str(size), f"HEAD {p}: {h}"
            assert "END_STREAM" in hf[0].flags, f"HEAD {p}: HEADERS without END_STREAM"
        c.collect(None, 0.3)
        data = c.of_type("DataFrame")
        assert not data, f"HEAD: DATA frames sent: {[(f.stream_id, len(f.data)) for f in data]}"


def test_request_semantics_over_h2():
    site = kt.site()
    path = kt.size_path(16385)
    data = site.files[path]
    with kt.Server(site) as srv, kt.H2Client(srv.port) as c:
        r = c.get(path)
        assert r.status == 200 and r.body == data
        etag, lm = r.get("etag"), r.get("last-modified")
        assert etag and lm, f"no ETag/Last-Modified: {r.headers}"

        r = c.get(path, headers=[("if-none-match", etag)])
        assert r.status == 304 and r.body == b"" and r.data_frames == 0, f"If-None-Match: {r}"
        assert r.get("etag") == etag, f"304 without the ETag: {r.headers}"
        r = c.get(path, headers=[("if-modified-since", lm)])
        assert r.status == 304 and r.body == b"", f"If-Modified-Since: {r}"
        r = c.get(path, headers=[("if-none-match", '"other"')])
        assert r.status == 200 and r.body == data, f"non-matching If-None-Match: {r}"

        r = c.get(path, headers=[("range", "bytes=100-16384")])
        assert r.status == 206 and r.body == data[100:], f"Range: {r}"
        assert r.get("content-range") == "bytes 100-16384/16385", r.headers
        assert r.get("content-length") == str(16385 - 100), r.headers
        r = c.get(path, headers=[("range", "bytes=-10")])
        assert r.status == 206 and r.body == data[-10:], f"suffix Range: {r}"
        r = c.get(path, headers=[("range", "bytes=16385-")])
        assert r.status == 416 and r.get("content-range") == "bytes */16385", f"416: {r} {r.headers}"
        r = c.get(path, headers=[("range", "bytes=0-9"), ("if-range", '"stale"')])
        assert r.status == 200 and r.body == data, f"If-Range mismatch must send all: {r}"

        r = c.get("/no-such-file")
        assert r.status == 404 and r.get("content-length") == str(len(r.body)), f"404: {r}"
        r = c.get("/.secret")
        assert r.status == 403 and b"dotfile" not in r.body, f"dotfile: {r}"
        r = c.get("/sub")
        assert r.status == 301 and (r.get("location") or "").endswith("/sub/"), f"301: {r} {r.headers}"
        r = c.get("/sub/")
        assert r.status == 200 and r.body == site.files["/sub/index.html"], f"index: {r}"
        r = c.get("/index.html", method="POST")
        assert r.status == 405 and "GET" in (r.get("allow") or ""), f"POST: {r} {r.headers}"
        r = c.get("/../outside-secret.txt")
        assert r.status in (400, 404) and site.marker.encode() not in r.body, f"climb: {r}"

        r = c.get("/cached/c.txt")
        assert r.status == 200 and r.get("cache-control") == "max-age=60" and r.get("expires"), \
            f"location headers over h2: {r.headers}"
        for name in ("connection", "keep-alive", "transfer-encoding"):
            assert name not in r.headers, f"connection-specific header {name} in an h2 response"
        assert c.goaway is None and not c.closed, "connection ended during the checks"


def test_authority_other_server_421():
    site = kt.site()
    with kt.Server(site) as srv:
        with kt.H2Client(srv.port, "a.test") as c:
            r = c.get("/index.html", authority="b.test")
            assert r.status == 421, f"SNI a.test, :authority b.test: {r.status}"
            assert site.b_index not in r.body, "421 carried b.test content"
            r = c.get("/index.html", authority=f"B.TEST:{srv.port}")
            assert r.status == 421, f":authority B.TEST:port: {r.status}"
            for auth in ("a.test", f"www.a.test:{srv.port}", "unknown.example"):
                r = c.get("/index.html", authority=auth)
                assert r.status == 200 and r.body == site.files["/index.html"], f":authority {auth}: {r}"
            # no :authority, a host header instead
            sid = c.h2.get_next_available_stream_id()
            c.h2.send_headers(sid, [(":method", "GET"), (":scheme", "https"), (":path", "/index.html"),
                                    ("host", "b.test")], end_stream=True)
            c.streams[sid] = kt.H2Response(sid)
            c.flush()
            r = c.finish([sid])[0]
            assert r.status == 421, f"host: b.test without :authority: {r}"
        with kt.H2Client(srv.port, "b.test") as c:
            r = c.get("/index.html", authority="b.test")
            assert r.status == 200 and r.body == site.b_index, f"b.test itself: {r}"
            r = c.get("/index.html", authority="a.test")
            assert r.status == 421, f"SNI b.test, :authority a.test: {r.status}"


def test_access_log_says_http2():
    with kt.Server(kt.site()) as srv:
        with kt.H2Client(srv.port) as c:
            assert c.get(kt.size_path(16384)).status == 200
            assert c.get("/no-such-file").status == 404
            assert c.get(kt.size_path(1), method="HEAD").status == 200
        lines = srv.wait_access_lines(3)
        assert len(lines) >= 3, f"access log: {lines}"
        want = [('"GET /size_16384.bin HTTP/2.0" 200 16384', "16384 body bytes"),
                ('"GET /no-such-file HTTP/2.0" 404', "404"),
                ('"HEAD /size_1.bin HTTP/2.0" 200 0', "HEAD, 0 bytes sent")]
        for needle, what in want:
            assert any(needle in ln for ln in lines), f"access log lacks {what} ({needle!r}): {lines}"
