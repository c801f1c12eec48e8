"""WASI 0.3 components (`wasi:http/service@0.3.0`, tests/p3-guest) under
`WasmComponent`, next to 0.2 ones: told apart at start-up by their export,
served by an engine of their own, with the same limits and logs. Every test
runs under each MPM."""

import re

import pytest

from apache import WASM_DIR, Site
from http1 import Connection, request
from streaming import assert_1_gib_streams_with_bounded_memory, pattern_upload

P3 = WASM_DIR / "p3_test_guest.wasm"

SITE = f"""
<Location /p3>
    SetHandler wasm-handler
    WasmComponent {P3}
</Location>
<LocationMatch "^/p3/(spin|never)$">
    WasmTimeout 2
</LocationMatch>
<Location /p2>
    SetHandler wasm-handler
    WasmComponent {{hello}}
</Location>
<Location /p3/out>
    WasmAllowOutgoing http://127.0.0.1:{{port}}
</Location>
<Location /wasm-status>
    SetHandler wasm-status
</Location>
<Location /p3/small>
    WasmMemoryLimit 16M
</Location>
"""


@pytest.fixture(scope="module")
def apache_site():
    return Site(SITE, "wasi03")


def test_a_wasi_03_component_answers_next_to_a_wasi_02_one(apache):
    r = request(apache.port, "GET", "/p3/hello?a=1")
    assert r.status == 200, r
    assert r.body == b"Hello from WASI 0.3! You asked for /p3/hello?a=1\n"
    r = request(apache.port, "GET", "/p2/x")
    assert r.status == 200 and r.body.startswith(b"Hello from WebAssembly!"), r


def test_start_up_says_which_world_each_component_serves(apache):
    log = apache.error_log.read_text()
    line = next(line for line in log.splitlines() if "p3_test_guest.wasm" in line
                and "MW00001" in line)
    assert "WASI 0.3" in line, line


def test_the_status_page_names_the_world(apache):
    assert request(apache.port, "GET", "/p3/counted").status == 200
    r = request(apache.port, "GET", "/wasm-status?auto")
    fields = dict(line.split(": ", 1) for line in r.body.decode().splitlines())
    kinds = {fields[key]: fields[key + "Kind"] for key in fields
             if re.fullmatch(r"Location\d+", key)}
    assert kinds["/p3"] == "component (WASI 0.3)", fields
    assert kinds["/p2"] == "component", fields


def test_status_headers_and_keep_alive(apache):
    with Connection(apache.port) as conn:
        r = conn.request("GET", "/p3/status?code=418")
        assert r.status == 418, r
        assert r.header("x-wasi") == b"0.3"
        assert r.body == b"I'm a teapot\n"
        # The same connection goes on.
        r = conn.request("GET", "/p3/again")
        assert r.body == b"Hello from WASI 0.3! You asked for /p3/again\n"


@pytest.mark.parametrize("chunked", [False, True])
def test_an_upload_is_echoed_byte_for_byte(apache, chunked):
    pieces, _ = pattern_upload(4 << 20, 60_000)
    body = pieces if chunked else b"".join(pieces)
    r = request(apache.port, "POST", "/p3/echo", body=body)
    assert r.status == 200 and r.complete, r
    assert r.body == b"".join(pieces)


def test_a_gib_streams_down_in_bounded_memory(apache):
    assert_1_gib_streams_with_bounded_memory(apache, "/p3/big?mib=1024")


@pytest.mark.allow_log("MW00012", "MW00015")
@pytest.mark.parametrize("op, why", [
    ("trap-before", "trap"),
    ("error", "the guest answered with an error instead of a response"),
])
def test_a_failure_before_the_response_is_a_500_and_the_child_lives_on(apache, op, why):
    children = apache.children()
    apache.new_log()
    r = request(apache.port, "GET", f"/p3/{op}")
    assert r.status == 500, r
    lines = apache.wait_for_log("MW00012")
    assert any(why in line and f"/p3/{op}" in line for line in lines), lines
    assert request(apache.port, "GET", "/p3/hello").status == 200
    assert not apache.lost_children(children)


@pytest.mark.allow_log("MW00014", "MW00015")
def test_a_trap_in_the_middle_of_the_body_cuts_the_response(apache):
    apache.new_log()
    r = request(apache.port, "GET", "/p3/trap-body")
    assert r.status == 200 and not r.complete, r
    lines = apache.wait_for_log("MW00014")
    assert any("/p3/trap-body" in line for line in lines), lines


@pytest.mark.allow_log("MW00018")
def test_outgoing_requests_go_through_the_allow_list(apache):
    r = request(apache.port, "GET", f"/p3/out/fetch?url=http://127.0.0.1:{apache.port}/p2/x")
    assert r.status == 200, r
    assert r.body == b"status 200\nHello from WebAssembly! You asked for /p2/x\n", r.body
    # /p3 itself allows nothing.
    apache.new_log()
    r = request(apache.port, "GET", f"/p3/fetch?url=http://127.0.0.1:{apache.port}/p2/x")
    assert r.status == 403 and r.body == b"denied\n", r
    line = next(line for line in apache.wait_for_log("MW00018") if "MW00018" in line)
    assert f"127.0.0.1:{apache.port}" in line, line


@pytest.mark.allow_log("MW00012", "MW00015")
def test_the_memory_limit_applies(apache):
    assert request(apache.port, "GET", "/p3/small/alloc?mib=4").body == b"held 4194304 bytes\n"
    apache.new_log()
    r = request(apache.port, "GET", "/p3/small/alloc?mib=64")
    assert r.status == 500, r
    line = next(line for line in apache.wait_for_log("MW00012") if "MW00012" in line)
    assert "WasmMemoryLimit (16777216 bytes per memory)" in line, line


@pytest.mark.allow_log("MW00020")
@pytest.mark.parametrize("op", ["spin", "never"])
def test_a_guest_past_its_timeout_is_a_504(apache, op):
    apache.new_log()
    r = request(apache.port, "GET", f"/p3/{op}")
    assert r.status == 504, r
    line = next(line for line in apache.wait_for_log("MW00020") if "MW00020" in line)
    assert f"/p3/{op}" in line and "WasmTimeout (2s)" in line, line
    assert request(apache.port, "GET", "/p3/hello").status == 200
