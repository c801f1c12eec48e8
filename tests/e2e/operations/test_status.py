"""The status page (SetHandler wasm-status): per location requests, errors
by kind, instances in use, latency, compile and load time, memory; as HTML,
?auto and Prometheus text; counted across all child processes."""

import re
import signal
import threading
import time

import pytest

from apache import Apache, Site
from http1 import request

SITE = """
LogFormat "%P %U %s %{{wasm-error}}n %{{wasm-time-us}}n %{{wasm-instantiate-us}}n %{{wasm-memory-peak}}n" wasm
CustomLog {dir}/wasm.log wasm
<Location /t>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmTimeout 1
    WasmMemoryLimit 16M
</Location>
<Location /one>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmMaxInstances 1
</Location>
<Location /legacy>
    SetHandler wasm-handler
    WasmModule {legacy}
</Location>
<Location /wasm-status>
    SetHandler wasm-status
</Location>
"""


@pytest.fixture(scope="module")
def apache_site():
    return Site(SITE, "status")


@pytest.fixture(scope="module", params=["prefork", "event"])
def mpm(request):
    return request.param


def auto(apache):
    r = request(apache.port, "GET", "/wasm-status?auto")
    assert r.status == 200, r.status
    assert r.header("content-type").startswith(b"text/plain")
    fields = dict(line.split(": ", 1) for line in r.body.decode().splitlines())
    return fields


def location(fields, name):
    """The ?auto fields of one location, without their LocationN prefix."""
    keys = [k for k, v in fields.items() if re.fullmatch(r"Location\d+", k) and v == name]
    assert len(keys) == 1, (name, fields)
    prefix = keys[0]
    return {k[len(prefix):] or "Name": v for k, v in fields.items()
            if re.fullmatch(prefix + r"(\D.*)?", k)}


def test_requests_are_counted_across_child_processes(apache):
    before = int(location(auto(apache), "/t")["Requests"])
    # Separate connections, so that prefork's children share them out.
    for _ in range(30):
        assert request(apache.port, "GET", "/t/echo").status == 200
    after = location(auto(apache), "/t")
    assert int(after["Requests"]) - before == 30, after
    assert after["Kind"] == "component" and after["File"].endswith("test_guest.wasm")
    if apache.mpm == "prefork":
        pids = {line.split()[0] for line in (apache.dir / "wasm.log").read_text().splitlines()
                if " /t/echo " in line}
        assert len(pids) >= 2, "one child served them all: the test shows nothing"


@pytest.mark.allow_log("MW00012", "MW00015", "MW00020")
def test_errors_are_counted_by_kind(apache):
    start = location(auto(apache), "/t")
    cases = [("/t/trap", 500, "Trap"), ("/t/spin", 504, "Timeout"),
             ("/t/alloc?mib=64", 500, "Limit"), ("/t/noresponse", 500, "Guest")]
    for target, status, _ in cases:
        assert request(apache.port, "GET", target).status == status, target
    end = location(auto(apache), "/t")
    for _, _, kind in cases:
        assert int(end["Errors" + kind]) - int(start["Errors" + kind]) == 1, (kind, end)
    assert int(end["ErrorsHost"]) == int(start["ErrorsHost"])
    assert int(end["Requests"]) - int(start["Requests"]) == 4


@pytest.mark.allow_log("MW00021")
def test_a_refused_request_counts_as_a_limit(apache):
    held = {}
    slow = threading.Thread(
        target=lambda: held.update(r=request(apache.port, "GET", "/one/sleep?ms=3000")))
    slow.start()
    try:
        # In use from the start of serving; its memory from instantiation on.
        deadline = time.monotonic() + 10
        while True:
            in_flight = location(auto(apache), "/one")
            if in_flight["InUse"] == "1" and int(in_flight["MemoryBytes"]) > 0:
                break
            assert time.monotonic() < deadline, ("not seen in use with memory", in_flight)
            time.sleep(0.05)
        if apache.mpm == "event":  # prefork: each child has its own cap
            assert request(apache.port, "GET", "/one/echo").status == 503
    finally:
        slow.join()
    assert held["r"].status == 200
    done = location(auto(apache), "/one")
    assert done["InUse"] == "0" and done["MemoryBytes"] == "0", done
    assert int(done["PeakMemoryBytes"]) > 0
    if apache.mpm == "event":
        assert done["ErrorsLimit"] == "1", done


def test_latency_compile_and_load_times_are_shown(apache):
    request(apache.port, "GET", "/t/sleep?ms=200")
    fields = location(auto(apache), "/t")
    assert float(fields["CompileMs"]) > 0 and float(fields["LoadMs"]) > 0, fields
    p50, p99 = float(fields["LatencyP50Ms"]), float(fields["LatencyP99Ms"])
    assert 0 < p50 <= p99, fields
    # The 200 ms request (and the 1 s timeout) are among the slowest 1 %.
    assert p99 >= 140, fields


def test_legacy_modules_are_counted_too(apache):
    before = int(location(auto(apache), "/legacy")["Requests"])
    assert request(apache.port, "GET", "/legacy").status == 200
    fields = location(auto(apache), "/legacy")
    assert fields["Kind"] == "module"
    assert int(fields["Requests"]) == before + 1


def test_prometheus_text_is_well_formed_and_agrees_with_auto(apache):
    request(apache.port, "GET", "/t/echo")
    r = request(apache.port, "GET", "/wasm-status?prometheus")
    assert r.status == 200
    assert r.header("content-type").startswith(b"text/plain; version=0.0.4")
    sample = re.compile(r'[a-z_]+\{([a-z]+="(\\.|[^"\\])*",?)*\} [0-9.e+-]+|[a-z_]+ [0-9.e+-]+')
    text = r.body.decode()
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or \
            sample.fullmatch(line), line
    fields = location(auto(apache), "/t")
    labels = f'location="/t",file="{fields["File"]}",kind="component"'
    requests = int(re.search(rf"mod_wasm_requests_total\{{{re.escape(labels)}\}} (\d+)",
                             text).group(1))
    count = int(re.search(
        rf"mod_wasm_request_duration_seconds_count\{{{re.escape(labels)}\}} (\d+)",
        text).group(1))
    # Between the two fetches nothing else ran against /t.
    assert requests == int(fields["Requests"]) == count
    buckets = [int(v) for v in re.findall(
        rf'mod_wasm_request_duration_seconds_bucket\{{{re.escape(labels)},le="[^"]+"\}} (\d+)',
        text)]
    assert buckets == sorted(buckets) and buckets[-1] == count


def test_html_for_people(apache):
    r = request(apache.port, "GET", "/wasm-status")
    assert r.status == 200 and r.header("content-type").startswith(b"text/html")
    body = r.body.decode()
    assert "<h1>mod_wasm status</h1>" in body
    for name in ("/t", "/one", "/legacy"):
        assert f'<td class="name">{name}</td>' in body
    assert r.header("cache-control") == b"no-store"
    assert request(apache.port, "POST", "/wasm-status", body=b"x").status == 405


@pytest.mark.allow_log("MW00012")
def test_notes_for_logformat(apache):
    request(apache.port, "GET", "/t/echo?note")
    request(apache.port, "GET", "/t/trap")
    deadline = time.monotonic() + 5
    while True:
        lines = (apache.dir / "wasm.log").read_text().splitlines()
        echo = [l for l in lines if " /t/echo " in l]
        trap = [l for l in lines if " /t/trap " in l]
        if echo and trap:
            break
        assert time.monotonic() < deadline, lines
        time.sleep(0.05)
    _, _, status, error, total, instantiate, peak = echo[-1].split()
    assert status == "200" and error == "-"
    assert int(total) >= int(instantiate) > 0 and int(peak) > 0
    assert trap[-1].split()[3] == "trap"


def test_counters_survive_a_graceful_restart():
    server = Apache(SITE, name="status-graceful")
    try:
        server.start()
        for _ in range(3):
            request(server.port, "GET", "/t/echo")
        before = int(location(auto(server), "/t")["Requests"])
        assert before == 3
        old = server.children()
        server.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while set(server.children()) & set(old) or not server.children():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        request(server.port, "GET", "/t/echo")
        assert int(location(auto(server), "/t")["Requests"]) == before + 1
        assert not server.unexpected_errors(server.new_log())
    finally:
        server.cleanup()
