"""Misbehaving guests: the site the limit, capability and stress tests
talk to (test_hostile.py has a site of its own). Each test module that
starts a server of its own builds on apache_site.body."""

import os

import pytest

from apache import Site

SANDBOX_SITE = """
<Location /hello>
    SetHandler wasm-handler
    WasmComponent {hello}
</Location>

# Nothing granted, default memory limit, a short timeout for the tests.
<Location /t>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmTimeout 3
</Location>

<Location /long>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmTimeout 60
</Location>

<Location /medium>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmTimeout 5
</Location>

<Location /short>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmTimeout 0.5
</Location>

<Location /small>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmMemoryLimit 16M
</Location>

<Location /env>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmEnv GREETING hello
    WasmEnv SHARED parent
</Location>

# Appends to /env; its SHARED wins.
<Location /env/nested>
    WasmEnv SHARED child
    WasmEnv EXTRA 1
</Location>

<Location /files>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmMapDir /data {dir}/data ro
    WasmMapDir /scratch {dir}/scratch
    WasmDir {dir}/same ro
</Location>

<Location /out>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmAllowOutgoing http://127.0.0.1:{port} http://localhost:{port}
    WasmAllowOutgoing https://127.0.0.1:*
</Location>

# A name alone reaches public addresses only, even localhost.
<Location /named>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmAllowOutgoing http://localhost:{port}
</Location>

# A wildcard reaches public addresses only.
<Location /wild>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmAllowOutgoing *://*:*
</Location>
"""


def prepare(server):
    """The directories SANDBOX_SITE grants, plus a secret beside them."""
    root = server.dir
    for name in ("data", "scratch", "same"):
        (root / name).mkdir()
    (root / "data" / "hello.txt").write_text("hello from data\n")
    (root / "same" / "x.txt").write_text("same path\n")
    (root / "secret.txt").write_text("secret\n")
    (root / "data" / "link").symlink_to(root / "secret.txt")
    (root / "data" / "uplink").symlink_to("../secret.txt")
    # The children run as www-data when the tests run as root.
    os.chmod(root / "scratch", 0o777)


@pytest.fixture(scope="module")
def apache_site():
    return Site(SANDBOX_SITE, "sandbox", prepare)
