#!/usr/bin/python3
"""Regenerate the seed corpora under tests/fuzz/corpus/ (run from anywhere).
Needs python3-hpack (Debian) for the HTTP/2 seeds."""
import os, struct
import hpack

HERE = os.path.dirname(os.path.abspath(__file__))


def w(t, name, data):
    d = os.path.join(HERE, "corpus", t)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("latin-1"))


H = "Host: a.test\r\n"
h1 = {
    "get": f"GET /a.txt HTTP/1.1\r\n{H}\r\n",
    "head": f"HEAD /big.bin HTTP/1.1\r\n{H}\r\n",
    "index": f"GET / HTTP/1.1\r\n{H}\r\n",
    "dir-redirect": f"GET /sub?x=1 HTTP/1.1\r\n{H}\r\n",
    "range": f"GET /big.bin HTTP/1.1\r\n{H}Range: bytes=100-199\r\n\r\n",
    "range-suffix": f"GET /big.bin HTTP/1.1\r\n{H}Range: bytes=-5\r\nIf-Range: \"x\"\r\n\r\n",
    "range-416": f"GET /a.txt HTTP/1.1\r\n{H}Range: bytes=1000-\r\n\r\n",
    "cond": f"GET /a.txt HTTP/1.1\r\n{H}If-None-Match: W/\"a\", \"b\"\r\n"
            "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
    "pipelined": f"GET /a.txt HTTP/1.1\r\n{H}\r\nGET /c/x.css HTTP/1.1\r\nHost: www.a.test\r\n\r\n"
                 f"HEAD /empty HTTP/1.1\r\n{H}\r\n",
    "http10": "GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
    "absolute": "GET http://b.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
    "hidden": f"GET /.hidden HTTP/1.1\r\n{H}\r\nGET /.well-known/t HTTP/1.1\r\n{H}\r\n",
    "dotdot": f"GET /sub/../%2e%2e/x HTTP/1.1\r\n{H}\r\nGET /%C3%A9/./a.txt HTTP/1.1\r\n{H}\r\n",
    "post-cl": f"POST /a.txt HTTP/1.1\r\n{H}Content-Length: 5\r\n\r\nhello",
    "chunked": f"GET /a.txt HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "te-cl": f"GET / HTTP/1.1\r\n{H}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "obs-fold": f"GET / HTTP/1.1\r\n{H}X: a\r\n b\r\n\r\n",
    "bare-lf": "GET / HTTP/1.1\nHost: a.test\n\n",
    "leading-crlf": f"\r\n\r\nGET / HTTP/1.1\r\n{H}Connection: close\r\n\r\n",
    "two-hosts": f"GET / HTTP/1.1\r\n{H}{H}\r\n",
    "many-headers": f"GET / HTTP/1.1\r\n{H}" + "".join(f"X-{i}: v\r\n" for i in range(25)) + "\r\n",
    "long-uri": "GET /" + "a" * 1100 + f" HTTP/1.1\r\n{H}\r\n",
    "version": f"GET / HTTP/2.0\r\n{H}\r\nGET / HTTP/1.1 \r\n{H}\r\n",
    "method": f"OPTIONS * HTTP/1.1\r\n{H}\r\nDELETE /a.txt HTTP/1.1\r\n{H}\r\n",
    "b-vhost": "GET / HTTP/1.1\r\nHost: B.TEST.:8443\r\n\r\n",
}
for k, v in h1.items():
    w("http1", k, v)


def frame(t, fl, sid, p):
    return struct.pack(">I", len(p))[1:] + bytes([t, fl]) + struct.pack(">I", sid) + p


PRE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SET, ACK = frame(4, 0, 0, b""), frame(4, 1, 0, b"")


def block(path, extra=(), method="GET"):
    return hpack.Encoder().encode([(":method", method), (":scheme", "https"), (":path", path),
                                   (":authority", "a.test")] + list(extra))


def hdrs(sid, path, extra=(), method="GET", flags=5):
    return frame(1, flags, sid, block(path, extra, method))


blk = block("/a.txt")
h2 = {
    "get": PRE + SET + ACK + hdrs(1, "/a.txt"),
    "big": PRE + SET + ACK + hdrs(1, "/big.bin") + hdrs(3, "/index.html"),
    "range": PRE + SET + hdrs(1, "/big.bin", [("range", "bytes=5-20000")]),
    "head-404": PRE + SET + hdrs(1, "/nope", method="HEAD") + hdrs(3, "/.hidden"),
    "window": PRE + frame(4, 0, 0, struct.pack(">HI", 4, 100)) + hdrs(1, "/big.bin")
              + frame(8, 0, 1, struct.pack(">I", 5000)) + frame(8, 0, 0, struct.pack(">I", 70000)),
    "rst": PRE + SET + hdrs(1, "/big.bin") + frame(3, 0, 1, struct.pack(">I", 8)) + hdrs(3, "/a.txt"),
    "continuation": PRE + SET + frame(1, 1, 1, blk[:5]) + frame(9, 4, 1, blk[5:]),
    "ping-goaway": PRE + SET + frame(6, 0, 0, b"12345678") + frame(7, 0, 0, struct.pack(">II", 0, 0)),
    "post-data": PRE + SET + hdrs(1, "/a.txt", method="POST", flags=4) + frame(0, 0, 1, b"abc")
                 + frame(0, 1, 1, b""),
    "empty-data": PRE + SET + hdrs(1, "/a.txt", flags=4) + frame(0, 0, 1, b"") * 5,
    "priority": PRE + SET + frame(2, 0, 1, struct.pack(">IB", 0, 16)) + hdrs(1, "/c/x.css"),
    "cond": PRE + SET + hdrs(1, "/a.txt", [("if-none-match", '"x"'),
                                           ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")]),
    "many": PRE + SET + b"".join(hdrs(i, "/a.txt") for i in range(1, 40, 2)),
    "bad-preface": b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
}
for k, v in h2.items():
    w("http2", k + "-user", b"\0" + v)   # first byte: writer (0 userspace, 1 kTLS)
    w("http2", k + "-ktls", b"\1" + v)

for i, (size, hdr) in enumerate([
        (1000, "bytes=0-99"), (1000, "bytes=-10"), (1000, "bytes=500-"), (1000, "bytes=2000-"),
        (0, "bytes=-1"), (1000, "bytes = 1-2 "), (1000, "bytes=1-2,5-6"),
        (1000, "bytes=99999999999999999999999-"), (1 << 40, "BYTES=0-18446744073709551615"),
        (1000, "items=0-1"), (1000, "bytes=5-1"), (1000, "bytes=0-0,-1"), (1000, "bytes=1-2, 3-4,,")]):
    w("range", f"r{i}", struct.pack("<Q", size * 2) + hdr.encode())  # low bit 0: size as given

for i, p in enumerate(["/", "/a/b/../c", "/%2e%2e/", "/a/%2E/b//c/", "/.well-known/acme/x",
                       "/a/.git/config", "/%C3%A9t%C3%A9", "/%c0%af", "/%00", "/a%2fb", "/..",
                       "/a/..", "/a/.", "/%ed%a0%80", "/a/b/c/../../../d", "/x/%2e%2E/%2e"]):
    w("path", f"p{i}", p)

S = "/tmp/kttpd-fuzz-site"
confs = {
    "plain": f'server "a" {{ listen = {{"127.0.0.1:8080"}} root = "{S}/a" }}\n',
    "tls": f'''# comment
workers = 2
log_level = "debug"
max_connections = 100 // c++ comment
server "a.test" {{
  aliases = {{ "www.a.test" }}
  listen = {{ "127.0.0.1:8443 tls default", "[::1]:8443 tls", "127.0.0.1:8080" }}
  tls {{ certificate = "{S}/cert.pem" key = "{S}/key.pem" protocols = {{ "TLSv1.3" }}
        ciphersuites = "TLS_AES_128_GCM_SHA256" }}
  root = "{S}/a"
  index = {{ "index.html", "home.html" }}
  http2 = false
  location "/c/" {{ root = "{S}/b" cache_control = "no-cache" expires = 30 /* block */ }}
}}
server "b.test" {{ listen = {{ "127.0.0.1:8443 tls" }}
  tls {{ certificate = "{S}/cert.pem" key = "{S}/key.pem" ciphers = "ECDHE-RSA-AES128-GCM-SHA256" }}
  root = "{S}/b" }}
''',
    "bad-number": f'max_uri = 3\nserver "a" {{ listen = {{"127.0.0.1:1"}} root = "{S}/a" }}\n',
    "bad-listen": f'server "a" {{ listen = {{"[::1:80 tls"}} root = "{S}/a" }}\n',
    "conflict": f'server "a" {{ listen = {{"127.0.0.1:1 tls"}} root = "{S}/a" }}\n'
                f'server "b" {{ listen = {{"127.0.0.1:1"}} root = "{S}/b" }}\n',
    "no-tls": f'server "a" {{ listen = {{"127.0.0.1:1 tls"}} root = "{S}/a" }}\n',
    "dup-loc": f'server "a" {{ listen = {{"127.0.0.1:1"}} root = "{S}/a" location "/x" {{}} location "/x" {{}} }}\n',
    "strings": 'error_log = "a\\"b" # x\n/* unterminated',
    # issue 15: add_header, return, https_redirect, ocsp_response
    "edge15": f'''server "a.test" {{
  listen = {{ "127.0.0.1:8443 tls", "127.0.0.1:8080" }}
  tls {{ certificate = "{S}/cert.pem" key = "{S}/key.pem" ocsp_response = "{S}/cert.pem" }}
  root = "{S}/a"
  https_redirect = true
  add_header = {{ "Strict-Transport-Security: max-age=63072000; includeSubDomains always",
                 "X-Frame-Options: DENY" }}
  location "/old/" {{ return = "301 https://$host$request_uri" }}
  location "/b/" {{ add_header = {{ "X-A: 1 always" }} return = "308 /new$uri$is_args$args" }}
}}
''',
}
for k, v in confs.items():
    w("config", k, v)
