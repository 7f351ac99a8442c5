"""NewSessionTicket messages in TLS 1.3 by resumption setting: none when
neither tickets nor the session cache can resume a session (issue 15),
and the resumption paths that are on still work."""

import ssl

import kt

NEW_SESSION_TICKET = 4


def count_tickets(srv, version=ssl.TLSVersion.TLSv1_3):
    """Handshake, one request and response; NewSessionTickets received,
    the session, and the status."""
    ctx = kt.client_context(version)
    seen = []

    def cb(conn, direction, ver, content_type, msg_type, data):
        if direction == "read" and content_type == ssl._TLSContentType.HANDSHAKE \
                and msg_type == NEW_SESSION_TICKET:
            seen.append(len(data))
    ctx._msg_callback = cb
    sock = kt.tls_socket(srv.port, context=ctx)
    r = kt.Conn(sock).exchange(kt.request(kt.size_path(1)))
    session = sock.session
    clean_close(sock)
    return len(seen), (ctx, session), r.status


def clean_close(sock):
    """close_notify both ways: OpenSSL drops a cached session whose
    connection ends without one (kttpd answers the client's with its own)."""
    try:
        sock.unwrap()
    except (OSError, ssl.SSLError):
        pass
    sock.close()


def resumes(srv, ctx_session):
    ctx, session = ctx_session
    sock = kt.tls_socket(srv.port, context=ctx, session=session)
    assert kt.Conn(sock).exchange(kt.request(kt.size_path(1))).status == 200
    reused = sock.session_reused
    clean_close(sock)
    return reused


def test_tls13_no_tickets_no_cache_sends_none():
    with kt.Server(kt.site(), session_tickets=False, session_cache=0) as srv:
        n, _, status = count_tickets(srv)
        assert status == 200
        assert n == 0, f"{n} NewSessionTicket messages with no way to resume"
        kt.assert_serves_h2(srv)


def test_tls13_tickets_on_sends_them_and_resumes():
    with kt.Server(kt.site(), session_tickets=True, session_cache=0) as srv:
        n, session, status = count_tickets(srv)
        assert status == 200 and n >= 1, n
        assert resumes(srv, session), "ticket did not resume"


def test_tls13_cache_only_sends_stateful_ticket_and_resumes():
    with kt.Server(kt.site(), session_tickets=False, session_cache=100) as srv:
        n, session, status = count_tickets(srv)
        assert status == 200 and n >= 1, n
        assert resumes(srv, session), "cache session did not resume"


def test_tls12_no_tickets_no_cache_serves():
    with kt.Server(kt.site(), session_tickets=False, session_cache=0) as srv:
        n, _, status = count_tickets(srv, ssl.TLSVersion.TLSv1_2)
        assert status == 200 and n == 0, n


def test_session_cache_resumes_after_unclean_close():
    """Clients that close TCP without close_notify (most browsers) keep
    their cached session: TLS 1.2 session ids and TLS 1.3 stateful
    tickets resume on the next connection."""
    with kt.Server(kt.site(), session_tickets=False, session_cache=100) as srv:
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = kt.client_context(version)
            session, reused = None, []
            for _ in range(3):
                with kt.tls_socket(srv.port, context=ctx, session=session) as s:
                    assert kt.Conn(s).exchange(kt.request("/index.html")).status == 200
                    reused.append(s.session_reused)
                    session = s.session
                # closed here without close_notify
            assert reused == [False, True, True], (version, reused)
