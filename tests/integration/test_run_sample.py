"""make run's sample site (conf/run-sample.sh) from a fresh copy: it makes
its certificate and state, serves the sample site with gzip on the fly
into state/gzip-cache (curl --compressed gets gzip, over HTTP/1.1 and
HTTP/2), and writes access log lines with the ktls= field to its
terminal, as the page says."""

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import kt


def test_run_sample_fresh_clone_gzip_and_ktls_field():
    top = Path(tempfile.mkdtemp(prefix="kttpd-run-", dir=kt.site().dir))
    (top / "conf").mkdir()
    shutil.copy(kt.REPO / "conf" / "run-sample.sh", top / "conf" / "run-sample.sh")
    shutil.copytree(kt.REPO / "conf" / "sample-site", top / "conf" / "sample-site")
    port = kt.free_port()
    out = open(top / "terminal.txt", "wb")
    env = dict(os.environ, KTTPD_RUN_PORT=str(port))
    p = subprocess.Popen(["sh", "conf/run-sample.sh", str(kt.BIN)], cwd=top, env=env,
                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                         start_new_session=True)
    try:
        assert kt.wait_until(lambda: kt.port_accepts(port), 15), \
            (top / "terminal.txt").read_text()
        crt = top / "state" / "localhost.crt"
        assert crt.exists()
        page = (top / "conf" / "sample-site" / "index.html").read_bytes()
        assert b"ktls=" in page and b"--compressed" in page
        for proto in ("--http1.1", "--http2"):
            r = subprocess.run(["curl", "-sS", proto, "--compressed", "--cacert", str(crt),
                                "-D", "-", "-o", str(top / "body"),
                                f"https://localhost:{port}/"],
                               capture_output=True, timeout=20)
            assert r.returncode == 0, r.stderr
            head = r.stdout.decode().lower()
            assert "content-encoding: gzip" in head, (proto, head)
            assert "vary: accept-encoding" in head, (proto, head)
            assert (top / "body").read_bytes() == page, proto
            r = subprocess.run(["curl", "-sS", proto, "--cacert", str(crt), "-D", "-",
                                "-o", "/dev/null", f"https://localhost:{port}/"],
                               capture_output=True, timeout=20)
            assert "content-encoding" not in r.stdout.decode().lower(), proto
        assert any((top / "state" / "gzip-cache").iterdir()), "gzip cache empty"
        assert kt.wait_until(
            lambda: (top / "terminal.txt").read_text().count("ktls=") >= 4, 5), \
            (top / "terminal.txt").read_text()[-1500:]
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=5)
        out.close()
