"""A TLS client on the host's libssl through ctypes, for what Python's ssl module cannot do.

It picks the TLS 1.3 suite, offers ALPN (h2), sends KeyUpdate (SSL_key_update), starts a TLS 1.2
renegotiation, resumes sessions, and, with kTLS TX on its own socket
(ktls=True, inside the VM), injects any record type (an alert) through the
kernel: sendmsg() with a TLS_SET_RECORD_TYPE control message.

Sockets are blocking with SO_RCVTIMEO/SO_SNDTIMEO, so no call hangs.
"""

import ctypes
import socket
import struct

ssl = ctypes.CDLL("libssl.so.3", use_errno=True)
crypto = ctypes.CDLL("libcrypto.so.3")

P, I, L, U64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_uint64
for name, res, args in [
    ("TLS_client_method", P, []), ("SSL_CTX_new", P, [P]), ("SSL_CTX_free", None, [P]),
    ("SSL_CTX_ctrl", L, [P, I, L, P]), ("SSL_CTX_set_options", U64, [P, U64]),
    ("SSL_CTX_set_cipher_list", I, [P, ctypes.c_char_p]),
    ("SSL_CTX_set_ciphersuites", I, [P, ctypes.c_char_p]),
    ("SSL_new", P, [P]), ("SSL_free", None, [P]), ("SSL_set_fd", I, [P, I]),
    ("SSL_ctrl", L, [P, I, L, P]), ("SSL_connect", I, [P]), ("SSL_do_handshake", I, [P]),
    ("SSL_read", I, [P, P, I]), ("SSL_write", I, [P, P, I]), ("SSL_get_error", I, [P, I]),
    ("SSL_shutdown", I, [P]), ("SSL_key_update", I, [P, I]), ("SSL_renegotiate", I, [P]),
    ("SSL_get_version", ctypes.c_char_p, [P]), ("SSL_get_current_cipher", P, [P]),
    ("SSL_CIPHER_get_name", ctypes.c_char_p, [P]), ("SSL_get1_session", P, [P]),
    ("SSL_set_session", I, [P, P]), ("SSL_session_reused", I, [P]),
    ("SSL_SESSION_free", None, [P]), ("SSL_get_wbio", P, [P]), ("SSL_get_rbio", P, [P]),
    ("SSL_pending", I, [P]), ("SSL_set_shutdown", None, [P, I]),
    ("SSL_CTX_set_alpn_protos", I, [P, ctypes.c_char_p, ctypes.c_uint]),
    ("SSL_get0_alpn_selected", None, [P, ctypes.POINTER(P), ctypes.POINTER(ctypes.c_uint)]),
]:
    f = getattr(ssl, name)
    f.restype, f.argtypes = res, args
crypto.ERR_get_error.restype = ctypes.c_ulong
crypto.ERR_error_string_n.argtypes = [ctypes.c_ulong, ctypes.c_char_p, ctypes.c_size_t]
crypto.ERR_clear_error.restype = None
crypto.BIO_ctrl.restype, crypto.BIO_ctrl.argtypes = L, [P, I, L, P]
crypto.BIO_test_flags.restype, crypto.BIO_test_flags.argtypes = I, [P, I]

VERSIONS = {"TLSv1.2": 0x303, "TLSv1.3": 0x304}
SSL_CTRL_SET_TLSEXT_HOSTNAME = 55
SSL_CTRL_SET_MIN_PROTO_VERSION, SSL_CTRL_SET_MAX_PROTO_VERSION = 123, 124
SSL_OP_ENABLE_KTLS = 1 << 3
BIO_CTRL_GET_KTLS_SEND, BIO_CTRL_GET_KTLS_RECV = 73, 76
SSL_ERROR_NAMES = {1: "SSL", 2: "WANT_READ", 3: "WANT_WRITE", 5: "SYSCALL", 6: "ZERO_RETURN"}
SOL_TLS, TLS_SET_RECORD_TYPE = 282, 1
ALERT, HANDSHAKE = 21, 22


class TLSError(Exception):
    """kind: SSL error name (SSL, SYSCALL, ZERO_RETURN, ...); detail: OpenSSL's queue."""

    def __init__(self, what, kind, detail, errno=0):
        self.kind, self.detail, self.errno = kind, detail, errno
        super().__init__(f"{what}: {kind} {detail}".strip() + (f" errno={errno}" if errno else ""))


def err_queue():
    out = []
    while True:
        e = crypto.ERR_get_error()
        if not e:
            return "; ".join(out)
        buf = ctypes.create_string_buffer(256)
        crypto.ERR_error_string_n(e, buf, 256)
        out.append(buf.value.decode())


class Client:
    def __init__(self, host, port, version, cipher=None, session=None, ktls=False,
                 timeout=20.0, sni="localhost", sock=None, alpn=None):
        self.ctx = ssl.SSL_CTX_new(ssl.TLS_client_method())
        v = VERSIONS[version]
        ssl.SSL_CTX_ctrl(self.ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, v, None)
        ssl.SSL_CTX_ctrl(self.ctx, SSL_CTRL_SET_MAX_PROTO_VERSION, v, None)
        # No client session cache: SSL_CTX_free would flush it, and a flushed
        # session is marked not resumable. session() hands sessions out instead.
        if ktls:
            ssl.SSL_CTX_set_options(self.ctx, SSL_OP_ENABLE_KTLS)
        if alpn:  # e.g. ["h2"]
            wire = b"".join(bytes([len(p)]) + p.encode() for p in alpn)
            if ssl.SSL_CTX_set_alpn_protos(self.ctx, wire, len(wire)) != 0:
                raise TLSError("SSL_CTX_set_alpn_protos", "SSL", err_queue())
        if cipher and version == "TLSv1.3":
            ssl.SSL_CTX_set_ciphersuites(self.ctx, cipher.encode())
        elif cipher:
            ssl.SSL_CTX_set_cipher_list(self.ctx, cipher.encode())
        self.sock = sock or socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(None)  # blocking; the kernel enforces the timeout
        tv = struct.pack("ll", int(timeout), int((timeout % 1) * 1e6))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
        self.ssl = ssl.SSL_new(self.ctx)
        ssl.SSL_set_fd(self.ssl, self.sock.fileno())
        ssl.SSL_ctrl(self.ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, 0, ctypes.c_char_p(sni.encode()))
        if session:
            ssl.SSL_set_session(self.ssl, session)
        self._check("handshake", ssl.SSL_connect(self.ssl))

    def _check(self, what, r):
        if r > 0:
            return r
        kind = ssl.SSL_get_error(self.ssl, r)
        errno = ctypes.get_errno()
        raise TLSError(what, SSL_ERROR_NAMES.get(kind, str(kind)), err_queue(), errno)

    # -- facts
    def version(self):
        return ssl.SSL_get_version(self.ssl).decode()

    def cipher(self):
        return ssl.SSL_CIPHER_get_name(ssl.SSL_get_current_cipher(self.ssl)).decode()

    def alpn(self):
        """The protocol the server chose by ALPN, or None."""
        data, n = P(), ctypes.c_uint(0)
        ssl.SSL_get0_alpn_selected(self.ssl, ctypes.byref(data), ctypes.byref(n))
        return ctypes.string_at(data, n.value).decode() if n.value else None

    def local_port(self):
        return self.sock.getsockname()[1]

    def reused(self):
        return bool(ssl.SSL_session_reused(self.ssl))

    def ktls_tx(self):
        return bool(crypto.BIO_ctrl(ssl.SSL_get_wbio(self.ssl), BIO_CTRL_GET_KTLS_SEND, 0, None))

    def session(self):
        """A new reference to the session (for resumption); free with free_session."""
        return ssl.SSL_get1_session(self.ssl)

    # -- data
    def write(self, data):
        buf = ctypes.create_string_buffer(data, len(data))
        done = 0
        while done < len(data):
            crypto.ERR_clear_error()
            done += self._check("write", ssl.SSL_write(self.ssl, ctypes.byref(buf, done),
                                                       len(data) - done))

    def read(self, n=65536):
        """Up to n bytes; b'' on close_notify or a TCP close; TLSError otherwise."""
        buf = ctypes.create_string_buffer(n)
        crypto.ERR_clear_error()
        r = ssl.SSL_read(self.ssl, buf, n)
        if r > 0:
            return buf.raw[:r]
        kind = ssl.SSL_get_error(self.ssl, r)
        errno = ctypes.get_errno()
        if kind == 6 or (kind == 5 and errno == 0 and r == 0):
            return b""
        raise TLSError("read", SSL_ERROR_NAMES.get(kind, str(kind)), err_queue(), errno)

    # -- control
    def key_update(self, requested):
        """Queue a KeyUpdate; it leaves with the next write (or flush_handshake)."""
        if ssl.SSL_key_update(self.ssl, 1 if requested else 0) != 1:
            raise TLSError("SSL_key_update", "SSL", err_queue())

    def flush_handshake(self):
        self._check("do_handshake", ssl.SSL_do_handshake(self.ssl))

    def renegotiate(self):
        if ssl.SSL_renegotiate(self.ssl) != 1:
            raise TLSError("SSL_renegotiate", "SSL", err_queue())
        self._check("renegotiation", ssl.SSL_do_handshake(self.ssl))

    def send_record(self, rtype, payload):
        """One record of any type, encrypted by this socket's kTLS TX."""
        if not self.ktls_tx():
            raise RuntimeError("send_record needs kTLS TX on the client socket")
        self.sock.sendmsg([payload], [(SOL_TLS, TLS_SET_RECORD_TYPE, bytes([rtype]))])

    def close_notify(self):
        crypto.ERR_clear_error()
        return ssl.SSL_shutdown(self.ssl)

    def close(self):
        if self.ssl:
            # as if shut down: OpenSSL would otherwise drop the session as bad
            ssl.SSL_set_shutdown(self.ssl, 3)  # SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN
            ssl.SSL_free(self.ssl)
            ssl.SSL_CTX_free(self.ctx)
            self.ssl = self.ctx = None
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def free_session(sess):
    if sess:
        ssl.SSL_SESSION_free(sess)
