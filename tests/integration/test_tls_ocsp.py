"""OCSP stapling from a DER file (tls { ocsp_response = FILE }): read at
start and on SIGHUP, stapled when the client asks (status_request) over
TLS 1.2 and 1.3, and only when it is good, current, signed by the issuer
and for this certificate. A CA, a leaf and the responses are made here
with openssl (ca index + `openssl ocsp -index ... -respout`); the expired
one with python cryptography (openssl ocsp cannot date one in the past)."""

import datetime
import re
import signal
import time

import kt


class Pki:
    def __init__(self, site):
        self.dir = site.new_root("pki")
        d = self.dir
        self.ca_crt, self.ca_key = d / "ca.crt", d / "ca.key"
        kt.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
                "-subj", "/CN=kttpd test CA", "-keyout", str(self.ca_key),
                "-out", str(self.ca_crt)])
        self.leaf = {h: self._leaf(h, serial) for h, serial in
                     (("a.test", "1001"), ("b.test", "1002"), ("revoked.test", "1003"))}
        exp = "301231235959Z"
        (d / "index.txt").write_text(
            f"V\t{exp}\t\t1001\tunknown\t/CN=a.test\n"
            f"V\t{exp}\t\t1002\tunknown\t/CN=b.test\n"
            f"R\t{exp}\t250101000000Z\t1003\tunknown\t/CN=revoked.test\n")

    def _leaf(self, host, serial):
        d = self.dir
        key, csr, crt, chain = (d / f"{host}.key", d / f"{host}.csr", d / f"{host}.crt",
                                d / f"{host}.chain.pem")
        ext = d / f"{host}.ext"
        ext.write_text(f"subjectAltName=DNS:{host},DNS:www.{host}\n")
        kt.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={host}",
                "-keyout", str(key), "-out", str(csr)])
        kt.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(self.ca_crt),
                "-CAkey", str(self.ca_key), "-set_serial", "0x" + serial, "-days", "20",
                "-extfile", str(ext), "-out", str(crt)])
        chain.write_bytes(crt.read_bytes() + self.ca_crt.read_bytes())
        return chain, key, crt

    def response(self, host, name):
        """openssl ocsp as a local responder for host's certificate."""
        out = self.dir / name
        kt.run(["openssl", "ocsp", "-index", str(self.dir / "index.txt"),
                "-rsigner", str(self.ca_crt), "-rkey", str(self.ca_key),
                "-CA", str(self.ca_crt), "-issuer", str(self.ca_crt),
                "-cert", str(self.leaf[host][2]), "-ndays", "2",
                "-respout", str(out)])
        return out

    def expired_response(self, host, name):
        try:
            from cryptography import x509
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.x509 import ocsp
        except ImportError:
            raise kt.Skip("python3-cryptography missing")
        ca = x509.load_pem_x509_certificate(self.ca_crt.read_bytes())
        ca_key = serialization.load_pem_private_key(self.ca_key.read_bytes(), None)
        leaf = x509.load_pem_x509_certificate(self.leaf[host][2].read_bytes())
        now = datetime.datetime.now(datetime.timezone.utc)
        b = ocsp.OCSPResponseBuilder().add_response(
            cert=leaf, issuer=ca, algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=now - datetime.timedelta(days=3),
            next_update=now - datetime.timedelta(days=1),
            revocation_time=None, revocation_reason=None,
        ).responder_id(ocsp.OCSPResponderEncoding.HASH, ca)
        out = self.dir / name
        out.write_bytes(b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
        return out


def server(pki, ocsp_file, cert_host="a.test", start=True, **kw):
    """a.test served with pki's certificate for cert_host and ocsp_file."""
    srv = kt.Server(kt.site(), start=False, **kw)
    crt_a, key_a = srv.site.certs["a.test"]
    chain, key, _ = pki.leaf[cert_host]
    text = srv.config.replace(f'certificate = "{crt_a}"', f'certificate = "{chain}"', 1)
    text = text.replace(f'key = "{key_a}"', f'key = "{key}"\n        ocsp_response = "{ocsp_file}"', 1)
    srv.config = text
    srv.conf_path.write_text(text)
    return srv.start() if start else srv


def status(port, version, servername="a.test"):
    rc, out = kt.s_client(port, "-status", version, servername=servername,
                          input=b"Q\n")
    if "OCSP response: no response sent" in out:
        return None
    m = re.search(r"Cert Status: (\w+)", out)
    assert "OCSP Response Status: successful" in out and m, out[-600:]
    return m.group(1)


def test_ocsp_stapled_tls12_and_tls13():
    pki = Pki(kt.site())
    good = pki.response("a.test", "a.der")
    with server(pki, good) as srv:
        for v in ("-tls1_2", "-tls1_3"):
            assert status(srv.port, v) == "good", v
            # another server on the listener has no staple of its own
            assert status(srv.port, v, servername="b.test") is None, v
        # the staple verifies for a client that insists (curl --cert-status)
        for proto in ("--http1.1", "--http2"):
            r = kt.curl(srv, "/index.html", proto, "--cert-status", "--cacert", str(pki.ca_crt))
            assert r.status == 200, (proto, r.stderr)
        assert "not stapling" not in srv.error_log() + srv.output_text()


def test_ocsp_not_asked_not_sent():
    pki = Pki(kt.site())
    with server(pki, pki.response("a.test", "a.der")) as srv:
        rc, out = kt.s_client(srv.port, "-tls1_3", servername="a.test", input=b"Q\n")
        assert "OCSP response" not in out
        kt.assert_serves(srv)


def bad_case(pki, ocsp_file, cert_host, needle):
    with server(pki, ocsp_file, cert_host) as srv:
        for v in ("-tls1_2", "-tls1_3"):
            assert status(srv.port, v) is None, f"{needle}: stapled over {v}"
        # at start config messages go to stderr (the logs are not open yet)
        said = srv.error_log() + srv.output_text()
        assert needle in said and "not stapling" in said, srv.log_tail()
        kt.assert_serves(srv)
        kt.assert_serves_h2(srv)


def test_ocsp_for_another_certificate_not_stapled():
    pki = Pki(kt.site())
    bad_case(pki, pki.response("b.test", "b.der"), "a.test", "not for this certificate")


def test_ocsp_revoked_not_stapled():
    pki = Pki(kt.site())
    bad_case(pki, pki.response("revoked.test", "r.der"), "revoked.test", "revoked")


def test_ocsp_expired_not_stapled():
    pki = Pki(kt.site())
    bad_case(pki, pki.expired_response("a.test", "old.der"), "a.test", "expired")


def test_ocsp_garbage_not_stapled():
    pki = Pki(kt.site())
    junk = pki.dir / "junk.der"
    junk.write_bytes(b"not an ocsp response\n")
    bad_case(pki, junk, "a.test", "not a DER OCSP response")


def test_ocsp_chainless_certificate_not_stapled():
    """The issuer must be in the certificate file to check the response."""
    pki = Pki(kt.site())
    good = pki.response("a.test", "a.der")
    chain, key, crt = pki.leaf["a.test"]
    chain.write_bytes(crt.read_bytes())
    bad_case(pki, good, "a.test", "no issuer")


def test_ocsp_reloaded_on_sighup():
    pki = Pki(kt.site())
    f = pki.dir / "live.der"
    f.write_bytes(b"junk")
    with server(pki, f) as srv:
        assert status(srv.port, "-tls1_3") is None
        f.write_bytes(pki.response("a.test", "fresh.der").read_bytes())
        srv.reload()
        assert kt.wait_until(lambda: status(srv.port, "-tls1_3") == "good", 5), srv.log_tail()
        assert status(srv.port, "-tls1_2") == "good"
        # a bad refresh: the reload keeps serving, without a staple
        f.write_bytes(pki.expired_response("a.test", "old.der").read_bytes())
        srv.reload()
        assert kt.wait_until(lambda: status(srv.port, "-tls1_3") is None, 5), srv.log_tail()
        assert srv.alive()
        assert "expired" in srv.error_log(), srv.log_tail()


def test_ocsp_missing_file_is_a_config_error():
    import test_cli
    pki = Pki(kt.site())
    srv = server(pki, pki.dir / "none.der", start=False)
    line = kt.line_of(srv.config, "none.der")
    rc, out, err = test_cli.kttpd("-t", "-c", str(srv.conf_path))
    assert rc != 0 and f"{srv.conf_path}:{line}:" in err and "none.der" in err, err


def test_ocsp_wrong_signer_not_stapled():
    """A response for our certificate signed by a key the issuer never
    certified (another CA) is refused."""
    pki = Pki(kt.site())
    other_crt, other_key = pki.dir / "other.crt", pki.dir / "other.key"
    kt.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
            "-subj", "/CN=someone else", "-keyout", str(other_key), "-out", str(other_crt)])
    out = pki.dir / "forged.der"
    kt.run(["openssl", "ocsp", "-index", str(pki.dir / "index.txt"),
            "-rsigner", str(other_crt), "-rkey", str(other_key),
            "-CA", str(pki.ca_crt), "-issuer", str(pki.ca_crt),
            "-cert", str(pki.leaf["a.test"][2]), "-ndays", "2", "-respout", str(out)])
    bad_case(pki, out, "a.test", "signature does not verify")


def test_ocsp_on_the_sni_server_only():
    """The staple follows the server SNI picks: b.test has one, the
    listener's default a.test none."""
    pki = Pki(kt.site())
    good = pki.response("b.test", "b.der")
    srv = kt.Server(kt.site(), start=False)
    crt_b, key_b = srv.site.certs["b.test"]
    chain, key, _ = pki.leaf["b.test"]
    text = srv.config.replace(f'certificate = "{crt_b}"', f'certificate = "{chain}"', 1)
    text = text.replace(f'key = "{key_b}"', f'key = "{key}"\n        ocsp_response = "{good}"', 1)
    srv.config = text
    srv.conf_path.write_text(text)
    with srv.start():
        for v in ("-tls1_2", "-tls1_3"):
            assert status(srv.port, v, servername="b.test") == "good", v
            assert status(srv.port, v, servername="a.test") is None, v
