"""WasmInstanceReuse for WASI 0.3 components: an instance on a thread of its
own serves request after request, and with `concurrent=<k>` up to k of them
at once (docs/wasi-0.3.md, "Shared instances"). Every test runs under each
MPM; prefork runs one request per child at a time, so its instances are
reused but never serve two requests at once, and the tests say what that
changes."""

import os
import re
import threading
import time
from pathlib import Path

import pytest

from apache import WASM_DIR, Site
from http1 import Connection, request
from streaming import assert_1_gib_streams_with_bounded_memory, pattern_upload

P3 = WASM_DIR / "p3_test_guest.wasm"

SITE = f"""
<Location /one>
    SetHandler wasm-handler
    WasmComponent {P3}
    WasmInstanceReuse 1000
</Location>
<Location /many>
    SetHandler wasm-handler
    WasmComponent {P3}
    WasmInstanceReuse 1000 concurrent=8
    WasmTimeout 20
</Location>
# For the failure tests alone, so that their broken instances are no other
# test's.
<Location /broken>
    SetHandler wasm-handler
    WasmComponent {P3}
    WasmInstanceReuse 1000 concurrent=8
    WasmTimeout 20
</Location>
<Location /late>
    SetHandler wasm-handler
    WasmComponent {P3}
    WasmInstanceReuse 1000 concurrent=8
    WasmTimeout 2
</Location>
<Location /three>
    SetHandler wasm-handler
    WasmComponent {P3}
    WasmInstanceReuse 3
</Location>
<Location /fresh>
    SetHandler wasm-handler
    WasmComponent {P3}
</Location>
<Location /wasm-status>
    SetHandler wasm-status
</Location>
"""


@pytest.fixture(scope="module")
def apache_site():
    return Site(SITE, "wasi03-shared")


def counts(conn, path, n):
    """The guest's count of requests served, for n requests on `conn`."""
    served = []
    for _ in range(n):
        r = conn.request("GET", path)
        assert r.status == 200, r
        served.append(int(r.body.split()[1]))
    return served


def at_once(apache, path, clients):
    """Sends `clients` requests for `path` at the same time, each on its
    own connection; their responses."""
    responses = [None] * clients

    def client(i):
        responses[i] = request(apache.port, "GET", path)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def status_of(apache, name):
    r = request(apache.port, "GET", "/wasm-status?auto")
    fields = dict(line.split(": ", 1) for line in r.body.decode().splitlines())
    [key] = [k for k, v in fields.items() if re.fullmatch(r"Location\d+", k) and v == name]
    return {k[len(key):]: v for k, v in fields.items() if re.fullmatch(key + r"\D.*", k)}


def test_an_instance_serves_request_after_request_and_keeps_its_memory(apache):
    with Connection(apache.port) as conn:
        served = counts(conn, "/one/count", 4)
    assert served == list(range(served[0], served[0] + 4)), served


def test_an_instance_serves_its_share_and_no_more(apache):
    with Connection(apache.port) as conn:
        served = counts(conn, "/three/count", 7)
    # 3 requests per instance: 1 2 3, then a fresh one.
    assert served == [1, 2, 3, 1, 2, 3, 1], served


def test_one_instance_serves_concurrent_requests_together(apache):
    # Warm: the instance exists before the requests that share it come.
    assert request(apache.port, "GET", "/many/count").status == 200
    responses = at_once(apache, "/many/sleep?ms=1500", 3)
    assert all(r.status == 200 for r in responses), responses
    most = max(int(r.body.split()[-1]) for r in responses)
    if apache.mpm == "prefork":
        # One request per child at a time: never two in one instance.
        assert most == 1, responses
    else:
        assert most == 3, responses


def test_without_concurrent_an_instance_serves_one_request_at_a_time(apache):
    responses = at_once(apache, "/one/sleep?ms=1000", 2)
    assert all(r.status == 200 for r in responses), responses
    assert [r.body for r in responses] == [b"at once 1\n"] * 2


# Four requests take every thread of the child: Apache says so.
@pytest.mark.allow_log("AH00484", "AH00286")
def test_idle_shared_instances_make_room_for_fresh_requests(apache):
    # Each idle shared instance holds a slot of the child's pool, which is
    # sized for the requests the child runs at once: three of them and as
    # many fresh requests as the child has threads are more than it holds,
    # so the fresh ones must close idle instances rather than fail.
    for path in ("/one/count", "/many/count", "/three/count"):
        assert request(apache.port, "GET", path).status == 200
    responses = at_once(apache, "/fresh/sleep?ms=500", 4)
    assert [r.status for r in responses] == [200] * 4, responses


def test_bodies_cross_both_ways_byte_for_byte(apache):
    pieces, _ = pattern_upload(4 << 20, 60_000)
    body = b"".join(pieces)
    with Connection(apache.port) as conn:
        r = conn.request("POST", "/many/echo", body=body)
        assert r.status == 200 and r.complete and r.body == body
        r = conn.request("POST", "/many/echo", body=pieces, trailers=[("x-sum", "42")])
        assert r.status == 200 and r.complete and r.body == body
        assert r.trailers == [(b"x-sum", b"42")], r.trailers


def test_1_gib_streams_through_a_shared_instance_in_bounded_memory(apache):
    assert_1_gib_streams_with_bounded_memory(apache, "/many/big?mib=1024")


def test_status_and_headers_of_the_guest_reach_the_client(apache):
    with Connection(apache.port) as conn:
        for _ in range(2):
            r = conn.request("GET", "/many/status?code=418")
            assert r.status == 418 and r.header("x-wasi") == b"0.3"
            assert r.body == b"I'm a teapot\n"


@pytest.mark.allow_log("MW00015")
def test_a_guest_serving_one_at_a_time_logs_with_its_request(apache):
    assert request(apache.port, "GET", "/one/stderr?one-line").status == 200
    [line] = apache.wait_for_log("one-line")
    assert "MW00015" in line and "for /one/stderr" in line and "request " in line, line


@pytest.mark.allow_log("MW00049")
def test_a_guest_serving_several_at_once_logs_with_its_section(apache):
    assert request(apache.port, "GET", "/many/stderr?shared-line").status == 200
    [line] = apache.wait_for_log("shared-line")
    assert "MW00049" in line and "guest stderr (shared instance" in line, line
    assert "<Location /many>" in line and ":error]" in line, line
    assert "/many/stderr" not in line, line


@pytest.mark.allow_log("MW00012", "MW00015", "MW00049")
def test_a_trap_fails_the_requests_that_share_its_instance(apache):
    assert request(apache.port, "GET", "/broken/count").status == 200
    before = status_of(apache, "/broken")
    sleepers = []
    threads = [threading.Thread(target=lambda: sleepers.append(
        request(apache.port, "GET", "/broken/sleep?ms=3000"))) for _ in range(2)]
    for thread in threads:
        thread.start()
    # Time for both to reach the guest: it answers neither for 3 s.
    time.sleep(1)
    assert request(apache.port, "GET", "/broken/trap-before").status == 500
    for thread in threads:
        thread.join()
    after = status_of(apache, "/broken")
    growth = {kind: int(after["Errors" + kind]) - int(before["Errors" + kind])
              for kind in ("Trap", "Shared")}
    if apache.mpm == "prefork":
        # Each in a child of its own: the trap broke only its own instance.
        assert [r.status for r in sleepers] == [200, 200], sleepers
        assert growth == {"Trap": 1, "Shared": 0}, after
    else:
        # A trap ends the instance's event loop, and which of the three
        # requests' code trapped cannot be told: each fails as shared.
        assert [r.status for r in sleepers] == [500, 500], sleepers
        assert growth == {"Trap": 0, "Shared": 3}, after
        assert "its instance, shared with other requests, broke: the guest trapped" \
            in "\n".join(apache.peek_log())
    # A new instance serves the next request (under prefork, any child's).
    with Connection(apache.port) as conn:
        served = counts(conn, "/broken/count", 1)
    if apache.mpm != "prefork":
        assert served == [1], served


@pytest.mark.allow_log("MW00020")
def test_a_request_past_its_timeout_gets_504_and_the_others_finish(apache):
    assert request(apache.port, "GET", "/late/count").status == 200
    results = {}

    def client(name, path):
        results[name] = request(apache.port, "GET", path)

    threads = [threading.Thread(target=client, args=("never", "/late/never")),
               threading.Thread(target=client, args=("sleep", "/late/sleep?ms=1500"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["never"].status == 504, results
    # Its sibling ended before the deadline: the timeout is not its own.
    assert results["sleep"].status == 200, results
    # The instance that held the waiting call was retired: a fresh one now
    # (under prefork, the next connection may find another child's).
    with Connection(apache.port) as conn:
        served = counts(conn, "/late/count", 1)
    if apache.mpm != "prefork":
        assert served == [1], served


def cpu_seconds(pids):
    """User and system CPU time the processes have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def assert_no_guest_spins(apache):
    time.sleep(0.5)
    children = apache.children()
    spent = cpu_seconds(children)
    time.sleep(1)
    assert cpu_seconds(children) - spent < 0.5, "a guest is still spinning"


def test_a_task_left_spinning_after_its_response_is_stopped(apache):
    r = request(apache.port, "GET", "/many/spin-after")
    assert r.status == 200 and r.body == b"done\n", r
    # No request is held, yet the guest runs: it is stopped at the next
    # ticks, which breaks (and ends) its instance.
    assert_no_guest_spins(apache)
    assert request(apache.port, "GET", "/many/count").status == 200


@pytest.mark.allow_log("MW00020")
def test_a_guest_spinning_past_its_deadline_is_stopped(apache):
    r = request(apache.port, "GET", "/late/spin")
    assert r.status == 504, r
    # The spinning call outlived its request: it is stopped, and its
    # thread ends, rather than spinning on.
    assert_no_guest_spins(apache)
    assert request(apache.port, "GET", "/late/count").status == 200
