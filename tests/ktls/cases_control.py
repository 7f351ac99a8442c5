"""Control records over established kTLS connections, then 50 concurrent connections.

Every case runs with a bystander connection open (checks.Bystander: it must
be served exact afterwards), ends by checking that a new connection is
served exact, and that the kernel reported no decryption error unless the
case corrupts a record on purpose.
"""

import re
import threading

import fixtures
from checks import (MODE_12, MODE_13, Bystander, expect_logged, fetch_exact, fresh_exact,
                    new_ua, read_to_close, rx_counted, wait_counter)
from fixtures import CAN, CIPHERS_12, SUITES_13
from relay import Relay
from tlsclient import ALERT, Client, TLSError, free_session

CIPHER = {"TLSv1.2": CIPHERS_12[0], "TLSv1.3": SUITES_13[0]}
MODE = {"TLSv1.2": MODE_12, "TLSv1.3": MODE_13}
REQ = "/size_16385.bin"
MIB = "/size_1048576.bin"


def control_case(version, body, decrypt_errors=0):
    """Wraps body(site, srv, version) -> row: bystander, fresh connection, counters."""
    def run(site, servers):
        srv = servers["on"]
        before = fixtures.tls_stat()
        with Bystander(site, srv):
            row = body(site, srv, version) or {}
        fresh_exact(site, srv, version)
        d = wait_counter("TlsDecryptError", decrypt_errors, before)
        assert d.get("TlsDecryptError", 0) == decrypt_errors, (
            f"TlsDecryptError moved by {d.get('TlsDecryptError', 0)}, expected {decrypt_errors}")
        row.setdefault("exact", "yes")
        return row
    return run


def connect(srv, version, **kw):
    return Client("127.0.0.1", kw.pop("port", srv.port), version, CIPHER[version], **kw)


# ---------------------------------------------------------------- close_notify

def close_notify_between(site, srv, version):
    ua = new_ua("cn")
    with connect(srv, version) as c:
        fetch_exact(c, site, REQ, ua)
        c.close_notify()
        got, how = read_to_close(c)
    assert (got, how) == (b"", "closed"), f"after our close_notify: {len(got)} bytes, {how}"
    return {"mode": expect_logged(srv, ua, 1, version, CIPHER[version], MODE[version])}


def close_notify_mid_body(site, srv, version):
    """close_notify after the first 16 KiB of a 1 MiB body: what arrives must be a prefix."""
    ua = new_ua("cn-mid")
    with connect(srv, version) as c:
        c.write(f"GET {MIB} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {ua}\r\n\r\n".encode())
        got = b""
        while len(got) < 16384:
            chunk = c.read()
            assert chunk, f"closed after {len(got)} bytes"
            got += chunk
        c.close_notify()
        rest, how = read_to_close(c)
    head, _, body = (got + rest).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), f"response head {head[:40]!r}"
    assert body == site.data[MIB][:len(body)], "the body received is not a prefix of the file"
    assert how == "closed", f"after close_notify mid-body, {len(body)} body bytes, then {how}"
    return {"mode": expect_logged(srv, ua, 1, version, CIPHER[version], MODE[version]),
            "exact": f"prefix {len(body)} B"}


# ---------------------------------------------------------------- renegotiation

def renegotiation(site, srv, version):
    ua = new_ua("reneg")
    with connect(srv, version) as c:
        fetch_exact(c, site, REQ, ua)
        try:
            c.renegotiate()
        except TLSError as e:
            # the server answered a no_renegotiation alert, which our client decrypted
            assert "no renegotiation" in e.detail, f"renegotiation failed, but not refused: {e}"
        else:
            raise AssertionError("the server accepted a renegotiation over kTLS")
    return {"mode": expect_logged(srv, ua, 1, version, CIPHER[version], MODE[version])}


# ---------------------------------------------------------------- KeyUpdate
#
# What a TLS 1.3 KeyUpdate does depends on the stack (profiles.py):
#   RX in userspace (OpenSSL 3.0)       OpenSSL takes the client's new keys itself
#   kTLS RX, kernel cannot rekey (6.12) OpenSSL cannot hand the kernel the client's
#                                       new keys: a fatal alert (internal_error, under
#                                       the old TX keys the client still reads), the end
#   kTLS RX, kernel rekeys (6.14+)      the kernel takes the new RX keys; TLS 1.3 goes on
# and with update_requested, under kTLS TX, kttpd answers with its own KeyUpdate
# where the kernel takes new TX keys, else ends the connection cleanly.

KEY_UPDATE_LOGGED = re.compile(r"key.?update", re.I)
RX_REKEY_FAILS = CAN["tls13_rx"] and not CAN["rekey"]


def rekey_counters(before, tx, rx):
    """Linux 6.14+ counts rekeys in tls_stat (TlsTxRekeyOk, TlsRxRekeyOk): check them there."""
    d = fixtures.delta(before, fixtures.tls_stat())
    want = {k: n for k, n in (("TlsTxRekeyOk", tx), ("TlsRxRekeyOk", rx)) if k in d}
    got = {k: d[k] for k in want}
    assert got == want, f"tls_stat rekey counters moved {got}, expected {want}"
    for k in ("TlsTxRekeyError", "TlsRxRekeyError"):
        assert d.get(k, 0) == 0, f"{k} moved by {d[k]}"
    return " ".join(f"{k[3:]}+{n}" for k, n in got.items())


def ended_by_alert(site, srv, version, ua, requested):
    """RX_REKEY_FAILS: after our KeyUpdate, nothing but a readable alert, then the end."""
    srv.new_errors()
    with connect(srv, version, timeout=5) as c:
        fetch_exact(c, site, REQ, ua)
        c.key_update(requested=requested)
        c.write(f"GET {MIB} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {ua}\r\n\r\n".encode())
        got, how = read_to_close(c)
    assert got == b"", f"{len(got)} bytes came back after a KeyUpdate the kernel cannot follow"
    # the alert was decrypted: sealed with keys the client still had
    assert how == "closed" or "alert internal error" in how, f"after the KeyUpdate: {how}"
    logs = srv.errors_until(lambda ls: any(KEY_UPDATE_LOGGED.search(x) for x in ls))
    assert any(KEY_UPDATE_LOGGED.search(line) for line in logs), (
        f"no error log line gives KeyUpdate as the reason; new log lines: {logs[-3:]}")
    return {"mode": expect_logged(srv, ua, 1, version, CIPHER[version], MODE[version]),
            "exact": "ended: no kTLS RX rekey"}


def key_update_not_requested(site, srv, version):
    ua = new_ua("ku")
    if RX_REKEY_FAILS:
        return ended_by_alert(site, srv, version, ua, requested=False)
    before = fixtures.tls_stat()
    with connect(srv, version) as c:
        fetch_exact(c, site, REQ, ua)
        c.key_update(requested=False)
        fetch_exact(c, site, MIB, ua)       # the KeyUpdate leaves before this request
        c.key_update(requested=False)
        fetch_exact(c, site, REQ, ua, "bytes=5-16000")
    rekeys = rekey_counters(before, 0, 2 if CAN["tls13_rx"] else 0)
    return {"mode": expect_logged(srv, ua, 3, version, CIPHER[version], MODE[version]),
            "exact": "3/3" + (f" ({rekeys})" if rekeys else "")}


def key_update_requested(path):
    """update_requested under kTLS TX: answered where the kernel takes new TX keys, else a clean end.

    path picks the server's write path for the answer: a small body goes by
    one send(), a larger one by send(MSG_MORE) + SSL_sendfile."""
    def body(site, srv, version):
        if RX_REKEY_FAILS:
            return ended_by_alert(site, srv, version, new_ua("ku-req"), requested=True)
        if CAN["rekey"]:
            return key_update_answered(site, srv, version, path)
        ua = new_ua("ku-req")
        srv.new_errors()
        with connect(srv, version, timeout=5) as c:
            fetch_exact(c, site, REQ, ua)
            c.key_update(requested=True)
            c.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {ua}\r\n\r\n".encode())
            got, how = read_to_close(c)
        head, _, data = got.partition(b"\r\n\r\n")
        if "errno=11" in how:
            assert False, (f"after KeyUpdate(update_requested) the server answered {len(got)} bytes "
                           f"({'exact' if data == site.data[path] else 'NOT exact'}) under its old keys "
                           "without a KeyUpdate of its own (RFC 8446 4.6.3) and kept the connection "
                           "open (idle 5 s)")
        assert how == "closed", f"after KeyUpdate(update_requested): {len(got)} bytes, then {how}"
        assert not got, f"{len(got)} bytes answered on a stack that cannot rekey kTLS TX"
        mode = expect_logged(srv, ua, 1, version, CIPHER[version], MODE[version])
        logs = srv.errors_until(lambda ls: any(KEY_UPDATE_LOGGED.search(x) for x in ls))
        assert any(KEY_UPDATE_LOGGED.search(line) for line in logs), (
            "the connection ended cleanly, but no error log line gives KeyUpdate as the reason; "
            f"new log lines: {logs[-3:]}")
        return {"mode": mode, "exact": "closed clean"}
    return body


def key_update_answered(site, srv, version, path):
    """The kernel rekeys: kttpd's KeyUpdate, then every response under the new keys.

    Through the relay, which passes on every byte the server sends: the client
    decrypts each response after the KeyUpdate, and at the end our
    close_notify is answered by the server's, so no record under the old keys
    followed the server's KeyUpdate (the client would fail on it: bad record
    mac). Then a second update_requested on the same connection."""
    ua = new_ua("ku-ans")
    srv.new_errors()
    before = fixtures.tls_stat()
    relay = Relay(srv.port)
    try:
        with connect(srv, version, port=relay.port, timeout=10) as c:
            fetch_exact(c, site, REQ, ua)
            mark = relay.mark()
            c.key_update(requested=True)
            fetch_exact(c, site, path, ua)
            fetch_exact(c, site, MIB, ua, "bytes=4097-1000000")
            c.key_update(requested=True)
            fetch_exact(c, site, "/size_1.bin", ua)
            fetch_exact(c, site, path, ua)
            c.close_notify()
            got, how = read_to_close(c)
        relay.thread.join(5)
        after = relay.records[mark:]
    finally:
        relay.close()
    assert (got, how) == (b"", "closed"), f"after our close_notify: {len(got)} bytes, {how}"
    assert after and all(t == 23 for t, _ in after), f"record types after the KeyUpdate: {after[:5]}"
    logs = srv.errors_until(lambda ls: sum("KeyUpdate answered" in x for x in ls) >= 2)
    answered = [line for line in logs if "KeyUpdate answered" in line]
    assert len(answered) == 2, f"{len(answered)} 'KeyUpdate answered' log lines, expected 2: {logs[-3:]}"
    rekeys = rekey_counters(before, 2, 2)
    return {"mode": expect_logged(srv, ua, 5, version, CIPHER[version], MODE[version]),
            "exact": f"5/5, {len(after)} rec after, all read ({rekeys})"}


def key_update_requested_userspace(site, servers):
    """With kTLS off OpenSSL rekeys itself: the connection goes on, exact."""
    srv, version = servers["off"], "TLSv1.3"
    ua = new_ua("ku-req-us")
    with connect(srv, version) as c:
        fetch_exact(c, site, REQ, ua)
        c.key_update(requested=True)
        fetch_exact(c, site, MIB, ua)
        fetch_exact(c, site, "/size_1.bin", ua)
    return {"mode": expect_logged(srv, ua, 3, version, CIPHER[version], "off(disabled)"),
            "exact": "3/3"}


# ---------------------------------------------------------------- tickets

def resumption(site, srv, version):
    """A session from the first connection (TLS 1.3: NewSessionTicket sent under kTLS TX)."""
    ua = new_ua("resume")
    with connect(srv, version) as c:
        fetch_exact(c, site, REQ, ua)       # reading the response takes in the tickets
        sess = c.session()
        c.close_notify()
    try:
        with connect(srv, version, session=sess) as c2:
            assert c2.reused(), "the second connection did not resume the session"
            fetch_exact(c2, site, MIB, ua)
    finally:
        free_session(sess)
    return {"mode": expect_logged(srv, ua, 2, version, CIPHER[version], MODE[version]),
            "exact": "2/2"}


# ---------------------------------------------------------------- alerts

def client_with_ktls(srv, version, **kw):
    c = connect(srv, version, ktls=True, **kw)
    if not c.ktls_tx():
        c.close()
        raise fixtures.Skip("the client got no kTLS TX to inject records with")
    return c


def warning_alert(site, srv, version):
    """user_canceled at warning level between two requests: the connection goes on."""
    ua = new_ua("warn")
    with client_with_ktls(srv, version) as c:
        fetch_exact(c, site, REQ, ua)
        c.send_record(ALERT, bytes([1, 90]))
        try:
            fetch_exact(c, site, MIB, ua)
        except Exception as e:
            raise AssertionError(f"after a warning alert the connection broke: {e}")
    return {"mode": expect_logged(srv, ua, 2, version, CIPHER[version], MODE[version]),
            "exact": "2/2"}


def fatal_alert(site, srv, version):
    """internal_error (fatal): the server closes, sending nothing more."""
    ua = new_ua("fatal")
    with client_with_ktls(srv, version) as c:
        fetch_exact(c, site, REQ, ua)
        c.send_record(ALERT, bytes([2, 80]))
        got, how = read_to_close(c)
    assert got == b"", f"{len(got)} bytes after our fatal alert ({how})"
    # after a fatal alert no close_notify is due: an EOF or a reset are both clean
    assert how == "closed" or "unexpected eof" in how or "errno=104" in how, \
        f"after a fatal alert: {how}"
    return {"mode": expect_logged(srv, ua, 1, version, CIPHER[version], MODE[version])}


# ---------------------------------------------------------------- corruption

def corrupt_record(site, srv, version):
    """One byte flipped in a request record: that connection closes, with nothing more sent."""
    ua = new_ua("corrupt")
    relay = Relay(srv.port)
    try:
        with connect(srv, version, port=relay.port) as c:
            fetch_exact(c, site, REQ, ua)
            relay.arm()
            c.write(f"GET {REQ} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {ua}\r\n\r\n".encode())
            got, how = read_to_close(c)
        assert relay.flipped, "the relay flipped no byte"
        assert got == b"", f"{len(got)} bytes came back after a corrupted record ({how})"
    finally:
        relay.close()
    return {"mode": expect_logged(srv, ua, 1, version, CIPHER[version], MODE[version])}


# ---------------------------------------------------------------- concurrency

N_CONCURRENT = 50


def concurrent(site, servers):
    srv = servers["on"]
    paths = [f"/size_{n}.bin" for n in fixtures.SIZES[:-1]] + ["/size_262144.bin"]
    jobs = []
    for i in range(N_CONCURRENT):
        v = ("TLSv1.2", "TLSv1.3")[i % 2]
        jobs.append((v, [CIPHERS_12, SUITES_13][i % 2][i // 2 % 3], paths[i % len(paths)]))
    ua = new_ua("conc")
    errors, exact = [], []
    ready = threading.Barrier(N_CONCURRENT, timeout=60)

    def one(v, cipher, path):
        try:
            with Client("127.0.0.1", srv.port, v, cipher, timeout=60) as c:
                ready.wait()   # all 50 connected before any request
                fetch_exact(c, site, path, ua)
                exact.append(path)
        except Exception as e:
            errors.append(f"{v} {cipher} {path}: {e}")

    before = fixtures.tls_stat()
    threads = [threading.Thread(target=one, args=j) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, f"{len(errors)} of {N_CONCURRENT} failed, first: {errors[0]}"
    entries = fixtures.access_entries(srv.new_access(), ua)
    modes = sorted({e["mode"] for e in entries})
    assert len(entries) == N_CONCURRENT, f"{len(entries)} access log lines"
    assert modes == sorted({MODE_12, MODE_13}), f"modes logged: {modes}"
    d = wait_counter("TlsCurrTxSw", 0, before)
    want = {"TlsTxSw": N_CONCURRENT,
            "TlsRxSw": sum(rx_counted(("TLSv1.2", "TLSv1.3")[i % 2]) for i in range(N_CONCURRENT)),
            "TlsDecryptError": 0}
    got = {k: d.get(k, 0) for k in want}
    assert got == want, f"tls_stat moved {got}, expected {want}"
    return {"mode": " / ".join(modes), "exact": f"{len(exact)}/{N_CONCURRENT}"}


CASES = []


def add(name, version, body, **kw):
    CASES.append((f"{name}/{version}", control_case(version, body, **kw),
                  {"version": version, "cipher": CIPHER[version]}))


for v in ("TLSv1.2", "TLSv1.3"):
    add("close_notify/between-requests", v, close_notify_between)
    add("close_notify/mid-body", v, close_notify_mid_body)
add("renegotiation/refused", "TLSv1.2", renegotiation)
add("key_update/not-requested", "TLSv1.3", key_update_not_requested)
add("key_update/update-requested/ssl_write-body", "TLSv1.3", key_update_requested("/size_1.bin"))
add("key_update/update-requested/sendfile-body", "TLSv1.3", key_update_requested(MIB))
CASES.append(("key_update/update-requested/ktls-off/TLSv1.3", key_update_requested_userspace,
              {"version": "TLSv1.3", "cipher": CIPHER["TLSv1.3"]}))
for v in ("TLSv1.3", "TLSv1.2"):
    add("session/resumed-with-ktls", v, resumption)
for v in ("TLSv1.2", "TLSv1.3"):
    add("alert/warning", v, warning_alert)
    add("alert/fatal", v, fatal_alert)
add("corrupt-record/TLSv1.2-kernel-rx", "TLSv1.2", corrupt_record, decrypt_errors=1)
if CAN["tls13_rx"]:
    add("corrupt-record/TLSv1.3-kernel-rx", "TLSv1.3", corrupt_record, decrypt_errors=1)
else:
    add("corrupt-record/TLSv1.3-userspace-rx", "TLSv1.3", corrupt_record)
CASES.append(("concurrent/50-mixed", concurrent, {"version": "both", "cipher": "all six"}))
