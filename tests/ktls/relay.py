"""A TCP relay between a client and kttpd: flips a byte, or counts the server's TLS records.

    r = Relay(server_port); connect to r.port; ...; r.arm(); ... r.close()

Once armed, the next chunk from the client has the byte at offset FLIP_AT
(inside the first record's payload, past its 5-byte header) XORed with 0xff.

Every chunk from the server is parsed as a stream of TLS records (5-byte
header: type, version, 16-bit length) before it is passed on, so when the
client has read a byte, the record that carried it is in r.records as
(type, length). r.mark() is how many records have been seen so far: two
marks bracket one phase of a connection. r.upstream_port is the relay's
port towards the server (the client port kttpd sees).
"""

import select
import socket
import struct
import threading

FLIP_AT = 8


class Relay:
    def __init__(self, server_port):
        self.server_port = server_port
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.port = self.lsock.getsockname()[1]
        self.upstream_port = None
        self.connected = threading.Event()
        self.armed = False
        self.flipped = False
        self.records = []          # (type, length) of each record the server sent
        self._rbuf = b""
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def arm(self):
        self.armed = True

    def mark(self):
        return len(self.records)

    def _parse(self, data):
        buf = self._rbuf + data
        pos = 0
        while len(buf) - pos >= 5:
            rtype, _ver, length = struct.unpack_from("!BHH", buf, pos)
            if len(buf) - pos < 5 + length:
                break
            self.records.append((rtype, length))
            pos += 5 + length
        self._rbuf = buf[pos:]

    def _run(self):
        self.lsock.settimeout(30)
        try:
            client, _ = self.lsock.accept()
            server = socket.create_connection(("127.0.0.1", self.server_port), timeout=30)
            self.upstream_port = server.getsockname()[1]
        except OSError:
            return
        finally:
            self.connected.set()
        peers = {client: server, server: client}
        try:
            while not self.done.is_set():
                ready, _, _ = select.select(list(peers), [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is client and self.armed and not self.flipped and len(data) > FLIP_AT:
                        data = data[:FLIP_AT] + bytes([data[FLIP_AT] ^ 0xFF]) + data[FLIP_AT + 1:]
                        self.flipped = True
                    if s is server:
                        self._parse(data)
                    peers[s].sendall(data)
        except OSError:
            pass
        finally:
            client.close()
            server.close()

    def close(self):
        self.done.set()
        self.lsock.close()
        self.thread.join(5)
