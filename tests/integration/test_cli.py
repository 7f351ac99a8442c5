"""Command line: -v, -t, and configuration errors reported as PATH:LINE: message."""

import re
import subprocess
import time

import kt

LIBRARIES = ("OpenSSL", "libevent", "http-parser", "zlib", "nghttp2", "libconfuse")


def kttpd(*args, timeout=10):
    p = subprocess.run([kt.BIN, *args], capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def bad_config(**kw):
    """A written, not started Server whose config holds an error."""
    return kt.Server(kt.site(), start=False, **kw)


def assert_rejected(srv, needle, extra=None):
    """kttpd -t and a real start both refuse srv's config, naming PATH:LINE."""
    line = kt.line_of(srv.config, needle)
    rc, out, err = kttpd("-t", "-c", str(srv.conf_path))
    assert rc != 0, f"-t accepted a config with `{needle}` (stdout {out!r})"
    where = f"{srv.conf_path}:{line}:"
    assert where in err, f"-t: stderr does not name {where} for `{needle}`: {err.strip()!r}"
    if extra:
        assert extra in err, f"-t: stderr does not name {extra}: {err.strip()!r}"

    # started for real it must give up too, without ever listening
    p = subprocess.Popen([kt.BIN, "-c", str(srv.conf_path)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 5
        listened = False
        while p.poll() is None and time.monotonic() < deadline:
            listened = listened or kt.port_accepts(srv.port)
            time.sleep(0.05)
        assert p.poll() is not None, f"kttpd kept running with a bad config (`{needle}`)"
        assert p.returncode != 0, f"kttpd exited 0 with a bad config (`{needle}`)"
        assert not listened, f"kttpd listened on {srv.port} with a bad config (`{needle}`)"
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=5)
        p.stderr.close()


def test_version():
    rc, out, err = kttpd("-v")
    text = out + err
    assert rc == 0, f"-v exited {rc}"
    assert re.search(r"kttpd\D{0,20}\d+\.\d+", text), f"-v prints no kttpd version: {text!r}"
    missing = [lib for lib in LIBRARIES
               if not re.search(re.escape(lib) + r"\D{0,20}\d+(\.\d+)+", text, re.I)]
    assert not missing, f"-v lacks versions of {missing}: {text!r}"


def test_config_test_good():
    srv = bad_config()  # nothing wrong with it
    rc, out, err = kttpd("-t", "-c", str(srv.conf_path))
    assert rc == 0, f"-t rejected a good config ({rc}): {err.strip()!r}"
    assert not kt.port_accepts(srv.port), "-t left something listening"


def test_config_example_parses():
    """conf/kttpd.conf uses every option; its syntax must parse (its files may be missing)."""
    example = kt.REPO / "conf" / "kttpd.conf"
    rc, out, err = kttpd("-t", "-c", str(example))
    if rc != 0:
        # only missing certificate/key files (absolute /etc paths) are acceptable
        assert "/etc/kttpd/" in err or "/srv/" in err or "/var/cache/kttpd" in err, \
            f"conf/kttpd.conf rejected for a reason other than missing files: {err.strip()!r}"


def test_config_unknown_option():
    assert_rejected(bad_config(raw_tail="bogus_option = 1"), "bogus_option")


def test_config_bad_workers():
    assert_rejected(bad_config(workers="x"), 'workers = "x"')


def test_config_bad_log_level():
    assert_rejected(bad_config(log_level="loud"), 'log_level = "loud"')


def test_config_bad_listen():
    srv = bad_config(raw_tail='server "c.test" {\n    listen = { "nope" }\n    root = "/tmp"\n}')
    assert_rejected(srv, '"nope"')


def test_config_missing_certificate():
    srv = bad_config()
    missing = str(srv.dir / "missing.crt")
    crt = str(srv.site.certs["a.test"][0])
    srv.config = srv.config.replace(crt, missing, 1)
    srv.conf_path.write_text(srv.config)
    assert_rejected(srv, missing, extra=missing)


def test_config_missing_file():
    rc, out, err = kttpd("-t", "-c", str(kt.site().dir / "no-such.conf"))
    assert rc != 0, "-t accepted a config file that does not exist"
    assert "no-such.conf" in err, f"stderr does not name the missing file: {err.strip()!r}"


def test_example_config_is_valid():
    """conf/kttpd.conf, with this machine's paths for its certificates,
    roots and gzip cache, passes -t: the annotated example stays true."""
    site = kt.site()
    text = (kt.REPO / "conf" / "kttpd.conf").read_text()
    crt, key = site.certs["a.test"]
    text = re.sub(r'"/etc/kttpd/[\w.-]+\.crt"', f'"{crt}"', text)
    text = re.sub(r'"/etc/kttpd/[\w.-]+\.key"', f'"{key}"', text)
    # an OCSP response that does not fit the test certificate: a warning
    junk = site.dir / "example.ocsp.der"
    junk.write_bytes(b"not an ocsp response")
    text = re.sub(r'"/etc/kttpd/[\w.-]+\.der"', f'"{junk}"', text)
    text = re.sub(r'"/srv/[\w.-]+"', f'"{site.root["a.test"]}"', text)
    text = text.replace("/var/cache/kttpd/gzip", str(site.dir / "gzip-cache"))
    path = site.dir / "example.conf"
    path.write_text(text)
    rc, out, err = kttpd("-t", "-c", str(path))
    assert rc == 0, f"conf/kttpd.conf -t: {rc}: {err.strip()}"
