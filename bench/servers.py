"""servers.py: config, start, stop and /proc accounting for the servers
under test. Every server gets the same document root, certificates, TLS
1.3 with TLS_AES_128_GCM_SHA256, one worker, no access log, session
tickets at their default, sendfile where the server has it, and two TLS
listeners: PORT (ECDSA P-256) and PORT+100 (RSA-2048)."""

import os
import resource
import signal
import socket
import ssl
import subprocess
import time

SUITE = "TLS_AES_128_GCM_SHA256"
HZ = os.sysconf("SC_CLK_TCK")
# file descriptors a server may use: what run.sh could raise the limit to
# a file (run.sh's) to record each server's process group in, for its trap
PGIDS = None
NOFILE = min(65536, resource.getrlimit(resource.RLIMIT_NOFILE)[1])


class Server:
    """One server process group, started in its own session so that its
    every process (nginx master + worker) can be found and killed."""

    def __init__(self, name, port, argv, conf_text, conf_path, label=None):
        self.name = name            # key used in results (kttpd, nginx, ...)
        self.label = label or name  # what the table shows
        self.port = port
        self.rsa_port = port + 100
        self.argv = argv
        self.conf_text = conf_text
        self.conf_path = conf_path
        self.proc = None
        self.h2 = True

    def start(self, cpu, env, log):
        with open(self.conf_path, "w") as f:
            f.write(self.conf_text)
        argv = ["taskset", "-c", str(cpu)] + self.argv
        log.write("$ " + " ".join(argv) + "\n")
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log,
                                     start_new_session=True)
        if PGIDS:
            PGIDS.write(f"{self.proc.pid}\n")
        wait_ready(self, self.port)
        wait_ready(self, self.rsa_port)

    def pids(self):
        """All live processes of this server's session."""
        if self.proc is None:
            return []
        sid = self.proc.pid
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read()
            except OSError:
                continue
            fields = st[st.rfind(")") + 2:].split()
            if int(fields[3]) == sid:          # field 6: session id
                out.append(int(d))
        return out

    def cpu_split(self):
        """(utime, stime) in seconds of all processes in the session
        (threads included; reaped children's time is in cutime/cstime and
        ignored)."""
        user = system = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    st = f.read()
            except OSError:
                continue
            fields = st[st.rfind(")") + 2:].split()
            user += int(fields[11])
            system += int(fields[12])
        return user / HZ, system / HZ

    def cpu_seconds(self):
        return sum(self.cpu_split())

    def _status(self, key):
        vals = []
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith(key + ":"):
                            vals.append(int(line.split()[1]))
            except OSError:
                pass
        return vals

    def reset_peak(self):
        """Reset VmHWM to the current RSS (Linux >= 4.0: clear_refs 5)."""
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                pass

    def peak_rss_kib(self):
        """VmHWM of the largest process (the worker; nginx's master idles)."""
        return max(self._status("VmHWM") or [0])

    def rss_kib(self):
        """VmRSS summed over the session's processes."""
        return sum(self._status("VmRSS"))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=3)
                break
            except subprocess.TimeoutExpired:
                pass
        # a straggler of the group (nginx worker) after the leader is gone
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc = None


def wait_ready(srv, port, timeout=10.0):
    """Until a TLS GET of /1k.bin answers 200."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if srv.proc.poll() is not None:
            raise RuntimeError(f"{srv.name} exited with {srv.proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as s:
                with ctx.wrap_socket(s, server_hostname="localhost") as t:
                    t.sendall(b"GET /1k.bin HTTP/1.1\r\nHost: localhost\r\n"
                              b"Connection: close\r\n\r\n")
                    head = t.recv(64)
                    if head.startswith(b"HTTP/1.1 200"):
                        return
                    last = head[:40]
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise RuntimeError(f"{srv.name} not ready on {port}: {last}")


# ---- configuration text, one function per server ----

def kttpd_conf(w, port, ktls):
    def vhost(name, p, cert, key):
        return f'''
server "{name}" {{
    listen = {{ "127.0.0.1:{p} tls" }}
    tls {{
        certificate = "{cert}"
        key = "{key}"
        protocols = {{ "TLSv1.3" }}
        ciphersuites = "{SUITE}"
    }}
    root = "{w.root}"
}}
'''
    return (f'''workers = 1
error_log = "{w.dir}/kttpd-{port}.err"
access_log = ""
ktls = {"true" if ktls else "false"}
max_connections = 20000
keepalive_requests = 100000
keepalive_timeout = 300
open_file_cache = 1000
''' + vhost("bench", port, w.ec_crt, w.ec_key)
        + vhost("bench-rsa", port + 100, w.rsa_crt, w.rsa_key))


def nginx_conf(w, port, ktls):
    def vhost(p, cert, key):
        return f'''
    server {{
        listen 127.0.0.1:{p} ssl http2 backlog=4096;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
        ssl_conf_command Ciphersuites {SUITE};
        {"ssl_conf_command Options KTLS;" if ktls else ""}
        root {w.root};
    }}
'''
    tmp = f"{w.dir}/nginx-tmp"
    return f'''daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile {NOFILE};
user root;
pid {w.dir}/nginx.pid;
error_log {w.dir}/nginx.err warn;
events {{ worker_connections 20000; }}
http {{
    access_log off;
    sendfile on;
    open_file_cache max=1000 inactive=60s;
    keepalive_requests 100000;
    keepalive_timeout 300s;
    types {{ application/octet-stream bin; text/html html; }}
    default_type application/octet-stream;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
''' + vhost(port, w.ec_crt, w.ec_key) + vhost(port + 100, w.rsa_crt, w.rsa_key) + "}\n"


def lighttpd_conf(w, port, ktls):
    opts = f'"MinProtocol" => "TLSv1.3", "Ciphersuites" => "{SUITE}"'
    if ktls:
        opts += ', "Options" => "KTLS"'
    return f'''server.document-root = "{w.root}"
server.bind = "127.0.0.1"
server.port = {port}
server.modules = ( "mod_openssl" )
server.errorlog = "{w.dir}/lighttpd.err"
server.max-fds = {NOFILE}
server.max-connections = 20000
server.max-keep-alive-requests = 100000
server.max-keep-alive-idle = 300
server.listen-backlog = 4096
mimetype.assign = ( ".bin" => "application/octet-stream", ".html" => "text/html" )
ssl.engine = "enable"
ssl.pemfile = "{w.ec_crt}"
ssl.privkey = "{w.ec_key}"
ssl.openssl.ssl-conf-cmd = ( {opts} )
$SERVER["socket"] == "127.0.0.1:{port + 100}" {{
    ssl.engine = "enable"
    ssl.pemfile = "{w.rsa_crt}"
    ssl.privkey = "{w.rsa_key}"
}}
'''


def h2o_conf(w, port, ktls):
    def host(p, cert, key):
        return f'''  "localhost:{p}":
    listen:
      host: 127.0.0.1
      port: {p}
      ssl:
        certificate-file: {cert}
        key-file: {key}
        ocsp-update-interval: 0
    paths:
      /:
        file.dir: {w.root}
'''
    # h2o 2.2 has no TLS 1.3 suite option: the clients offer only SUITE.
    return (f'''num-threads: 1
max-connections: 20000
http1-request-timeout: 300
user: root
error-log: {w.dir}/h2o.err
hosts:
''' + host(port, w.ec_crt, w.ec_key) + host(port + 100, w.rsa_crt, w.rsa_key))


def make_servers(w, tools, ktls_mode):
    """The servers of one run, in the order they are interleaved."""
    c = lambda n: f"{w.dir}/{n}.conf"
    srv = [
        Server("kttpd", 19441, tools["kttpd"] + ["-c", c("kttpd")],
               kttpd_conf(w, 19441, ktls_mode), c("kttpd"),
               "kttpd" + (" (kTLS)" if ktls_mode else "")),
    ]
    if ktls_mode:
        srv.append(Server("kttpd-user", 19445,
                          tools["kttpd"] + ["-c", c("kttpd-user")],
                          kttpd_conf(w, 19445, False), c("kttpd-user"),
                          "kttpd (ktls = false)"))
    os.makedirs(f"{w.dir}/nginx-tmp", exist_ok=True)
    srv += [
        Server("nginx", 19442, tools["nginx"] + ["-e", f"{w.dir}/nginx.err",
                                                "-c", c("nginx")],
               nginx_conf(w, 19442, ktls_mode), c("nginx")),
        Server("lighttpd", 19443, tools["lighttpd"] + ["-D", "-f", c("lighttpd")]
               + tools.get("lighttpd_mods", []),
               lighttpd_conf(w, 19443, ktls_mode), c("lighttpd")),
        Server("h2o", 19444, tools["h2o"] + ["-c", c("h2o")],
               h2o_conf(w, 19444, ktls_mode), c("h2o")),
    ]
    return srv
