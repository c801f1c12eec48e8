"""Component mode end to end: a real Apache, the built mod_wasm.so, HTTP on
loopback. Every test runs under each MPM (see apache.MPMS)."""

import hashlib
import threading
import time

import pytest

from apache import PeakRssGrowth
from echo import parse_echo
from http1 import Connection, request
from streaming import assert_1_gib_streams_with_bounded_memory, pattern_upload

MIB = 1 << 20


def test_hello_example_answers(apache):
    r = request(apache.port, "GET", "/hello/world?x=1")
    assert r.status == 200
    assert r.header("content-type") == b"text/plain; charset=utf-8"
    # The example prints the path (the query is the test guest's business).
    assert r.body == b"Hello from WebAssembly! You asked for /hello/world\n"


@pytest.mark.parametrize("code", [201, 202, 404, 418, 451, 503])
def test_status_codes_pass_through(apache, code):
    r = request(apache.port, "GET", f"/t/status?code={code}")
    assert r.status == code
    assert r.body == f"status {code}\n".encode()


def test_no_content_has_no_body(apache):
    with Connection(apache.port) as conn:
        r = conn.request("GET", "/t/status?code=204")
        assert r.status == 204 and r.body == b""
        # The connection is still in step: nothing stray was sent.
        assert conn.request("GET", "/t/status?code=200").status == 200


def test_request_as_the_guest_sees_it(apache):
    headers = [
        ("X-Plain", "value"),
        ("X-Bytes", b"caf\xe9 \xff"),
        ("X-Spaces", "a  b\tc"),
        ("Accept", "text/plain"),
    ]
    target = "/t/sub/echo?b=2&a=%20x&a=y"
    r = request(apache.port, "PURGE", target, headers=headers, authority="example.test:8080")
    assert r.status == 200
    facts, seen = parse_echo(r.body)
    assert facts["method"] == "PURGE"
    assert facts["scheme"] == "http"
    assert facts["authority"] == "example.test:8080"
    assert facts["target"] == target
    expected = [(n.lower(), v if isinstance(v, bytes) else v.encode()) for n, v in headers]
    # In the order sent; Host travels as the authority, not as a header.
    assert [h for h in seen if h[0] in dict(expected)] == expected
    assert "host" not in dict(seen)


def test_http_1_0_without_host_gets_the_server_name(apache):
    # The default virtual host answers; its name and port are what Apache
    # itself uses for self-referential URLs (ServerName a.test, no port: 80).
    r = request(apache.port, "GET", "/t/echo", authority=None, version="HTTP/1.0")
    facts, _ = parse_echo(r.body)
    assert facts["authority"] == "a.test:80"


def test_absolute_form_target_gives_path_and_authority(apache):
    r = request(apache.port, "GET", "http://b.test/w/echo?q=1", authority="ignored.test")
    assert r.status == 200
    facts, _ = parse_echo(r.body)
    assert facts["target"] == "/w/echo?q=1"
    assert facts["authority"] == "b.test"


def test_concurrent_requests_each_get_their_own_instance(apache):
    # More requests at once than the MPM has threads (4): they queue, and
    # each answer must still be its own request's.
    results = {}

    def one(i):
        r = request(apache.port, "GET", f"/t/echo?i={i}", headers=[("X-Index", str(i))])
        _, seen = parse_echo(r.body)
        results[i] = (r.status, dict(seen).get("x-index"), b"i=%d" % i in r.body)

    slow = threading.Thread(target=lambda: results.setdefault(
        "slow", request(apache.port, "GET", "/t/slow").body))
    slow.start()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads + [slow]:
        t.join()
    assert results.pop("slow") == b"first\nlast\n"
    assert results == {i: (200, str(i).encode(), True) for i in range(12)}


def test_repeated_request_headers_arrive_joined(apache):
    # Apache itself folds repeated request header lines into one
    # comma-separated value (RFC 9110 5.3) before any module sees them.
    r = request(apache.port, "GET", "/t/echo", headers=[("X-Rep", "1"), ("X-Rep", "2")])
    _, seen = parse_echo(r.body)
    assert [v for n, v in seen if n == "x-rep"] == [b"1, 2"]


def test_response_headers_multi_valued_and_byte_exact(apache):
    r = request(apache.port, "GET", "/t/headers", headers=[("X-Reflect", b"\xfe\x80ok")])
    assert r.status == 200
    assert r.header("content-type") == b"text/x-test"
    assert r.all("x-multi") == [b"one", b"two"]
    assert r.all("set-cookie") == [b"a=1; Path=/", b"b=2; Path=/"]
    assert r.header("x-bytes") == b"caf\xe9 \xff!"
    assert r.header("x-reflected") == b"\xfe\x80ok"


def test_head_runs_the_guest_and_sends_no_body(apache):
    with Connection(apache.port) as conn:
        r = conn.request("HEAD", "/t/headers")
        assert r.status == 200
        assert r.all("x-multi") == [b"one", b"two"]
        # The headers GET would have: no invented Content-Length: 0.
        assert r.header("content-length") != b"0"
        # Had a body been sent, it would be read as the next response.
        again = conn.request("GET", "/t/status?code=201")
        assert again.status == 201


def test_guest_content_length_is_honoured(apache):
    with Connection(apache.port) as conn:
        r = conn.request("GET", "/t/sized")
        assert r.body == b"hello sized"
        assert r.header("content-length") == b"11"
        assert r.header("transfer-encoding") is None
        head = conn.request("HEAD", "/t/sized")
        assert head.status == 200 and head.header("content-length") == b"11"


def test_two_locations_two_components(apache):
    assert request(apache.port, "GET", "/hello").body.startswith(b"Hello from WebAssembly!")
    assert request(apache.port, "GET", "/t/x").body == b"test guest: /t/x\n"
    assert request(apache.port, "GET", "/again/y").body == b"test guest: /again/y\n"


def test_nested_location_inherits_and_overrides(apache):
    inherited = request(apache.port, "GET", "/t/limited/echo")
    assert inherited.status == 200 and b"target /t/limited/echo" in inherited.body
    overridden = request(apache.port, "GET", "/t/override")
    assert overridden.body.startswith(b"Hello from WebAssembly!")


@pytest.mark.allow_log("MW00004")
def test_virtual_hosts_are_isolated(apache):
    a = request(apache.port, "GET", "/v", authority="a.test")
    assert a.body.startswith(b"Hello from WebAssembly!")
    # b.test has a /v of its own without a component: a.test's is not seen.
    b = request(apache.port, "GET", "/v", authority="b.test")
    assert b.status == 500
    # ...and b.test's /w does not exist in a.test.
    assert request(apache.port, "GET", "/w/echo", authority="b.test").status == 200
    assert request(apache.port, "GET", "/w/echo", authority="a.test").status == 404


@pytest.mark.allow_log("MW00004")
def test_handler_without_component_is_500(apache):
    assert request(apache.port, "GET", "/unconfigured").status == 500


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_64_mib_upload_echoed_byte_exact(apache, chunked):
    pieces, expected = pattern_upload(64 * MIB, 256 * 1024)
    body = iter(pieces) if chunked else b"".join(pieces)
    digest = hashlib.sha256()
    total = [0]

    def take(data):
        digest.update(data)
        total[0] += len(data)

    with PeakRssGrowth(apache) as growth:
        r = request(apache.port, "POST", "/t/upload", body=body, on_chunk=take)
    assert r.status == 200 and r.complete
    assert total[0] == 64 * MIB
    assert digest.hexdigest() == expected
    print(f"peak child RSS growth while echoing 64 MiB: {growth.mib:.1f} MiB")
    assert growth.mib < 32, f"a child grew by {growth.mib:.1f} MiB"


# The test guest panics when its body read fails: its message is logged.
@pytest.mark.allow_log("MW00015")
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_limit_request_body_is_413(apache, chunked):
    pieces, _ = pattern_upload(4096, 1024)
    body = iter(pieces) if chunked else b"".join(pieces)
    r = request(apache.port, "POST", "/t/limited/upload", body=body)
    assert r.status == 413
    panic = [line for line in apache.new_log() if "MW00015" in line and "panicked" in line]
    # The request's path, and where its component was configured.
    assert panic and "for /t/limited/upload (WasmComponent " in panic[0], panic
    assert "test_guest.wasm in <Location /t> at " in panic[0], panic


@pytest.mark.allow_log("MW00014", "MW00015")
def test_limit_tripping_after_the_echo_began_cuts_the_response(apache):
    pieces, _ = pattern_upload(1 * MIB, 16 * 1024)
    sent = b"".join(pieces)
    received = bytearray()
    echo_began = threading.Event()
    began_before_the_limit = []

    def paced():
        # 80 KiB, under the limit of 100,000 bytes; the rest only once the
        # echo of those has begun to come back.
        for i, piece in enumerate(pieces):
            if i == 5:
                began_before_the_limit.append(echo_began.wait(10))
            yield piece

    def take(data):
        received.extend(data)
        echo_began.set()

    r = request(apache.port, "POST", "/t/limited100k/upload", body=paced(), on_chunk=take)
    assert began_before_the_limit == [True], "no echo came back before the limit"
    # The response began, so the limit must cut it: never a complete 200.
    assert r.status == 200 and not r.complete, (r.status, r.complete)
    assert 0 < len(received) < len(sent)
    assert bytes(received) == sent[:len(received)]


@pytest.mark.allow_log("MW00014")
def test_guest_returning_without_finishing_its_body_is_cut(apache):
    r = request(apache.port, "GET", "/t/unfinished")
    assert r.status == 200 and r.body.startswith(b"partial")
    assert not r.complete
    assert "without finishing its response body" in "\n".join(apache.new_log())


@pytest.mark.allow_log("MW00014", "AH01328")
def test_output_filter_failing_mid_response_cuts_it(apache):
    r = request(apache.port, "GET", "/t/substituted/longline")
    assert r.status == 200 and r.body.startswith(b"begin\n")
    assert not r.complete


def test_1_gib_response_streams_with_bounded_memory(apache):
    assert_1_gib_streams_with_bounded_memory(apache, "/t/big?mib=1024")


def test_first_bytes_arrive_before_the_guest_finishes(apache):
    start = time.monotonic()
    r = request(apache.port, "GET", "/t/slow", keep_chunks=True)
    assert r.status == 200 and r.body == b"first\nlast\n"
    first = r.chunks[0]
    assert first[1].startswith(b"first")
    # The guest pauses one second between the two writes.
    assert r.last_byte_at - r.first_byte_at > 0.5
    assert first[0] - start < r.last_byte_at - start - 0.5


@pytest.mark.allow_log("MW00012")
@pytest.mark.parametrize("op", ["trap", "oob"])
def test_trap_is_500_and_the_child_lives_on(apache, op):
    children = apache.children()
    with Connection(apache.port) as conn:
        r = conn.request("GET", f"/t/{op}")
        assert r.status == 500
        assert b"trap" not in r.body  # no internals for the client
    for _ in range(8):
        assert request(apache.port, "GET", "/t/echo").status == 200
    assert not apache.lost_children(children)
    log = "\n".join(apache.new_log())
    assert f"MW00012: the guest failed for /t/{op} (WasmComponent " in log, log
    assert f"test_guest.wasm in <Location /t> at {apache.conf}:" in log, log


@pytest.mark.allow_log("MW00012")
def test_sdk_turns_an_invalid_head_into_a_500_without_a_trap(apache):
    r = request(apache.port, "GET", "/t/bad-header")
    assert r.status == 500
    log = "\n".join(apache.new_log())
    assert "the guest set an error instead of a response" in log, log
    assert "invalid header" in log and "bad name" in log, log
    assert "wasm trap" not in log


@pytest.mark.allow_log("MW00012")
def test_guest_that_never_responds_is_500(apache):
    r = request(apache.port, "GET", "/t/noresponse")
    assert r.status == 500
    assert request(apache.port, "GET", "/t/echo").status == 200


@pytest.mark.allow_log("MW00014")
@pytest.mark.parametrize("op", ["trap-after-head", "length-lie"])
def test_failure_after_head_cuts_the_response(apache, op):
    with Connection(apache.port) as conn:
        r = conn.request("GET", f"/t/{op}")
        assert r.status == 200
        assert not r.complete, "a failed response must not look complete"
    assert request(apache.port, "GET", "/t/echo").status == 200
