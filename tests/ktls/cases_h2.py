"""HTTP/2 over kTLS: the matrix again, and the record claim of server/http2.c.

Each h2 case is one connection through relay.Relay, which parses the TLS
record headers kttpd sends, in three phases: setup (handshake, tickets,
SETTINGS and their ACKs), requests, close (GOAWAY, close_notify). Per case:
every body byte-exact (sha256), the access log (HTTP/2.0, mode, bytes,
place= against `ss -tie`), /proc/net/tls_stat, and the records of the
request phase against the DATA frames the client received:

  kTLS TX    a 16375-byte DATA payload (9 + 16375 = 16384) is exactly one
             full record; every sendfile'd payload (>= 4096 B) is one record
             of exactly 9 + payload; records <= DATA frames + HEADERS frames
  userspace  16 KiB SSL_writes: few short records (at most 2 per response)

The records/ cases fetch 1 MiB once, over h2 and over HTTP/1.1 (head by
send(MSG_MORE), body by SSL_sendfile: full 16384-byte records but for
ceil() and one short record where the kernel ends the first 64 KiB sendfile
pipe chunk), and print the counts in the table.
"""

import math
from collections import Counter

import fixtures
from cases_matrix import MIB, REQUESTS, short
from checks import (MODES, expect_logged, expect_place, new_ua, range_slice, rx_counted,
                    ss_tls, wait_counter)
from fixtures import CIPHERS_12, MATRIX_13, NO_KTLS_12, NO_KTLS_13, SUITES_13
from h2client import H2
from relay import Relay
from tlsclient import Client

APPDATA = 23
FULL = 16384                   # a full TLS record's plaintext
H2_PAYLOAD = FULL - 9          # kttpd's DATA payload under kTLS TX: frame = one record
H2_COPY_MAX = 4096             # smaller payloads are copied with the frame header
SLACK = 2                      # records beyond DATA + HEADERS a request phase may hold


def overhead(version, cipher):
    """Record length - plaintext length for an AEAD record of this version/cipher."""
    if version == "TLSv1.3":
        return 1 + 16              # inner content type + tag
    if "CHACHA20" in cipher:
        return 16                  # tag; nonce implicit
    if "GCM" in cipher:
        return 8 + 16              # explicit nonce + tag
    return None                    # CBC: IV, MAC and padding; no exact plaintext length


def plaintexts(records, version, cipher, what):
    bad = [r for r in records if r[0] != APPDATA]
    assert not bad, f"{what}: records of type {sorted({t for t, _ in bad})} among application data"
    over = overhead(version, cipher)
    return None if over is None else [n - over for _, n in records]


def h2_fetch_exact(h, site, path, ua, rng=None):
    want = site.data[path]
    extra = {}
    if rng:
        extra["range"] = rng
        want = range_slice(want, rng)
    status, _, body = h.get(path, ua, extra)
    assert status == (206 if rng else 200), f"h2 {path} {rng or ''}: status {status}"
    assert fixtures.sha256(body) == fixtures.sha256(want), (
        f"h2 {path} {rng or ''}: {len(body)} bytes, sha256 differs from the file's {len(want)} bytes")
    return len(body)


def check_records(req, frames, headers, version, cipher, ktls):
    """The request phase's records against the DATA frames. -> (figures, text for the table)."""
    pt = plaintexts(req, version, cipher, "request phase")
    payloads = [n for _, n in frames]
    if pt is None:
        return {"records": len(req)}, f"{len(req)} rec for {len(payloads)} DATA+{headers} HDRS"
    fig = {"records": len(pt), "full_records": pt.count(FULL), "data_frames": len(payloads),
           "full_frames": payloads.count(H2_PAYLOAD), "headers": headers}
    if ktls:
        assert fig["full_records"] == fig["full_frames"], (
            f"{fig['full_records']} full records ({FULL} B), {fig['full_frames']} DATA frames of "
            f"{H2_PAYLOAD} B: a full frame is not one record")
        have = Counter(pt)
        missing = Counter(p + 9 for p in payloads if p >= H2_COPY_MAX) - have
        assert not missing, (f"sendfile'd DATA frames with no record of exactly their size: "
                             f"{dict(missing)}; record sizes {dict(have)}")
        assert len(pt) <= len(payloads) + headers + SLACK, (
            f"{len(pt)} records for {len(payloads)} DATA + {headers} HEADERS frames")
        if headers == 1 and min(payloads, default=0) < H2_COPY_MAX <= payloads[0]:
            # one large response: HEADERS alone, each DATA frame alone (the last one copied)
            assert len(pt) == len(payloads) + 1, (
                f"{len(pt)} records for 1 HEADERS + {len(payloads)} DATA frames, expected "
                f"{len(payloads) + 1}; sizes {dict(Counter(pt))}")
        text = (f"{len(pt)} rec = {len(payloads)} DATA+{headers} HDRS; "
                f"{fig['full_records']}x{FULL}={fig['full_frames']}x(9+{H2_PAYLOAD})")
    else:
        # 16 KiB SSL_writes; a short one where a response ends or nghttp2's
        # batch (64 KiB) ran dry
        limit = math.ceil(sum(pt) / FULL) + 2 * headers
        assert len(pt) <= limit, (f"{len(pt)} records for {sum(pt)} B in {headers} responses; "
                                  f"sizes {dict(Counter(pt))}")
        text = f"{len(pt)} rec ({fig['full_records']} full) for {len(payloads)} DATA+{headers} HDRS"
    return fig, text


def h2_serve(site, srv, version, cipher, mode, counters, requests):
    """One h2 connection through a record-counting relay, every request of requests."""
    ktls = counters["TlsTxSw"] == 1
    ua = new_ua("h2")
    before = fixtures.tls_stat()
    relay = Relay(srv.port)
    total, sizes = 0, []
    try:
        with Client("127.0.0.1", relay.port, version, cipher, alpn=["h2"]) as c:
            assert c.version() == version, f"negotiated {c.version()}"
            assert c.alpn() == "h2", f"ALPN chose {c.alpn()!r}, not h2"
            h = H2(c)
            h.setup()
            m_setup = relay.mark()
            relay.connected.wait(5)
            ss_info = ss_tls(srv.port, relay.upstream_port)
            for path, rng in requests:
                n = h2_fetch_exact(h, site, path, ua, rng)
                sizes.append(n)
                total += n
            m_req = relay.mark()
            h.close()
        relay.thread.join(5)
        recs = list(relay.records)
    finally:
        relay.close()
    entries = []
    logged = expect_logged(srv, ua, len(requests), version, cipher, mode, entries)
    assert [e["proto"] for e in entries] == ["HTTP/2.0"] * len(entries), \
        f"protocols logged: {sorted({e['proto'] for e in entries})}"
    logged_bytes = [int(e["bytes"]) for e in entries]
    assert sorted(logged_bytes) == sorted(sizes), (
        f"logged body bytes {logged_bytes} != received {sizes}")
    place = expect_place(entries, ss_info, version, cipher, ktls)
    fig, text = check_records(recs[m_setup:m_req], h.frames, h.headers_frames, version, cipher, ktls)
    fig.update(setup=m_setup, close=len(recs) - m_req)
    d = wait_counter("TlsCurrTxSw", 0, before)
    got = {k: d.get(k, 0) for k in counters}
    assert got == counters, f"tls_stat moved {got}, expected {counters}"
    return {"mode": logged, "exact": f"{len(requests)}/{len(requests)} ({total} B)",
            "proto": "h2", "place": place,
            "records": f"{text}; +{fig['setup']} setup +{fig['close']} close", "fig": fig}


def counters_for(version, ktls):
    if not ktls:
        return {"TlsTxSw": 0, "TlsRxSw": 0, "TlsDecryptError": 0}
    return {"TlsTxSw": 1, "TlsRxSw": rx_counted(version), "TlsDecryptError": 0,
            "TlsCurrTxSw": 0}


def h2_case(server, version, cipher, mode, requests=REQUESTS):
    ktls = mode.startswith("tx")
    return lambda site, s: h2_serve(site, s[server], version, cipher, mode,
                                    counters_for(version, ktls), requests)


# ---------------------------------------------------------------- HTTP/1.1 for comparison

def h1_records(site, servers, version, cipher):
    """1 MiB over HTTP/1.1 through the relay: head by send(MSG_MORE) + SSL_sendfile."""
    srv = servers["on"]
    ua = new_ua("h1-rec")
    relay = Relay(srv.port)
    try:
        with Client("127.0.0.1", relay.port, version, cipher) as c:
            status, _, body = fixtures.get(c, "/size_1.bin", ua)   # takes in the tickets
            assert (status, body) == (200, site.data["/size_1.bin"]), "warm-up request"
            m_setup = relay.mark()
            status, _, body = fixtures.get(c, MIB, ua)
            assert status == 200 and fixtures.sha256(body) == fixtures.sha256(site.data[MIB]), \
                f"1 MiB over h1: status {status}, {len(body)} bytes, not exact"
            m_req = relay.mark()
            c.close_notify()
            try:
                while c.read():
                    pass
            except Exception:  # noqa: BLE001
                pass
        relay.thread.join(5)
        recs = list(relay.records)
    finally:
        relay.close()
    mode = MODES[version]
    expect_logged(srv, ua, 2, version, cipher, mode)
    pt = plaintexts(recs[m_setup:m_req], version, cipher, "request phase")
    total = sum(pt)
    want = math.ceil(total / FULL)
    short_at = [(i + 1, n) for i, n in enumerate(pt) if n != FULL]
    # The head (send(MSG_MORE)) shares the first record. Linux 6.1's tls_sw
    # ends a record where a sendfile() pipe chunk (64 KiB) ends, so the
    # first chunk, offset by the head, leaves one short record: want + 1 at
    # most, and no more than two short ones (that one and the last).
    assert want <= len(pt) <= want + 1 and len(short_at) <= 2, (
        f"{len(pt)} records for {total} B (head {total - len(body)} B + body), expected {want} "
        f"(+1); short records (#, plaintext): {short_at}")
    fig = {"records": len(pt), "full_records": pt.count(FULL), "setup": m_setup,
           "close": len(recs) - m_req, "short": short_at}
    return {"mode": mode, "exact": f"1/1 ({len(body)} B)", "proto": "h1",
            "records": (f"{len(pt)} rec for head {total - len(body)}+{len(body)} B (min {want}); "
                        f"{fig['full_records']}x{FULL}, short (#,B) "
                        f"{' '.join(f'{i}:{n}' for i, n in short_at)}; "
                        f"+{m_setup} setup +{fig['close']} close"),
            "fig": fig}


CASES = []
for v, ciphers in (("TLSv1.2", CIPHERS_12), ("TLSv1.3", MATRIX_13)):
    m = MODES[v]
    for c in ciphers:
        CASES.append((f"h2/matrix/{v}/{short(c)}", h2_case("on", v, c, m),
                      {"version": v, "cipher": c}))
for v, c in (("TLSv1.2", CIPHERS_12[0]), ("TLSv1.3", SUITES_13[0])):
    CASES.append((f"h2/userspace/ktls-off/{v}", h2_case("off", v, c, "off(disabled)"),
                  {"version": v, "cipher": c}))
for v, c in (("TLSv1.2", NO_KTLS_12), ("TLSv1.3", NO_KTLS_13)):
    CASES.append((f"h2/userspace/no-kernel-cipher/{v}",
                  h2_case("on", v, c, "off(cipher-not-offloaded)") if c
                  else fixtures.skipped(fixtures.NO_KTLS_13_WHY), {"version": v, "cipher": c}))
for v, c in (("TLSv1.2", CIPHERS_12[0]), ("TLSv1.3", SUITES_13[0])):
    m = MODES[v]
    CASES.append((f"records/h2/1MiB/{v}", h2_case("on", v, c, m, [(MIB, None)]),
                  {"version": v, "cipher": c}))
    CASES.append((f"records/h1/1MiB/{v}",
                  lambda site, s, v=v, c=c: h1_records(site, s, v, c), {"version": v, "cipher": c}))
CASES.append(("records/h2/1MiB/ktls-off/TLSv1.3",
              h2_case("off", "TLSv1.3", SUITES_13[0], "off(disabled)", [(MIB, None)]),
              {"version": "TLSv1.3", "cipher": SUITES_13[0]}))


# ---------------------------------------------------------------- KeyUpdate over HTTP/2

def h2_key_update(site, servers):
    """update_requested between two HTTP/2 requests (TLS 1.3, kTLS TX and, on 3.2+, RX).

    Where the kernel rekeys: every DATA frame after kttpd's KeyUpdate is
    decrypted, through the relay, up to the server's close_notify. Elsewhere
    the connection ends without a byte the client cannot decrypt."""
    from checks import read_to_close
    from fixtures import CAN
    from tlsclient import TLSError
    srv, version, cipher = servers["on"], "TLSv1.3", SUITES_13[0]
    ua = new_ua("h2-ku")
    before = fixtures.tls_stat()
    relay = Relay(srv.port)
    try:
        with Client("127.0.0.1", relay.port, version, cipher, alpn=["h2"], timeout=10) as c:
            h = H2(c)
            h.setup()
            h2_fetch_exact(h, site, "/size_16385.bin", ua)
            c.key_update(requested=True)
            if CAN["rekey"]:
                h2_fetch_exact(h, site, MIB, ua)
                h2_fetch_exact(h, site, "/size_1.bin", ua, "bytes=0-0")
                h.conn.close_connection()
                h._flush()
                c.close_notify()
                got, how = read_to_close(c)
                assert how == "closed", f"after GOAWAY and close_notify: {how}"
                exact, n = "3/3 after the KeyUpdate, all read", 3
            else:
                try:
                    h.get(MIB, ua)
                    raise AssertionError("the stream after update_requested completed on a stack "
                                         "that cannot rekey kTLS TX")
                except (ConnectionError, TLSError) as e:
                    bad = ("bad record mac", "decryption failed")
                    assert not any(b in str(e) for b in bad), f"undecryptable bytes: {e}"
                    exact, n = f"ended ({str(e)[:40]})", 1
        relay.thread.join(5)
    finally:
        relay.close()
    d = fixtures.delta(before, fixtures.tls_stat())
    if CAN["rekey"] and "TlsTxRekeyOk" in d:
        assert d["TlsTxRekeyOk"] == 1, f"TlsTxRekeyOk moved by {d['TlsTxRekeyOk']}"
    assert d.get("TlsDecryptError", 0) == 0, f"TlsDecryptError moved by {d['TlsDecryptError']}"
    return {"mode": expect_logged(srv, ua, n, version, cipher, MODES[version]), "proto": "h2",
            "exact": exact}


CASES.append(("h2/key_update/update-requested/TLSv1.3", h2_key_update,
              {"version": "TLSv1.3", "cipher": SUITES_13[0]}))
