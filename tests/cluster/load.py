#!/usr/bin/python3
"""Clients for tests/cluster/run-suite, run inside a network namespace.

  load.py run   --target IP:PORT --sources A,B,.. --proto h1|h2|mix
                --manifest FILE --ca CRT --out FILE
                [--duration S] [--stop-file F] [--requests N] [--per-conn N]
  load.py probe --target IP:PORT --sources A,B,.. --ca CRT --out FILE [--n N]
                [--path P ...]
  load.py scrape --targets IP:PORT,.. --ca CRT --out FILE

run: one thread per source address, each binding its sockets to that
address, so the balancer (and, through PROXY v2, kttpd) sees it as the
client. Every connection first asks /id/node.txt (a per-node file), so
each response is attributed to the node that served it; then requests
files of the manifest and checks each body's sha256. A connection is
used for --per-conn requests, or until the server says Connection: close
(HTTP/1.1) or sends a GOAWAY (HTTP/2). An HTTP/2 stream above a GOAWAY's
last stream id was never processed (RFC 9113 6.8): it is retried on a
new connection and counted as retried, not failed. Nothing else is
retried. Output: JSON with one record per request.
probe: n fresh connections per source, each asking --path (default
/id/node.txt): {source: [[status, body], ...]}.
scrape: GET /metrics from each target: {target: text}.
"""

import argparse
import hashlib
import json
import os
import random
import socket
import ssl
import sys
import threading
import time

TIMEOUT = 10


def context(ca, alpn):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(alpn)
    return ctx


def connect(target, source, ctx):
    host, port = target.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    try:
        if source:
            sock.bind((source, 0))
        sock.connect((host, int(port)))
        return ctx.wrap_socket(sock, server_hostname="a.test")
    except BaseException:
        sock.close()
        raise


class Failed(Exception):
    pass


class H1:
    """HTTP/1.1 keep-alive over one TLS connection."""

    def __init__(self, sock):
        self.sock, self.buf, self.closing = sock, b"", False

    def _more(self, what):
        try:
            data = self.sock.recv(65536)
        except (ssl.SSLError, OSError) as e:
            raise Failed(f"{what}: {type(e).__name__}: {e}")
        if not data:
            raise Failed(f"{what}: connection closed")
        self.buf += data

    def get(self, path):
        try:
            self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: a.test\r\n\r\n".encode())
        except (ssl.SSLError, OSError) as e:
            raise Failed(f"send: {type(e).__name__}: {e}")
        while b"\r\n\r\n" not in self.buf:
            self._more("response head")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        while len(self.buf) < n:
            self._more(f"body ({len(self.buf)} of {n} bytes)")
        body, self.buf = self.buf[:n], self.buf[n:]
        if hdrs.get("connection", "").lower() == "close":
            self.closing = True
        return status, body

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Unprocessed(Exception):
    """An HTTP/2 stream the server's GOAWAY says it never processed."""


class H2:
    """HTTP/2, one stream at a time, over one TLS connection (python h2)."""

    def __init__(self, sock):
        import h2.config
        import h2.connection
        self.sock = sock
        import h2.settings
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        # a 16 MiB stream window: a 1 MiB body needs no WINDOW_UPDATE round trips
        self.conn.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 24})
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(1 << 24)
        self.goaway = None
        self.closing = False
        self.sock.sendall(self.conn.data_to_send())

    def _events(self, data, sid, st):
        import h2.events as E
        for ev in self.conn.receive_data(data):
            if isinstance(ev, E.ResponseReceived) and ev.stream_id == sid:
                st["status"] = int(dict(ev.headers)[":status"])
            elif isinstance(ev, E.DataReceived):
                if ev.stream_id == sid:
                    st["body"].append(ev.data)
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, E.StreamEnded) and ev.stream_id == sid:
                st["ended"] = True
            elif isinstance(ev, E.StreamReset) and ev.stream_id == sid:
                raise Failed(f"stream reset, error {ev.error_code}")
            elif isinstance(ev, E.ConnectionTerminated):
                self.goaway = (int(ev.error_code), ev.last_stream_id)
                self.closing = True
        out = self.conn.data_to_send()
        if out:
            try:
                self.sock.sendall(out)
            except (ssl.SSLError, OSError):
                pass

    def get(self, path):
        if self.goaway is not None:
            raise Unprocessed("GOAWAY before the request")
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", "GET"), (":scheme", "https"),
                                     (":authority", "a.test"), (":path", path)], end_stream=True)
        try:
            self.sock.sendall(self.conn.data_to_send())
        except (ssl.SSLError, OSError) as e:
            raise Failed(f"send: {type(e).__name__}: {e}")
        st = {"status": None, "body": [], "ended": False}
        while not st["ended"]:
            if self.goaway is not None and sid > self.goaway[1]:
                raise Unprocessed(f"stream {sid} above GOAWAY last stream {self.goaway[1]}")
            try:
                data = self.sock.recv(65536)
            except (ssl.SSLError, OSError) as e:
                raise Failed(f"recv: {type(e).__name__}: {e}")
            if not data:
                if self.goaway is not None and sid > self.goaway[1]:
                    raise Unprocessed(f"stream {sid} above GOAWAY last stream {self.goaway[1]}")
                raise Failed(f"connection closed during stream {sid} ({st['status']}, "
                             f"{sum(map(len, st['body']))} bytes)")
            self._events(data, sid, st)
        # a GOAWAY right behind the response: see it before the next request
        self.sock.setblocking(False)
        try:
            data = self.sock.recv(65536)
            if data:
                self._events(data, 0, {"status": None, "body": [], "ended": False})
            else:
                self.closing = True
        except (ssl.SSLWantReadError, BlockingIOError):
            pass
        except (ssl.SSLError, OSError):
            self.closing = True
        finally:
            self.sock.settimeout(TIMEOUT)
        return st["status"], b"".join(st["body"])

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def worker(args, source, proto, manifest, records, lock, stop):
    ctx = context(args.ca, ["h2"] if proto == "h2" else ["http/1.1"])
    paths = sorted(manifest)
    rnd = random.Random(source)
    conn, node, used, cid = None, None, 0, 0
    retry = None
    sent = 0
    while not stop.is_set():
        if args.requests and sent >= args.requests and retry is None:
            break
        if conn is None:
            cid += 1
            t0 = time.monotonic()
            try:
                sock = connect(args.target, source, ctx)
                conn = H2(sock) if proto == "h2" else H1(sock)
                st, body = conn.get("/id/node.txt")
                node = body.decode().strip() if st == 200 else None
                ok, err = st == 200 and node is not None, None if st == 200 else f"status {st}"
            except Unprocessed as e:
                # A GOAWAY (reload, drain) refused the first stream of a
                # fresh connection: never processed, so safe to retry on a
                # new connection (RFC 9113 6.8), as browsers and curl do.
                if conn:
                    conn.close()
                conn = None
                continue
            except (Failed, ssl.SSLError, OSError) as e:
                ok, err = False, f"connect/id: {type(e).__name__}: {e}"
                if conn:
                    conn.close()
                conn = None
            with lock:
                records.append(dict(src=source, proto=proto, conn=cid, node=node, path="/id/node.txt",
                                    t0=t0, t1=time.monotonic(), ok=ok, err=err, retried=False))
            sent += 1
            used = 1
            if not ok:
                time.sleep(0.05)
                continue
            if conn.closing:  # Connection: close or GOAWAY (a drain): go again
                conn.close()
                conn = None
                continue
        path = retry or paths[rnd.randrange(len(paths))]
        t0 = time.monotonic()
        rec = dict(src=source, proto=proto, conn=cid, node=node, path=path, t0=t0,
                   retried=retry is not None)
        retry = None
        try:
            st, body = conn.get(path)
            digest = hashlib.sha256(body).hexdigest()
            rec["ok"] = st == 200 and digest == manifest[path]
            rec["err"] = None if rec["ok"] else f"status {st}, sha256 {digest[:12]} len {len(body)}"
        except Unprocessed as e:
            retry = path  # not a failure: the server never saw it
            rec["ok"], rec["err"], rec["unprocessed"] = None, str(e), True
        except Failed as e:
            rec["ok"], rec["err"] = False, str(e)
        rec["t1"] = time.monotonic()
        with lock:
            records.append(rec)
        if rec["ok"] is not None:
            sent += 1
        used += 1
        if rec["ok"] is not True or conn.closing or used >= args.per_conn:
            conn.close()
            conn = None
    if conn:
        conn.close()


def cmd_run(args):
    manifest = json.load(open(args.manifest))
    sources = args.sources.split(",")
    records, lock, stop = [], threading.Lock(), threading.Event()
    threads = []
    for i, s in enumerate(sources):
        proto = args.proto if args.proto != "mix" else ("h1", "h2")[i % 2]
        t = threading.Thread(target=worker, args=(args, s, proto, manifest, records, lock, stop),
                             daemon=True)
        t.start()
        threads.append(t)
    t_start = time.monotonic()
    deadline = t_start + args.duration
    while time.monotonic() < deadline and any(t.is_alive() for t in threads):
        if args.stop_file and os.path.exists(args.stop_file):
            break
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(TIMEOUT + 5)
    with lock:
        out = dict(start=t_start, end=time.monotonic(), records=list(records),
                   clock=time.monotonic())
    json.dump(out, open(args.out, "w"))


def cmd_probe(args):
    ctx = context(args.ca, ["http/1.1"])
    out = {}
    for s in args.sources.split(","):
        res = []
        for path in args.path or ["/id/node.txt"]:
            for _ in range(args.n):
                try:
                    c = H1(connect(args.target, s, ctx))
                    st, body = c.get(path)
                    c.close()
                    res.append([st, body.decode(errors="replace").strip()])
                except (Failed, ssl.SSLError, OSError) as e:
                    res.append([0, f"{type(e).__name__}: {e}"])
        out[s] = res
    json.dump(out, open(args.out, "w"))


def cmd_scrape(args):
    ctx = context(args.ca, ["http/1.1"])
    out = {}
    for t in args.targets.split(","):
        c = H1(connect(t, None, ctx))
        st, body = c.get("/metrics")
        c.close()
        if st != 200:
            raise SystemExit(f"scrape {t}: status {st}")
        out[t] = body.decode()
    json.dump(out, open(args.out, "w"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["run", "probe", "scrape"])
    ap.add_argument("--target")
    ap.add_argument("--targets")
    ap.add_argument("--sources", default="")
    ap.add_argument("--proto", default="h1", choices=["h1", "h2", "mix"])
    ap.add_argument("--manifest")
    ap.add_argument("--ca", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--stop-file")
    ap.add_argument("--requests", type=int, default=0, help="per source; 0: until stopped")
    ap.add_argument("--per-conn", type=int, default=20)
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--path", action="append")
    args = ap.parse_args()
    {"run": cmd_run, "probe": cmd_probe, "scrape": cmd_scrape}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
