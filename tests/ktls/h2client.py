"""HTTP/2 over a tlsclient.Client (python3-h2 for the framing), one stream at a time.

The Client picks the version and cipher (Python's ssl module cannot choose a
TLS 1.3 suite) and offers ALPN h2. Windows are opened to 2^31-1 at the start
so flow control never cuts a DATA frame short, and every DATA frame the
client receives is kept: H2.frames is a list of (stream id, payload length).

    with Client(host, port, version, cipher, alpn=["h2"]) as c:
        h = H2(c); h.setup()
        status, headers, body = h.get("/path", ua, {"range": "bytes=1-2"})
        h.close()
"""

import h2.config
import h2.connection
import h2.events
import h2.settings

MAX_WINDOW = 2 ** 31 - 1


class H2:
    def __init__(self, client):
        self.c = client
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: MAX_WINDOW,
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
        })
        self.frames = []          # (stream id, DATA payload length), in arrival order
        self.headers_frames = 0   # response HEADERS received
        self.remote_settings = self.settings_acked = False
        self.goaway = None
        self.streams = {}

    def _flush(self):
        out = self.conn.data_to_send()
        if out:
            self.c.write(out)

    def _pump(self):
        """Reads once, handles the events."""
        data = self.c.read()
        if not data:
            raise ConnectionError("the server closed the HTTP/2 connection")
        for ev in self.conn.receive_data(data):
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                self.remote_settings = True
            elif isinstance(ev, h2.events.SettingsAcknowledged):
                self.settings_acked = True
            elif isinstance(ev, h2.events.ResponseReceived):
                self.headers_frames += 1
                self.streams[ev.stream_id]["headers"] = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                self.frames.append((ev.stream_id, len(ev.data)))
                self.streams[ev.stream_id]["body"].append(ev.data)
            elif isinstance(ev, h2.events.StreamEnded):
                self.streams[ev.stream_id]["ended"] = True
            elif isinstance(ev, h2.events.StreamReset):
                raise ConnectionError(f"stream {ev.stream_id} reset, error {ev.error_code}")
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = ev
                if ev.error_code:
                    raise ConnectionError(f"GOAWAY error {ev.error_code}")
        self._flush()

    def setup(self):
        """Preface and SETTINGS; returns once the server's SETTINGS and its ACK of ours are in."""
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(MAX_WINDOW - 65535)
        self._flush()
        while not (self.remote_settings and self.settings_acked):
            self._pump()

    def get(self, path, ua, extra=None):
        """One GET -> (status, headers, body)."""
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", "GET"), (":path", path), (":scheme", "https"),
                (":authority", "localhost"), ("user-agent", ua)]
        hdrs += list((extra or {}).items())
        self.streams[sid] = {"headers": None, "body": [], "ended": False}
        self.conn.send_headers(sid, hdrs, end_stream=True)
        self._flush()
        while not self.streams[sid]["ended"]:
            self._pump()
        st = self.streams.pop(sid)
        return int(st["headers"][":status"]), st["headers"], b"".join(st["body"])

    def close(self):
        """GOAWAY, close_notify, then reads to the end (the records after it count too)."""
        self.conn.close_connection()
        self._flush()
        self.c.close_notify()
        try:
            while self.c.read():
                pass
        except Exception:  # noqa: BLE001 - the end, however it comes
            pass
