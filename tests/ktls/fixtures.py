"""Fixtures of the in-VM suite: the site, kttpd processes, the kTLS counters, HTTP over tlsclient.

Site     files of the sizes under test (random bytes) and an ECDSA certificate
Kttpd    a running build/kttpd with a generated config (ktls on or off)
tls_stat /proc/net/tls_stat as a dict; delta() between two readings
get()    one HTTP/1.1 request over a tlsclient.Client, the response parsed
"""

import hashlib
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import profiles

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("KTTPD_BIN") or str(REPO / "build" / "kttpd")
PROFILE = profiles.current()
CAN = PROFILE.can      # what this profile's stack can do (profiles.py)

SIZES = (0, 1, 16383, 16384, 16385, 1 << 20)
# Offered by the test vhost: each version's three kTLS ciphers, and one the
# kernel (or OpenSSL's kTLS glue) cannot take.
CIPHERS_12 = ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
              "ECDHE-ECDSA-CHACHA20-POLY1305"]
SUITES_13 = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
             "TLS_CHACHA20_POLY1305_SHA256"]
NO_KTLS_12 = "ECDHE-ECDSA-AES128-SHA256"      # CBC: no kTLS
# OpenSSL 3.0 offloads no TLS 1.3 CCM; 3.2+ offloads CCM with its 16-byte
# tag (a matrix cipher there). The only other TLS 1.3 suite, CCM_8, neither
# offers at its default security level: on such a profile no TLS 1.3 suite
# stays in userspace for want of kernel support (NO_KTLS_13 None, a SKIP).
CCM_13 = "TLS_AES_128_CCM_SHA256"
NO_KTLS_13 = None if CAN["ccm13"] else CCM_13
NO_KTLS_13_WHY = ("every TLS 1.3 suite this OpenSSL negotiates at its default security level "
                  "is offloaded (CCM too; CCM_8 needs @SECLEVEL=0)")
MATRIX_13 = SUITES_13 + ([CCM_13] if CAN["ccm13"] else [])


class Skip(Exception):
    """Raise from a case to report it skipped, with the reason."""


def skipped(why):
    """A case that reports itself skipped, with the reason."""
    def case(site, servers):
        raise Skip(why)
    return case


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class Site:
    def __init__(self, base):
        self.base = Path(base)
        self.root = self.base / "www"
        self.root.mkdir(parents=True)
        self.data = {}
        for n in SIZES + (262144,):
            self.add(f"/size_{n}.bin", os.urandom(n))
        self.cert, self.key = self.base / "cert.pem", self.base / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost",
                        "-days", "2", "-keyout", str(self.key), "-out", str(self.cert)],
                       check=True, capture_output=True, timeout=60)

    def add(self, path, data):
        (self.root / path.lstrip("/")).write_bytes(data)
        self.data[path] = data


CONF = """\
workers = 1
error_log = "{base}/error.log"
access_log = "{base}/access.log"
log_level = "debug"
ktls = {ktls}
server "localhost" {{
    listen = {{ "127.0.0.1:{port} tls" }}
    tls {{
        certificate = "{cert}"
        key = "{key}"
        protocols = {{ "TLSv1.2", "TLSv1.3" }}
        ciphers = "{ciphers}"
        ciphersuites = "{suites}"
    }}
    root = "{root}"
}}
"""


class Kttpd:
    """build/kttpd in the foreground; logs in base/error.log and base/access.log."""

    def __init__(self, site, name, port, ktls=True):
        self.base = site.base / name
        self.base.mkdir()
        self.port = port
        self.conf = self.base / "kttpd.conf"
        self.conf.write_text(CONF.format(
            base=self.base, ktls="true" if ktls else "false", port=port,
            cert=site.cert, key=site.key, root=site.root,
            ciphers=":".join(CIPHERS_12 + [NO_KTLS_12]),
            suites=":".join(MATRIX_13 + ([NO_KTLS_13] if NO_KTLS_13 else []))))
        self.access_log = self.base / "access.log"
        self.error_log = self.base / "error.log"
        self.access_log.touch()
        self.out = open(self.base / "stdout", "wb")
        self.proc = subprocess.Popen([BIN, "-c", str(self.conf)], stdout=self.out,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kttpd exited with {self.proc.returncode}: {self.logs()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"kttpd did not listen on {port}: {self.logs()}")
                time.sleep(0.1)
        self.acc_pos = self.err_pos = 0

    def alive(self):
        return self.proc.poll() is None

    def logs(self):
        text = ""
        for p in (self.base / "stdout", self.error_log):
            if p.exists():
                text += p.read_text(errors="replace")
        return text[-2000:]

    def new_access(self):
        """Access log lines written since the last call."""
        data = self.access_log.read_bytes()
        new, self.acc_pos = data[self.acc_pos:], len(data)
        return new.decode(errors="replace").splitlines()

    def errors_bytes(self):
        return self.error_log.read_bytes() if self.error_log.exists() else b""

    def new_errors(self):
        data = self.errors_bytes()
        new, self.err_pos = data[self.err_pos:], len(data)
        return new.decode(errors="replace").splitlines()

    def errors_until(self, pred, timeout=5):
        """New error log lines, read again until pred(lines) holds or timeout: the
        client may see the connection end (an alert) before kttpd has logged why."""
        lines, deadline = self.new_errors(), time.monotonic() + timeout
        while not pred(lines) and time.monotonic() < deadline:
            time.sleep(0.05)
            lines += self.new_errors()
        return lines

    def log_size(self):
        return len(self.errors_bytes())

    def log_since(self, pos, limit=25):
        """The error log's last lines after byte pos (what a failed case prints)."""
        return self.errors_bytes()[pos:].decode(errors="replace").splitlines()[-limit:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()


ACCESS_TAIL = re.compile(r' (?P<proto>HTTP/\d\.\d)" (?P<status>\d+) (?P<bytes>\d+) "[^"]*" '
                         r'"(?P<ua>[^"]*)" (?P<server>\S+) (?P<ms>[\d.]+) (?P<version>\S+) '
                         r'(?P<cipher>\S+) ktls=(?P<mode>\S+)'
                         r'(?: place=(?P<place>\S+))?$')


def access_entries(lines, ua):
    """Parsed tails of the access log lines whose User-Agent is ua."""
    out = []
    for line in lines:
        m = ACCESS_TAIL.search(line)
        if m and m.group("ua") == ua:
            out.append(m.groupdict())
    return out


def tls_stat():
    try:
        text = Path("/proc/net/tls_stat").read_text()
    except OSError:
        return {}
    return {k: int(v) for k, v in (line.split() for line in text.splitlines() if line.strip())}


def delta(before, after):
    return {k: after.get(k, 0) - before.get(k, 0) for k in after}


def get(client, path, ua, headers=None):
    """GET over an open tlsclient.Client (keep-alive). -> (status, headers, body)."""
    lines = [f"GET {path} HTTP/1.1", "Host: localhost", f"User-Agent: {ua}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    client.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = client.read()
        if not chunk:
            raise ConnectionError(f"closed before the response head ({len(buf)} bytes)")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    status_line, *fields = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    hdrs = {}
    for f in fields:
        k, _, v = f.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    length = int(hdrs.get("content-length", "0"))
    while len(body) < length:
        chunk = client.read(min(262144, length - len(body)))
        if not chunk:
            raise ConnectionError(f"closed after {len(body)} of {length} body bytes")
        body += chunk
    return status, hdrs, body
