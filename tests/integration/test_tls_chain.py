"""The certificate chain a handshake sends is the certificate file's, as
given (SSL_MODE_NO_AUTO_CHAIN, issue 13): a leaf and its intermediate
when the file holds both, the leaf alone when it holds only the leaf,
over TLS 1.2 and 1.3. A root CA, an intermediate and a leaf are made
here with openssl."""

import re

import kt

PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----", re.S)


class Chain:
    def __init__(self, site):
        d = self.dir = site.new_root("chain-pki")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        self.root = d / "root.crt"
        kt.run(["openssl", "req", "-x509"] + ec + ["-days", "30", "-subj", "/CN=kttpd chain root",
               "-keyout", str(d / "root.key"), "-out", str(self.root)])
        (d / "ca.ext").write_text("basicConstraints=critical,CA:true\n"
                                  "keyUsage=critical,keyCertSign,cRLSign\n")
        self.inter = self._issue("inter", "/CN=kttpd chain intermediate", "root", "ca.ext")
        (d / "leaf.ext").write_text("subjectAltName=DNS:a.test,DNS:www.a.test\n")
        self.leaf = self._issue("leaf", "/CN=a.test", "inter", "leaf.ext")
        self.key = d / "leaf.key"
        self.with_chain = d / "leaf-chain.pem"
        self.with_chain.write_bytes(self.leaf.read_bytes() + self.inter.read_bytes())

    def _issue(self, name, subj, issuer, ext):
        d = self.dir
        kt.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-subj", subj,
                "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr")])
        kt.run(["openssl", "x509", "-req", "-in", str(d / f"{name}.csr"),
                "-CA", str(d / f"{issuer}.crt"), "-CAkey", str(d / f"{issuer}.key"),
                "-set_serial", "0x" + str(len(name) * 7919), "-days", "20",
                "-extfile", str(d / ext), "-out", str(d / f"{name}.crt")])
        return d / f"{name}.crt"


def server(cert, key, **kw):
    """a.test served with cert (a PEM file, maybe with its chain) and key."""
    srv = kt.Server(kt.site(), start=False, **kw)
    crt_a, key_a = srv.site.certs["a.test"]
    text = srv.config.replace(f'certificate = "{crt_a}"', f'certificate = "{cert}"', 1)
    srv.config = text.replace(f'key = "{key_a}"', f'key = "{key}"', 1)
    srv.conf_path.write_text(srv.config)
    return srv.start()


def sent_chain(port, version):
    rc, out = kt.s_client(port, "-showcerts", version, servername="a.test", input=b"Q\n")
    assert kt.tls_version_in(out), out[-600:]
    return [b.replace(b"\r\n", b"\n") for b in PEM.findall(out.encode())]


def file_chain(path):
    return PEM.findall(path.read_bytes())


def test_tls_chain_as_in_the_file():
    pki = Chain(kt.site())
    for cert in (pki.with_chain, pki.leaf):
        with server(cert, pki.key) as srv:
            for v in ("-tls1_2", "-tls1_3"):
                assert sent_chain(srv.port, v) == file_chain(cert), (cert.name, v)
            kt.assert_serves(srv)


def test_tls_chain_self_signed_alone():
    with kt.Server(kt.site()) as srv:
        crt, _ = srv.site.certs["a.test"]
        for v in ("-tls1_2", "-tls1_3"):
            assert sent_chain(srv.port, v) == file_chain(crt), v
