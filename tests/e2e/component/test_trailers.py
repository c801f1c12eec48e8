"""Trailers both ways, for a WASI 0.2 component (tests/guest, through
guest-sdk's raw API) and a WASI 0.3 one (tests/p3-guest): a chunked
upload's trailer section reaches the guest, and the guest's response
trailers go out after the last chunk. Over HTTP/2 they are
test_http2.py's. Every test runs under each MPM."""

import pytest

from apache import WASM_DIR, Site
from http1 import Connection, request

SITE = f"""
<Location /t>
    SetHandler wasm-handler
    WasmComponent {{guest}}
</Location>
<Location /p3>
    SetHandler wasm-handler
    WasmComponent {WASM_DIR}/p3_test_guest.wasm
</Location>
"""

# The response trailers route of each guest, and its body.
SENDERS = {"0.2": "/t/trailers", "0.3": "/p3/trailers"}


@pytest.fixture(scope="module")
def apache_site():
    return Site(SITE, "trailers")


@pytest.mark.parametrize("wasi", SENDERS)
def test_response_trailers_follow_the_last_chunk(apache, wasi):
    with Connection(apache.port) as conn:
        r = conn.request("GET", SENDERS[wasi])
        assert r.status == 200 and r.complete, r
        assert r.header("transfer-encoding") == b"chunked", r.headers
        assert r.body == b"with trailers\n"
        assert r.trailers == [(b"x-checksum", b"abc123")], r.trailers
        # The connection goes on: the trailer section ended where it should.
        r = conn.request("GET", "/p3/hello")
        assert r.status == 200 and r.body.startswith(b"Hello from WASI 0.3!"), r


@pytest.mark.parametrize("wasi", SENDERS)
def test_an_http_1_0_response_goes_out_whole_without_them(apache, wasi):
    # HTTP/1.0 has no chunks, so nowhere to put trailers: the body is sent
    # as it is, ended by the connection's close.
    r = request(apache.port, "GET", SENDERS[wasi], version="HTTP/1.0")
    assert r.status == 200 and r.body == b"with trailers\n", r
    assert r.header("transfer-encoding") is None
    assert r.trailers == []


@pytest.mark.allow_log("MW00047")
def test_a_field_that_may_not_be_a_trailer_is_dropped_and_logged(apache):
    apache.new_log()
    r = request(apache.port, "GET", "/t/trailers?forbidden=1")
    assert r.status == 200 and r.complete, r
    assert r.trailers == [(b"x-checksum", b"abc123")], r.trailers
    line = next(line for line in apache.wait_for_log("MW00047") if "MW00047" in line)
    assert "content-type" in line and "/t/trailers" in line, line


def test_request_trailers_reach_a_0_2_guest_and_come_back(apache):
    sent = [("X-Digest", "sha-256=abc"), ("X-Count", "3")]
    r = request(apache.port, "POST", "/t/trailers-echo", body=[b"ab", b"cde"], trailers=sent)
    assert r.status == 200 and r.complete, r
    assert r.body == b"5 bytes\nx-digest: sha-256=abc\nx-count: 3\n", r.body
    assert r.trailers == [(b"x-digest", b"sha-256=abc"), (b"x-count", b"3")], r.trailers


def test_request_trailers_reach_a_0_3_guest_and_come_back(apache):
    # The 0.3 guest echoes the body, and its trailers as the response's.
    pieces = [b"x" * 70_000, b"y" * 5]
    r = request(apache.port, "POST", "/p3/echo", body=pieces, trailers=[("X-Digest", "d1")])
    assert r.status == 200 and r.complete, r
    assert r.body == b"".join(pieces)
    assert r.trailers == [(b"x-digest", b"d1")], r.trailers


@pytest.mark.parametrize("path", ["/t/trailers-echo", "/p3/echo"])
def test_an_upload_without_trailers_gives_the_guest_none(apache, path):
    r = request(apache.port, "POST", path, body=[b"abc"])
    assert r.status == 200 and r.complete, r
    assert r.trailers == [], r.trailers


@pytest.mark.parametrize("wasi", SENDERS)
def test_head_sends_no_trailer_section(apache, wasi):
    # HEAD has no body, so no last chunk to put trailers in: the next
    # response on the connection must start right after the head.
    with Connection(apache.port) as conn:
        r = conn.request("HEAD", SENDERS[wasi])
        assert r.status == 200 and r.body == b"", r
        r = conn.request("GET", "/p3/hello")
        assert r.status == 200 and r.body.startswith(b"Hello from WASI 0.3!"), r
