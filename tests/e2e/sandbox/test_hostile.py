"""Hostile guests and clients: a guest must never control the wire.

The guests (tests/hostile-guest, a component, and tests/hostile-cgi, a
preview1 CGI module) attack the response's framing, its headers, the
filesystem and the error log; a client that stops reading attacks the
instance pool. Every attack is sent with a second request pipelined behind
it on the same keep-alive connection and parsed as an HTTP/1.1 client would:
if the guest's bytes could frame a response of their own, the second answer
would be the forged one. One Apache per MPM serves the whole module."""

import os
import socket
import time

import pytest

from apache import WASIP1_DIR, WASM_DIR, Site
from http1 import Connection, request

HOSTILE = WASM_DIR / "hostile_guest.wasm"
HOSTILE_CGI = WASIP1_DIR / "hostile_cgi.wasm"

SITE = """
<Location /hello>
    SetHandler wasm-handler
    WasmComponent {guest}
</Location>

<Location /h>
    SetHandler wasm-handler
    WasmComponent @HOSTILE@
    WasmMapDir /data {dir}/data
</Location>

<Location /cgi>
    SetHandler wasm-handler
    WasmModule @HOSTILE_CGI@
    WasmEnableCGI On
    WasmMapDir /data {dir}/cgidata
</Location>

# A client that stops reading may hold a guest for WasmTimeout, no longer.
<Location /slow>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmTimeout 2
</Location>

<Location /slowmodule>
    SetHandler wasm-handler
    WasmModule {legacy}
    WasmArg big
    WasmEnv MIB 512
    WasmTimeout 2
</Location>

<Location /wild>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmAllowOutgoing *://*:*
</Location>

# The default host, then one whose Apache Timeout is the shorter limit.
<VirtualHost 127.0.0.1:{port}>
    ServerName 127.0.0.1
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
    ServerName short-timeout.test
    Timeout 2
    <Location /slow>
        WasmTimeout 60
    </Location>
</VirtualHost>
""".replace("@HOSTILE@", str(HOSTILE)).replace("@HOSTILE_CGI@", str(HOSTILE_CGI))


def prepare(server):
    for name in ("data", "cgidata"):
        (server.dir / name).mkdir()
        # The children run as www-data when the tests run as root.
        os.chmod(server.dir / name, 0o777)


@pytest.fixture(scope="module")
def apache_site():
    return Site(SITE, "hostile", prepare)


@pytest.fixture(scope="module")
def genuine(apache):
    """The answer a pipelined second request must get."""
    r = request(apache.port, "GET", "/hello/second")
    assert r.status == 200
    return r.body


def pipelined(apache, target, genuine, method="GET"):
    """Sends target and then a GET of /hello/second on one connection,
    before reading anything; the responses as parsed, in order. Fails if a
    response is forged or bytes follow the last one."""
    with Connection(apache.port) as conn:
        conn.sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                          "GET /hello/second HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        responses = []
        for _ in range(2):
            try:
                responses.append(conn.read_response(method if not responses else "GET"))
            except (ConnectionError, ValueError, IndexError):
                break
            if not responses[-1].complete:
                break
        conn.sock.settimeout(1)
        try:
            rest = conn.file.read1(65536)
        except (TimeoutError, socket.timeout):
            rest = b""
    for r in responses:
        assert r.header("x-forged") is None, r.headers
    if len(responses) == 2:
        assert responses[1].status == 200 and responses[1].body == genuine, responses[1]
    assert rest == b"", rest
    return responses


FORGED = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nX-Forged: 1\r\n\r\nforged!"


# Framing.

@pytest.mark.allow_log("MW00037")
@pytest.mark.parametrize("attack, body", [
    ("overrun", b"hello"),
    ("overrun-4k", b"AAAAA"),
    ("overrun-later", b"0123456789"),
    # wasi:http refuses the second field; the first one holds.
    ("two-lengths", b"hello"),
])
def test_a_component_never_sends_a_byte_past_its_content_length(apache, genuine, attack, body):
    responses = pipelined(apache, f"/h/{attack}", genuine)
    # The declared bytes, then the connection ends: the rest never left.
    assert len(responses) == 1
    assert responses[0].status == 200 and responses[0].body == body and responses[0].complete
    log = "\n".join(apache.wait_for_log("MW00037"))
    assert f"MW00037: the guest wrote more than the {len(body)} bytes its Content-Length " \
           f"declared for /h/{attack}" in log, log


@pytest.mark.parametrize("attack", ["hop-by-hop", "bad-headers"])
def test_header_attacks_never_reach_the_wire(apache, genuine, attack):
    responses = pipelined(apache, f"/h/{attack}", genuine)
    first = responses[0]
    assert first.status == 200, first
    assert len(responses) == 2
    verdicts = dict(line.rsplit(" ", 1) for line in first.body.decode().splitlines()
                    if line.endswith(("accepted", "refused")))
    assert verdicts, first.body
    # Apache sets its own framing and connection fields; the guest's never
    # get there.
    apaches = {b"transfer-encoding", b"connection", b"keep-alive"}
    names = {name for name, _ in first.headers} - apaches
    for name, verdict in verdicts.items():
        if name == "trailer":
            # Not a field wasi:http forbids; Apache never sends it (MW00042).
            assert verdict == "accepted"
        else:
            assert verdict == "refused", (name, first.body)
        assert name.encode() not in names
    assert first.header("transfer-encoding") in (None, b"chunked")
    for name, value in first.headers:
        assert b"x-injected" not in name and b"injected" not in value.lower()
        assert b"x-secret" not in value and b"timeout=999" not in value
    assert first.header("upgrade") is None


@pytest.mark.allow_log("MW00012")
@pytest.mark.parametrize("attack", ["many-headers?n=10000", "huge-header"])
def test_fields_past_the_hosts_limit_stop_the_guest(apache, genuine, attack):
    # 10,000 small fields, or one of 1 MiB: wasi:http traps the guest when
    # its fields pass the host's limit (MAX_FIELDS_SIZE, 32 KiB).
    responses = pipelined(apache, f"/h/{attack}", genuine)
    assert responses[0].status == 500
    assert responses[0].header("x-huge") is None and responses[0].header("x-h0") is None
    # Apache closes the connection after a 500.
    assert len(responses) == 1
    log = "\n".join(apache.wait_for_log("MW00012"))
    assert "total size of fields exceeds limit" in log, log


@pytest.mark.allow_log("MW00012")
@pytest.mark.parametrize("code, expected", [(99, 200), (600, 500)])
def test_a_status_outside_http_is_never_sent(apache, genuine, code, expected):
    responses = pipelined(apache, f"/h/status?code={code}", genuine)
    assert responses[0].status == expected
    if code == 99:
        assert responses[0].body == b"status 99 refused\n"
    else:
        log = "\n".join(apache.wait_for_log("MW00012"))
        assert "status 600, which is not a final HTTP status" in log


@pytest.mark.allow_log("MW00037", "MW00038", "MW00040", "MW00022")
@pytest.mark.parametrize("attack, status, body, responses_expected, tag", [
    # Transfer-Encoding is dropped and Apache frames the body in chunks of
    # its own: the forged response is data inside the first one.
    ("chunked", 200, b"hello" + FORGED, 2, "MW00041"),
    ("length-abc", 502, None, 2, "MW00040"),
    ("length-negative", 502, None, 2, "MW00040"),
    ("length-plus", 502, None, 2, "MW00040"),
    # httpd's parser would keep the last of the two; they must agree.
    ("two-lengths", 502, None, 2, "MW00040"),
    ("length-over", 200, b"hello", 1, "MW00037"),
])
def test_cgi_headers_never_frame_the_response(apache, genuine, attack, status, body,
                                              responses_expected, tag):
    responses = pipelined(apache, f"/cgi?attack={attack}", genuine)
    assert len(responses) == responses_expected, responses
    assert responses[0].status == status
    if body is not None:
        assert responses[0].body == body and responses[0].complete
    assert responses[0].header("transfer-encoding") in (None, b"chunked")
    log = "\n".join(apache.wait_for_log(tag))
    assert f"{tag}: " in log and "/cgi" in log, log


@pytest.mark.allow_log("MW00038")
def test_a_cgi_body_shorter_than_its_length_is_cut(apache, genuine):
    responses = pipelined(apache, "/cgi?attack=length-under", genuine)
    assert len(responses) == 1
    first = responses[0]
    assert first.status == 200 and first.header("content-length") == b"1000"
    assert first.body == b"short\n" and not first.complete
    log = "\n".join(apache.wait_for_log("MW00038"))
    assert "MW00038: the guest ended its body after 6 of the 1000 bytes" in log, log


def test_cgi_connection_fields_are_apaches(apache, genuine):
    responses = pipelined(apache, "/cgi?attack=connection", genuine)
    assert len(responses) == 2
    first = responses[0]
    assert first.status == 200 and first.body == b"hello\n"
    assert first.header("upgrade") is None
    for _, value in first.headers:
        assert b"x-secret" not in value and b"timeout=999" not in value
    log = "\n".join(apache.wait_for_log("MW00041"))
    assert "sent Connection, Keep-Alive, Upgrade in its CGI headers; dropped" in log, log


# The filesystem.

@pytest.mark.parametrize("where, refusal", [
    ("/h/symlink", b'symlink refused: ErrorCode { code: 31, name: "not-permitted"'),
    ("/cgi?attack=symlink", b"symlink refused: errno 63"),
])
def test_no_symlink_is_planted_in_a_writable_grant(apache, where, refusal):
    grant = apache.dir / ("data" if where.startswith("/h/") else "cgidata")
    (grant / "plain").unlink(missing_ok=True)
    r = request(apache.port, "GET", where)
    assert r.status == 200
    symlink, plain = r.body.decode().splitlines()
    assert symlink.encode().startswith(refusal), r.body
    assert not os.path.lexists(grant / "escape")
    # The same guest wrote an ordinary file there: the grant is writable,
    # and only the link was refused.
    assert plain == "plain file written", r.body
    assert (grant / "plain").read_bytes() == b"written"


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", "/proc/self/environ",
                                  "..", "./../../../proc/self/status"])
def test_a_writable_grant_reads_nothing_outside_it(apache, path):
    r = request(apache.port, "GET", f"/h/read?path={path}")
    assert r.status == 200
    assert r.body.startswith(b"refused: "), r.body


# The network: a wildcard rule reaches public addresses only, however the
# loopback address is spelt (127.0.0.1, localhost and [::1] are in
# test_capabilities.py).

@pytest.mark.parametrize("authority", [
    "2130706433:{port}", "0x7f000001:{port}", "0177.0.0.1:{port}", "127.1:{port}",
    "[::ffff:127.0.0.1]:{port}", "[::ffff:7f00:1]:{port}", "0.0.0.0:{port}", "[::]:{port}",
    "localhost.:{port}",
])
def test_a_wildcard_rule_reaches_no_spelling_of_loopback(apache, authority):
    authority = authority.format(port=apache.port)
    r = request(apache.port, "GET", f"/wild/fetch?url=http://{authority}/hello/x")
    assert r.status == 502, r.body
    assert r.body.startswith(b"error: ErrorCode::"), r.body
    assert b"test guest" not in r.body


def test_userinfo_in_an_outgoing_authority_is_refused(apache):
    r = request(apache.port, "GET",
                f"/wild/fetch?url=http://public.example.com@127.0.0.1:{apache.port}/hello/x")
    assert r.status == 502 and b"HttpRequestDenied" in r.body, r.body
    log = "\n".join(apache.wait_for_log("userinfo"))
    assert "an outgoing authority may not carry userinfo" in log, log


# The error log.

@pytest.mark.allow_log("MW00015")
def test_control_bytes_in_guest_output_are_escaped_in_the_log(apache):
    # Apache escapes what it logs (\xNN, and a backslash doubled): a
    # guest's line cannot move the cursor or end a log line early.
    r = request(apache.port, "GET", "/h/log-control")
    assert r.status == 200
    lines = apache.wait_for_log("evil")
    line = next(l for l in lines if "evil" in l)
    # A NUL would end the C string early: the host writes it as \0.
    assert "evil\\x1b[2J\\x1b[31mred\\\\0nul\\rcarriage [core:emerg] forged" in line, line
    raw = apache.error_log.read_bytes()
    assert b"\x1b" not in raw and b"\x00" not in raw and b"\r" not in raw
    assert not any(l.startswith("[core:emerg]") for l in lines)


@pytest.mark.allow_log("MW00015")
def test_a_log_flood_is_capped(apache):
    before = apache.error_log.stat().st_size
    r = request(apache.port, "GET", "/h/log-flood")
    assert r.status == 200 and r.body == b"flooded\n"
    lines = apache.wait_for_log("MW00017")
    assert sum("MW00017" in l for l in lines) == 1
    # 10 MB written, 64 KiB of it logged (plus each line's prefix).
    assert apache.error_log.stat().st_size - before < 256 * 1024


# A client that stops reading.

def stalled_client(apache, target, host="127.0.0.1"):
    """Asks for a large body and never reads it; how long until the server
    gave up, by its log line."""
    sock = socket.create_connection(("127.0.0.1", apache.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    started = time.monotonic()
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    try:
        lines = apache.wait_for_log("MW00043", timeout=30)
        took = time.monotonic() - started
    finally:
        sock.close()
    return took, next((l for l in lines if "MW00043" in l), "")


@pytest.mark.parametrize("target", ["/slow/big?mib=512", "/slowmodule"])
def test_a_stalled_client_holds_a_guest_for_wasmtimeout_only(apache, target):
    # Apache's Timeout is 120 s here; WasmTimeout is 2 s.
    took, line = stalled_client(apache, target)
    assert "ran out" in line, line
    assert "and WasmTimeout (2000 ms) ran out" in line, line
    assert took < 15


def test_a_stalled_client_under_a_shorter_apache_timeout_names_it(apache):
    took, line = stalled_client(apache, "/slow/big?mib=512", host="short-timeout.test")
    assert "and Timeout (2000 ms) ran out" in line, line
    assert took < 15


# The client's mistakes are not the server's errors.

def test_a_request_target_that_is_not_utf8_is_a_400_logged_as_info(apache):
    with Connection(apache.port) as conn:
        conn.sock.sendall(b"GET /h/caf\xe9 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        r = conn.read_response()
    assert r.status == 400
    lines = apache.wait_for_log("MW00039")
    line = next(l for l in lines if "MW00039" in l)
    assert "[wasm:info]" in line, line
