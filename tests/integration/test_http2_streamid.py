"""HTTP/2 stream ids (RFC 9113 5.1.1): HEADERS opening a stream below one
already opened is a connection error: GOAWAY PROTOCOL_ERROR, then close.
Trailers on a stream still open, and a new higher id, are not."""

import kt

PROTOCOL_ERROR = 1
SMALL = kt.size_path(1)


STREAM_CLOSED = 5


def lower_id_case(first, second, label, codes=(PROTOCOL_ERROR,)):
    with kt.Server(kt.site()) as srv:
        with kt.H2Raw(srv.port) as c:
            c.send(b"".join(c.headers(sid, SMALL) for sid in first))
            assert c.collect(lambda c: all(c.ended(s) for s in first)), \
                f"{label}: first streams unanswered: {c.frames}"
            c.send(c.headers(second, SMALL))
            closed = c.wait_closed(5)
            g = c.goaway()
            assert g is not None, f"{label}: no GOAWAY for stream {second}: {c.frames}"
            assert g.error_code in codes, f"{label}: GOAWAY {g.error_code}"
            assert g.last_stream_id == max(first), f"{label}: last_stream_id {g.last_stream_id}"
            assert closed, f"{label}: connection not closed after GOAWAY"
            if second not in first:
                assert c.status(second) is None, f"{label}: stream {second} answered"
        assert srv.alive()
        kt.assert_serves_h2(srv)
        kt.assert_serves(srv)


def test_h2_lower_skipped_id_goaway():
    # 1 and 7 opened: 3 and 5 were implicitly closed by 7
    lower_id_case((1, 7), 3, "skipped id")


def test_h2_reused_closed_id_goaway():
    # 5 and 1 finished and closed: a new HEADERS on them opens nothing
    # (STREAM_CLOSED, which RFC 9113 5.1 allows: from h2ids, since
    # nghttp2 keeps no closed streams; one below h2ids' window gets
    # PROTOCOL_ERROR)
    lower_id_case((1, 3, 5), 5, "same id again", (PROTOCOL_ERROR, STREAM_CLOSED))
    lower_id_case((1, 3, 5), 1, "an older id again", (PROTOCOL_ERROR, STREAM_CLOSED))


def test_h2_even_id_goaway():
    lower_id_case((1,), 4, "even id")


def test_h2_far_below_window_goaway():
    # more than the remembered window (256 ids) above a skipped id
    first = tuple(range(1, 1200, 2))[::2] + (1201,)
    with kt.Server(kt.site(), http2_max_streams=1000) as srv:
        with kt.H2Raw(srv.port) as c:
            for i in range(0, len(first), 50):
                c.send(b"".join(c.headers(s, SMALL) for s in first[i:i + 50]))
                c.collect(lambda c: all(c.ended(s) for s in first[:i + 50]))
            assert all(c.ended(s) for s in first), "streams unanswered"
            c.send(c.headers(3, SMALL))
            assert c.wait_closed(5), "not closed"
            g = c.goaway()
            assert g is not None and g.error_code == PROTOCOL_ERROR, c.frames[-3:]


def test_h2_rising_ids_with_gaps_served():
    # skipping ids is allowed; only going back is not
    with kt.Server(kt.site()) as srv:
        with kt.H2Raw(srv.port) as c:
            ids = (1, 9, 11, 101, 1001)
            for sid in ids:
                c.send(c.headers(sid, SMALL))
            assert c.collect(lambda c: all(c.ended(s) for s in ids)), c.frames
            assert all(c.status(s) == 200 for s in ids)
            assert c.goaway() is None


def test_h2_trailers_on_open_stream_not_an_error():
    # a request left open (no END_STREAM), a higher stream, then trailers
    # on the first: nghttp2's business (no connection error from us)
    with kt.Server(kt.site()) as srv:
        with kt.H2Raw(srv.port) as c:
            c.send(c.headers(1, SMALL, end_stream=False))
            c.send(c.headers(3, SMALL))
            assert c.collect(lambda c: c.ended(3)), c.frames
            from hyperframe.frame import HeadersFrame
            block = c.enc.encode([("x-trailer", "1")])
            c.send(HeadersFrame(1, block, flags=["END_HEADERS", "END_STREAM"]).serialize())
            c.send(c.headers(5, SMALL))
            assert c.collect(lambda c: c.ended(5)), c.frames
            g = c.goaway()
            assert g is None or g.error_code != PROTOCOL_ERROR, g
