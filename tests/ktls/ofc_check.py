#!/usr/bin/python3
"""Issue 13 under kTLS TX (run in the VM: tests/ktls/vm-run -- /usr/bin/python3
tests/ktls/ofc_check.py): a body from the open-file cache leaves with its
head in one send and no sendfile; a body too big for it keeps sendfile;
every byte exact. Prints PASS/FAIL lines and the syscall counts."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import kt  # noqa: E402

N = 20


def main():
    root = kt.site().new_root("ofc-ktls")
    files = {"/1k.txt": os.urandom(1024), "/16k.bin": os.urandom(16384),
             "/100k.bin": os.urandom(100000)}
    for p, d in files.items():
        (root / p[1:]).write_bytes(d)
    fails = 0
    with kt.Server(kt.site(), vhost_a=dict(root=str(root)), workers=1,
                   open_file_cache=100) as srv:
        for path, data in files.items():
            with srv.connect() as c:
                for _ in range(2):
                    r = c.exchange(kt.request(path))
                    assert r.status == 200 and r.body == data

                def work():
                    for _ in range(N):
                        r = c.exchange(kt.request(path))
                        assert r.status == 200 and r.body == data, "bytes differ"
                got = kt.strace_counts(srv, work)
            # socket writes are send() (sendto); write() is the access log
            sends = sum(got.get(k, 0) for k in ("sendto", "sendmsg", "writev"))
            sf = got.get("sendfile", 0) + got.get("sendfile64", 0)
            filecalls = {k: v for k, v in got.items()
                         if k in ("openat", "newfstatat", "fstat", "preadv2", "pread64")}
            print(f"  {path}: {N} hits: {got}")
            if len(data) <= 16384:
                ok = sf == 0 and sends == N and not filecalls
                why = f"{sends} sends, {sf} sendfile, file calls {filecalls}"
            else:
                ok = sf >= N
                why = f"{sf} sendfile for {N} responses"
            print(("PASS" if ok else "FAIL") + f" ofc-ktls{path}" + ("" if ok else f": {why}"))
            fails += not ok
        log = srv.access_log()
        ok = log and all("ktls=tx" in line for line in log)
        print(("PASS" if ok else "FAIL") + " ofc-ktls/mode" + ("" if ok else f": {log[-2:]}"))
        fails += not ok
    kt.cleanup()
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
