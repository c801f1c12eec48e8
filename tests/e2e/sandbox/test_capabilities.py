"""Capabilities: a guest gets what its location grants (environment,
directories, outgoing HTTP) and nothing else. Every test runs under each
MPM."""

import pytest

from http1 import request


def test_the_environment_is_only_what_wasmenv_sets(apache):
    assert request(apache.port, "GET", "/t/env").body == b""
    assert request(apache.port, "GET", "/env/env").body == b"GREETING=hello\nSHARED=parent\n"
    # A nested section appends, and its value for a shared name wins.
    assert (request(apache.port, "GET", "/env/nested/env").body
            == b"EXTRA=1\nGREETING=hello\nSHARED=child\n")


def test_granted_directories_can_be_read(apache):
    r = request(apache.port, "GET", "/files/read?path=/data/hello.txt")
    assert r.status == 200 and r.body == b"hello from data\n"
    same = apache.dir / "same" / "x.txt"
    r = request(apache.port, "GET", f"/files/read?path={same}")
    assert r.status == 200 and r.body == b"same path\n"


@pytest.mark.parametrize("path", [
    "/data/../secret.txt",  # up and out of the grant
    "/data/link",  # an absolute symlink to outside
    "/data/uplink",  # a relative symlink to outside
    "/etc/passwd",  # an absolute path nobody granted
    "{dir}/secret.txt",  # the host path of a file beside the grants
])
def test_nothing_escapes_a_grant(apache, path):
    path = path.format(dir=apache.dir)
    r = request(apache.port, "GET", f"/files/read?path={path}")
    assert r.status == 403 and r.body.startswith(b"error: "), r.body
    assert b"secret" not in r.body and b"root:" not in r.body


def test_without_a_grant_there_is_no_filesystem(apache):
    r = request(apache.port, "GET", "/t/read?path=/data/hello.txt")
    assert r.status == 403
    r = request(apache.port, "GET", f"/t/read?path={apache.dir}/data/hello.txt")
    assert r.status == 403


def test_read_only_grants_refuse_writes_and_others_take_them(apache):
    r = request(apache.port, "GET", "/files/write?path=/data/new.txt")
    assert r.status == 403
    assert not (apache.dir / "data" / "new.txt").exists()
    r = request(apache.port, "GET", "/files/write?path=/scratch/new.txt")
    assert r.status == 200
    assert (apache.dir / "scratch" / "new.txt").read_text() == "written"


def test_an_allowed_destination_is_reached(apache):
    for host in ("127.0.0.1", "localhost"):
        r = request(apache.port, "GET", f"/out/fetch?url=http://{host}:{apache.port}/hello/x")
        assert r.status == 200, r.body
        assert r.body == b"status 200\nHello from WebAssembly! You asked for /hello/x\n"


def test_outgoing_requests_are_denied_without_a_rule(apache):
    r = request(apache.port, "GET", f"/t/fetch?url=http://127.0.0.1:{apache.port}/hello")
    assert r.status == 502 and r.body == b"error: ErrorCode::HttpRequestDenied\n"
    # Another port than the rule's.
    r = request(apache.port, "GET", f"/out/fetch?url=http://127.0.0.1:{apache.port + 1}/")
    assert r.status == 502 and r.body == b"error: ErrorCode::HttpRequestDenied\n"
    lines = apache.wait_for_log("MW00018")
    denied = [line for line in lines if "MW00018" in line]
    assert len(denied) == 2, lines
    assert "allows no outgoing requests" in denied[0], denied[0]
    assert "no WasmAllowOutgoing rule of this location matches" in denied[1], denied[1]


def test_a_name_alone_does_not_reach_loopback(apache):
    """Only an address or network rule opens loopback and private
    addresses, whatever an allowed name resolves to."""
    r = request(apache.port, "GET", f"/named/fetch?url=http://localhost:{apache.port}/hello")
    assert r.status == 502 and r.body == b"error: ErrorCode::DestinationIpProhibited\n", r.body
    lines = apache.wait_for_log("MW00018")
    assert any("only a WasmAllowOutgoing rule naming the address" in line
               for line in lines), lines


def test_one_request_has_at_most_eight_outgoing_requests_open(apache):
    url = f"http://127.0.0.1:{apache.port}/hello"
    r = request(apache.port, "GET", f"/out/fetch-many?n=9&url={url}")
    assert r.status == 200
    assert r.body == b"answered 8\nerrors ErrorCode::ConnectionLimitReached\n", r.body
    lines = apache.wait_for_log("MW00018")
    assert any("8 are already open" in line for line in lines), lines


def test_refusals_are_logged_up_to_ten_per_request(apache):
    r = request(apache.port, "GET", "/t/fetch-many?n=30&url=http://192.0.2.1/")
    assert r.body == b"answered 0\nerrors ErrorCode::HttpRequestDenied\n", r.body
    lines = apache.wait_for_log("are not logged")
    refused = [line for line in lines if "MW00018" in line]
    assert len(refused) == 11, refused
    assert "further refused outgoing requests of this request are not logged" in refused[-1]


def test_a_wildcard_does_not_reach_loopback(apache):
    for host in ("127.0.0.1", "localhost", "[::1]"):
        r = request(apache.port, "GET", f"/wild/fetch?url=http://{host}:{apache.port}/hello")
        assert r.status == 502 and r.body == b"error: ErrorCode::DestinationIpProhibited\n", r.body
    lines = apache.wait_for_log("MW00018")
    assert any("non-public addresses" in line for line in lines), lines


def test_a_failed_tls_handshake_is_an_error_code_not_a_trap(apache):
    # Allowed, but this port speaks plain HTTP.
    r = request(apache.port, "GET", f"/out/fetch?url=https://127.0.0.1:{apache.port}/")
    assert r.status == 502 and r.body == b"error: ErrorCode::TlsProtocolError\n", r.body
    assert not any("MW00018" in line for line in apache.peek_log())


def test_sockets_are_denied(apache):
    r = request(apache.port, "GET", f"/t/socket?port={apache.port}")
    assert r.status == 200
    tcp, lookup = r.body.decode().splitlines()
    assert tcp in ("tcp: create: access-denied", "tcp: connect: access-denied"), tcp
    assert lookup in ("lookup: access-denied", "lookup: permanent-resolver-failure"), lookup


def test_stdout_goes_to_the_error_log(apache):
    r = request(apache.port, "GET", "/t/stdout")
    assert r.status == 200 and r.body == b"printed\n"
    lines = apache.wait_for_log("MW00016")
    assert any("MW00016" in l and "a line on stdout" in l and "/t/stdout" in l
               for l in lines), lines


@pytest.mark.allow_log("MW00015")
def test_a_flood_of_output_is_capped(apache):
    r = request(apache.port, "GET", "/t/flood")
    assert r.status == 200 and r.body == b"flooded\n"
    lines = apache.wait_for_log("MW00017")
    logged = [l for l in lines if "MW00015" in l]
    # 5000 lines of 99 bytes were written; 64 KiB of them are logged.
    assert 600 <= len(logged) <= 700, len(logged)
    assert sum("MW00017" in l and "stderr" in l for l in lines) == 1, lines
