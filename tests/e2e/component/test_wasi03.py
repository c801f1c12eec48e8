"""WASI 0.3 components (`wasi:http/service@0.3.0`, tests/p3-guest) under
`WasmComponent`, next to 0.2 ones: told apart at start-up by their export,
served by an engine of their own, with the same limits and logs. Every test
runs under each MPM."""

import os
import re
import time

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
<LocationMatch "^/p3/(spin|never|spin-after|wait-after)$">
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
<Location /p3/files>
    WasmMapDir /data {{dir}}/data ro
    WasmMapDir /scratch {{dir}}/scratch
</Location>
"""


def prepare(server):
    """The folders /p3/files grants, and a file outside them."""
    for name in ("data", "scratch"):
        (server.dir / name).mkdir()
    (server.dir / "data" / "hello.txt").write_text("hello from data\n")
    (server.dir / "secret.txt").write_text("secret\n")
    # The children run as www-data when the tests run as root.
    os.chmod(server.dir / "scratch", 0o777)


@pytest.fixture(scope="module")
def apache_site():
    return Site(SITE, "wasi03", prepare)


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


def test_a_wasi_03_guest_writes_to_apaches_log(apache):
    r = request(apache.port, "GET", "/p3/log?hello")
    assert r.status == 200 and r.body == b"logged\n", r
    line = next(line for line in apache.wait_for_log("a 0.3 guest says")
                if "a 0.3 guest says" in line)
    assert "[wasm:info]" in line and "MW00028" in line and "/p3/log" in line, line
    assert line.endswith("a 0.3 guest says hello"), line


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


@pytest.mark.allow_log("MW00014")
def test_a_body_short_of_its_content_length_is_cut(apache):
    # 8 of the 100 bytes declared: the client must not take what it got
    # for the whole response.
    apache.new_log()
    r = request(apache.port, "GET", "/p3/short")
    assert r.status == 200 and r.header("content-length") == b"100", r
    assert not r.complete and len(r.body) <= 100, r
    line = next(line for line in apache.wait_for_log("MW00014") if "MW00014" in line)
    assert "/p3/short" in line and "HttpResponseBodySize" in line, line


@pytest.mark.allow_log("MW00012")
def test_a_body_past_its_content_length_is_a_500(apache):
    # 8 bytes where 4 were declared, in the first piece: the host sees it
    # before it sent the head, so nothing of it goes out.
    apache.new_log()
    r = request(apache.port, "GET", "/p3/long")
    assert r.status == 500 and r.complete and b"partial" not in r.body, r
    line = next(line for line in apache.wait_for_log("MW00012") if "MW00012" in line)
    assert "/p3/long" in line and "HttpResponseBodySize" in line, line


@pytest.mark.allow_log("MW00012", "MW00015")
def test_a_panic_in_a_spawned_task_is_a_500(apache):
    children = apache.children()
    apache.new_log()
    r = request(apache.port, "GET", "/p3/task-panic")
    assert r.status == 500, r
    line = next(line for line in apache.wait_for_log("MW00012") if "MW00012" in line)
    assert "/p3/task-panic" in line and "trap" in line, line
    assert request(apache.port, "GET", "/p3/hello").status == 200
    assert not apache.lost_children(children)


@pytest.mark.parametrize("op", ["spin-after", "wait-after"])
def test_a_task_left_running_after_the_response_does_not_hold_it(apache, op):
    # The task outlives the response (it spins, or waits for ever): the
    # response is whole, and no later than its 2 s WasmTimeout would
    # allow, which would have made it a 504 or a cut.
    with Connection(apache.port) as conn:
        r = conn.request("GET", f"/p3/{op}")
        assert r.status == 200 and r.complete and r.body == b"done\n", r
        r = conn.request("GET", "/p3/after")
        assert r.status == 200, r


def test_first_bytes_arrive_before_the_guest_finishes(apache):
    start = time.monotonic()
    r = request(apache.port, "GET", "/p3/slow", keep_chunks=True)
    assert r.status == 200 and r.body == b"first\nlast\n", r
    first = r.chunks[0]
    assert first[1].startswith(b"first")
    # The guest pauses one second between the two writes.
    assert r.last_byte_at - r.first_byte_at > 0.5
    assert first[0] - start < r.last_byte_at - start - 0.5


def test_the_wasi_03_filesystem_serves_the_grants_and_nothing_else(apache):
    def fs(op, path, section="files"):
        r = request(apache.port, "GET", f"/p3/{section}/fs?op={op}&path={path}")
        assert r.status == 200, r
        return r.body.decode()

    assert fs("read", "/data/hello.txt") == "hello from data\n"
    assert fs("write", "/scratch/note.txt") == "written\n"
    assert (apache.dir / "scratch" / "note.txt").read_text() == "written through WASI 0.3\n"
    assert fs("read", "/scratch/note.txt") == "written through WASI 0.3\n"
    # A read-only grant takes no writes; nothing leaves a grant.
    assert fs("write", "/data/new.txt").startswith("error "), fs("write", "/data/new.txt")
    assert not (apache.dir / "data" / "new.txt").exists()
    assert fs("read", "/data/../secret.txt").startswith("error ")
    # No grant, no filesystem.
    assert fs("read", "/data/hello.txt", section="x") == "error no grant\n"


def test_a_wasi_03_guest_makes_no_symlinks(apache):
    r = request(apache.port, "GET", "/p3/files/fs?op=symlink&path=/scratch/link")
    assert r.status == 200 and r.body == b"error ErrorCode::NotPermitted\n", r
    assert not os.path.lexists(apache.dir / "scratch" / "link")


def test_a_wasi_03_guest_opens_no_sockets(apache):
    # Apache's own port, which is listening: only the grant is missing.
    r = request(apache.port, "GET", f"/p3/files/connect?port={apache.port}")
    assert r.status == 200 and r.body == b"error ErrorCode::AccessDenied\n", r
