"""Legacy mode with WasmEnableCGI On: the CGI environment, the request body
streamed to stdin, and CGI headers read by httpd's own parser (Status,
Location, conditional requests, malformed output). Every test runs under
each MPM."""

import hashlib

import pytest

from apache import PeakRssGrowth
from http1 import Connection, request
from streaming import pattern_upload

MIB = 1 << 20


def cgi_env(body):
    return dict(line.split("=", 1) for line in body.decode().splitlines() if "=" in line)


def test_the_module_gets_the_cgi_variables(apache):
    r = request(apache.port, "POST", "/cgi/extra/path?mode=cgi-env&x=1",
                headers=[("X-Custom", "custom value"), ("Content-Type", "text/x-test")],
                body=b"0123456789")
    assert r.status == 200
    assert r.header("content-type") == b"text/plain"
    env = cgi_env(r.body)
    assert env["REQUEST_METHOD"] == "POST"
    assert env["QUERY_STRING"] == "mode=cgi-env&x=1"
    assert env["HTTP_X_CUSTOM"] == "custom value"
    assert env["CONTENT_TYPE"] == "text/x-test"
    assert env["CONTENT_LENGTH"] == "10"
    assert env["SCRIPT_NAME"] == "/cgi"
    assert env["PATH_INFO"] == "/extra/path"
    assert env["REQUEST_URI"] == "/cgi/extra/path?mode=cgi-env&x=1"
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"
    # WasmEnv adds to them; Apache's own PATH is not the guest's business.
    assert env["FROM_WASMENV"] == "yes"
    assert "PATH" not in env


def test_the_request_body_is_stdin(apache):
    r = request(apache.port, "POST", "/cgi?mode=echo", body=b"hello body")
    assert r.status == 200
    assert r.body == b"hello body"


def test_a_64_mib_chunked_upload_streams_through_stdin_and_back(apache):
    # The original refused chunked uploads (and still answered 200); it also
    # held the whole body, and the whole response, in memory.
    pieces, expected = pattern_upload(64 * MIB, 64 * 1024)
    digest = hashlib.sha256()
    total = [0]

    def take(data):
        digest.update(data)
        total[0] += len(data)

    with PeakRssGrowth(apache) as growth:
        r = request(apache.port, "POST", "/cgi/big-upload?mode=echo", body=iter(pieces),
                    on_chunk=take)
    assert r.status == 200 and r.complete
    assert total[0] == 64 * MIB
    assert digest.hexdigest() == expected
    print(f"peak child RSS growth while echoing 64 MiB through stdin and stdout: "
          f"{growth.mib:.1f} MiB")
    assert growth.mib < 32, f"a child grew by {growth.mib:.1f} MiB"


def test_status_sets_the_response_status_and_headers_pass(apache):
    r = request(apache.port, "GET", "/cgi?mode=status&code=404")
    assert r.status == 404
    assert r.header("x-guest") == b"yes"
    assert r.header("content-type") == b"text/plain"
    assert r.body == b"status body\n"


def test_a_local_location_is_an_internal_redirect(apache):
    r = request(apache.port, "POST", "/cgi?mode=location&to=/target", body=b"dropped")
    assert r.status == 200
    assert r.header("location") is None
    # /target runs the module in plain mode with WasmArg hello.
    assert r.body == b"hello from a legacy module\n"


def test_an_absolute_location_is_a_302_without_the_module_body(apache):
    r = request(apache.port, "GET", "/cgi?mode=location&to=http://example.test/x")
    assert r.status == 302
    assert r.header("location") == b"http://example.test/x"
    assert b"this body is dropped" not in r.body


def test_last_modified_answers_304_to_a_newer_if_modified_since(apache):
    r = request(apache.port, "GET", "/cgi?mode=lastmod")
    assert r.status == 200 and r.body == b"modified body\n"
    r = request(apache.port, "GET", "/cgi?mode=lastmod",
                headers=[("If-Modified-Since", "Tue, 02 Jan 2024 00:00:00 GMT")])
    assert r.status == 304
    assert r.body == b""
    r = request(apache.port, "GET", "/cgi?mode=lastmod",
                headers=[("If-Modified-Since", "Sun, 31 Dec 2023 00:00:00 GMT")])
    assert r.status == 200 and r.body == b"modified body\n"


@pytest.mark.allow_log("MW00022", "malformed header from script", "Premature end of script")
@pytest.mark.parametrize("mode, reason", [
    ("malformed", "malformed header from script"),
    ("noheaders", "Premature end of script headers"),
])
def test_malformed_cgi_output_is_a_502_with_a_log_line(apache, mode, reason):
    children = apache.children()
    r = request(apache.port, "GET", f"/cgi?mode={mode}")
    assert r.status == 502
    # The parser's reason is for the log, not the client.
    assert reason.encode() not in r.body and b"Bad header" not in r.body
    lines = apache.wait_for_log("MW00022")
    assert any(reason in line for line in lines), lines
    assert not apache.lost_children(children)
    assert request(apache.port, "GET", "/cgi?mode=status&code=200").status == 200


@pytest.mark.allow_log("MW00025")
def test_headers_without_end_are_a_502(apache):
    r = request(apache.port, "GET", "/cgi?mode=longhead")
    assert r.status == 502
    apache.wait_for_log("MW00025")


def test_head_parses_the_headers_and_sends_no_body(apache):
    with Connection(apache.port) as conn:
        r = conn.request("HEAD", "/cgi?mode=status&code=201")
        assert r.status == 201
        assert r.header("x-guest") == b"yes"
        # The headers GET would have: no invented Content-Length: 0.
        assert r.header("content-length") != b"0"
        # Had a body been sent, it would be read as the next response.
        again = conn.request("GET", "/cgi?mode=status&code=202")
        assert again.status == 202 and again.body == b"status body\n"


@pytest.mark.allow_log("MW00014")
def test_a_trap_after_output_cuts_the_response(apache):
    children = apache.children()
    r = request(apache.port, "GET", "/cgi?mode=trap-after")
    assert r.status == 200
    assert not r.complete
    apache.wait_for_log("MW00014")
    assert not apache.lost_children(children)


def test_wasmmapcgifilenames_shows_script_filename_as_the_module_sees_it(apache):
    r = request(apache.port, "GET", "/mapped/index.php?mode=cgi-env")
    assert r.status == 200
    env = cgi_env(r.body)
    assert env["SCRIPT_FILENAME"] == "/app/index.php"


def test_without_wasmmapcgifilenames_script_filename_is_the_host_path(apache):
    r = request(apache.port, "GET", "/cgi?mode=cgi-env")
    env = cgi_env(r.body)
    assert env["SCRIPT_FILENAME"].startswith(str(apache.dir))


@pytest.mark.allow_log("MW00022", "malformed header from script")
def test_malformed_output_leaks_nothing(apache):
    # The original leaked about 3.6 KB per request here: 2,000 requests
    # would have grown a child by 7 MiB.
    def malformed(count):
        # Apache closes a connection after 100 requests (MaxKeepAliveRequests).
        for _ in range(count // 50):
            with Connection(apache.port) as conn:
                for _ in range(50):
                    r = conn.request("GET", "/cgi?mode=malformed")
                    assert r.status == 502

    malformed(300)  # warm-up: pools, runtime, stacks
    with PeakRssGrowth(apache) as growth:
        malformed(2000)
    print(f"child RSS growth over 2,000 malformed CGI responses: {growth.mib:.2f} MiB")
    assert growth.mib < 3, f"a child grew by {growth.mib:.2f} MiB"
