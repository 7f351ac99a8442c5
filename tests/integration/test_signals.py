"""Signals: SIGHUP reload, SIGUSR1 log reopen, SIGTERM graceful stop; privilege drop."""

import os
import pwd
import signal
import subprocess
import threading
import time

import kt


def wait_for(cond, timeout, what):
    assert kt.wait_until(cond, timeout), f"{what} (waited {timeout}s)"


def server_header(srv):
    try:
        return srv.get("/index.html").get("server")
    except (OSError, kt.Closed):
        return "(request failed)"


def test_reload_applies_new_config():
    with kt.Server(kt.site()) as srv:
        assert server_header(srv), "no Server header before the reload"
        srv.vhost_a["index"] = ["home.html"]
        srv.write_config(server_tokens=False)
        srv.reload()
        wait_for(lambda: server_header(srv) is None, 3, "server_tokens = false not applied by SIGHUP")
        r = srv.get("/")
        assert r.status == 200 and r.body == srv.site.files["/home.html"], \
            f"new index file not used after SIGHUP: {r.status} {r.body[:60]!r}"
        assert srv.alive(), "server died on SIGHUP"


def test_reload_keeps_open_connection():
    with kt.Server(kt.site()) as srv, srv.connect() as c:
        assert c.exchange(kt.request(kt.size_path(1))).status == 200
        srv.write_config(server_tokens=False)
        srv.reload()
        time.sleep(0.5)
        r = c.exchange(kt.request(kt.size_path(16384)))
        assert r.status == 200 and r.body == srv.site.files[kt.size_path(16384)], \
            f"keep-alive connection across SIGHUP: {r.status}"


class RequestLoop(threading.Thread):
    """n requests, `per_conn` on each keep-alive connection, then a new one."""

    def __init__(self, srv, n=200, per_conn=10):
        super().__init__(daemon=True)
        self.srv, self.n, self.per_conn = srv, n, per_conn
        self.done, self.errors = 0, []

    def run(self):
        files = self.srv.site.files
        paths = [kt.size_path(n) for n in (1, 16384, 16385, 0)]
        conn = None
        for i in range(self.n):
            path = paths[i % len(paths)]
            try:
                if conn is None or i % self.per_conn == 0:
                    if conn:
                        conn.close()
                    conn = self.srv.connect()
                r = conn.exchange(kt.request(path))
                if r.status != 200 or r.body != files[path]:
                    self.errors.append(f"request {i}: {r.status}, {len(r.body)} bytes")
                if "close" in r.get("connection", "").lower():
                    conn.close()
                    conn = None
            except Exception as e:
                self.errors.append(f"request {i} ({'new' if i % self.per_conn == 0 else 'kept'}"
                                   f" connection): {type(e).__name__}: {e}")
                conn = None
            self.done += 1
            time.sleep(0.005)
        if conn:
            conn.close()


def test_reload_loses_no_request():
    with kt.Server(kt.site()) as srv:
        loop = RequestLoop(srv)
        loop.start()
        for i in range(3):
            wait_for(lambda: loop.done >= 50 * (i + 1) or not loop.is_alive(), 10,
                     "request loop stalled")
            srv.write_config(server_tokens=bool(i % 2))
            srv.reload()
        loop.join(30)
        assert not loop.is_alive(), "request loop did not finish"
        assert srv.alive(), "server died during reloads"
        assert not loop.errors, f"{len(loop.errors)} of 200 requests lost across 3 reloads: " \
                                f"{loop.errors[:5]}"


def test_reload_invalid_config_keeps_old():
    with kt.Server(kt.site()) as srv:
        good = srv.config
        srv.conf_path.write_text(good + "this is not = { valid\n")
        before = srv.error_log()
        srv.reload()
        wait_for(lambda: len(srv.error_log()) > len(before), 3, "nothing logged for an invalid config")
        time.sleep(0.3)
        assert srv.alive(), "server exited on an invalid config at SIGHUP"
        new = srv.error_log()[len(before):]
        assert str(srv.conf_path) in new, f"reload error does not name the config file: {new!r}"
        r = srv.get("/index.html")
        assert r.status == 200 and r.get("server"), f"old config not serving: {r.status} {r.headers}"
        # and the next good config is picked up
        srv.write_config(server_tokens=False)
        srv.reload()
        wait_for(lambda: server_header(srv) is None, 3, "good config after a bad one not applied")


def test_sigusr1_reopens_access_log():
    with kt.Server(kt.site()) as srv:
        kt.curl(srv, kt.size_path(1))
        assert len(srv.wait_access_lines(1)) == 1, "first request not logged"
        rotated = srv.access_log_path.with_suffix(".log.1")
        os.rename(srv.access_log_path, rotated)
        srv.signal(signal.SIGUSR1)
        wait_for(lambda: srv.access_log_path.exists(), 3, "SIGUSR1 did not reopen access.log")
        kt.curl(srv, kt.size_path(0))
        wait_for(lambda: len(srv.access_log()) >= 1, 3, "request after SIGUSR1 not logged in the new file")
        assert "size_0.bin" in srv.access_log()[0], srv.access_log()
        old = rotated.read_text().splitlines()
        assert len(old) == 1 and "size_1.bin" in old[0], f"rotated file got new lines: {old}"
        assert srv.alive()


def test_sigterm_finishes_download():
    site = kt.site()
    data = os.urandom(8 << 20)
    path = site.add("a.test", "/big-8m.bin", data)
    try:
        with kt.Server(site, shutdown_timeout=10) as srv:
            fd_out = srv.dir / "download.bin"
            cmd = ["curl", "-sS", "--http1.1", "--limit-rate", "2M", "--max-time", "20",
                   "--resolve", f"a.test:{srv.port}:127.0.0.1", "--cacert", str(site.ca),
                   "-o", str(fd_out), "-w", "%{http_code}", f"https://a.test:{srv.port}/big-8m.bin"]
            dl = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                wait_for(lambda: fd_out.exists() and fd_out.stat().st_size > 0, 5, "download did not start")
                t0 = time.monotonic()
                srv.signal(signal.SIGTERM)
                wait_for(lambda: not kt.port_accepts(srv.port), 2,
                         "new connections still accepted after SIGTERM")
                out, err = dl.communicate(timeout=20)
            finally:
                if dl.poll() is None:
                    dl.kill()
                    dl.wait()
            assert dl.returncode == 0, f"download cut by SIGTERM: curl {dl.returncode} {err.decode()}"
            assert out == b"200", f"download status {out!r}"
            assert kt.sha256(fd_out.read_bytes()) == kt.sha256(data), "download not byte-exact"
            rc = srv.proc.wait(timeout=max(1, 12 - (time.monotonic() - t0)))
            assert rc == 0, f"server exit status {rc} after SIGTERM"
    finally:
        os.unlink(path)
        del site.files["/big-8m.bin"]


def test_sigterm_idle_exits_promptly():
    with kt.Server(kt.site(), shutdown_timeout=10) as srv, srv.connect() as c:
        c.exchange(kt.request(kt.size_path(1)))   # an idle keep-alive connection stays
        t0 = time.monotonic()
        rc = srv.stop(grace=12)
        took = time.monotonic() - t0
        assert rc == 0, f"exit status {rc} after SIGTERM"
        assert took < 3, f"idle server took {took:.1f}s to stop (idle connections hold it?)"
        assert c.wait_closed(1), "idle connection not closed at shutdown"


def test_privilege_drop():
    if not kt.running_as_root():
        raise kt.Skip("not running as root: cannot test user = \"nobody\"")
    nobody = pwd.getpwnam("nobody")
    with kt.Server(kt.site(), user="nobody") as srv:
        kt.assert_serves(srv)
        tasks = os.listdir(f"/proc/{srv.pid}/task")
        for tid in tasks:
            try:
                status = open(f"/proc/{srv.pid}/task/{tid}/status").read()
            except FileNotFoundError:
                continue  # a thread that ended meanwhile
            uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
            uids = {int(u) for u in uid_line.split()[1:]}
            assert uids == {nobody.pw_uid}, f"thread {tid}: {uid_line!r}, want all {nobody.pw_uid}"
            gid_line = next(line for line in status.splitlines() if line.startswith("Gid:"))
            assert 0 not in {int(g) for g in gid_line.split()[1:]}, f"thread {tid}: {gid_line!r}"
            groups = next(line for line in status.splitlines() if line.startswith("Groups:"))
            assert "0" not in groups.split()[1:], f"thread {tid} keeps group root: {groups!r}"
