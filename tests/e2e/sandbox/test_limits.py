"""Limits and failure isolation: time, memory, stack, concurrency, bad
headers and vanishing clients. Each misbehaviour costs its own request only;
the child process lives and the next request succeeds. Every test runs under
each MPM unless it says otherwise."""

import socket
import threading
import time

import pytest

from apache import Apache
from http1 import Connection, request


def assert_still_serving(server, children):
    r = request(server.port, "GET", "/t/after")
    assert r.status == 200 and r.body == b"test guest: /t/after\n"
    assert not server.lost_children(children)


@pytest.mark.allow_log("MW00020")
def test_a_spinning_guest_is_stopped_with_504(apache):
    children = apache.children()
    started = time.monotonic()
    r = request(apache.port, "GET", "/short/spin")
    elapsed = time.monotonic() - started
    assert r.status == 504
    # Stopped at its 0.5 s, not at Apache's Timeout or the default 60 s.
    assert 0.4 < elapsed < 20, elapsed
    lines = apache.wait_for_log("MW00020")
    [line] = [line for line in lines if "MW00020" in line]
    assert "WasmTimeout (500ms)" in line and "/short/spin" in line, line
    # The trap says where the guest was.
    assert "wasm backtrace" in line or "interrupt" in line, line
    assert_still_serving(apache, children)


@pytest.mark.allow_log("MW00020")
def test_a_guest_waiting_in_the_host_is_stopped_with_504(apache):
    r = request(apache.port, "GET", "/short/sleep?ms=10000")
    assert r.status == 504
    line = next(l for l in apache.wait_for_log("MW00020") if "MW00020" in l)
    assert "the guest was waiting" in line, line


def test_a_guest_within_its_timeout_finishes(apache):
    r = request(apache.port, "GET", "/medium/sleep?ms=100")
    assert r.status == 200 and r.body == b"slept\n"


@pytest.mark.allow_log("MW00014")
def test_a_timeout_after_the_head_cuts_the_response(apache):
    children = apache.children()
    with Connection(apache.port) as conn:
        r = conn.request("GET", "/t/spin-after-head")
    assert r.status == 200
    assert not r.complete and r.body == b"partial"
    line = next(l for l in apache.wait_for_log("MW00014") if "MW00014" in l)
    assert "the request timed out" in line, line
    assert_still_serving(apache, children)


@pytest.mark.allow_log("MW00014")
def test_other_requests_do_not_wait_for_a_spinning_guest(apache):
    # /t/spin-after-head sends "partial" and then spins until its timeout
    # (3 s): the bytes prove the guest runs, and it spins until its
    # response is cut.
    results = {}
    spinning = threading.Event()

    def spin():
        results["spin"] = request(apache.port, "GET", "/t/spin-after-head",
                                  on_chunk=lambda data: spinning.set())

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        assert spinning.wait(10), "the spinner never began"
        for i in range(10):
            r = request(apache.port, "GET", f"/t/during-{i}")
            assert r.status == 200 and r.body == f"test guest: /t/during-{i}\n".encode()
        # Its response is still open: the guest still spins.
        assert spinner.is_alive() and "spin" not in results, "the spinner ended early"
    finally:
        spinner.join()
    spun = results["spin"]
    assert spun.status == 200 and not spun.complete
    line = next(l for l in apache.wait_for_log("MW00014") if "MW00014" in l)
    assert "the request timed out" in line and "/t/spin-after-head" in line, line


def test_memory_below_the_limit_is_fine(apache):
    r = request(apache.port, "GET", "/small/alloc?mib=4")
    assert r.status == 200 and r.body.startswith(b"allocated 4 MiB")
    # The default limit (128M) allows what /small does not.
    assert request(apache.port, "GET", "/t/alloc?mib=64").status == 200


@pytest.mark.allow_log("MW00012", "MW00015")
@pytest.mark.parametrize("target, reason", [
    ("/small/alloc?mib=64", "WasmMemoryLimit (16777216 bytes per memory)"),
    ("/t/recurse", "call stack exhausted"),
])
def test_running_out_of_memory_or_stack_fails_that_request_only(apache, target, reason):
    children = apache.children()
    r = request(apache.port, "GET", target)
    assert r.status == 500
    line = next(l for l in apache.wait_for_log("MW00012") if "MW00012" in l)
    assert reason in line, line
    assert_still_serving(apache, children)


@pytest.mark.allow_log("MW00012")
def test_a_header_value_with_crlf_is_rejected_not_split(apache):
    with Connection(apache.port) as conn:
        conn.send_head("GET", "/t/crlf-header", [], "127.0.0.1")
        raw = conn.sock.recv(65536)
    assert raw.startswith(b"HTTP/1.1 500 ")
    assert b"Injected" not in raw and b"x-split" not in raw.lower()


def test_a_client_that_leaves_mid_stream_stops_the_guest(apache):
    children = apache.children()
    # The guest ignores write errors and would stream until its 60 s
    # timeout; the host must stop it as soon as the client is gone (MW00013
    # is logged when the guest has stopped).
    for _ in range(6):
        sock = socket.create_connection(("127.0.0.1", apache.port), timeout=10)
        sock.sendall(b"GET /long/endless HTTP/1.1\r\nHost: x\r\n\r\n")
        received = 0
        while received < 256 * 1024:
            piece = sock.recv(65536)
            assert piece, "the stream ended early"
            received += len(piece)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        sock.close()  # with linger 0: a reset, at once
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        stopped = [line for line in apache.peek_log() if "MW00013" in line]
        if len(stopped) == 6:
            break
        time.sleep(0.05)
    assert len(stopped) == 6, apache.peek_log()
    assert_still_serving(apache, children)


def test_a_full_location_answers_503_with_retry_after(apache_site):
    """WasmMaxInstances counts per child process, so this runs under event
    with its single child (a prefork child serves one request at a time)."""
    site = apache_site.body + """
<Location /one>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmMaxInstances 1
</Location>
# Counts with /one.
<Location /one/nested>
    WasmEnv X 1
</Location>
# Its own cap and count.
<Location /one/own>
    WasmMaxInstances 2
</Location>
"""
    server = Apache(site, mpm="event", name="max-instances")
    try:
        apache_site.prepare(server)
        server.start()
        held = {}

        def hold():
            # The probes below take the slot for a moment too: a holder that
            # arrives during one gets 503 and tries again.
            for _ in range(20):
                held["r"] = request(server.port, "GET", "/one/sleep?ms=4000")
                if held["r"].status != 503:
                    return

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            # Until the holder's guest has its slot, /one still answers.
            deadline = time.monotonic() + 3
            while (r := request(server.port, "GET", "/one/echo")).status != 503:
                assert time.monotonic() < deadline, "the holder never took the slot"
                time.sleep(0.05)
            assert r.header("retry-after") == b"1"
            r = request(server.port, "GET", "/one/nested/echo")
            assert r.status == 503 and r.header("retry-after") == b"1"
            # Other locations, and a nested one with its own cap, are not
            # limited by /one's.
            assert request(server.port, "GET", "/one/own/echo").status == 200
            assert request(server.port, "GET", "/t/echo").status == 200
        finally:
            holder.join()
        assert held["r"].status == 200 and held["r"].body == b"slept\n"
        # The slot is free again.
        assert request(server.port, "GET", "/one/status?code=200").status == 200
        lines = server.new_log()
        assert any("MW00021" in l and "WasmMaxInstances 1" in l for l in lines), lines
        assert not server.unexpected_errors(lines)
    finally:
        server.cleanup()
