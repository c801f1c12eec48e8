"""The guest's stderr reaches Apache's error log, line by line."""

import pytest

from http1 import request


@pytest.mark.allow_log("MW00015")
def test_guest_stderr_lines_go_to_the_error_log(apache):
    r = request(apache.port, "GET", "/t/stderr")
    assert r.status == 200 and r.body == b"logged\n"
    lines = [l for l in apache.new_log() if "MW00015" in l]
    assert [l.split(": ")[-1] for l in lines] == [
        "first line", "second line", "no newline at the end"]
    assert all("for /t/stderr (WasmComponent " in l for l in lines), lines
    assert all("test_guest.wasm in <Location /t> at " in l for l in lines), lines


@pytest.mark.allow_log("MW00015", "MW00012")
def test_a_panicking_guest_is_500_with_its_message_logged(apache):
    r = request(apache.port, "GET", "/t/panic")
    assert r.status == 500
    assert b"on purpose" not in r.body
    log = "\n".join(apache.new_log())
    assert "the guest panicked on purpose" in log and "MW00015" in log
    assert "MW00012" in log
    # Rust's advice to set RUST_BACKTRACE is the guest's, not the admin's:
    # left out of the log.
    assert "RUST_BACKTRACE" not in log, log
