"""A TCP relay that flips one byte of the client->server stream when armed.

    r = Relay(server_port); connect to r.port; ...; r.arm(); ... r.close()

Once armed, the next chunk from the client has the byte at offset FLIP_AT
(inside the first record's payload, past its 5-byte header) XORed with 0xff.
"""

import select
import socket
import threading

FLIP_AT = 8


class Relay:
    def __init__(self, server_port):
        self.server_port = server_port
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.port = self.lsock.getsockname()[1]
        self.armed = False
        self.flipped = False
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def arm(self):
        self.armed = True

    def _run(self):
        self.lsock.settimeout(30)
        try:
            client, _ = self.lsock.accept()
            server = socket.create_connection(("127.0.0.1", self.server_port), timeout=30)
        except OSError:
            return
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
