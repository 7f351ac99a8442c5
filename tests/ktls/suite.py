#!/usr/bin/python3
"""The kTLS suite: runs INSIDE the VM (tests/ktls/run-suite starts it there).

Prints `PASS name` / `FAIL name: why` / `SKIP name: why` per case, a summary
table, then `N passed, N failed, N skipped`; exits 1 on any failure.
    suite.py [-k SUBSTRING]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cases_control  # noqa: E402
import cases_h2  # noqa: E402
import cases_matrix  # noqa: E402
import fixtures  # noqa: E402


def print_table(rows):
    head = ("case", "proto", "version", "cipher", "kTLS (TX/RX)", "place (log = ss)",
            "bytes exact", "server->client TLS records")
    keys = ("name", "proto", "version", "cipher", "mode", "place", "exact", "records")
    table = [head] + [tuple(str(r.get(k, "-")) for k in keys) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    print(line)
    for i, row in enumerate(table):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if i == 0:
            print(line)
    print(line)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", default="")
    args = ap.parse_args()
    t0 = time.monotonic()
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    rows = []

    prof = fixtures.PROFILE
    print(f"ktls profile {prof.name}: {prof.title}; kernel {os.uname().release}; "
          f"{subprocess.run(['openssl', 'version'], capture_output=True, text=True).stdout.strip()}; "
          f"expects {prof.can}", flush=True)

    def record(outcome, name, why=""):
        counts[outcome] += 1
        name = f"{prof.name}/{name}"
        print(f"{outcome} {name}" + (f": {why}" if outcome != "PASS" else ""), flush=True)

    def server_logs(servers, marks):
        """After a FAIL: what each kttpd logged during the case (CI keeps only this output)."""
        time.sleep(0.5)  # kttpd may log why only after the client saw the end
        for k, srv in servers.items():
            for line in srv.log_since(marks[k]):
                print(f"    {srv.base.name}: {line}")

    if fixtures.tls_stat() == {}:
        record("FAIL", "ktls/kernel", "no /proc/net/tls_stat: this kernel has no kTLS "
               "(run the suite through tests/ktls/run-suite)")
        print("0 passed, 1 failed, 0 skipped")
        return 1
    with tempfile.TemporaryDirectory(prefix="ktls-suite.") as base:
        site = fixtures.Site(base)
        servers = {}
        try:
            servers["on"] = fixtures.Kttpd(site, "ktls-on", 8443, ktls=True)
            servers["off"] = fixtures.Kttpd(site, "ktls-off", 8444, ktls=False)
        except Exception as e:
            record("FAIL", "ktls/start", str(e))
            servers = {}
        cases = cases_matrix.CASES + cases_h2.CASES + cases_control.CASES if servers else []
        for name, func, info in cases:
            if args.k not in name:
                continue
            row = dict(info, name=name)
            marks = {k: srv.log_size() for k, srv in servers.items()}
            try:
                row.update(func(site, servers) or {})
                for srv in servers.values():
                    assert srv.alive(), f"kttpd ({srv.base.name}) died: {srv.logs()[-300:]}"
                record("PASS", name)
            except fixtures.Skip as e:
                record("SKIP", name, str(e))
            except AssertionError as e:
                record("FAIL", name, str(e) or "assertion failed")
                server_logs(servers, marks)
                row.setdefault("exact", "FAIL")
            except Exception as e:
                tb = traceback.extract_tb(e.__traceback__)[-1]
                record("FAIL", name, f"{type(e).__name__}: {e} [{Path(tb.filename).name}:{tb.lineno}]")
                server_logs(servers, marks)
                row.setdefault("exact", "FAIL")
            rows.append(row)
        for srv in servers.values():
            srv.stop()
    print()
    print_table(rows)
    print(f"{prof.name}: suite took {time.monotonic() - t0:.1f}s in the VM")
    if counts["FAIL"]:  # a guest kernel warning explains more than the client's error
        p = subprocess.run(["dmesg", "--level=emerg,alert,crit,err,warn"],
                           capture_output=True, text=True)
        for line in (p.stdout or p.stderr).splitlines()[-20:]:
            print(f"    dmesg: {line}")
    print(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # never end without the counts line
        traceback.print_exc()
        print(f"FAIL ktls/suite: crashed: {type(e).__name__}: {e}")
        print("0 passed, 1 failed, 0 skipped")
        sys.exit(1)
