"""WasmMiddleware with bounded memory: 1 GiB from a static file and from a
mod_proxy backend, through a pass-through middleware, byte-exact, while the
child's peak RSS growth is measured (tests/e2e/streaming.py). Under the
event MPM only: the streaming path is the same under the others, and each
GiB costs seconds."""

import pytest

from apache import MODULES, WASM_DIR, Site
from streaming import assert_1_gib_streams_with_bounded_memory

MW = WASM_DIR / "middleware_test_guest.wasm"

SITE = f"""
LoadModule alias_module {MODULES}/mod_alias.so
LoadModule proxy_module {MODULES}/mod_proxy.so
LoadModule proxy_http_module {MODULES}/mod_proxy_http.so

Alias /static {{dir}}/htdocs
Alias /plain {{dir}}/htdocs
ProxyPass /proxied/ http://127.0.0.1:{{port}}/plain/ disablereuse=On
<Location /static>
    WasmMiddleware {MW}
</Location>
<Location /proxied>
    WasmMiddleware {MW}
</Location>
"""


def prepare(server):
    htdocs = server.dir / "htdocs"
    htdocs.mkdir()
    one_mib = bytes(range(256)) * 4096
    with open(htdocs / "big.bin", "wb") as f:
        for _ in range(1024):
            f.write(one_mib)


@pytest.fixture(scope="module")
def mpm():
    return "event"


@pytest.fixture(scope="module")
def apache_site():
    return Site(SITE, "middleware-big", prepare)


def test_1_gib_static_file_through_a_middleware(apache):
    assert_1_gib_streams_with_bounded_memory(apache, "/static/big.bin")


def test_1_gib_proxied_response_through_a_middleware(apache):
    assert_1_gib_streams_with_bounded_memory(apache, "/proxied/big.bin")
