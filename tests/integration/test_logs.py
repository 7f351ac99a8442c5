"""Access log (combined and json) and the kTLS line of the error log."""

import json
import re
import ssl

import kt

COMBINED = re.compile(
    r'^(?P<client>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" '
    r'(?P<status>\d{3}) (?P<bytes>\d+|-) "(?P<referer>[^"]*)" "(?P<ua>[^"]*)" (?P<rest>.*)$')
KTLS_MODE = re.compile(r"^(tx\+rx|tx|rx|off\(.+\))$")


def parse_combined(line):
    m = COMBINED.match(line)
    assert m, f"access log line is not in combined format: {line!r}"
    d = m.groupdict()
    modes = re.findall(r"(?:^| )ktls=(off\([^)]*\)|\S+)", d["rest"])
    assert len(modes) == 1, f"no single ktls= field in {line!r}"
    d["ktls"] = modes[0]
    d["rest"] = re.sub(r"(?:^| )ktls=(off\([^)]*\)|\S+)", "", d["rest"]).split()
    return d


def check_ktls_mode(mode, what):
    assert KTLS_MODE.match(mode), f"{what}: ktls={mode!r} is not tx+rx, tx, rx or off(REASON)"
    if not kt.kernel_has_ktls():
        assert mode.startswith("off(") and len(mode) > 5, \
            f"{what}: ktls={mode!r}, but this kernel has no kTLS: want off(REASON)"


def test_access_log_combined():
    ua, referer = "kt-agent/1.0", "https://ref.test/page"
    path = kt.size_path(16385)
    with kt.Server(kt.site()) as srv:
        kt.curl(srv, path, "-A", ua, "-e", referer, "--tlsv1.3")
        kt.curl(srv, "/missing", "--tlsv1.2", "--tls-max", "1.2")
        with srv.connect(version=ssl.TLSVersion.TLSv1_2) as c:
            c.exchange(kt.request(kt.size_path(1), host="www.a.test"))
        lines = srv.wait_access_lines(3)
        assert len(lines) == 3, f"{len(lines)} access log lines for 3 requests: {lines}"
        first, second, third = (parse_combined(line) for line in lines)

        assert first["client"] == "127.0.0.1", f"client {first['client']!r}"
        assert first["request"] == f"GET {path} HTTP/1.1", f"request {first['request']!r}"
        assert first["status"] == "200", f"status {first['status']}"
        assert 16385 <= int(first["bytes"]) < 16385 + 1024, f"bytes {first['bytes']}"
        assert (first["ua"], first["referer"]) == (ua, referer), (first["ua"], first["referer"])
        assert "a.test" in first["rest"], f"no server name in {lines[0]!r}"
        assert "TLSv1.3" in first["rest"], f"no TLS version in {lines[0]!r}"
        assert any(w.startswith("TLS_") for w in first["rest"]), f"no TLS 1.3 cipher in {lines[0]!r}"
        check_ktls_mode(first["ktls"], "TLS 1.3 request")

        assert second["status"] == "404" and second["request"] == "GET /missing HTTP/1.1", lines[1]
        assert "TLSv1.2" in second["rest"], f"no TLSv1.2 in {lines[1]!r}"
        assert any(w.startswith("ECDHE-") for w in second["rest"]), f"no TLS 1.2 cipher in {lines[1]!r}"
        check_ktls_mode(second["ktls"], "TLS 1.2 request")
        assert any(w in ("a.test", "www.a.test") for w in third["rest"]), lines[2]


def test_access_log_plain():
    with kt.Server(kt.site(), plain=True) as srv:
        kt.curl(srv, kt.size_path(1), plain=True)
        lines = srv.wait_access_lines(1)
        assert len(lines) == 1, f"access log: {lines}"
        d = parse_combined(lines[0])
        assert d["status"] == "200", lines[0]
        assert d["ktls"] == "-", f"plain connection logged ktls={d['ktls']!r}, want -"
        assert not any(w.startswith("TLSv") for w in d["rest"]), f"plain request with a TLS version: {lines[0]!r}"


def test_access_log_json():
    with kt.Server(kt.site(), access_format="json") as srv:
        kt.curl(srv, kt.size_path(16384))
        kt.curl(srv, "/missing")
        lines = srv.wait_access_lines(2)
        assert len(lines) == 2, f"{len(lines)} json lines for 2 requests"
        recs = []
        for line in lines:
            try:
                recs.append(json.loads(line))
            except ValueError as e:
                raise AssertionError(f"access log line is not JSON ({e}): {line!r}")
        for key in ("status", "bytes", "tls_version", "ktls"):
            assert all(key in r for r in recs), f"json access log lacks {key!r}: {lines[0]}"
        assert int(recs[0]["status"]) == 200 and int(recs[1]["status"]) == 404, \
            [r["status"] for r in recs]
        assert 16384 <= int(recs[0]["bytes"]) < 16384 + 1024, recs[0]["bytes"]
        assert recs[0]["tls_version"] == "TLSv1.3", recs[0]["tls_version"]
        check_ktls_mode(str(recs[0]["ktls"]), "json")


def ktls_lines(srv):
    return [line for line in srv.error_log().splitlines() if "ktls" in line.lower()]


def test_error_log_ktls_line():
    with kt.Server(kt.site()) as srv:
        lines = kt.wait_until(lambda: ktls_lines(srv), 2)
        assert len(lines) == 1, f"{len(lines)} start-up lines mention ktls: {lines}"
        line = lines[0].lower()
        assert re.search(r"\b(available|unavailable|enabled|disabled|on|off|yes|no)\b", line), \
            f"ktls line does not say whether it is available: {lines[0]!r}"
        if not kt.kernel_has_ktls():
            assert re.search(r"\bnot\b|unavailable|disabled|\boff\b|\bno\b", line), \
                f"kernel has no kTLS, the log does not say so: {lines[0]!r}"
            assert re.search(r"ulp|module|kernel|enoent|tls_stat|config", line), \
                f"ktls line gives no reason: {lines[0]!r}"


def test_ktls_disabled_by_config():
    with kt.Server(kt.site(), ktls=False) as srv:
        kt.curl(srv, kt.size_path(1))
        lines = srv.wait_access_lines(1)
        mode = parse_combined(lines[0])["ktls"]
        assert mode.startswith("off(") and mode.endswith(")"), f"ktls = false: logged ktls={mode!r}"
        text = " ".join(ktls_lines(srv)).lower()
        assert "config" in text or "disabled" in text, \
            f"ktls = false: the error log does not say it is disabled: {ktls_lines(srv)}"
