"""Over TLS (mod_ssl), the guest sees the https scheme."""

from apache import Apache, self_signed_cert
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
        self_signed_cert(server.dir)
        server.start()
        r = request(server.port, "GET", "/t/echo?x=1", tls=True)
        assert r.status == 200
        assert b"scheme https\n" in r.body
        assert b"target /t/echo?x=1\n" in r.body
        assert not server.unexpected_errors(server.new_log())
    finally:
        server.cleanup()
