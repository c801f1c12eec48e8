"""guest-sdk through Apache: a component built with it (tests/sdk-guest)
turns handler errors into 500s without trapping, streams bodies both ways,
sends outgoing requests side by side, and reports an async handler that
would wait forever."""

import hashlib
import re
import threading
import time

import pytest

from apache import WASM_DIR, Site
from http1 import Connection, request
from streaming import assert_1_gib_streams_with_bounded_memory

# {hello} and {port} are Apache.config_text's to fill in.
SITE = """
<Location /hello>
    SetHandler wasm-handler
    WasmComponent {hello}
</Location>
<Location /sdk>
    SetHandler wasm-handler
    WasmComponent SDK_GUEST
    WasmAllowOutgoing http://127.0.0.1:{port}
    LimitRequestBody 0
</Location>
<Location /sdk/quiet>
    LogLevel wasm:warn
</Location>
""".replace("SDK_GUEST", str(WASM_DIR / "sdk_test_guest.wasm"))


@pytest.fixture(scope="module")
def apache_site():
    return Site(SITE, "sdk")


@pytest.fixture(scope="module")
def mpm():
    return "event"


@pytest.mark.allow_log("MW00015")
def test_a_handler_error_is_a_500_with_its_text_in_the_log_only(apache):
    r = request(apache.port, "GET", "/sdk/error")
    assert r.status == 500 and r.complete
    assert b"secret" not in r.body
    lines = apache.wait_for_log("handler error: secret detail")
    assert any("MW00015" in line and "handler error: secret detail" in line
               for line in lines), lines


def test_a_body_that_is_not_the_json_asked_for_is_a_400_not_logged(apache):
    r = request(apache.port, "POST", "/sdk/json-sum", body=b'{"a": 2, "b": 40}')
    assert (r.status, r.body) == (200, b"42")
    r = request(apache.port, "POST", "/sdk/json-sum", body=b'{"a": 2,')
    assert r.status == 400, r
    assert r.body.startswith(b"the request body is not the JSON expected: "), r.body
    # The client's mistake: nothing in the error log (the autouse check
    # would fail on an error line; a guest stderr line would be MW00015).
    assert not [line for line in apache.new_log() if "MW00015" in line]


@pytest.mark.allow_log("MW00015")
def test_a_head_the_host_refuses_is_a_500(apache):
    r = request(apache.port, "GET", "/sdk/bad-header")
    assert r.status == 500 and r.complete
    assert r.body == b"Internal Server Error\n"
    apache.wait_for_log("the response head was refused")
    assert any('the response head was refused: invalid header "connection' in line
               for line in apache.new_log())


def test_chunks_from_an_iterator(apache):
    r = request(apache.port, "GET", "/sdk/chunks?n=4")
    assert r.status == 200 and r.complete
    assert r.body == b"0\n1\n2\n3\n"


@pytest.mark.allow_log("MW00014", "MW00015")
def test_a_body_that_fails_half_way_is_cut_not_completed(apache):
    r = request(apache.port, "GET", "/sdk/broken")
    assert r.status == 200
    assert not r.complete
    assert r.body == b"partial\n"
    apache.wait_for_log("the source broke")
    assert any("the response body failed: body: the source broke" in line
               for line in apache.new_log())


def test_a_1_gib_writer_body_streams_with_bounded_memory(apache):
    assert_1_gib_streams_with_bounded_memory(apache, "/sdk/big?mib=1024")


def test_an_upload_is_echoed_as_it_streams(apache):
    piece = bytes(range(256)) * 4096
    sent, got = hashlib.sha256(), hashlib.sha256()
    echo_began = threading.Event()
    began_before_the_end = []

    def pieces():
        for i in range(64):
            if i == 63:
                # Streamed, the echo of the first pieces is back before the
                # last one leaves; buffered, it would never come.
                began_before_the_end.append(echo_began.wait(10))
            sent.update(piece)
            yield piece

    def take(data):
        got.update(data)
        echo_began.set()

    r = request(apache.port, "POST", "/sdk/echo", body=pieces(), on_chunk=take)
    assert r.status == 200 and r.complete
    assert began_before_the_end == [True]
    assert got.hexdigest() == sent.hexdigest()


def test_a_body_the_handler_never_reads_leaves_the_connection_usable(apache):
    # guest-sdk opens a request's body on its first read only; one never
    # read is left to the host, and Apache discards it after the response.
    with Connection(apache.port) as conn:
        for body in (b"x" * 300_000, iter([b"y" * 65536] * 4)):
            r = conn.request("POST", "/sdk/ignore-body", body=body)
            assert (r.status, r.body) == (200, b"not read\n")
        r = conn.request("POST", "/sdk/echo", body=b"still in step")
        assert (r.status, r.body) == (200, b"still in step")


def async_size(apache, pieces):
    """POSTs pieces to /sdk/async-size: (bytes, chunks) as the guest
    counted them."""
    r = request(apache.port, "POST", "/sdk/async-size", body=pieces)
    assert r.status == 200, r.body
    found = re.fullmatch(r"(\d+) bytes in (\d+) chunks\n", r.body.decode())
    assert found, r.body
    return int(found.group(1)), int(found.group(2))


def test_async_reads_the_body_chunk_by_chunk(apache):
    # guest-sdk reads at most 64 KiB at a time: 1 MiB is 16 chunks or more.
    size, chunks = async_size(apache, iter([b"x" * 65536] * 16))
    assert size == 16 * 65536
    assert 16 <= chunks <= size, chunks

    # Five pieces, the next one sent only a while after the last: a guest
    # that reads as the body arrives counts each of them at least once; one
    # that waited for the whole body would see fewer.
    def paced():
        for i in range(5):
            if i:
                time.sleep(0.3)
            yield b"y" * 1000

    size, chunks = async_size(apache, paced())
    assert size == 5000
    assert 5 <= chunks <= size, chunks


def test_an_outgoing_request_with_the_same_types(apache):
    # The guest sends to the authority it was asked at.
    r = request(apache.port, "GET", "/sdk/fetch", authority=f"127.0.0.1:{apache.port}")
    assert r.status == 200
    assert r.body == b"Hello from WebAssembly! You asked for /hello/fetched\n"


def test_two_outgoing_requests_at_once(apache):
    start = time.monotonic()
    r = request(apache.port, "GET", "/sdk/fan-out", authority=f"127.0.0.1:{apache.port}")
    took = time.monotonic() - start
    assert r.status == 200
    assert r.body == b"slept 1000 ms\nslept 1001 ms\n"
    # Each upstream answer takes a second: one after the other would be two.
    assert took < 1.8, f"{took:.2f} s"


# The request and its three outgoing requests to this same server take all
# four workers at once, which Apache reports as reaching MaxRequestWorkers.
@pytest.mark.allow_log("AH00484")
def test_futures_unordered_keeps_its_waits(apache):
    r = request(apache.port, "GET", "/sdk/unordered", authority=f"127.0.0.1:{apache.port}")
    assert r.status == 200
    # In the order they finish: the shortest sleep first.
    assert r.body == b"slept 100 ms\nslept 200 ms\nslept 300 ms\n"


def test_head_has_the_length_get_has(apache):
    with Connection(apache.port) as conn:
        get = conn.request("GET", "/hello/x")
        head = conn.request("HEAD", "/hello/x")
        assert get.status == head.status == 200
        assert head.header("content-length") == str(len(get.body)).encode()
        # Had a body followed the head, it would be read as the next
        # response on this connection.
        again = conn.request("GET", "/hello/y")
        assert again.status == 200
        assert again.body == b"Hello from WebAssembly! You asked for /hello/y\n"


@pytest.mark.allow_log("MW00028")  # the marker line, at error
@pytest.mark.parametrize("location, shown", [("/sdk", ["notice", "info"]),
                                             ("/sdk/quiet", ["notice"])])
def test_log_level_decides_what_a_guest_line_reaches(apache, location, shown):
    answers = {}
    for level in ("notice", "info"):
        text = f"line-at-{level}-in-{location}"
        r = request(apache.port, "GET", f"{location}/log?level={level}&text={text}")
        answers[level] = r.body.decode().strip()
    request(apache.port, "GET", "/sdk/log?level=error&text=marker-after")
    lines = apache.wait_for_log("marker-after")
    for level in ("notice", "info"):
        logged = [line for line in lines if f"line-at-{level}-in-{location}" in line]
        if level in shown:
            assert len(logged) == 1 and f"[wasm:{level}]" in logged[0], lines
            assert answers[level] == "enabled"
        else:
            assert not logged, logged
            assert answers[level] == "disabled"


@pytest.mark.allow_log("MW00015")
def test_an_async_handler_nothing_can_wake_is_a_500_not_a_hang(apache):
    r = request(apache.port, "GET", "/sdk/stalled")
    assert r.status == 500 and r.complete
    apache.wait_for_log("nothing can wake it")
    assert any("nothing can wake it" in line for line in apache.new_log())
