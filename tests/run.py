#!/usr/bin/env python3
"""kttpd test runner.

    python3 tests/run.py [-k SUBSTRING] [--bin build/kttpd]

1. Runs every executable build/tests/unit_* and reads its stdout lines
   `ok NAME`, `not ok NAME: why`, `skip NAME: why` (one test each).
2. Imports every tests/integration/test_*.py and calls each top-level
   function test_* in file order. AssertionError or any exception is a
   failure; kt.Skip("reason") is a skip.

Prints one line per test, then `N passed, N failed, N skipped`; exits 1
if anything failed.
"""

import argparse
import importlib.util
import inspect
import os
import re
import subprocess
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


def run_integration(tally, selected, verbose):
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
                name = f"{path.stem}.{func.__name__}"
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-k", default="", help="run only tests whose name contains this")
    ap.add_argument("--bin", default=str(REPO / "build" / "kttpd"), help="server binary")
    ap.add_argument("-v", action="store_true", help="print each test's duration")
    args = ap.parse_args()
    os.environ["KTTPD_BIN"] = str(Path(args.bin).resolve())

    def selected(name):
        return args.k in name

    tally = Tally()
    for binary in unit_binaries():
        run_unit(binary, tally, selected)
    run_integration(tally, selected, args.v)
    print(f"{tally.passed} passed, {tally.failed} failed, {tally.skipped} skipped")
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
