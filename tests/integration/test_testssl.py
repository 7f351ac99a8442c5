"""testssl.sh against the default TLS configuration.

No vulnerability flagged, nothing below TLS 1.2 offered, forward secrecy
for every cipher. Runs testssl's protocol, cipher-category, forward-secrecy
and vulnerability checks with --fast and a JSON report, capped at 120 s.
Skipped when testssl.sh (Debian package `testssl.sh`) is not installed.
"""

import json
import shutil
import subprocess
import time

import kt

CAP = 120  # seconds


def testssl_binary():
    return shutil.which("testssl") or shutil.which("testssl.sh")


def run_testssl(srv, checks):
    exe = testssl_binary()
    if exe is None:
        raise kt.Skip("testssl.sh not installed (Debian package testssl.sh)")
    out = srv.dir / "testssl.json"
    cmd = [exe, "--quiet", "--color", "0", "--warnings", "off", "--fast", "--sneaky",
           "--ip", "127.0.0.1", "--connect-timeout", "5", "--openssl-timeout", "5",
           *checks, "--jsonfile", str(out), f"a.test:{srv.port}"]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=CAP, cwd=srv.dir)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"testssl.sh ran past {CAP}s")
    took = time.monotonic() - t0
    if not out.exists():
        raise AssertionError(f"testssl.sh wrote no JSON (rc {p.returncode}): "
                             f"{p.stdout.decode(errors='replace')[-600:]}")
    findings = json.loads(out.read_text() or "[]")
    if isinstance(findings, dict):
        findings = findings.get("scanResult", [])
    return findings, took


def by_id(findings):
    return {f.get("id"): f for f in findings}


def test_testssl_default_config():
    with kt.Server(kt.site(), handshake_timeout=10, header_timeout=10) as srv:
        findings, took = run_testssl(srv, ["-p", "-s", "-f", "-U"])
        ids = by_id(findings)
        problems = []
        # protocols: nothing below TLS 1.2, and TLS 1.2 / 1.3 offered
        for pid in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
            f = ids.get(pid)
            if f is None:
                problems.append(f"{pid}: not reported")
            elif "not offered" not in f.get("finding", ""):
                problems.append(f"{pid}: {f.get('finding')}")
        for pid in ("TLS1_2", "TLS1_3"):
            f = ids.get(pid)
            if f is None or not f.get("finding", "").startswith("offered"):
                problems.append(f"{pid}: {f and f.get('finding')}, want offered")
        # cipher categories: no NULL, export, RC4/3DES, or non-FS suites
        for cid in ("cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT",
                    "cipherlist_LOW", "cipherlist_3DES_IDEA", "cipherlist_OBSOLETED",
                    "cipherlist_AVERAGE"):
            f = ids.get(cid)
            if f is not None and "not offered" not in f.get("finding", "") \
                    and f.get("severity") not in ("OK", "INFO"):
                problems.append(f"{cid}: {f.get('finding')} ({f.get('severity')})")
        # forward secrecy: offered, and no cipher without it
        fs = ids.get("FS") or ids.get("PFS")
        if fs is None or fs.get("severity") != "OK":
            problems.append(f"forward secrecy: {fs and fs.get('finding')}")
        # every vulnerability check: OK or INFO; anything LOW..CRITICAL fails
        bad_sev = {"LOW", "MEDIUM", "HIGH", "CRITICAL"}
        for f in findings:
            if f.get("severity") in bad_sev:
                problems.append(f"{f.get('id')}: {f.get('finding')} ({f.get('severity')})")
        errors = [f for f in findings if f.get("severity") in ("WARN", "FATAL")
                  and f.get("id") not in ("engine_problem",)]
        print(f"    testssl.sh: {len(findings)} findings in {took:.0f}s, "
              f"{len(errors)} scan warnings")
        assert not problems, "testssl.sh: " + "; ".join(sorted(set(problems)))
        assert srv.alive(), "server died under testssl.sh"
        kt.assert_serves(srv)
