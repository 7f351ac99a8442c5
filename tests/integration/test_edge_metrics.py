"""The Prometheus metrics location: exposition format, counters that move
by exactly the traffic sent, and the allow list."""

import re

import kt

METRICS = {"/metrics": {"metrics": True, "allow": ["127.0.0.1"]}}

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
VALUE = r"[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|NaN|Inf)"
SAMPLE = re.compile(rf"^({NAME})(\{{(?:{LABEL}(?:,{LABEL})*,?)?\}})? ({VALUE})(?: -?\d+)?$")


def parse(text):
    """{(name, labels): value}; asserts every line is exposition format."""
    out, types = {}, {}
    assert text.endswith("\n"), "exposition text must end with a newline"
    for i, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("#"):
            m = re.match(rf"^# (HELP|TYPE) ({NAME}) (.*)$", line)
            assert m, f"line {i}: bad comment {line!r}"
            if m.group(1) == "TYPE":
                assert m.group(3) in ("counter", "gauge", "histogram", "summary", "untyped"), \
                    f"line {i}: type {m.group(3)!r}"
                assert m.group(2) not in types, f"line {i}: second TYPE for {m.group(2)}"
                types[m.group(2)] = m.group(3)
            continue
        assert line, f"line {i}: empty line"
        m = SAMPLE.match(line)
        assert m, f"line {i}: not `name{{labels}} value`: {line!r}"
        key = (m.group(1), m.group(2) or "")
        assert key not in out, f"line {i}: duplicate sample {key}"
        out[key] = float(m.group(3))
    for (name, _), _ in out.items():
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or base in types, f"{name}: no TYPE line"
    return out


def scrape(srv, via="h1"):
    if via == "h2":
        r = kt.h2_get(srv, "/metrics")
        body = r.body
    else:
        r = srv.get("/metrics")
        body = r.body
    assert r.status == 200, f"scrape ({via}): {r.status}"
    assert r.get("content-type", "").startswith("text/plain"), f"scrape type {r.get('content-type')!r}"
    return parse(body.decode())


def v(m, name, **labels):
    lab = "{" + ",".join(f'{k}="{x}"' for k, x in labels.items()) + "}" if labels else ""
    assert (name, lab) in m, f"no sample {name}{lab}"
    return m[(name, lab)]


def test_metrics_format_and_deltas():
    site = kt.site()
    N, M, H2 = 5, 3, 2
    path200 = kt.size_path(16385)
    with kt.Server(site, locations=METRICS) as srv:
        m0 = scrape(srv)
        # histogram sanity
        buckets = sorted(((float(re.search(r'le="([^"]+)"', k[1]).group(1).replace("+Inf", "inf")), val)
                          for k, val in m0.items() if k[0] == "kttpd_response_seconds_bucket"))
        assert buckets and buckets[-1][0] == float("inf"), "no +Inf bucket"
        assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), f"buckets not cumulative {buckets}"
        assert buckets[-1][1] == v(m0, "kttpd_response_seconds_count"), "+Inf bucket != count"

        body_bytes = 0
        for _ in range(N):
            r = srv.get(path200)
            assert r.status == 200
            body_bytes += len(r.body)
        for i in range(M):
            assert srv.get(f"/no-such-file-{i}").status == 404
        for _ in range(H2):
            h = kt.h2_get(srv, path200)
            assert h.status == 200
            body_bytes += len(h.body)
        m1 = scrape(srv)

        def d(name, **labels):
            return v(m1, name, **labels) - v(m0, name, **labels)

        conns = N + M + H2 + 1            # + the second scrape's connection
        assert d("kttpd_requests_total", **{"class": "4xx"}) == M, \
            f"4xx delta {d('kttpd_requests_total', **{'class': '4xx'})}, want {M}"
        d2 = d("kttpd_requests_total", **{"class": "2xx"})
        assert N + H2 <= d2 <= N + H2 + 1, f"2xx delta {d2}, want {N + H2} (+1 for the first scrape)"
        assert d("kttpd_requests_total", **{"class": "5xx"}) == 0, "5xx moved"
        assert d("kttpd_connections_protocol_total", protocol="h2") == H2, \
            f"h2 connections delta {d('kttpd_connections_protocol_total', protocol='h2')}"
        assert d("kttpd_connections_protocol_total", protocol="http/1.1") == N + M + 1, \
            f"http/1.1 connections delta {d('kttpd_connections_protocol_total', protocol='http/1.1')}"
        hs = d("kttpd_handshakes_total", result="ok", version="TLSv1.3") + \
            d("kttpd_handshakes_total", result="ok", version="TLSv1.2")
        assert hs == conns, f"handshakes delta {hs}, want {conns}"
        assert d("kttpd_handshakes_total", result="failed", version="") == 0, "failed handshakes moved"
        assert d("kttpd_connections_accepted_total") == conns, \
            f"accepted delta {d('kttpd_connections_accepted_total')}, want {conns}"
        cnt = d("kttpd_response_seconds_count")
        assert N + M + H2 <= cnt <= N + M + H2 + 1, f"response_seconds_count delta {cnt}"
        assert d("kttpd_response_seconds_sum") >= 0, "response_seconds_sum went down"
        if kt.kernel_has_ktls():
            sent = d("kttpd_sent_bytes_total", encryption="userspace") + \
                d("kttpd_sent_bytes_total", encryption="kernel")
        else:
            sent = d("kttpd_sent_bytes_total", encryption="userspace")
            assert d("kttpd_sent_bytes_total", encryption="kernel") == 0, "kernel bytes without kTLS"
            fb = d("kttpd_ktls_fallback_total", reason="kernel-no-tls-ulp")
            assert fb >= conns, f"ktls fallback kernel-no-tls-ulp delta {fb}, want >= {conns}"
            assert d("kttpd_ktls_connections_total", direction="tx") == 0, "kTLS tx without kTLS"
        assert body_bytes <= sent <= body_bytes + conns * 2000 + 20000, \
            f"sent bytes delta {sent}, bodies {body_bytes}"
        assert v(m1, "kttpd_sent_bytes_total", encryption="none") == 0, "plain bytes on a TLS-only server"
        # gauge: the scraping connection itself is open
        assert v(m1, "kttpd_connections_open") >= 1, "connections_open < 1 while scraping"

        # over HTTP/2 too
        m2 = scrape(srv, "h2")
        assert v(m2, "kttpd_connections_protocol_total", protocol="h2") == \
            v(m1, "kttpd_connections_protocol_total", protocol="h2") + 1, "h2 scrape not counted"


def test_metrics_allow_list():
    with kt.Server(kt.site(), locations={"/metrics": {"metrics": True, "allow": ["10.0.0.0/8"]}}) as srv:
        r = srv.get("/metrics")
        assert r.status == 403, f"scrape from 127.0.0.1, allow 10/8: {r.status}"
        assert b"kttpd_" not in r.body, "403 carries metrics"
        h = kt.h2_get(srv, "/metrics")
        assert h.status == 403 and b"kttpd_" not in h.body, f"h2: {h}"
        assert srv.get("/index.html").status == 200, "the rest of the site is open"
    with kt.Server(kt.site(), ipv6=True,
                   locations={"/metrics": {"metrics": True, "allow": ["::1"]}}) as srv:
        assert srv.get("/metrics").status == 403, "IPv4 client, allow ::1"
        with kt.Conn(kt.tls_socket(srv.ipv6_port, host="::1")) as c:
            r = c.exchange(kt.request("/metrics"))
            assert r.status == 200 and b"kttpd_requests_total" in r.body, f"::1 allowed: {r.status}"
