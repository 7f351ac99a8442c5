"""Checks shared by the cases: byte-exact fetches, logged modes, counters, bystanders."""

import itertools
import time

import fixtures
from tlsclient import Client

MODE_12 = "tx+rx"
MODE_13 = "tx(rx:openssl-no-tls13-rx)"   # OpenSSL 3.0 installs no TLS 1.3 RX keys
_ua = itertools.count(1)


def new_ua(tag):
    return f"ktls-{tag}-{next(_ua)}"


def range_slice(data, spec):
    """The bytes a single `bytes=` range selects."""
    first, _, last = spec[len("bytes="):].partition("-")
    if first == "":
        return data[-int(last):]
    end = len(data) if last == "" else min(int(last) + 1, len(data))
    return data[int(first):end]


def fetch_exact(client, site, path, ua, rng=None):
    """GET path (optionally one Range) and compare every byte. Returns the body length."""
    want = site.data[path]
    headers = {}
    if rng:
        headers["Range"] = rng
        want = range_slice(want, rng)
    status, hdrs, body = fixtures.get(client, path, ua, headers)
    assert status == (206 if rng else 200), f"{path} {rng or ''}: status {status}"
    assert fixtures.sha256(body) == fixtures.sha256(want), (
        f"{path} {rng or ''}: {len(body)} bytes, sha256 differs from the file's {len(want)} bytes")
    return len(body)


def wait_entries(srv, ua, count, timeout=5):
    """The access log entries of ua, once there are count of them (or at timeout)."""
    got = []
    deadline = time.monotonic() + timeout
    while True:
        got += fixtures.access_entries(srv.new_access(), ua)
        if len(got) >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def expect_logged(srv, ua, count, version, cipher, mode):
    entries = wait_entries(srv, ua, count)
    assert len(entries) == count, f"{len(entries)} access log lines for {ua}, expected {count}"
    for e in entries:
        assert (e["version"], e["mode"]) == (version, mode), (
            f"logged {e['version']} ktls={e['mode']}, expected {version} ktls={mode}")
        assert e["cipher"] == cipher, f"logged cipher {e['cipher']}, expected {cipher}"
    return entries[0]["mode"]


def read_to_close(client):
    """Reads until the peer closes. -> (bytes read, how it ended)."""
    got = b""
    try:
        while True:
            chunk = client.read()
            if not chunk:
                return got, "closed"
            got += chunk
    except Exception as e:  # TLSError or OSError: a reset, a bad record
        return got, f"error: {e}"


def wait_counter(key, want_delta, before, timeout=3):
    """Polls tls_stat until key moved by want_delta (closing sockets settle late)."""
    deadline = time.monotonic() + timeout
    while True:
        d = fixtures.delta(before, fixtures.tls_stat())
        if d.get(key, 0) == want_delta or time.monotonic() > deadline:
            return d


def fresh_exact(site, srv, version="TLSv1.3", path="/size_262144.bin"):
    """A new connection is served byte-exact."""
    with Client("127.0.0.1", srv.port, version) as c:
        fetch_exact(c, site, path, new_ua("fresh"))


class Bystander:
    """A kTLS TLS 1.2 keep-alive connection open across a case; must be served exact after it."""

    def __init__(self, site, srv):
        self.site, self.srv = site, srv

    def __enter__(self):
        self.c = Client("127.0.0.1", self.srv.port, "TLSv1.2", fixtures.CIPHERS_12[0])
        fetch_exact(self.c, self.site, "/size_16385.bin", new_ua("bystander"))
        return self

    def __exit__(self, exc_type, *rest):
        try:
            if exc_type is None:
                try:
                    fetch_exact(self.c, self.site, "/size_262144.bin", new_ua("bystander"))
                except Exception as e:
                    raise AssertionError(f"the bystander connection was disturbed: {e}")
        finally:
            self.c.close()
