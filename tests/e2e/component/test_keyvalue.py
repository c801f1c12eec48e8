"""wasi:keyvalue and wasi:config through Apache: stores declared with
WasmKeyValueStore (a SQLite file, a real redis-server started here),
granted per section with WasmKeyValue, and variables set with
WasmConfigVar. The guest is tests/state-guest: one route per operation,
a store's failure a 500 whose body says why.

The server runs several children (event: 3 processes of 4 threads;
prefork: 6 processes), so that a counter is shared between processes, not
only between threads."""

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from apache import WASM_DIR, Apache, Site, assert_refused_at_its_line, running
from http1 import Connection, request
from redis_server import Redis

STATE = WASM_DIR / "state_test_guest.wasm"
# A WASI 0.3 component (tests/p3-guest) with a route that increments.
P3 = WASM_DIR / "p3_test_guest.wasm"

# Several children: a store shared between processes, not only threads.
CHILDREN = """
<IfModule mpm_event_module>
    ServerLimit 3
    StartServers 3
    MinSpareThreads 4
    MaxSpareThreads 12
    MaxRequestWorkers 12
</IfModule>
<IfModule mpm_prefork_module>
    StartServers 6
    MinSpareServers 6
    MaxSpareServers 6
    MaxRequestWorkers 6
</IfModule>
"""


# The tests send more requests at once than the server has workers, and
# Apache says so.
BUSY = ("AH00484", "AH00161", "AH10159")


def site_body(redis_url, dead_url):
    return CHILDREN + f"""
WasmKeyValueStore local sqlite:
WasmKeyValueStore shared {redis_url}
WasmKeyValueStore tiny sqlite: max-value=16 max-ops=3
WasmKeyValueStore down {dead_url} timeout=1
<Location /kv>
    SetHandler wasm-handler
    WasmComponent {STATE}
    WasmKeyValue local shared tiny down
    WasmConfigVar colour blue
    WasmConfigVar size small
</Location>
<Location /kv/nested>
    WasmConfigVar size large
</Location>
<Location /nostore>
    SetHandler wasm-handler
    WasmComponent {STATE}
</Location>
<Location /kv03>
    SetHandler wasm-handler
    WasmComponent {P3}
    WasmKeyValue local shared
    WasmConfigVar colour green
</Location>
<Location /kv03-shared>
    SetHandler wasm-handler
    WasmComponent {P3}
    WasmKeyValue local shared
    WasmConfigVar colour teal
    WasmInstanceReuse 100 concurrent=4
</Location>
<Location /wasm-status>
    SetHandler wasm-status
</Location>
"""


@pytest.fixture(scope="module")
def redis():
    server = Redis()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def dead_url():
    """A port nothing listens on."""
    from apache import free_port
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.fixture(scope="module")
def apache_site(redis, dead_url):
    return Site(site_body(redis.url, dead_url), "keyvalue", allow=BUSY)


@pytest.fixture(scope="module", params=["event", "prefork"])
def mpm(request):
    return request.param


def kv(apache, op, store, key="", body=None, **query):
    target = f"/kv/{op}?store={store}&key={key}" + "".join(
        f"&{name}={value}" for name, value in query.items())
    return request(apache.port, "POST" if body is not None else "GET", target, body=body)


def logged(apache, tag):
    """The last line with tag in the log since the test began."""
    return [line for line in apache.wait_for_log(tag) if tag in line][-1]


def unique(name):
    """A key no other test (or earlier run of the module) uses."""
    return f"{name}-{time.monotonic_ns()}"


@pytest.mark.parametrize("store", ["local", "shared"])
def test_a_counter_counts_every_one_of_2000_concurrent_requests(apache, store):
    key = unique("counter")

    def increment(_):
        return kv(apache, "incr", store, key).status

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(increment, range(2000)))
    assert statuses == [200] * 2000
    r = kv(apache, "get", store, key)
    assert (r.status, r.body) == (200, b"2000")
    assert len(apache.children()) > 1


@pytest.mark.parametrize("store", ["local", "shared"])
def test_values_are_set_read_listed_and_deleted(apache, store):
    key = unique("value")
    assert kv(apache, "get", store, key).status == 404
    assert kv(apache, "set", store, key, body=b"\x00binary\xff").status == 204
    r = kv(apache, "get", store, key)
    assert (r.status, r.body) == (200, b"\x00binary\xff")
    assert kv(apache, "exists", store, key).body == b"true"
    assert key.encode() in kv(apache, "keys", store).body.split(b"\n")
    assert kv(apache, "delete", store, key).status == 204
    assert kv(apache, "exists", store, key).body == b"false"
    assert kv(apache, "get", store, key).status == 404


@pytest.mark.parametrize("store", ["local", "shared"])
def test_compare_and_swap_loses_no_concurrent_update(apache, store):
    key = unique("append")
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: kv(apache, "append", store, key, body=b"x").status,
                                 range(100)))
    assert statuses == [200] * 100
    assert kv(apache, "get", store, key).body == b"x" * 100


@pytest.mark.parametrize("store", ["local", "shared"])
def test_batches_set_read_and_delete_many_keys(apache, store):
    a, b, c = unique("a"), unique("b"), unique("c")
    assert kv(apache, "set-many", store, body=f"{a}=1\n{b}=2\n".encode()).status == 204
    r = kv(apache, "get-many", store, keys=f"{a},{b},{c}")
    assert r.body == b"1\n2\n-\n"
    assert kv(apache, "delete-many", store, keys=f"{a},{b}").status == 204
    assert kv(apache, "get-many", store, keys=f"{a},{b}").body == b"-\n-\n"


@pytest.mark.allow_log("MW00050")
def test_an_increment_of_a_value_that_is_no_number_is_an_error(apache):
    key = unique("text")
    assert kv(apache, "set", "local", key, body=b"ten").status == 204
    r = kv(apache, "incr", "local", key)
    assert r.status == 500
    assert b"not a decimal integer" in r.body
    apache.wait_for_log("MW00050")


@pytest.mark.allow_log("MW00050")
def test_redis_keeps_the_same_rule_for_numbers(apache):
    key = unique("text")
    assert kv(apache, "set", "shared", key, body=b"ten").status == 204
    r = kv(apache, "incr", "shared", key)
    assert (r.status, b"not a decimal integer" in r.body) == (500, True)


def test_a_store_the_section_does_not_grant_is_access_denied(apache):
    r = request(apache.port, "GET", "/nostore/get?store=local&key=x")
    assert r.status == 500
    assert b"access denied" in r.body
    line = logged(apache, "MW00051")
    assert "'local'" in line and "does not grant" in line
    # A label declared nowhere looks the same to the guest.
    r = kv(apache, "get", "nowhere", "x")
    assert (r.status, b"access denied" in r.body) == (500, True)


@pytest.mark.allow_log("MW00050")
def test_a_value_over_max_value_is_refused_and_nothing_is_written(apache):
    key = unique("big")
    r = kv(apache, "set", "tiny", key, body=b"x" * 17)
    assert r.status == 500
    assert b"max-value of 16 bytes" in r.body
    line = logged(apache, "MW00050")
    assert "store 'tiny'" in line and "max-value" in line
    assert kv(apache, "set", "tiny", key, body=b"x" * 16).status == 204
    assert kv(apache, "get", "tiny", key).body == b"x" * 16


@pytest.mark.allow_log("MW00050")
def test_more_operations_than_max_ops_in_one_request_are_refused(apache):
    assert kv(apache, "many-ops", "tiny", "k", n=3).status == 200
    r = kv(apache, "many-ops", "tiny", "k", n=4)
    assert r.status == 500
    assert b"limit of 3 operations" in r.body
    # The limit is per request: the next one has its own.
    assert kv(apache, "many-ops", "tiny", "k", n=3).status == 200


@pytest.mark.allow_log("MW00050")
def test_a_backend_that_is_down_is_an_error_and_other_stores_go_on(apache):
    started = time.monotonic()
    r = kv(apache, "get", "down", "x")
    assert r.status == 500
    assert b"cannot connect" in r.body
    assert time.monotonic() - started < 5
    line = logged(apache, "MW00050")
    assert "store 'down'" in line and "cannot connect" in line
    assert kv(apache, "set", "local", unique("after"), body=b"ok").status == 204


@pytest.mark.parametrize("location, colour", [("/kv03", "green"), ("/kv03-shared", "teal")])
@pytest.mark.parametrize("store", ["local", "shared"])
def test_a_wasi_0_3_component_counts_and_reads_its_config_as_a_0_2_one_does(
        apache, store, location, colour):
    key = unique("counter03")

    def increment(_):
        r = request(apache.port, "GET", f"{location}/kv-incr?store={store}&key={key}&var=colour")
        return r.status, r.body.split()[-1]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(increment, range(300)))
    assert answers == [(200, colour.encode())] * 300
    r = kv(apache, "get", store, key)
    assert (r.status, r.body) == (200, b"300")


@pytest.mark.allow_log("MW00051")
def test_a_wasi_0_3_component_is_denied_a_store_its_section_does_not_grant(apache):
    r = request(apache.port, "GET", "/kv03/kv-incr?store=tiny&key=x&var=colour")
    assert (r.status, r.body) == (500, b"Error::AccessDenied\n")
    assert "store 'tiny'" in logged(apache, "MW00051")


def store_counters(apache, label):
    """The status page's counters of the store `label`, from ?auto."""
    lines = dict(line.split(": ", 1) for line in
                 request(apache.port, "GET", "/wasm-status?auto").body.decode().splitlines())
    n = next(key[len("Store"):] for key, value in lines.items()
             if key.startswith("Store") and key[len("Store"):].isdigit() and value == label)
    return {name: lines[f"Store{n}{name}"]
            for name in ("Backend", "Kind", "Operations", "Failed", "Refused", "LatencyP50Ms")}


@pytest.mark.allow_log("MW00050")
def test_the_status_page_counts_each_stores_operations_failures_and_refusals(apache):
    before = {label: store_counters(apache, label) for label in ("tiny", "down")}
    assert before["tiny"]["Kind"] == "sqlite" and before["tiny"]["Backend"].endswith("tiny.sqlite3")
    assert before["down"]["Kind"] == "redis"
    key = unique("counted")
    assert kv(apache, "set", "tiny", key, body=b"ok").status == 204
    assert kv(apache, "get", "tiny", key).status == 200
    assert kv(apache, "set", "tiny", key, body=b"x" * 17).status == 500
    assert kv(apache, "get", "down", key).status == 500
    after = {label: store_counters(apache, label) for label in ("tiny", "down")}

    def grew(label, name):
        return int(after[label][name]) - int(before[label][name])

    # Counted by whichever children served them, shown by any.
    assert [grew("tiny", name) for name in ("Operations", "Failed", "Refused")] == [3, 0, 1]
    assert [grew("down", name) for name in ("Operations", "Failed", "Refused")] == [1, 1, 0]
    assert float(after["tiny"]["LatencyP50Ms"]) > 0


def test_config_variables_are_the_sections_and_nested_ones_win(apache):
    assert request(apache.port, "GET", "/kv/config?name=colour").body == b"blue"
    assert request(apache.port, "GET", "/kv/config?name=size").body == b"small"
    assert request(apache.port, "GET", "/kv/nested/config?name=size").body == b"large"
    assert request(apache.port, "GET", "/kv/nested/config?name=colour").body == b"blue"
    assert request(apache.port, "GET", "/kv/config-all").body == b"colour=blue\nsize=small\n"
    r = request(apache.port, "GET", "/nostore/config?name=colour")
    assert r.status == 404


@pytest.mark.allow_log("MW00050")
def test_a_redis_restart_fails_requests_meanwhile_and_they_recover_after(apache, redis):
    key = unique("restart")
    assert kv(apache, "incr", "shared", key).body == b"1"
    redis.stop()
    try:
        down = [kv(apache, "incr", "shared", key).status for _ in range(4)]
        assert down == [500] * 4
    finally:
        redis.start()
    # Every child's kept connections died with the server: the first
    # operation of each child that used one within 250 ms may fail once
    # (requests here come one at a time), then the child connects anew.
    statuses = [kv(apache, "incr", "shared", key).status for _ in range(30)]
    assert statuses.count(500) <= len(apache.children()), statuses
    assert statuses[-1] == 200, statuses
    # The server was started empty (it persists nothing): what counts is
    # that each success counted once.
    assert kv(apache, "get", "shared", key).body == str(statuses.count(200)).encode()


def test_two_servers_sharing_one_redis_see_each_others_writes(apache, redis, dead_url):
    key = unique("shared")
    with running(site_body(redis.url, dead_url), apache.mpm, "keyvalue-second",
                 allow=BUSY) as second:
        assert kv(apache, "set", "shared", key, body=b"from the first").status == 204
        assert kv(second, "get", "shared", key).body == b"from the first"
        assert kv(second, "incr", "shared", key + "-n").status == 200
        assert kv(apache, "incr", "shared", key + "-n").body == b"2"
        # Their SQLite stores are their own (each ServerRoot's state dir).
        assert kv(apache, "set", "local", key, body=b"first only").status == 204
        assert kv(second, "get", "local", key).status == 404


@pytest.mark.allow_log("AH00052")
def test_a_child_killed_in_the_middle_of_batches_leaves_every_batch_whole(apache):
    """Each batch writes the same 200 keys with its own number: after
    children die mid-write, every key holds the number of one batch, the
    same one."""
    keys = [f"{unique('batch')}-{i}" for i in range(200)]
    stop = threading.Event()

    def writer(n):
        body = "".join(f"{key}={n}\n" for key in keys).encode()
        while not stop.is_set():
            try:
                kv(apache, "set-many", "local", body=body)
            except OSError:
                pass  # the child serving it was killed
            n += 1000

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(3):
            time.sleep(0.3)
            for pid in apache.children():
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    time.sleep(1)  # Apache replaces the children
    with Connection(apache.port) as conn:
        values = set()
        for start in range(0, 200, 50):
            r = conn.request("GET", "/kv/get-many?store=local&keys=" + ",".join(
                keys[start:start + 50]))
            assert r.status == 200, r
            values |= set(r.body.split())
    assert len(values) == 1, values


def vhost_site():
    return """
<VirtualHost 127.0.0.1:{port}>
    ServerName a.test
    WasmKeyValueStore app sqlite:{dir}/state/a.sqlite3
    <Location /kv>
        SetHandler wasm-handler
        WasmComponent %s
        WasmKeyValue app
    </Location>
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
    ServerName b.test
    WasmKeyValueStore app sqlite:{dir}/state/b.sqlite3
    <Location /kv>
        SetHandler wasm-handler
        WasmComponent %s
        WasmKeyValue app
    </Location>
</VirtualHost>
""" % (STATE, STATE)


def test_two_virtual_hosts_with_their_own_stores_do_not_see_each_other(apache):
    def on(server, host, op, body=None):
        return request(server.port, "POST" if body is not None else "GET",
                       f"/kv/{op}?store=app&key=k", body=body, authority=host)

    with running(vhost_site(), "event", "keyvalue-vhosts") as server:
        assert on(server, "a.test", "set", b"a's").status == 204
        assert on(server, "a.test", "get").body == b"a's"
        assert on(server, "b.test", "get").status == 404
        assert (server.dir / "state/a.sqlite3").exists()


def test_sqlite_state_survives_a_graceful_restart_and_a_full_restart(apache):
    body = """
WasmKeyValueStore local sqlite:
<Location /kv>
    SetHandler wasm-handler
    WasmComponent %s
    WasmKeyValue local
</Location>
""" % STATE
    server = Apache(body, name="keyvalue-restart")
    try:
        server.start()
        for _ in range(3):
            assert kv(server, "incr", "local", "n").status == 200
        server.process.send_signal(signal.SIGUSR1)
        server.wait_for_log("resuming normal operations")
        time.sleep(0.5)
        assert kv(server, "incr", "local", "n").body == b"4"
        server.stop()
        server.start()
        assert kv(server, "get", "local", "n").body == b"4"
        db = server.dir / "state/mod_wasm/local.sqlite3"
        assert db.exists()
    finally:
        server.cleanup()


# Configuration: refused at start-up with the file and line.
BAD = {
    "unknown-label": ("WasmKeyValue nope", "no store 'nope' is declared"),
    "bad-url": ("WasmKeyValueStore x mysql://db", "'mysql://db' is not a store URL"),
    "bad-label": ("WasmKeyValueStore a/b sqlite:", "'a/b' is not a store label"),
    "bad-option": ("WasmKeyValueStore x sqlite: colour=red", "'colour' is not an option"),
    "bad-size": ("WasmKeyValueStore x sqlite: max-value=lots", "'lots' is not a size"),
    "relative-file": ("WasmKeyValueStore x sqlite:x.db", "is not an absolute path"),
    "missing-ca": ("WasmKeyValueStore x rediss://127.0.0.1:1/0 ca=/nonexistent/ca.pem",
                   "cannot read the CA file /nonexistent/ca.pem"),
    "ca-without-tls": ("WasmKeyValueStore x redis://127.0.0.1:1/0 ca=/etc/hostname",
                       "ca= applies to a store on rediss://"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_store_directive_stops_start_up_at_its_line(case):
    directive, reason = BAD[case]
    assert_refused_at_its_line(directive + "\n", directive, [reason], f"kv-{case}")


def test_a_label_declared_twice_in_one_server_is_refused():
    body = "WasmKeyValueStore x sqlite:\nWasmKeyValueStore x sqlite:\n"
    server = Apache(body, name="kv-twice")
    try:
        code, output = server.configtest()
        assert code != 0
        assert "the store 'x' is already declared here" in output, output
    finally:
        server.cleanup()


def test_a_store_directory_others_can_write_is_refused_at_start_up(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    tmp_path.chmod(0o755)
    body = f"WasmKeyValueStore x sqlite:{shared}/x.sqlite3\n"
    server = Apache(body, name="kv-unsafe")
    try:
        code, output = server.configtest()
        assert code != 0
        assert "MW00052" in output and "WasmKeyValueStore x at" in output, output
        assert "writable by nobody else" in output, output
    finally:
        server.cleanup()
