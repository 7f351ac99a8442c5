#!/usr/bin/env python3
"""kttpd test runner.

    python3 tests/run.py [-k SUBSTRING] [--bin build/kttpd]

1. Runs every executable build/tests/unit_* and reads its stdout lines
   `ok NAME`, `not ok NAME: why`, `skip NAME: why` (one test each).
2. Imports every tests/integration/test_*.py and calls each top-level
   function test_* in file order. AssertionError or any exception is a
   failure; kt.Skip("reason") is a skip.

3. With --asan BIN, runs the integration tests again against BIN (built
   with AddressSanitizer and UBSan, see `make check`), names prefixed
   "asan/"; every sanitizer report the server wrote is one failure.
4. With --suite CMD (repeatable), runs CMD and folds its `PASS name`,
   `FAIL name: why`, `SKIP name: why` lines into the count.

Prints one line per test, then `N passed, N failed, N skipped`; exits 1
if anything failed.
"""

import argparse
import importlib.util
import inspect
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INTEGRATION = REPO / "tests" / "integration"
UNIT_DIR = REPO / "build" / "tests"
UNIT_TIMEOUT = 120


class Tally:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def record(self, outcome, name, detail=""):
        if outcome == "PASS":
            self.passed += 1
            print(f"PASS {name}", flush=True)
        elif outcome == "SKIP":
            self.skipped += 1
            print(f"SKIP {name}: {detail}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {name}: {detail}", flush=True)


# ---------------------------------------------------------------- unit tests

UNIT_LINE = re.compile(r"^(ok|not ok|skip) (\S+)(?::\s*(.*))?$")


def run_unit(binary, tally, selected):
    prog = binary.name
    try:
        p = subprocess.run([str(binary)], capture_output=True, timeout=UNIT_TIMEOUT, cwd=REPO)
    except subprocess.TimeoutExpired:
        if selected(prog):
            tally.record("FAIL", prog, f"timed out after {UNIT_TIMEOUT}s")
        return
    seen_failure = False
    for line in p.stdout.decode(errors="replace").splitlines():
        m = UNIT_LINE.match(line.strip())
        if not m:
            continue
        word, name, why = m.group(1), f"{prog}/{m.group(2)}", m.group(3) or ""
        if not selected(name):
            continue
        if word == "ok":
            tally.record("PASS", name)
        elif word == "skip":
            tally.record("SKIP", name, why)
        else:
            seen_failure = True
            tally.record("FAIL", name, why)
    if p.returncode != 0 and not seen_failure and selected(prog):
        err = p.stderr.decode(errors="replace").strip().splitlines()[-3:]
        tally.record("FAIL", prog, f"exited with status {p.returncode}: {' | '.join(err)}")


def unit_binaries():
    if not UNIT_DIR.is_dir():
        return []
    return sorted(p for p in UNIT_DIR.glob("unit_*") if p.is_file() and os.access(p, os.X_OK))


# ---------------------------------------------------------------- integration

def load_module(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_functions(module):
    funcs = [f for name, f in vars(module).items()
             if name.startswith("test_") and inspect.isfunction(f)
             and f.__module__ == module.__name__]
    return sorted(funcs, key=lambda f: f.__code__.co_firstlineno)


def failure_detail(exc):
    tb = traceback.extract_tb(exc.__traceback__)
    where = [f for f in tb if f.filename.startswith(str(INTEGRATION))]
    frame = where[-1] if where else tb[-1]
    msg = str(exc) or type(exc).__name__
    if not isinstance(exc, AssertionError):
        msg = f"{type(exc).__name__}: {msg}"
    tail = "".join(traceback.format_list(tb[-4:])).rstrip()
    return f"{msg} [{Path(frame.filename).name}:{frame.lineno}]", tail


def run_integration(tally, selected, verbose, prefix=""):
    sys.path.insert(0, str(INTEGRATION))
    import kt
    try:
        for path in sorted(INTEGRATION.glob("test_*.py")):
            try:
                module = load_module(path)
            except Exception as e:
                tally.record("FAIL", path.stem, f"import failed: {e!r}")
                continue
            for func in test_functions(module):
                name = f"{prefix}{path.stem}.{func.__name__}"
                if not selected(name):
                    continue
                run_one(kt, func, name, tally, verbose)
    finally:
        kt.cleanup()


def run_one(kt, func, name, tally, verbose):
    kt.started.clear()
    t0 = time.monotonic()
    try:
        func()
    except kt.Skip as e:
        tally.record("SKIP", name, str(e))
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
        msg, tb_tail = failure_detail(e)
        tally.record("FAIL", name, msg)
        print("    " + tb_tail.replace("\n", "\n    "))
        for srv in kt.started:
            tail = srv.log_tail()
            if tail:
                print("    " + tail.replace("\n", "\n    "))
    else:
        tally.record("PASS", name + (f" ({time.monotonic() - t0:.1f}s)" if verbose else ""))
    finally:
        for srv in kt.started:
            srv.kill()
        kt.started.clear()


def run_asan(binary, tally, selected, verbose):
    """The integration suite once more, against a sanitizer build."""
    sys.path.insert(0, str(INTEGRATION))
    import kt
    if not os.access(binary, os.X_OK):
        tally.record("FAIL", "asan", f"sanitizer build {binary} missing")
        return
    reports = Path(tempfile.mkdtemp(prefix="kttpd-asan-"))
    saved = kt.BIN, os.environ.get("ASAN_OPTIONS"), os.environ.get("UBSAN_OPTIONS")
    kt.BIN = str(Path(binary).resolve())
    os.environ["ASAN_OPTIONS"] = f"log_path={reports}/asan:detect_leaks=1"
    os.environ["UBSAN_OPTIONS"] = f"log_path={reports}/ubsan:print_stacktrace=1"
    try:
        run_integration(tally, selected, verbose, prefix="asan/")
    finally:
        kt.BIN = saved[0]
        for key, value in zip(("ASAN_OPTIONS", "UBSAN_OPTIONS"), saved[1:]):
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    found = sorted(reports.iterdir())
    for report in found:
        text = report.read_text(errors="replace")
        lines = [l for l in text.splitlines() if "ERROR" in l or "runtime error" in l or "SUMMARY" in l]
        tally.record("FAIL", f"asan/report:{report.name}", " | ".join(lines[:3]) or text[:300])
        print("    " + text[:3000].replace("\n", "\n    "))
    if selected("asan/reports"):
        tally.record("PASS" if not found else "FAIL", "asan/reports",
                     f"{len(found)} sanitizer report(s)")
    shutil.rmtree(reports, ignore_errors=True)


SUITE_LINE = re.compile(r"^(PASS|FAIL|SKIP) (\S+)(?::\s*(.*))?$")


def run_suite(cmd, tally, selected):
    """An external suite (the kTLS VM): fold its PASS/FAIL/SKIP lines."""
    seen = 0
    p = subprocess.Popen(shlex.split(cmd), cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, errors="replace")
    for line in p.stdout:
        m = SUITE_LINE.match(line.rstrip("\n"))
        if not m:
            print("    " + line.rstrip("\n"), flush=True)
            continue
        seen += 1
        if selected(m.group(2)):
            tally.record(m.group(1), m.group(2), m.group(3) or "")
    rc = p.wait()
    if rc != 0 and seen == 0:
        tally.record("FAIL", cmd, f"exited {rc} without reporting a test")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-k", default="", help="run only tests whose name contains this")
    ap.add_argument("--bin", default=str(REPO / "build" / "kttpd"), help="server binary")
    ap.add_argument("-v", action="store_true", help="print each test's duration")
    ap.add_argument("--asan", metavar="BIN", help="also run the integration tests against this sanitizer build")
    ap.add_argument("--suite", metavar="CMD", action="append", default=[],
                    help="an external suite printing PASS/FAIL/SKIP lines")
    args = ap.parse_args()
    os.environ["KTTPD_BIN"] = str(Path(args.bin).resolve())

    def selected(name):
        return args.k in name

    tally = Tally()
    for binary in unit_binaries():
        run_unit(binary, tally, selected)
    run_integration(tally, selected, args.v)
    if args.asan:
        run_asan(args.asan, tally, selected, args.v)
    for cmd in args.suite:
        run_suite(cmd, tally, selected)
    print(f"{tally.passed} passed, {tally.failed} failed, {tally.skipped} skipped")
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
