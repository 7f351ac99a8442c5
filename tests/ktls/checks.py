"""Checks shared by the cases: byte-exact fetches, logged modes, counters, bystanders, placement."""

import itertools
import re
import subprocess
import time

import fixtures
from tlsclient import Client

MODE_12 = "tx+rx"
# OpenSSL 3.0 installs no TLS 1.3 RX keys; 3.2+ does
MODE_13 = "tx+rx" if fixtures.CAN["tls13_rx"] else "tx(rx:openssl-no-tls13-rx)"
MODES = {"TLSv1.2": MODE_12, "TLSv1.3": MODE_13}


def rx_counted(version):
    """TlsRxSw per kTLS connection of this version on this profile."""
    return 1 if version == "TLSv1.2" or fixtures.CAN["tls13_rx"] else 0
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


def expect_logged(srv, ua, count, version, cipher, mode, entries_out=None):
    entries = wait_entries(srv, ua, count)
    assert len(entries) == count, f"{len(entries)} access log lines for {ua}, expected {count}"
    if entries_out is not None:
        entries_out.extend(entries)
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


# ---------------------------------------------------------------- placement (issue 7)

# kTLS in software, no NIC
PLACE = {"TLSv1.2": "tx:sw,rx:sw",
         "TLSv1.3": "tx:sw,rx:sw" if fixtures.CAN["tls13_rx"] else "tx:sw,rx:none"}
SS_VERSION = {"TLSv1.2": "1.2", "TLSv1.3": "1.3"}
SS_CIPHER = {"AES128-GCM": "aes-gcm-128", "AES_128_GCM": "aes-gcm-128",
             "AES256-GCM": "aes-gcm-256", "AES_256_GCM": "aes-gcm-256",
             "CHACHA20": "chacha20-poly1305", "AES_128_CCM": "aes-ccm-128"}
SS_ULP = re.compile(r"tcp-ulp-tls((?: [a-z_]+: \S+)*)")


def ss_tls(server_port, peer_port):
    """`ss -tie` on kttpd's side of one open connection -> its tls ULP fields.

    {} when the socket has no tls ULP; {"version": "1.2", "cipher": ...,
    "rxconf": "sw", "txconf": "sw"} otherwise. Raises if ss does not list it."""
    p = subprocess.run(["ss", "-tieHn", "state", "established", "sport", "=", f":{server_port}",
                        "and", "dport", "=", f":{peer_port}"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, f"ss exit {p.returncode}: {p.stderr.strip()[-200:]}"
    out = " ".join(p.stdout.split())
    assert f":{peer_port}" in out, f"ss lists no socket :{server_port} -> :{peer_port}"
    m = SS_ULP.search(out)
    if not m:
        return {}
    return dict(kv.split(": ") for kv in re.findall(r"[a-z_]+: \S+", m.group(1)))


def ss_place(info):
    """The ss fields as kttpd writes a place: tx:sw,rx:none, or - without kTLS."""
    tx, rx = info.get("txconf", "none"), info.get("rxconf", "none")
    return "-" if (tx, rx) == ("none", "none") else f"tx:{tx},rx:{rx}"


def expect_place(entries, ss_info, version, cipher, ktls):
    """Logged place == what ss said for the same connection == what this version gives.

    entries: the connection's access log entries; ss_info: ss_tls() while it was open."""
    want = PLACE[version] if ktls else "-"
    seen = ss_place(ss_info)
    logged = sorted({e["place"] for e in entries})
    assert logged == [seen], f"access log place={'/'.join(map(str, logged))}, ss says {seen} ({ss_info})"
    assert seen == want, f"place {seen}, expected {want} for {version} ({ss_info})"
    if ktls:
        assert ss_info.get("version") == SS_VERSION[version], f"ss version {ss_info}"
        ss_cipher = next((v for k, v in SS_CIPHER.items() if k in cipher), None)
        # iproute2 names only the AES-GCM ciphers: no cipher field for ChaCha20 or CCM
        named = ss_info.get("cipher", ss_cipher if "GCM" not in cipher else None)
        assert named == ss_cipher, f"ss cipher {ss_info}, expected {ss_cipher}"
    return f"{seen} = ss"
