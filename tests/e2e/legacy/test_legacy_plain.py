"""Legacy mode, plain: a WASI preview1 module per request whose stdout is
the response (WasmModule, WasmArg, WasmEnv, WasmDir, WasmMapDir,
WasmEntryPoint), streamed, and failures that cost one request only. Every
test runs under each MPM."""

import hashlib
import time

import pytest

from apache import PeakRssGrowth
from http1 import Connection, request

MIB = 1 << 20


def get(server, target, **kwargs):
    return request(server.port, "GET", target, **kwargs)


def assert_still_serving(server, children):
    r = get(server, "/plain/hello")
    assert r.status == 200 and r.body == b"hello from a legacy module\n"
    assert not server.lost_children(children)


def test_stdout_is_the_response(apache):
    r = get(apache, "/plain/hello")
    assert r.status == 200
    assert r.body == b"hello from a legacy module\n"


def test_argv_is_the_file_name_then_each_wasmarg_in_order(apache):
    r = get(apache, "/plain/args")
    assert r.status == 200
    # /plain sets no argument; /plain/args sets three, one of them quoted.
    assert r.body.decode().splitlines() == ["legacy_test_guest.wasm", "args", "two words",
                                            "third"]


def test_the_environment_is_wasmenv_only(apache):
    r = get(apache, "/plain/env")
    assert r.status == 200
    assert r.body.decode().splitlines() == ["GREETING=hello", "SHARED=parent"]


def test_nested_sections_append_and_the_nested_value_wins(apache):
    r = get(apache, "/plain/env/nested")
    assert r.status == 200
    assert r.body.decode().splitlines() == ["GREETING=hello", "SHARED=child"]
    r = get(apache, "/plain/args")
    assert b"ignored-by-env" not in r.body


@pytest.mark.parametrize("host, expected", [("a.test", b"VHOST=a\n"), ("b.test", b"")])
def test_virtual_hosts_do_not_share_settings(apache, host, expected):
    r = request(apache.port, "GET", "/v", authority=host)
    assert r.status == 200
    assert r.body == expected


def test_wasmentrypoint_calls_another_export(apache):
    r = get(apache, "/plain/entry")
    assert r.status == 200
    assert r.body == b"hello from alt_entry\n"


@pytest.mark.allow_log("MW00012")
def test_a_missing_entry_point_is_a_500_with_its_name_in_the_log(apache):
    children = apache.children()
    r = get(apache, "/plain/no-entry")
    assert r.status == 500
    line = next(l for l in apache.wait_for_log("MW00012") if "MW00012" in l)
    assert "no function named 'no_such_export'" in line, line
    assert_still_serving(apache, children)


@pytest.mark.allow_log("MW00012")
def test_a_trap_is_a_500_and_the_child_lives(apache):
    children = apache.children()
    r = get(apache, "/plain/trap")
    assert r.status == 500
    assert b"unreachable" not in r.body
    line = next(l for l in apache.wait_for_log("MW00012") if "MW00012" in l)
    assert "unreachable" in line and "in <Location /plain>" in line, line
    assert_still_serving(apache, children)


@pytest.mark.allow_log("MW00023")
def test_a_nonzero_exit_before_any_output_is_a_500(apache):
    r = get(apache, "/plain/exit")
    assert r.status == 500
    line = next(l for l in apache.wait_for_log("MW00023") if "MW00023" in l)
    assert "exited with status 3 before writing anything" in line, line


def test_a_nonzero_exit_after_output_keeps_the_response_and_is_logged(apache):
    r = get(apache, "/plain/exit-after")
    assert r.status == 200 and r.complete
    assert r.body == b"partial output\n"
    line = next(l for l in apache.wait_for_log("MW00024") if "MW00024" in l)
    assert "[wasm:warn]" in line and "exited with status 3" in line, line


@pytest.mark.allow_log("MW00015")
def test_stderr_goes_to_the_error_log_with_the_location(apache):
    r = get(apache, "/plain/stderr")
    assert r.status == 200 and r.body == b"see the error log\n"
    line = next(l for l in apache.wait_for_log("legacy guest says") if "MW00015" in l)
    assert "for /plain/stderr (WasmModule " in line and "in <Location /plain>" in line, line


@pytest.mark.allow_log("MW00020")
def test_a_spinning_module_is_stopped_with_504(apache):
    children = apache.children()
    r = get(apache, "/plain/spin")
    assert r.status == 504
    assert_still_serving(apache, children)


@pytest.mark.allow_log("MW00020")
def test_a_sleeping_module_is_stopped_with_504(apache):
    children = apache.children()
    start = time.monotonic()
    r = get(apache, "/plain/sleep")
    assert r.status == 504
    # WasmTimeout is 0.5 s; the module asked for 30 s.
    assert time.monotonic() - start < 10
    assert_still_serving(apache, children)


@pytest.mark.allow_log("MW00012", "MW00015")
def test_memory_beyond_wasmmemorylimit_is_a_500(apache):
    children = apache.children()
    r = get(apache, "/plain/alloc")
    assert r.status == 500
    line = next(l for l in apache.wait_for_log("MW00012") if "MW00012" in l)
    assert "WasmMemoryLimit" in line, line
    assert_still_serving(apache, children)


def test_wasmmapdir_and_wasmdir_grant_their_directories(apache):
    assert get(apache, "/plain/files/read-mapped").body == b"hello from data\n"
    assert get(apache, "/plain/files/read-same").body == b"same path\n"


def test_nothing_outside_the_grants_is_visible(apache):
    r = get(apache, "/plain/files/read-outside")
    assert r.status == 200
    assert r.body.startswith(b"error: ") and b"secret" not in r.body


def test_read_only_grants_refuse_writes_and_read_write_grants_take_them(apache):
    r = get(apache, "/plain/files/write-ro")
    assert r.body.startswith(b"error: "), r.body
    assert not (apache.dir / "data" / "new.txt").exists()
    (apache.dir / "scratch" / "new.txt").unlink(missing_ok=True)
    r = get(apache, "/plain/files/write-rw")
    assert r.body == b"wrote /scratch/new.txt\n"
    assert (apache.dir / "scratch" / "new.txt").read_text() == "written by the guest\n"


def test_head_runs_the_module_and_sends_no_body(apache):
    # The original answered HEAD with an empty 200 without running anything.
    (apache.dir / "scratch" / "new.txt").unlink(missing_ok=True)
    with Connection(apache.port) as conn:
        r = conn.request("HEAD", "/plain/files/write-rw")
        assert r.status == 200
        # Had a body followed the head, it would be read as the next
        # response on this connection.
        again = conn.request("GET", "/plain/hello")
        assert again.status == 200 and again.body == b"hello from a legacy module\n"
    assert (apache.dir / "scratch" / "new.txt").exists()


def test_output_reaches_the_client_while_the_module_runs(apache):
    r = get(apache, "/plain/slow", keep_chunks=True)
    assert r.status == 200 and r.body == b"first\nsecond\n"
    # The module sleeps a second between its two lines: the first arrived
    # well before the second, not with it at the end.
    (first_at, first), (last_at, _) = r.chunks[0], r.chunks[-1]
    assert first == b"first\n"
    assert last_at - first_at > 0.5, r.chunks


def test_1_gib_of_stdout_streams_with_bounded_memory(apache):
    digest = hashlib.sha256()
    total = [0]

    def take(data):
        digest.update(data)
        total[0] += len(data)

    start = time.monotonic()
    with PeakRssGrowth(apache) as growth:
        r = get(apache, "/plain/big", on_chunk=take)
    assert r.status == 200 and r.complete
    assert total[0] == 1024 * MIB
    expected = hashlib.sha256()
    one_mib = b"x" * MIB
    for _ in range(1024):
        expected.update(one_mib)
    assert digest.hexdigest() == expected.hexdigest()
    print(f"1 GiB of stdout in {time.monotonic() - start:.1f} s, "
          f"peak child RSS growth {growth.mib:.1f} MiB")
    assert growth.mib < 32, f"a child grew by {growth.mib:.1f} MiB"
