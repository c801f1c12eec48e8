"""Components over HTTP/2 (mod_http2): h2c with prior knowledge on a
cleartext port, and h2 negotiated by ALPN over TLS. mod_http2 hands each
stream to the handler as an ordinary request, so everything a component does
over HTTP/1.1 must hold here too: statuses and headers, bodies streamed both
ways, several streams at once on one connection.

The client is curl (Debian's is built with nghttp2); the event MPM is the
harness's default, and the one mod_http2 needs (prefork cannot do h2)."""

import hashlib
import os
import random
import subprocess
import time
from dataclasses import dataclass, field

import pytest

from apache import MODULES, WASM_DIR, Apache, Site, running, self_signed_cert
from echo import parse_echo

MIB = 1 << 20

# Common to both servers: the test guest, the SSE example and the hashing
# example. {guest} and {dir} are Apache.config_text's to fill in.
SITE = f"""
LoadModule http2_module {MODULES}/mod_http2.so
<Location /t>
    SetHandler wasm-handler
    WasmComponent {{guest}}
</Location>
<Location /events>
    SetHandler wasm-handler
    WasmComponent {WASM_DIR}/streaming.wasm
</Location>
<Location /upload-hash>
    SetHandler wasm-handler
    WasmComponent {WASM_DIR}/upload_hash.wasm
</Location>
<Location /p3>
    SetHandler wasm-handler
    WasmComponent {WASM_DIR}/p3_test_guest.wasm
</Location>
<Location /checked>
    SetHandler wasm-handler
    WasmComponent {WASM_DIR}/hello.wasm
    WasmAccessChecker {{guest}}
</Location>
<Location /wrapped>
    SetHandler wasm-handler
    WasmComponent {WASM_DIR}/p3_test_guest.wasm
    WasmMiddleware {WASM_DIR}/middleware_test_guest.wasm
    WasmMiddleware {WASM_DIR}/middleware_test_guest.wasm
</Location>
"""

H2C = SITE + """
Protocols h2c http/1.1
"""

H2 = SITE + f"""
LoadModule socache_shmcb_module {MODULES}/mod_socache_shmcb.so
LoadModule ssl_module {MODULES}/mod_ssl.so
Protocols h2 http/1.1
SSLEngine on
SSLCertificateFile {{dir}}/cert.pem
SSLCertificateKeyFile {{dir}}/key.pem
"""


@dataclass
class Served:
    server: Apache
    scheme: str
    flags: list  # curl's flags for this protocol

    def url(self, path):
        return f"{self.scheme}://127.0.0.1:{self.server.port}{path}"


@dataclass
class Reply:
    version: str  # as curl's %{http_version}: "2" for HTTP/2
    status: int
    headers: list = field(default_factory=list)  # [(name_lower, value bytes)]
    body: bytes = b""

    def all(self, name):
        return [v for n, v in self.headers if n == name]


@pytest.fixture(scope="module", params=["h2c", "h2"])
def apache_site(request):
    if request.param == "h2c":
        return Site(H2C, "h2c")
    return Site(H2, "h2", lambda server: self_signed_cert(server.dir))


@pytest.fixture(scope="module")
def mpm():
    return "event"


@pytest.fixture(scope="module")
def site(apache, apache_site):
    if apache_site.name == "h2c":
        # Prior knowledge: the client speaks HTTP/2 from its first byte,
        # no Upgrade round trip.
        return Served(apache, "http", ["--http2-prior-knowledge"])
    # -k: the certificate is a throwaway self-signed one.
    return Served(apache, "https", ["--http2", "-k"])


def curl(site, tmp_path, path, *args, stdin=None):
    """One request with curl; the response's head and body as curl got them."""
    head, body = tmp_path / "head", tmp_path / "body"
    done = subprocess.run(
        ["curl", "-sS", "--max-time", "120", *site.flags, "-D", str(head), "-o", str(body),
         "-w", "%{http_version} %{response_code}", *args, site.url(path)],
        input=stdin, capture_output=True, timeout=180)
    assert done.returncode == 0, done.stderr.decode()
    version, status = done.stdout.decode().split()
    return Reply(version, int(status), parse_head(head.read_bytes()), body.read_bytes())


def parse_head(raw):
    headers = []
    for line in raw.split(b"\r\n")[1:]:
        if line:
            name, _, value = line.partition(b":")
            headers.append((name.strip().lower().decode(), value.strip()))
    return headers


def pattern(mib):
    """What the test guest's /big?mib=N sends: 0..255 repeated."""
    return bytes(range(256)) * (4096 * mib)


def test_the_guest_sees_the_request_over_http2(site, tmp_path):
    r = curl(site, tmp_path, "/t/echo?x=1&y=%20z", "-H", "X-Plain: value")
    # curl would fall back to HTTP/1.1 over TLS if ALPN did not pick h2.
    assert r.version == "2"
    assert r.status == 200
    facts, headers = parse_echo(r.body)
    headers = dict(headers)
    assert facts["method"] == "GET"
    assert facts["scheme"] == site.scheme
    assert facts["target"] == "/t/echo?x=1&y=%20z"
    # :authority arrives as the authority, as Host does over HTTP/1.1.
    assert facts["authority"] == f"127.0.0.1:{site.server.port}"
    assert headers["x-plain"] == b"value"
    assert "host" not in headers


def test_guest_status_and_headers_come_through(site, tmp_path):
    r = curl(site, tmp_path, "/t/headers", "-H", "X-Reflect: mirrored")
    assert r.version == "2" and r.status == 200
    assert r.all("content-type") == [b"text/x-test"]
    # HTTP/2 has no folding of its own: repeats stay separate fields.
    assert r.all("x-multi") == [b"one", b"two"]
    assert r.all("set-cookie") == [b"a=1; Path=/", b"b=2; Path=/"]
    assert r.all("x-reflected") == [b"mirrored"]
    assert r.body == b"headers\n"

    for code in (201, 404, 418, 503):
        r = curl(site, tmp_path, f"/t/status?code={code}")
        assert (r.version, r.status, r.body) == ("2", code, f"status {code}\n".encode())
    # No body at all for 204, and no DATA frame that curl would complain of.
    r = curl(site, tmp_path, "/t/status?code=204")
    assert (r.status, r.body) == (204, b"")


def test_an_access_checker_allows_and_refuses_over_http2(site, tmp_path):
    r = curl(site, tmp_path, "/checked", "-H", "X-Verdict: allow")
    assert (r.version, r.status) == ("2", 200) and b"Hello" in r.body, r
    # The refusal's head and body as the checker wrote them, on a stream.
    r = curl(site, tmp_path, "/checked", "-H", "X-Verdict: deny")
    assert (r.version, r.status, r.body) == ("2", 403, b"refused by the checker\n"), r
    assert r.all("x-checker") == [b"0.2"]
    r = curl(site, tmp_path, "/checked", "-H", "X-Verdict: login")
    assert r.status == 401 and r.all("www-authenticate") == [b'Bearer realm="test"'], r


def test_middlewares_wrap_a_component_over_http2(site, tmp_path):
    # Two layers in section order, each naming itself in x-via on the way
    # back: the inner (2) first.
    r = curl(site, tmp_path, "/wrapped/", "-H", "X-Mw: pass")
    assert (r.version, r.status) == ("2", 200), r
    assert r.all("x-via") == [b"2", b"1"], r
    # The outer upper-cases what the inner passed back, as it streams.
    r = curl(site, tmp_path, "/wrapped/", "-H", "X-Mw: upper@1")
    assert (r.version, r.status) == ("2", 200), r
    assert r.body == b"HELLO FROM WASI 0.3! YOU ASKED FOR /WRAPPED/\n", r
    # A request body goes through both layers to the component.
    data = os.urandom(256 * 1024)
    r = curl(site, tmp_path, "/wrapped/echo", "--data-binary", "@-", stdin=data)
    assert (r.status, r.body) == (200, data), r


def test_a_large_streamed_response_arrives_byte_exact(site, tmp_path):
    # 16 MiB written 4 KiB at a time by the guest, sent with no length:
    # many DATA frames, flow control from the client's window.
    r = curl(site, tmp_path, "/t/big?mib=16")
    assert r.version == "2" and r.status == 200
    assert r.all("content-type") == [b"application/octet-stream"]
    assert len(r.body) == 16 * MIB
    assert hashlib.sha256(r.body).digest() == hashlib.sha256(pattern(16)).digest()


def test_server_sent_events_arrive_as_they_happen(site, tmp_path):
    # -N: curl writes out each piece as it arrives; the events must come
    # one by one, not all at the end of the stream.
    process = subprocess.Popen(
        ["curl", "-sS", "-N", "--max-time", "60", *site.flags,
         "-w", "%{stderr}%{http_version}", site.url("/events?count=3&interval_ms=400")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pieces = []
    while data := os.read(process.stdout.fileno(), 65536):
        pieces.append((time.monotonic(), data))
    process.wait(timeout=60)
    assert process.returncode == 0 and process.stderr.read() == b"2"
    events = b"".join(data for _, data in pieces).decode().split("\n\n")
    assert events[0].startswith("id: 1\ndata: tick 1 at ")
    assert events[1].startswith("id: 2\ndata: tick 2 at ")
    assert events[2].startswith("id: 3\ndata: tick 3 at ")
    assert events[3:] == ["event: done\ndata: bye", ""]
    # The first event was on its own, 2 x 0.4 s before the last one.
    assert pieces[0][1].startswith(b"id: 1") and b"id: 2" not in pieces[0][1]
    assert pieces[-1][0] - pieces[0][0] > 0.6


def test_a_slow_response_reaches_the_client_before_the_guest_is_done(site, tmp_path):
    # /t/slow: "first", a one-second pause, "last". Had the stream been
    # held until the guest finished, both would come together.
    process = subprocess.Popen(["curl", "-sS", "-N", *site.flags, site.url("/t/slow")],
                               stdout=subprocess.PIPE)
    first = os.read(process.stdout.fileno(), 100)
    first_at = time.monotonic()
    rest = process.stdout.read()
    last_at = time.monotonic()
    assert process.wait(timeout=30) == 0
    assert first == b"first\n" and rest == b"last\n"
    assert last_at - first_at > 0.6


@pytest.mark.parametrize("known_length", [True, False], ids=["content-length", "no-length"])
def test_an_8_mib_upload_is_echoed_byte_exact(site, tmp_path, known_length):
    data = random.Random(8).randbytes(8 * MIB)
    if known_length:
        # --data-binary from a file: curl sends content-length.
        upload = tmp_path / "upload"
        upload.write_bytes(data)
        r = curl(site, tmp_path, "/t/upload", "--data-binary", f"@{upload}")
    else:
        # -T - from a pipe: the length is unknown, the body is DATA frames
        # until END_STREAM (HTTP/2 has no chunked encoding).
        r = curl(site, tmp_path, "/t/upload", "-X", "POST", "-T", "-", stdin=data)
    assert r.version == "2" and r.status == 200
    assert len(r.body) == len(data)
    assert r.body == data


def test_a_wasi_03_component_streams_both_ways(site, tmp_path):
    r = curl(site, tmp_path, "/p3/status?code=418")
    assert (r.version, r.status, r.body) == ("2", 418, b"I'm a teapot\n")
    assert r.all("x-wasi") == [b"0.3"]
    r = curl(site, tmp_path, "/p3/big?mib=16")
    assert r.version == "2" and r.status == 200
    assert hashlib.sha256(r.body).digest() == hashlib.sha256(pattern(16)).digest()
    data = random.Random(3).randbytes(4 * MIB)
    r = curl(site, tmp_path, "/p3/echo", "-X", "POST", "-T", "-", stdin=data)
    assert r.version == "2" and r.status == 200 and r.body == data


@pytest.mark.parametrize("path", ["/t/trailers", "/p3/trailers"])
def test_response_trailers_go_out_as_http2_trailers(site, tmp_path, path):
    # mod_http2 sends the request's trailers_out as the stream's last
    # HEADERS frame; curl hands them to -D after the head.
    r = curl(site, tmp_path, path)
    assert r.status == 200 and r.body == b"with trailers\n", r
    assert r.all("x-checksum") == [b"abc123"], r.headers


def test_an_upload_is_hashed_as_it_streams_in(site, tmp_path):
    data = random.Random(9).randbytes(8 * MIB + 123)
    r = curl(site, tmp_path, "/upload-hash", "-X", "POST", "-T", "-", stdin=data)
    assert r.version == "2" and r.status == 200
    assert r.body == f"sha256 {hashlib.sha256(data).hexdigest()}\nbytes {len(data)}\n".encode()


def test_streams_side_by_side_on_one_connection(site, tmp_path):
    # One curl, --parallel: the requests are multiplexed as streams of a
    # single HTTP/2 connection; a slow stream must not hold up the others,
    # and every answer must be its own request's. Over cleartext this goes
    # by Upgrade: h2c, because curl 7.88 breaks a prior-knowledge connection
    # that it reuses for a waiting transfer ("Error in the HTTP2 framing
    # layer" with any server, curl issue 10634, fixed in 8.0).
    flags = ["--http2"] + (["-k"] if site.scheme == "https" else [])
    args = ["curl", "-sS", "--max-time", "60", *flags, "--parallel", "--parallel-max", "8",
            "-w", "%{http_version} %{num_connects} %{time_total} %{url}\n",
            "-o", str(tmp_path / "slow"), site.url("/t/slow")]
    for i in range(8):
        args += ["-o", str(tmp_path / f"echo{i}"), site.url(f"/t/echo?i={i}")]
    done = subprocess.run(args, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    transfers = [line.split() for line in done.stdout.decode().splitlines()]
    assert len(transfers) == 9 and all(t[0] == "2" for t in transfers), transfers
    # One connection for the nine transfers.
    assert sum(int(t[1]) for t in transfers) == 1, transfers
    # The echoes were answered while /t/slow was still in its pause.
    times = {t[3]: float(t[2]) for t in transfers}
    slow = times.pop(site.url("/t/slow"))
    assert slow >= 1.0 and max(times.values()) < slow - 0.4, transfers
    assert (tmp_path / "slow").read_bytes() == b"first\nlast\n"
    for i in range(8):
        facts, _ = parse_echo((tmp_path / f"echo{i}").read_bytes())
        assert facts["target"] == f"/t/echo?i={i}"


def test_streams_beyond_the_instance_pool_wait_for_a_slot(tmp_path):
    # mod_http2 runs streams on workers of its own, beside the MPM's
    # threads. The pool counts its default number of them (3/2 of
    # ThreadsPerChild, at least 4: 4 + 6 here); with H2MaxWorkers raised
    # past that, more streams run at once than the pool has instances for,
    # and those beyond it must wait for a slot, not fail. Three connections
    # of six one-second streams keep more of them running at once than the
    # pool's 11 slots (without the wait, some of them were 500s).
    with running(H2C + "H2MaxWorkers 16\n", "event", "h2-pool") as server:
        lines = server.wait_for_log("pool for 10 requests at once")
        assert any("pool for 10 requests at once" in line for line in lines), lines
        url = f"http://127.0.0.1:{server.port}/t/slow"
        clients = [subprocess.Popen(
            # Upgrade, not prior knowledge: see the test above.
            ["curl", "-sS", "--max-time", "60", "--http2", "--parallel",
             "--parallel-max", "6", "-w", "%{response_code}\n",
             *[arg for i in range(6) for arg in ("-o", str(tmp_path / f"{n}-{i}"), url)]],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE) for n in range(3)]
        codes = [code for client in clients for code in client.communicate(timeout=90)[0].split()]
        assert codes == [b"200"] * 18, (codes, server.peek_log())
        for body in tmp_path.iterdir():
            assert body.read_bytes() == b"first\nlast\n"
        assert not server.unexpected_errors(server.new_log())
