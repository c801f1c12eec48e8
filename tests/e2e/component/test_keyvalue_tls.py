"""wasi:keyvalue on a Redis server that speaks TLS only (rediss://): a real
redis-server with a certificate for 127.0.0.1 from a CA made for the test.
The store that names the CA with ca= works; one that trusts only the
system's certificates is refused by the handshake, and its requests get
the interface's error and a log line."""

import pytest

from apache import WASM_DIR, Site
from http1 import request
from redis_server import Redis

STATE = WASM_DIR / "state_test_guest.wasm"


@pytest.fixture(scope="module")
def redis():
    server = Redis(tls=True)
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def apache_site(redis):
    return Site(f"""
WasmKeyValueStore trusted {redis.url} ca={redis.ca}
WasmKeyValueStore untrusted {redis.url} timeout=2
<Location /kv>
    SetHandler wasm-handler
    WasmComponent {STATE}
    WasmKeyValue trusted untrusted
</Location>
""", "keyvalue-tls")


@pytest.fixture(scope="module")
def mpm():
    return "event"


def kv(apache, op, store, key, body=None):
    return request(apache.port, "POST" if body is not None else "GET",
                   f"/kv/{op}?store={store}&key={key}", body=body)


def test_a_store_over_tls_with_its_ca_sets_reads_and_counts(apache, redis):
    assert kv(apache, "set", "trusted", "greeting", body=b"over TLS").status == 204
    r = kv(apache, "get", "trusted", "greeting")
    assert (r.status, r.body) == (200, b"over TLS")
    for _ in range(20):
        assert kv(apache, "incr", "trusted", "visits").status == 200
    assert kv(apache, "get", "trusted", "visits").body == b"20"
    # The value is on the server, which only speaks TLS.
    assert redis.command("GET", "greeting") == b"$8\r\nover TLS\r\n"


@pytest.mark.allow_log("MW00050")
def test_a_server_whose_certificate_the_store_does_not_trust_is_an_error(apache):
    r = kv(apache, "get", "untrusted", "greeting")
    assert r.status == 500
    assert b"cannot connect" in r.body
    line = [line for line in apache.wait_for_log("MW00050") if "MW00050" in line][-1]
    assert "store 'untrusted' (rediss://127.0.0.1:" in line, line
    assert "certificate" in line.lower() or "UnknownIssuer" in line, line
    # The other store, same server, carries on.
    assert kv(apache, "get", "trusted", "greeting").status == 200
