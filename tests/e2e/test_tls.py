"""Over TLS (mod_ssl), the guest sees the https scheme."""

import subprocess

from apache import Apache
from http1 import request

SITE = """
LoadModule socache_shmcb_module /usr/lib/apache2/modules/mod_socache_shmcb.so
LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
SSLEngine on
SSLCertificateFile {dir}/cert.pem
SSLCertificateKeyFile {dir}/key.pem
<Location /t>
    SetHandler wasm-handler
    WasmComponent {guest}
</Location>
"""


def test_scheme_is_https_over_tls():
    server = Apache(SITE, name="tls")
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-keyout", str(server.dir / "key.pem"),
             "-out", str(server.dir / "cert.pem")],
            check=True, capture_output=True)
        server.start()
        r = request(server.port, "GET", "/t/echo?x=1", tls=True)
        assert r.status == 200
        assert b"scheme https\n" in r.body
        assert b"target /t/echo?x=1\n" in r.body
        assert not server.unexpected_errors(server.new_log())
    finally:
        server.cleanup()
