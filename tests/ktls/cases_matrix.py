"""Byte-exact fetches over every version and kTLS cipher, and the userspace fallbacks.

Each case is one keep-alive connection: every size, then ranges at unaligned
offsets; sha256 of every body; the access log's mode for each request; and
/proc/net/tls_stat before and after; the placement kttpd logged (place=)
against `ss -tie`'s tls ULP fields for the same open connection.
"""

import hashlib
import subprocess

import fixtures
from checks import (MODE_13, MODES, expect_logged, expect_place, fetch_exact, new_ua, rx_counted,
                    ss_tls, wait_counter)
from fixtures import CIPHERS_12, MATRIX_13, NO_KTLS_12, NO_KTLS_13, SIZES, SUITES_13
from tlsclient import Client

MIB = "/size_1048576.bin"
RANGES = [(MIB, "bytes=1-16385"), (MIB, "bytes=4097-1000000"), (MIB, "bytes=1048570-"),
          (MIB, "bytes=-7"), ("/size_16385.bin", "bytes=16383-16384"),
          ("/size_16384.bin", "bytes=3-16382")]
REQUESTS = [(f"/size_{n}.bin", None) for n in SIZES] + RANGES


def serve_all(site, srv, version, cipher, mode, counters):
    """One connection, every request of REQUESTS; counters: expected tls_stat deltas."""
    ua = new_ua("matrix")
    before = fixtures.tls_stat()
    total = 0
    with Client("127.0.0.1", srv.port, version, cipher) as c:
        assert c.version() == version, f"negotiated {c.version()}"
        for i, (path, rng) in enumerate(REQUESTS):
            total += fetch_exact(c, site, path, ua, rng)
            if i == 0:  # kept alive: kttpd's socket as ss sees it
                ss_info = ss_tls(srv.port, c.local_port())
        c.close_notify()
    entries = []
    logged = expect_logged(srv, ua, len(REQUESTS), version, cipher, mode, entries)
    place = expect_place(entries, ss_info, version, cipher, ktls=counters["TlsTxSw"] == 1)
    d = wait_counter("TlsCurrTxSw", 0, before)
    got = {k: d.get(k, 0) for k in counters}
    assert got == counters, f"tls_stat moved {got}, expected {counters}"
    return {"mode": logged, "exact": f"{len(REQUESTS)}/{len(REQUESTS)} ({total} B)",
            "proto": "h1", "place": place}


def ktls_case(version, cipher):
    mode = MODES[version]
    counters = {"TlsTxSw": 1, "TlsRxSw": rx_counted(version), "TlsDecryptError": 0,
                "TlsCurrTxSw": 0}
    return lambda site, s: serve_all(site, s["on"], version, cipher, mode, counters)


def userspace_case(server, version, cipher, reason):
    counters = {"TlsTxSw": 0, "TlsRxSw": 0, "TlsDecryptError": 0}
    return lambda site, s: serve_all(site, s[server], version, cipher, f"off({reason})", counters)


def curl_case(site, servers):
    """curl (the host's, run in the VM) over kTLS: 1 MiB, byte-exact."""
    p = subprocess.run(["curl", "-sS", "-k", "--tlsv1.3", "--tls13-ciphers", SUITES_13[0],
                        "-A", "ktls-curl", "https://localhost:8443" + MIB],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, f"curl exit {p.returncode}: {p.stderr.decode()[-200:]}"
    assert hashlib.sha256(p.stdout).digest() == hashlib.sha256(site.data[MIB]).digest(), \
        f"curl got {len(p.stdout)} bytes, not the file's"
    expect_logged(servers["on"], "ktls-curl", 1, "TLSv1.3", SUITES_13[0], MODE_13)
    return {"mode": MODE_13, "exact": f"1/1 ({len(p.stdout)} B)"}


def short(c):
    return c.replace("ECDHE-ECDSA-", "").replace("TLS_", "")


CASES = []
for v, ciphers in (("TLSv1.2", CIPHERS_12), ("TLSv1.3", MATRIX_13)):
    for c in ciphers:
        CASES.append((f"matrix/{v}/{short(c)}", ktls_case(v, c), {"version": v, "cipher": c}))
for v, c in (("TLSv1.2", CIPHERS_12[0]), ("TLSv1.3", SUITES_13[0])):
    CASES.append((f"userspace/ktls-off/{v}", userspace_case("off", v, c, "disabled"),
                  {"version": v, "cipher": c}))
for v, c in (("TLSv1.2", NO_KTLS_12), ("TLSv1.3", NO_KTLS_13)):
    CASES.append((f"userspace/no-kernel-cipher/{v}",
                  userspace_case("on", v, c, "cipher-not-offloaded") if c
                  else fixtures.skipped(fixtures.NO_KTLS_13_WHY), {"version": v, "cipher": c}))
CASES.append(("curl/TLSv1.3", curl_case, {"version": "TLSv1.3", "cipher": SUITES_13[0]}))


def startup_case(site, servers):
    """kttpd says at start what it found: available with the tls ULP, disabled when off."""
    on, off = servers["on"].logs(), servers["off"].logs()
    assert "ktls: available:" in on, f"ktls=true server logged no 'ktls: available:': {on[-300:]}"
    assert "ktls: disabled" in off, f"ktls=false server logged no 'ktls: disabled': {off[-300:]}"
    # the rekey probe (sys/linux_rekey.c) against what this profile's kernel can do
    want = ("update_requested answered under kTLS TX" if fixtures.CAN["rekey"]
            else "kTLS TX connections end on update_requested")
    line = next((x for x in on.splitlines() if "ktls: TLS 1.3 KeyUpdate:" in x), None)
    assert line and want in line, f"KeyUpdate probe logged {line!r}, expected {want!r}"
    return {"mode": "available / disabled", "exact": line.split("KeyUpdate: ", 1)[1][:60]}


CASES.insert(0, ("startup/ktls-probe-logged", startup_case, {}))
