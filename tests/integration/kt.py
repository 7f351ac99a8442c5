"""Fixtures for the kttpd integration tests.

Site    a document tree, certificates and an outside-the-root secret on disk
Server  a running build/kttpd with a generated config (a context manager)
Conn    a raw HTTP/1.1 client over a TLS (or plain) socket
curl()  one request through the curl binary; s_client() through openssl

Everything here uses 127.0.0.1 / ::1 only and puts a timeout on every
socket operation and every child process.
"""

import email.utils
import hashlib
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("KTTPD_BIN") or str(REPO / "build" / "kttpd")

IO_TIMEOUT = 5          # seconds, every socket operation
START_TIMEOUT = 5       # seconds until the TLS port must accept

SIZES = (0, 1, 16383, 16384, 16385, 1 << 20)
BIG_SIZE = 5 << 30      # the sparse file
BIG_TAIL = 1 << 20      # known random bytes at its end
MTIME = 1577934245      # Thu, 02 Jan 2020 03:04:05 GMT: mtime of every file


class Skip(Exception):
    """Raise from a test to report it as skipped, with the reason."""


# Servers started by the test now running; the runner prints their logs
# when the test fails, then clears the list.
started = []


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def size_path(n):
    return f"/size_{n}.bin"


def wait_until(cond, timeout, interval=0.05):
    """Poll cond() until it returns a true value; return it (or the last)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def http_date(ts):
    return email.utils.formatdate(ts, usegmt=True)


def parse_http_date(text):
    return email.utils.parsedate_to_datetime(text).timestamp()


def running_as_root():
    return os.geteuid() == 0


def kernel_has_ktls():
    """True when the kernel offers the tls ULP (kTLS)."""
    try:
        ulps = Path("/proc/sys/net/ipv4/tcp_available_ulp").read_text().split()
    except OSError:
        return False
    return "tls" in ulps


# ---------------------------------------------------------------- the site

class Site:
    """A temporary tree with two docroots, certificates and edge-case files.

    Layout under self.dir:
      certs/       a.test.{crt,key} (SAN a.test, www.a.test), b.test.{crt,key}
      ca.pem       both certificates, for --cacert / ssl verification
      a/           docroot of a.test (see _build_a)
      b/           docroot of b.test
      outside/     a directory outside every root
      outside-secret.txt  holds self.marker; no response may ever show it
    """

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="kttpd-it-"))
        os.chmod(self.dir, 0o755)
        self.marker = "KT-OUTSIDE-" + os.urandom(8).hex()
        self.files = {}        # url path -> bytes, for every small file
        self.certs = {}        # host -> (cert path, key path)
        self.root = {"a.test": self.dir / "a", "b.test": self.dir / "b"}
        self._make_certs()
        self._build_outside()
        self._build_a()
        self._build_b()
        self._servers = 0

    # certificates
    def _make_certs(self):
        certs = self.dir / "certs"
        certs.mkdir()
        for host, sans in (("a.test", ["a.test", "www.a.test"]), ("b.test", ["b.test"])):
            crt, key = certs / f"{host}.crt", certs / f"{host}.key"
            san = ",".join(f"DNS:{n}" for n in sans)
            run(["openssl", "req", "-x509", "-newkey", "ec",
                 "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-days", "30", "-subj", f"/CN={host}",
                 "-addext", f"subjectAltName={san}",
                 "-keyout", str(key), "-out", str(crt)])
            self.certs[host] = (crt, key)
        self.ca = self.dir / "ca.pem"
        self.ca.write_bytes(b"".join(c.read_bytes() for c, _ in self.certs.values()))

    def _build_outside(self):
        self.outside_secret = self.dir / "outside-secret.txt"
        self.outside_secret.write_text(self.marker + "\n")
        (self.dir / "outside").mkdir()
        (self.dir / "outside" / "secret.txt").write_text(self.marker + "\n")

    def add(self, host, url, data, mode=None):
        """Write a file under host's root; remember its bytes by URL path."""
        path = self.root[host] / url.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (MTIME, MTIME))
        if mode is not None:
            os.chmod(path, mode)
        if host == "a.test":
            self.files[url] = data
        return path

    def _build_a(self):
        root = self.root["a.test"]
        root.mkdir()
        for n in SIZES:
            self.add("a.test", size_path(n), os.urandom(n))
        self.add("a.test", "/index.html", b"<html><body>a.test index</body></html>\n")
        self.add("a.test", "/home.html", b"<html><body>a.test home</body></html>\n")
        self.add("a.test", "/sub/index.html", b"<html><body>sub index</body></html>\n")
        self.add("a.test", "/noindex/file.txt", b"a file in a directory without index\n")
        self.add("a.test", "/.secret", b"dotfile secret\n")
        self.add("a.test", "/.well-known/acme-challenge/tok", b"acme-token-content\n")
        self.add("a.test", "/cached/c.txt", b"cached location file\n")
        self.add("a.test", "/style.css", b"body { color: red }\n")
        self.add("a.test", "/notes.txt", b"plain text\n")
        self.add("a.test", "/data.kqzx", b"unknown extension\n")
        self.add("a.test", "/sp ace \u00e9.txt", b"space and utf-8 name\n")
        self.add("a.test", "/unreadable.txt", b"nobody may read this\n", mode=0)

        # symlinks: one that stays inside the root, several that leave it
        os.symlink(size_path(16385).lstrip("/"), root / "link-in.bin")
        self.files["/link-in.bin"] = self.files[size_path(16385)]
        os.symlink(self.outside_secret, root / "link-out.txt")
        os.symlink("../outside-secret.txt", root / "link-out-rel.txt")
        os.symlink("../outside", root / "outside-dir")

        # sparse 5 GiB file with known bytes in its last MiB
        self.big_tail = os.urandom(BIG_TAIL)
        big = root / "big-5g.bin"
        with open(big, "wb") as f:
            f.truncate(BIG_SIZE)
            f.seek(BIG_SIZE - BIG_TAIL)
            f.write(self.big_tail)
        os.utime(big, (MTIME, MTIME))

    def _build_b(self):
        self.root["b.test"].mkdir()
        self.b_index = b"<html><body>b.test index</body></html>\n"
        self.add("b.test", "/index.html", self.b_index)

    def new_server_dir(self):
        self._servers += 1
        d = self.dir / f"server-{self._servers}"
        d.mkdir()
        os.chmod(d, 0o777)  # a server that drops privileges may reopen logs
        return d

    def new_root(self, name):
        """A fresh, empty docroot under the site's folder (for tests that
        write their own files; the shared roots stay read-only)."""
        d = Path(tempfile.mkdtemp(prefix=name + "-", dir=self.dir))
        os.chmod(d, 0o755)
        return d

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


_site = None


def site():
    """The shared, read-only Site of this run (built on first use)."""
    global _site
    if _site is None:
        _site = Site()
    return _site


def cleanup():
    global _site
    if _site is not None:
        _site.cleanup()
        _site = None


def run(cmd, timeout=30, check=True, input=None):
    p = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({p.returncode}): "
                           f"{p.stderr.decode(errors='replace')[-500:]}")
    return p


# ---------------------------------------------------------------- config

def free_port(family=socket.AF_INET, host="127.0.0.1"):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def conf_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "{ " + ", ".join(conf_value(x) for x in v) + " }"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def conf_lines(options, indent=""):
    return [f"{indent}{k} = {conf_value(v)}" for k, v in options.items()]


def line_of(text, needle):
    """1-based number of the first line of text containing needle."""
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise KeyError(needle)



def strace_counts(srv, work, settle=1.0):
    """Syscall counts (strace -c, every thread of srv) while work() runs:
    {name: calls}. Skip when strace is missing or cannot attach."""
    if shutil.which("strace") is None:
        raise Skip("strace not installed (apt-get install strace)")
    out = srv.dir / "strace.txt"
    args = ["strace", "-f", "-qq", "-c", "-o", str(out)]
    for t in os.listdir(f"/proc/{srv.pid}/task"):
        args += ["-p", t]
    st = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    time.sleep(settle)
    try:
        if st.poll() is not None:
            raise Skip("strace cannot attach here")
        work()
        time.sleep(0.3)
    finally:
        st.terminate()
        st.wait(10)
    counts = {}
    for line in out.read_text().splitlines():
        f = line.split()
        if len(f) >= 5 and f[-1].isidentifier() and f[3].isdigit():
            counts[f[-1]] = int(f[3])
    return counts

class Server:
    """build/kttpd running on a generated config; use as a context manager.

    Server(site, plain=False, ipv6=False, access_format="combined",
           vhost_a={...}, raw_tail="...", start=True, **global_options)

    Global options override the defaults below (workers = 2, short timeouts,
    logs in the server's own directory). vhost_a adds or overrides options of
    the a.test server block (e.g. index = [...]). raw_tail is appended to the
    config verbatim (to plant errors). locations={prefix: {option: value}}
    adds location blocks to a.test; listen_a=[...] adds listen entries to it.
    """

    DEFAULTS = dict(
        workers=2,
        log_level="info",
        handshake_timeout=5,
        header_timeout=5,
        keepalive_timeout=10,
        send_timeout=10,
        shutdown_timeout=5,
    )

    def __init__(self, site, *, plain=False, ipv6=False, access_format="combined",
                 vhost_a=None, raw_tail="", start=True, locations=None, listen_a=(),
                 **options):
        self.site = site
        self.dir = site.new_server_dir()
        self.conf_path = self.dir / "kttpd.conf"
        self.error_log_path = self.dir / "error.log"
        self.access_log_path = self.dir / "access.log"
        self.output_path = self.dir / "stdout-stderr.txt"
        self.port = free_port()
        self.plain_port = free_port() if plain else None
        self.ipv6_port = free_port(socket.AF_INET6, "::1") if ipv6 else None
        self.proc = None
        self.options = dict(self.DEFAULTS)
        self.options.update(error_log=str(self.error_log_path),
                            access_log=str(self.access_log_path),
                            access_log_format=access_format)
        self.options.update(options)
        self.vhost_a = dict(vhost_a or {})
        # extra location blocks of a.test: {prefix: {option: value}}, and
        # extra listen entries of a.test ("127.0.0.1:PORT proxy", ...)
        self.locations = dict(locations or {})
        self.listen_a = list(listen_a)
        self.raw_tail = raw_tail
        self.write_config()
        if start:
            self.start()

    # config
    def config_text(self):
        s = self.site
        listen_a = [f"127.0.0.1:{self.port} tls default"]
        if self.plain_port:
            listen_a.append(f"127.0.0.1:{self.plain_port}")
        if self.ipv6_port:
            listen_a.append(f"[::1]:{self.ipv6_port} tls")
        listen_a += self.listen_a
        a = dict(aliases=["www.a.test"], listen=listen_a)
        a_after = dict(root=str(s.root["a.test"]), index=["index.html"])
        a_after.update(self.vhost_a)
        crt_a, key_a = s.certs["a.test"]
        crt_b, key_b = s.certs["b.test"]
        lines = ["# generated by tests/integration/kt.py"]
        lines += conf_lines({k: v for k, v in self.options.items() if v is not None})
        lines += ['', 'server "a.test" {']
        lines += conf_lines(a, "    ")
        lines += ["    tls {"]
        lines += conf_lines(dict(certificate=str(crt_a), key=str(key_a)), "        ")
        lines += ["    }"]
        lines += conf_lines(a_after, "    ")
        lines += ['    location "/cached/" {',
                  '        cache_control = "max-age=60"',
                  '        expires = 60',
                  '    }']
        for prefix, opts in self.locations.items():
            lines += [f'    location {conf_value(prefix)} {{']
            lines += conf_lines(opts, "        ")
            lines += ['    }']
        lines += ['}', '',
                  'server "b.test" {']
        lines += conf_lines(dict(listen=[f"127.0.0.1:{self.port} tls"]), "    ")
        lines += ["    tls {"]
        lines += conf_lines(dict(certificate=str(crt_b), key=str(key_b)), "        ")
        lines += ["    }"]
        lines += conf_lines(dict(root=str(s.root["b.test"]), index=["index.html"]), "    ")
        lines += ["}"]
        if self.raw_tail:
            lines += [self.raw_tail]
        return "\n".join(lines) + "\n"

    def write_config(self, **options):
        """Rewrite the config file; options update the global options."""
        self.options.update(options)
        self.config = self.config_text()
        self.conf_path.write_text(self.config)

    # process
    def start(self):
        if not os.access(BIN, os.X_OK):
            raise AssertionError(f"server binary {BIN} missing (run make)")
        self.output = open(self.output_path, "wb")
        self.proc = subprocess.Popen([BIN, "-c", str(self.conf_path)],
                                     stdin=subprocess.DEVNULL, stdout=self.output,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        started.append(self)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"kttpd exited with {self.proc.returncode} at start: "
                                     f"{self.output_text()[-800:]}")
            if port_accepts(self.port):
                return self
            time.sleep(0.03)
        raise AssertionError(f"kttpd did not accept on port {self.port} within {START_TIMEOUT}s")

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self, timeout=10):
        """SIGHUP; returns once kttpd says how it ended ("reloaded": every worker
        has the new config; or "reload: ..." when it kept the old one), so that
        a connection made next is not one the old config takes and then ends."""
        def said():
            log = self.error_log()
            return log.count("] reloaded ") + log.count("] reload: ")
        before = said()
        self.signal(signal.SIGHUP)
        wait_until(lambda: said() > before, timeout)

    def stop(self, grace=None):
        """SIGTERM, wait up to the shutdown grace; returns the exit status."""
        if grace is None:
            grace = self.options.get("shutdown_timeout", 5) + 2
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"kttpd still running {grace}s after SIGTERM")

    def kill(self):
        if self.alive():
            self.proc.kill()
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if os.environ.get("ASAN_OPTIONS") and self.alive():
            # under the sanitizer pass, exit gracefully so that
            # LeakSanitizer checks every server, not only stopped ones
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        if getattr(self, "output", None):
            self.output.close()

    # logs
    def error_log(self):
        return read_text(self.error_log_path)

    def output_text(self):
        return read_text(self.output_path)

    def access_log(self):
        return read_text(self.access_log_path).splitlines()

    def wait_access_lines(self, n, timeout=3):
        """Wait until the access log has at least n lines; return them."""
        return wait_until(lambda: len(self.access_log()) >= n and self.access_log(),
                          timeout) or self.access_log()

    def log_tail(self, lines=25):
        parts = []
        for label, text in (("error log", self.error_log()), ("stdout/stderr", self.output_text())):
            tail = text.splitlines()[-lines:]
            if tail:
                parts.append(f"--- {label} ({self.dir}) ---\n" + "\n".join(tail))
        return "\n".join(parts)

    # clients
    def connect(self, servername="a.test", **kw):
        return Conn(tls_socket(self.port, servername, **kw))

    def connect_plain(self):
        return Conn(socket.create_connection(("127.0.0.1", self.plain_port), IO_TIMEOUT))

    def get(self, path, host="a.test", servername="", headers=(), method="GET"):
        """One request on a fresh TLS connection; returns a Response.
        servername "" sends host as SNI, None sends no SNI."""
        with self.connect(host if servername == "" else servername) as c:
            c.send(request(path, method=method, host=host, headers=headers))
            return c.read_response(head=(method == "HEAD"))


def read_text(path):
    try:
        return Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""


def port_accepts(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------- responses

class Response:
    """An HTTP response; unpacks as (status, headers, body)."""

    def __init__(self, status, headers, body=b"", version="", reason="", header_list=()):
        self.status, self.headers, self.body = status, headers, body
        self.version, self.reason = version, reason
        self.header_list = list(header_list)

    def __iter__(self):
        return iter((self.status, self.headers, self.body))

    def get(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def count(self, name):
        return sum(1 for k, _ in self.header_list if k.lower() == name.lower())

    def __repr__(self):
        return f"<{self.version} {self.status} {self.reason} body={len(self.body)}B>"


def parse_head(block):
    """Parse a response head (bytes, no final blank line) into a Response."""
    lines = block.decode("latin-1").split("\r\n")
    m = re.match(r"(HTTP/\d(?:\.\d)?) (\d{3})(?: (.*))?$", lines[0])
    if not m:
        raise AssertionError(f"bad status line {lines[0]!r}")
    header_list = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise AssertionError(f"bad header line {line!r}")
        header_list.append((name.strip(), value.strip()))
    headers = {}
    for name, value in header_list:
        key = name.lower()
        headers[key] = headers[key] + ", " + value if key in headers else value
    return Response(int(m.group(2)), headers, b"", m.group(1), m.group(3) or "", header_list)


# ---------------------------------------------------------------- raw clients

def client_context(version=None, verify=False, alpn=None, ca=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(str(ca or site().ca))
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_socket(port, servername="a.test", version=None, verify=False, alpn=None,
               host="127.0.0.1", context=None, session=None, timeout=IO_TIMEOUT):
    """A connected, handshaken TLS socket; servername None sends no SNI."""
    ctx = context or client_context(version, verify, alpn)
    sock = socket.create_connection((host, port), timeout)
    try:
        return ctx.wrap_socket(sock, server_hostname=servername, session=session)
    except BaseException:
        sock.close()
        raise


def request(path, method="GET", host="a.test", headers=(), version="HTTP/1.1", body=b""):
    """Bytes of one request; host None leaves the Host header out."""
    lines = [f"{method} {path} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in (headers.items() if isinstance(headers, dict) else headers)]
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("latin-1") + body


class Closed(Exception):
    """The peer closed (or reset) the connection."""


class Conn:
    """Minimal HTTP/1.1 client over a socket: send bytes, read responses."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.eof = False
        self.reset = False
        self.error = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        """Send all of data; a peer that closed early raises Closed."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLEOFError,
                ssl.SSLZeroReturnError) as e:
            raise Closed(f"peer closed while we were sending: {e!r}")

    def _recv(self, timeout=None):
        """Read more bytes into buf; False at EOF or reset."""
        if self.eof:
            return False
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            data = b""
        except ConnectionResetError:
            data, self.reset = b"", True
        except ssl.SSLError as e:
            # an alert from the server (or a broken record) ends the connection
            data, self.error = b"", e
        finally:
            if timeout is not None:
                self.sock.settimeout(IO_TIMEOUT)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _need(self, what):
        if not self._recv():
            got = f" after {self.buf[:200]!r}" if self.buf else ""
            how = "reset" if self.reset else "closed"
            raise Closed(f"connection {how} while waiting for {what}{got}")

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._need("a response head")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return parse_head(head)

    def read_exact(self, n):
        while len(self.buf) < n:
            self._need(f"{n - len(self.buf)} more body bytes")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, head=False):
        """Read one response; head=True for a HEAD request (no body)."""
        r = self.read_head()
        while 100 <= r.status < 200 and r.status != 101:
            r = self.read_head()
        if head or r.status in (204, 304):
            return r
        if "chunked" in r.get("transfer-encoding", "").lower():
            r.body = self._read_chunked()
        elif "content-length" in r.headers:
            r.body = self.read_exact(int(r.headers["content-length"]))
        else:
            while self._recv():
                pass
            r.body, self.buf = self.buf, b""
        return r

    def _read_chunked(self):
        body = b""
        while True:
            while b"\r\n" not in self.buf:
                self._need("a chunk size")
            line, self.buf = self.buf.split(b"\r\n", 1)
            n = int(line.split(b";")[0], 16)
            if n == 0:
                while b"\r\n\r\n" not in b"\r\n" + self.buf:
                    self._need("the chunked trailer")
                self.buf = (b"\r\n" + self.buf).split(b"\r\n\r\n", 1)[1]
                return body
            body += self.read_exact(n + 2)[:n]

    def exchange(self, data, n=1, head=False):
        """Send data, read n responses; one Response, or a list when n > 1."""
        self.send(data)
        out = [self.read_response(head) for _ in range(n)]
        return out[0] if n == 1 else out

    def wait_closed(self, timeout):
        """True if the peer closes within timeout; data that arrives is kept in buf."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.sock.pending() if isinstance(self.sock, ssl.SSLSocket) else False:
                self._recv()
                continue
            r, _, _ = select.select([self.sock], [], [], left)
            if r:
                try:
                    self._recv(timeout=max(left, 0.01))
                except (socket.timeout, ssl.SSLWantReadError):
                    continue
        return True

    def idle_open(self, seconds):
        """True if nothing arrives and the peer does not close for seconds."""
        before = len(self.buf)
        closed = self.wait_closed(seconds)
        return not closed and len(self.buf) == before


def raw_request(sock, data, n=1, head=False):
    """Send data on sock and read n responses (see Conn.exchange)."""
    return Conn(sock).exchange(data, n, head)


# ---------------------------------------------------------------- curl, openssl

def curl(srv, path, *args, host="a.test", plain=False, port=None, addr="127.0.0.1",
         check=True, timeout=30):
    """One request through curl; returns a Response (status 0 if curl failed
    and check=False; then .rc and .stderr say why)."""
    s = srv.site
    scheme, port = ("http", port or srv.plain_port) if plain else ("https", port or srv.port)
    fd, body_path = tempfile.mkstemp(prefix="curl-", dir=srv.dir)
    os.close(fd)
    cmd = ["curl", "-sS", "--http1.1", "--max-time", str(timeout),
           "--resolve", f"{host}:{port}:{addr}", "--cacert", str(s.ca),
           "-D", "-", "-o", body_path, *args, f"{scheme}://{host}:{port}{path}"]
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout + 5)
        body = Path(body_path).read_bytes()
    finally:
        os.unlink(body_path)
    stderr = p.stderr.decode(errors="replace").strip()
    if p.returncode != 0:
        if check:
            raise AssertionError(f"curl {path} failed (rc {p.returncode}): {stderr}")
        r = Response(0, {}, body)
    else:
        heads = [b for b in p.stdout.split(b"\r\n\r\n") if b.startswith(b"HTTP/")]
        if not heads:
            raise AssertionError(f"curl {path}: no response head in {p.stdout[:200]!r}")
        r = parse_head(heads[-1])
        # with -I curl writes the head into the -o file too; it reads no body
        r.body = b"" if ("-I" in args or "--head" in args) else body
    r.rc, r.stderr = p.returncode, stderr
    return r


def s_client(port, *args, servername=None, input=b"", timeout=10):
    """Run openssl s_client; returns (exit status, stdout+stderr text)."""
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}"]
    cmd += ["-servername", servername] if servername else ["-noservername"]
    cmd += list(args)
    p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace")


def cert_cn(s_client_output):
    """Subject CN of the peer certificate in s_client output (or None)."""
    m = re.search(r"^subject=.*?CN\s*=\s*([^,/\s]+)", s_client_output, re.M)
    return m and m.group(1)


def tls_version_in(s_client_output):
    """The protocol s_client negotiated ("TLSv1.2"...), or None if it failed.
    "New, X, Cipher is C" shows the cipher's version, not the protocol: the
    protocol is in the SSL-Session block (printed for TLS 1.3 only once a
    ticket arrives; TLS 1.3 suites are named TLS_*)."""
    m = re.search(r"^(?:New|Reused), \S+, Cipher is (\S+)", s_client_output, re.M)
    if not m or m.group(1) == "(NONE)":
        return None
    if m.group(1).startswith("TLS_"):
        return "TLSv1.3"
    p = re.search(r"^\s*Protocol\s*:\s*(\S+)", s_client_output, re.M)
    return p.group(1) if p else None


def s_client_reused(s_client_output):
    return re.search(r"^Reused, ", s_client_output, re.M) is not None


# ---------------------------------------------------------------- assertions

def assert_serves(srv, path=size_path(16385)):
    """A fresh TLS connection gets path byte-exact."""
    r = srv.get(path)
    assert r.status == 200, f"fresh connection: GET {path} -> {r.status}"
    assert r.body == srv.site.files[path], f"fresh connection: GET {path}: body differs"


def serves(srv, path=size_path(1)):
    """True if a fresh TLS connection gets path with 200 and the right bytes."""
    try:
        r = srv.get(path)
    except (OSError, Closed):
        return False
    return r.status == 200 and r.body == srv.site.files[path]


def assert_status(r, expected, what=""):
    exp = expected if isinstance(expected, (set, tuple, list)) else (expected,)
    assert r.status in exp, f"{what}: status {r.status}, expected {expected} ({r.headers})"


def assert_bad_request_closes(conn, r, expected=400, what=""):
    """r is a 4xx answer to a bad request: it says close, and the server closes."""
    assert_status(r, expected, what)
    assert "close" in r.get("connection", "").lower(), \
        f"{what}: {r.status} without 'Connection: close' ({r.headers})"
    assert conn.wait_closed(3), f"{what}: connection still open 3s after {r.status}"


def s_client_script(port, *args, servername="a.test", script=(), timeout=10):
    """Run openssl s_client, feeding stdin piece by piece: script is a list of
    (bytes, seconds to wait after writing them). Returns (status, output)."""
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}"]
    cmd += ["-servername", servername] if servername else ["-noservername"]
    cmd += list(args)
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        for data, pause in script:
            try:
                p.stdin.write(data)
                p.stdin.flush()
            except BrokenPipeError:
                break
            time.sleep(pause)
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate(timeout=5)
        return p.returncode, out.decode(errors="replace")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=5)


# ---------------------------------------------------------------- HTTP/2 clients

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# RFC 9113 error codes
H2_NO_ERROR, H2_PROTOCOL_ERROR, H2_INTERNAL_ERROR, H2_FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
H2_REFUSED_STREAM, H2_CANCEL, H2_COMPRESSION_ERROR, H2_ENHANCE_YOUR_CALM = 0x7, 0x8, 0x9, 0xb
# SETTINGS identifiers
H2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_SETTINGS_INITIAL_WINDOW_SIZE = 0x3, 0x4
H2_SETTINGS_MAX_HEADER_LIST_SIZE = 0x6


def _need_h2():
    try:
        import h2.connection  # noqa: F401  (Debian python3-h2)
        import hpack  # noqa: F401
        import hyperframe.frame  # noqa: F401
    except ImportError as e:
        raise Skip(f"python h2/hpack/hyperframe not installed ({e}); use /usr/bin/python3")


def h2_socket(port, servername="a.test", timeout=IO_TIMEOUT, rcvbuf=None):
    """A TLS socket that offered only h2 and got it (AssertionError if not)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    try:
        sock = client_context(alpn=["h2"]).wrap_socket(sock, server_hostname=servername)
    except BaseException:
        sock.close()
        raise
    if sock.selected_alpn_protocol() != "h2":
        proto = sock.selected_alpn_protocol()
        sock.close()
        raise AssertionError(f"ALPN selected {proto!r}, not h2")
    return sock


def _recv_some(sock, timeout):
    """One recv with a timeout: bytes, b"" at EOF/reset/TLS error, None if nothing came."""
    sock.settimeout(max(timeout, 0.001))
    try:
        return sock.recv(65536)
    except (socket.timeout, ssl.SSLWantReadError):
        return None
    except (ConnectionResetError, BrokenPipeError, ssl.SSLZeroReturnError, ssl.SSLEOFError, ssl.SSLError):
        return b""
    finally:
        sock.settimeout(IO_TIMEOUT)


class H2Response:
    """One HTTP/2 stream as a client saw it."""

    def __init__(self, sid):
        self.sid = sid
        self.status = None
        self.headers = {}
        self.body = b""
        self.data_frames = 0
        self.ended = False
        self.reset = None          # RST_STREAM error code

    @property
    def done(self):
        return self.ended or self.reset is not None

    def get(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def __repr__(self):
        return (f"<h2 stream {self.sid} status={self.status} body={len(self.body)}B "
                f"ended={self.ended} reset={self.reset}>")


class H2Client:
    """A well-behaved HTTP/2 client (python h2, which also checks the server's
    framing) over TLS. settings: our initial SETTINGS ({id: value}); with
    auto_window (default) every DATA byte is given back by WINDOW_UPDATE."""

    def __init__(self, port, servername="a.test", settings=None, auto_window=True,
                 timeout=IO_TIMEOUT):
        _need_h2()
        import h2.config
        import h2.connection
        import h2.settings
        self.sock = h2_socket(port, servername, timeout)
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        if settings:
            values = {int(k): v for k, v in self.h2.local_settings.items()}
            values.update(settings)
            self.h2.local_settings = h2.settings.Settings(client=True, initial_values=values)
        self.h2.initiate_connection()
        self.auto_window = auto_window
        self.streams = {}
        self.server_settings = {}
        self.goaway = None          # (error code, last stream id) of a GOAWAY
        self.goaway_at = None       # time.monotonic() it arrived
        self.closed = False
        self.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def flush(self):
        data = self.h2.data_to_send()
        if data and not self.closed:
            try:
                self.sock.sendall(data)
            except (OSError, ssl.SSLError) as e:
                self.closed = True
                raise Closed(f"peer closed while we were sending: {e!r}")

    def request(self, path, method="GET", authority="a.test", headers=(), end_stream=True):
        """Send a request; returns its stream id."""
        sid = self.h2.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", "https"), (":authority", authority),
                (":path", path)] + list(headers)
        self.h2.send_headers(sid, hdrs, end_stream=end_stream)
        self.streams[sid] = H2Response(sid)
        self.flush()
        return sid

    def open_window(self, sid, n):
        """WINDOW_UPDATE of n bytes for stream sid (and the connection)."""
        self.h2.increment_flow_control_window(n, stream_id=sid)
        self.h2.increment_flow_control_window(n)
        self.flush()

    def _event(self, ev):
        import h2.events as E
        s = self.streams.get(getattr(ev, "stream_id", None))
        if isinstance(ev, E.ResponseReceived) and s:
            s.headers = {k.lower(): v for k, v in ev.headers}
            s.status = int(s.headers.get(":status", 0))
        elif isinstance(ev, E.DataReceived):
            if s:
                s.body += ev.data
                s.data_frames += 1
            if self.auto_window and ev.flow_controlled_length:
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, E.StreamEnded) and s:
            s.ended = True
        elif isinstance(ev, E.StreamReset) and s:
            s.reset = ev.error_code
        elif isinstance(ev, E.ConnectionTerminated):
            self.goaway = (int(ev.error_code), ev.last_stream_id)
            self.goaway_at = time.monotonic()
        elif isinstance(ev, E.RemoteSettingsChanged):
            for k, v in ev.changed_settings.items():
                self.server_settings[int(k)] = v.new_value

    def pump(self, timeout=0.2):
        """Read once (waiting up to timeout) and handle what came; False once closed."""
        if self.closed:
            return False
        data = _recv_some(self.sock, timeout)
        if data is None:
            return True
        if not data:
            self.closed = True
            return False
        for ev in self.h2.receive_data(data):
            self._event(ev)
        try:
            self.flush()
        except Closed:
            pass
        return not self.closed

    def wait(self, cond, timeout=IO_TIMEOUT):
        """Pump until cond() is true, the peer closes, or timeout; returns cond()."""
        deadline = time.monotonic() + timeout
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0 or not self.pump(min(left, 0.5)):
                break
        return cond()

    def wait_closed(self, timeout):
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.pump(min(0.5, max(deadline - time.monotonic(), 0.01)))
        return self.closed

    def finish(self, sids, timeout=IO_TIMEOUT):
        """Wait until all streams in sids are done; returns their responses."""
        self.wait(lambda: all(self.streams[s].done for s in sids), timeout)
        return [self.streams[s] for s in sids]

    def get(self, path, method="GET", authority="a.test", headers=(), timeout=IO_TIMEOUT):
        sid = self.request(path, method, authority, headers)
        r = self.finish([sid], timeout)[0]
        if not r.done:
            raise AssertionError(f"h2 {method} {path}: no complete response in {timeout}s "
                                 f"({r}, closed={self.closed}, goaway={self.goaway})")
        return r


def h2_get(srv, path, **kw):
    """One request on a fresh HTTP/2 connection; returns an H2Response."""
    with H2Client(srv.port) as c:
        return c.get(path, **kw)


def assert_serves_h2(srv, path=size_path(16385)):
    """A fresh HTTP/2 connection gets path byte-exact."""
    r = h2_get(srv, path)
    assert r.status == 200, f"fresh h2 connection: GET {path} -> {r}"
    assert r.body == srv.site.files[path], f"fresh h2 connection: GET {path}: body differs"


class H2Raw:
    """HTTP/2 by hand (hyperframe + hpack) for frames no polite client sends.

    Sends the preface and a SETTINGS frame (settings={id: value}); received
    frames are parsed into self.frames (HEADERS get .decoded, a header list),
    and the server's SETTINGS are ACKed when ack_settings."""

    def __init__(self, port, servername="a.test", settings=None, ack_settings=True,
                 rcvbuf=None, timeout=IO_TIMEOUT):
        _need_h2()
        import hpack
        self.sock = h2_socket(port, servername, timeout, rcvbuf)
        self.enc, self.dec = hpack.Encoder(), hpack.Decoder()
        self.ack_settings = ack_settings
        self.buf = b""
        self.frames = []
        self.closed = False
        self.send(H2_PREFACE + self.settings(settings or {}))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # frames to send (bytes)
    @staticmethod
    def settings(values, ack=False):
        from hyperframe.frame import SettingsFrame
        return SettingsFrame(0, settings=dict(values), flags=["ACK"] if ack else []).serialize()

    def headers(self, sid, path, method="GET", authority="a.test", extra=(), end_stream=True,
                fragment=16384):
        """A HEADERS frame, and CONTINUATION frames when the block is over fragment bytes."""
        from hyperframe.frame import ContinuationFrame, HeadersFrame
        block = self.enc.encode([(":method", method), (":scheme", "https"),
                                 (":authority", authority), (":path", path)] + list(extra),
                               huffman=False)     # pure-python Huffman is slow on big values
        parts = [block[i:i + fragment] for i in range(0, len(block), fragment)] or [b""]
        out = []
        for i, part in enumerate(parts):
            flags = ["END_HEADERS"] if i == len(parts) - 1 else []
            if i == 0:
                flags += ["END_STREAM"] if end_stream else []
                out.append(HeadersFrame(sid, part, flags=flags).serialize())
            else:
                out.append(ContinuationFrame(sid, part, flags=flags).serialize())
        return b"".join(out)

    @staticmethod
    def frame(ftype, flags, sid, payload):
        """Any frame from its parts (for frames hyperframe will not build)."""
        return (len(payload).to_bytes(3, "big") + bytes([ftype, flags])
                + (sid & 0x7fffffff).to_bytes(4, "big") + payload)

    @staticmethod
    def rst(sid, code=H2_CANCEL):
        from hyperframe.frame import RstStreamFrame
        return RstStreamFrame(sid, error_code=code).serialize()

    @staticmethod
    def data(sid, payload=b"", end_stream=False):
        from hyperframe.frame import DataFrame
        return DataFrame(sid, payload, flags=["END_STREAM"] if end_stream else []).serialize()

    @staticmethod
    def ping(opaque=b"\0" * 8):
        from hyperframe.frame import PingFrame
        return PingFrame(0, opaque_data=opaque).serialize()

    @staticmethod
    def window_update(sid, n):
        from hyperframe.frame import WindowUpdateFrame
        return WindowUpdateFrame(sid, window_increment=n).serialize()

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (OSError, ssl.SSLError) as e:
            self.closed = True
            raise Closed(f"peer closed while we were sending: {e!r}")

    # frames received
    def read(self, timeout=0.2):
        """One recv; parse whole frames into self.frames. Returns the new ones
        (an empty list when nothing came); sets self.closed at EOF."""
        from hyperframe.frame import Frame, HeadersFrame, SettingsFrame
        if self.closed:
            return []
        data = _recv_some(self.sock, timeout)
        if data == b"":
            self.closed = True
        if not data:
            return []
        self.buf += data
        new = []
        while len(self.buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
            if len(self.buf) < 9 + length:
                break
            frame.parse_body(memoryview(self.buf[9:9 + length]))
            self.buf = self.buf[9 + length:]
            if isinstance(frame, HeadersFrame):
                frame.decoded = [(k.decode() if isinstance(k, bytes) else k,
                                  v.decode() if isinstance(v, bytes) else v)
                                 for k, v in self.dec.decode(frame.data)]
            elif (isinstance(frame, SettingsFrame) and "ACK" not in frame.flags
                  and self.ack_settings and not self.closed):
                try:
                    self.send(self.settings({}, ack=True))
                except Closed:
                    pass
            new.append(frame)
        self.frames += new
        return new

    def collect(self, cond=None, timeout=IO_TIMEOUT):
        """Read until cond(self) is true, the peer closes, or timeout."""
        deadline = time.monotonic() + timeout
        while not (cond and cond(self)) and not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.read(min(left, 0.5))
        return bool(cond and cond(self))

    def wait_closed(self, timeout):
        self.collect(None, timeout)
        return self.closed

    def of_type(self, name, sid=None):
        return [f for f in self.frames if type(f).__name__ == name
                and (sid is None or f.stream_id == sid)]

    def goaway(self):
        g = self.of_type("GoAwayFrame")
        return g[0] if g else None

    def server_settings(self):
        out = {}
        for f in self.of_type("SettingsFrame"):
            if "ACK" not in f.flags:
                out.update(f.settings)
        return out

    def status(self, sid):
        for f in self.of_type("HeadersFrame", sid):
            return int(dict(f.decoded).get(":status", 0))
        return None

    def body(self, sid):
        return b"".join(f.data for f in self.of_type("DataFrame", sid))

    def ended(self, sid):
        """True once stream sid ended (END_STREAM from the server) or was reset."""
        return any(type(f).__name__ == "RstStreamFrame" or "END_STREAM" in f.flags
                   for f in self.frames if f.stream_id == sid
                   and type(f).__name__ in ("DataFrame", "HeadersFrame", "RstStreamFrame"))


def proc_rss_kib(pid):
    """VmRSS of a process in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
