"""The examples' config snippets, included as `make run` includes them."""

import base64
import hashlib
import hmac
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from apache import MODULES, ROOT, WASIP1_DIR, WASM_DIR, Site
from http1 import Connection, request

# Every example's snippet but those of the apps built by `mod_wasm
# build-python` / `build-js`, which test_existing_apps.py serves (and checks
# the "# try:" lines of): compiling them too would add ~45 s to this
# server's start-up, which compiles serially.
ELSEWHERE = {"flask-app", "hono-app"}
CONFS = [conf for conf in sorted((ROOT / "examples").glob("*/*.conf"))
         if conf.parent.name not in ELSEWHERE]
INCLUDES = "\n".join(f"Include {conf}" for conf in CONFS)

SITE = f"""
# As Debian enables them by default; examples/site needs all three.
LoadModule alias_module {MODULES}/mod_alias.so
LoadModule mime_module {MODULES}/mod_mime.so
LoadModule dir_module {MODULES}/mod_dir.so
# As scripts/serve-examples loads them, for examples/json-rewrite.
LoadModule proxy_module {MODULES}/mod_proxy.so
LoadModule proxy_http_module {MODULES}/mod_proxy_http.so
TypesConfig /etc/mime.types
Define MOD_WASM_WASM_DIR {WASM_DIR}
Define MOD_WASM_WASIP1_DIR {WASIP1_DIR}
Define MOD_WASM_ROOT {ROOT}
{INCLUDES}
# The hello example as cargo-component builds it (Makefile).
<Location /cargo-component-hello>
    SetHandler wasm-handler
    WasmComponent {ROOT}/target/cargo-component/hello.wasm
</Location>
# The Python 0.3 example, one instance serving several requests at once.
<Location /python03-shared>
    SetHandler wasm-handler
    WasmComponent {WASM_DIR}/python_hello_wasi03.wasm
    WasmInstanceReuse 1000 concurrent=4
</Location>
# The notes examples where their store is not granted.
<Location /python-notes-ungranted>
    SetHandler wasm-handler
    WasmComponent {WASM_DIR}/python_notes.wasm
</Location>
<Location /js-notes-ungranted>
    SetHandler wasm-handler
    WasmComponent {WASM_DIR}/js_notes.wasm
</Location>
"""


@pytest.fixture(scope="module")
def apache_site():
    # The port is Apache's to fill in; the rest is literal.
    body = "Define MOD_WASM_PORT {port}\n" + SITE.replace("{", "{{").replace("}", "}}")
    return Site(body, "examples")


@pytest.fixture(scope="module")
def mpm():
    return "event"


def test_hello_snippet_serves_the_hello_example(apache):
    r = request(apache.port, "GET", "/hello/from/the/snippet")
    assert r.status == 200
    assert r.body == b"Hello from WebAssembly! You asked for /hello/from/the/snippet\n"
    # A body the handler had whole goes out with its length, not chunked.
    assert r.header("content-length") == str(len(r.body)).encode()


def test_a_wws_worker_keeps_its_signature(apache):
    r = request(apache.port, "POST", "/wws-reply/x", body="héllo".encode())
    assert r.status == 200
    assert r.header("x-generated-by") == b"mod_wasm"
    assert r.body == b"Hello wasm! 6 bytes came to /wws-reply/x\n"
    # Request<String> takes text: other bytes are the client's mistake.
    assert request(apache.port, "POST", "/wws-reply/x", body=b"\xff").status == 400


def test_the_example_site_routes_below_its_alias(apache):
    r = request(apache.port, "GET", "/site/api/hello")
    assert r.body == b"Hello from WebAssembly! You asked for /site/api/hello\n"
    r = request(apache.port, "GET", "/site/users/42")
    assert r.body == b"Hello wasm! 0 bytes came to /site/users/42\n"
    # The folder's index is public/index.html, as in Wasm Workers Server.
    r = request(apache.port, "GET", "/site/")
    assert r.status == 200 and b"A folder of components is a site" in r.body


def test_legacy_hello_prints_the_response(apache):
    r = request(apache.port, "GET", "/legacy-hello")
    assert r.status == 200
    assert r.body == b"Hello from a WASI preview1 module!\n"


def test_cgi_echo_echoes_env_query_and_body_with_its_status(apache):
    r = request(apache.port, "POST", "/cgi-echo/extra?status=201&x=y", body=b"the body")
    assert r.status == 201
    assert r.header("content-type") == b"text/plain"
    lines = r.body.decode().splitlines()
    assert "REQUEST_METHOD=POST" in lines and "PATH_INFO=/extra" in lines
    assert "GREETING=set with WasmEnv" in lines
    assert "query: status=201&x=y" in lines
    assert r.body.endswith(b"body (8 bytes):\nthe body")


def test_list_dir_lists_its_mapped_directory(apache):
    r = request(apache.port, "GET", "/list-dir")
    assert r.status == 200
    lines = r.body.decode().splitlines()
    assert lines[0] == "/data:"
    assert "  list-dir/" in lines and "  c-cgi/" in lines


def test_the_c_cgi_program_answers(apache):
    r = request(apache.port, "POST", "/c-cgi?name=Apache", body=b"12345")
    assert r.status == 200
    assert r.body == b"Hello, Apache, from C!\nPOST request, 5 bytes of body\n"


def test_hello_built_by_cargo_component_answers_the_same(apache):
    r = request(apache.port, "GET", "/cargo-component-hello/x")
    assert r.status == 200
    assert r.body == b"Hello from WebAssembly! You asked for /cargo-component-hello/x\n"


def test_json_api_routes_by_method_and_path(apache):
    r = request(apache.port, "GET", "/json/api/users/7")
    assert r.status == 200
    assert r.header("content-type") == b"application/json"
    assert json.loads(r.body) == {"id": 7, "name": "user 7"}

    r = request(apache.port, "GET", "/json/api/users/seven")
    assert r.status == 400 and r.body == b"not a user id: seven\n"

    r = request(apache.port, "DELETE", "/json/api/users/7")
    assert r.status == 405 and r.header("allow") == b"GET, HEAD"

    assert request(apache.port, "GET", "/json/api/nothing").status == 404


def test_json_api_reads_a_json_body(apache):
    r = request(apache.port, "POST", "/json/api/users",
                headers=[("Content-Type", "application/json")],
                body=json.dumps({"name": "Zoë"}).encode())
    assert r.status == 201
    assert json.loads(r.body) == {"id": 1, "name": "Zoë", "name_length": 3}

    r = request(apache.port, "POST", "/json/api/users", body=b'{"name": ')
    assert r.status == 400 and r.body.startswith(b"JSON: ")


def test_json_api_tells_what_apache_knows(apache):
    r = request(apache.port, "GET", "/json/api/whoami")
    assert r.status == 200
    facts = json.loads(r.body)
    assert facts["client_addr"] == "127.0.0.1"
    assert facts["user"] is None and facts["tls"] is False
    assert facts["location"] == "/json"
    assert facts["request_id"]


def test_sse_events_arrive_as_they_happen(apache):
    r = request(apache.port, "GET", "/events?count=3&interval_ms=400", keep_chunks=True)
    assert r.status == 200
    assert r.header("content-type") == b"text/event-stream"
    events = r.body.decode().split("\n\n")
    assert events[0].startswith("id: 1\ndata: tick 1 at ")
    assert events[2].startswith("id: 3\ndata: tick 3 at ")
    assert events[3] == "event: done\ndata: bye"
    # Two pauses of 0.4 s between the first event and the last: had the
    # response been buffered, they would arrive together.
    assert r.chunks[0][1].startswith(b"id: 1")
    assert r.last_byte_at - r.chunks[0][0] > 0.6


def test_upload_hash_hashes_a_streamed_upload(apache):
    piece = bytes(range(256)) * 4096
    pieces = [piece] * 16
    r = request(apache.port, "POST", "/upload-hash", body=iter(pieces))
    assert r.status == 200
    expected = hashlib.sha256(piece * 16).hexdigest()
    assert r.body == f"sha256 {expected}\nbytes {16 * len(piece)}\n".encode()
    assert request(apache.port, "GET", "/upload-hash").status == 405


def test_static_files_come_from_the_mapped_directory(apache):
    public = ROOT / "examples/static-files/public"
    r = request(apache.port, "GET", "/static/")
    assert r.status == 200
    assert r.header("content-type") == b"text/html; charset=utf-8"
    assert r.body == (public / "index.html").read_bytes()

    r = request(apache.port, "GET", "/static/css/site.css")
    assert r.status == 200 and r.header("content-type") == b"text/css"
    assert r.body == (public / "css/site.css").read_bytes()

    assert request(apache.port, "GET", "/static/missing.txt").status == 404


def test_proxy_forwards_to_its_upstream(apache):
    r = request(apache.port, "GET", "/proxy/through/the/proxy?q=1")
    assert r.status == 200
    assert r.body == b"Hello from WebAssembly! You asked for /hello/through/the/proxy\n"


@pytest.mark.parametrize("location, language", [("/python", "Python"), ("/js", "JavaScript")])
def test_other_languages_answer_and_echo_the_body(apache, location, language):
    r = request(apache.port, "POST", f"{location}/a/b?c=d", body=b"posted bytes")
    assert r.status == 200
    assert r.body == (f"Hello from {language}! POST {location}/a/b?c=d, 12 bytes of body\n"
                      "posted bytes").encode()
    r = request(apache.port, "GET", location)
    assert r.status == 200
    assert r.body == f"Hello from {language}! GET {location}, 0 bytes of body\n".encode()


def test_python_reaches_apache_through_the_shipped_world(apache):
    # Built against wit/ (world mod-wasm:host/guest): it asks Apache which
    # <Location> serves it.
    r = request(apache.port, "GET", "/python/x")
    assert r.status == 200
    assert r.header("x-location") == b"/python"


def test_the_rust_wasi_0_3_example_answers(apache):
    r = request(apache.port, "GET", "/hello03/x?y=1")
    assert r.status == 200
    assert r.body == b"Hello from WASI 0.3! You asked for /hello03/x?y=1\n", r.body


@pytest.mark.parametrize("location", ["/python03", "/python03-shared"])
def test_the_python_wasi_0_3_example_streams_the_body_and_trailers_back(apache, location):
    # 1 MiB in 60 kB chunks, with a trailer section: the greeting, the
    # body byte for byte, the trailers as the response's.
    pieces = [bytes([i % 251]) * 60_000 for i in range(18)]
    r = request(apache.port, "POST", f"{location}/up?q=1", body=pieces,
                trailers=[("X-Digest", "d1")])
    assert r.status == 200 and r.complete, r
    greeting = f"Hello from Python on WASI 0.3! POST {location}/up?q=1\n".encode()
    assert r.body == greeting + b"".join(pieces)
    assert r.trailers == [(b"x-digest", b"d1")], r.trailers
    r = request(apache.port, "GET", location)
    assert r.status == 200 and r.trailers == [], r
    assert r.body == f"Hello from Python on WASI 0.3! GET {location}\n".encode()


def test_a_shared_python_wasi_0_3_instance_keeps_requests_at_once_apart(apache):
    def one(i):
        body = str(i).encode() * 1000
        r = request(apache.port, "POST", f"/python03-shared/{i}", body=body)
        return r.status, r.body
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(one, range(12)))
    for i, (status, body) in enumerate(answers):
        assert status == 200
        assert body == (f"Hello from Python on WASI 0.3! POST /python03-shared/{i}\n".encode()
                        + str(i).encode() * 1000)


def test_every_url_make_run_prints_answers(apache):
    # The "# try:" lines of examples/*/*.conf, which `make run` prints.
    tries = [line.removeprefix("# try:").strip()
             for conf in CONFS
             for line in conf.read_text().splitlines() if line.startswith("# try:")]
    paths = [t for t in tries if t.startswith("/")]
    assert len(paths) >= 12, tries
    for path in paths:
        r = request(apache.port, "GET", path)
        assert 200 <= r.status < 300, (path, r.status, r.body[:200])


def test_head_through_the_proxy_has_no_body(apache):
    with Connection(apache.port) as conn:
        r = conn.request("HEAD", "/proxy/head")
        assert r.status == 200
        assert r.header("content-type") == b"text/plain; charset=utf-8"
        # Had a body followed the head, it would be read as the next
        # response on this connection.
        again = conn.request("GET", "/proxy/again")
        assert again.status == 200
        assert again.body == b"Hello from WebAssembly! You asked for /hello/again\n"


def test_visits_cart_counts_visits_across_fresh_instances(apache):
    first = request(apache.port, "GET", "/visits-cart/")
    assert first.status == 200, first
    assert first.body.startswith(b"Welcome! You are visitor number "), first.body
    n = int(first.body.split()[-1].rstrip(b"."))
    second = request(apache.port, "GET", "/visits-cart/")
    assert second.body.endswith(f"number {n + 1}.\n".encode()), second.body


def test_visits_cart_keeps_a_cart_that_concurrent_adds_all_reach(apache):
    cart = f"/visits-cart/cart/{time.monotonic_ns()}"
    add = json.dumps({"item": "tea", "quantity": 2}).encode()
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(lambda _: request(apache.port, "POST", cart, body=add).status,
                                 range(8)))
    assert statuses == [200] * 8
    r = request(apache.port, "GET", cart)
    assert json.loads(r.body) == {"items": {"tea": 16}}
    assert request(apache.port, "DELETE", cart).status == 204
    assert json.loads(request(apache.port, "GET", cart).body) == {"items": {}}
    bad = request(apache.port, "POST", cart, body=b'{"item": "tea"}')
    assert bad.status == 400


NOTES = [("/python-notes", "Python"), ("/js-notes", "JavaScript")]


@pytest.mark.parametrize("location, language", NOTES)
def test_the_notes_examples_count_visits_in_their_store(apache, location, language):
    first = request(apache.port, "GET", f"{location}/")
    assert first.status == 200, first
    greeting = f"Good day from {language}! Visit number ".encode()
    assert first.body.startswith(greeting), first.body
    n = int(first.body[len(greeting):].split(b".")[0])
    second = request(apache.port, "GET", f"{location}/")
    assert second.body.startswith(greeting + f"{n + 1}.".encode()), second.body


@pytest.mark.parametrize("location, language", NOTES)
def test_the_notes_examples_keep_list_and_forget_notes(apache, location, language):
    name = f"n{time.monotonic_ns()}"
    note = f"{location}/notes/{name}"
    assert request(apache.port, "GET", note).status == 404
    text = "tea, milk, and ünïcode\n".encode()
    assert request(apache.port, "PUT", note, body=text).status == 204
    r = request(apache.port, "GET", note)
    assert (r.status, r.body) == (200, text)
    assert name.encode() in request(apache.port, "GET", f"{location}/").body
    too_long = request(apache.port, "PUT", note, body=b"x" * (64 * 1024 + 1))
    assert too_long.status == 413
    assert request(apache.port, "GET", note).body == text
    assert request(apache.port, "DELETE", note).status == 204
    assert request(apache.port, "GET", note).status == 404
    assert name.encode() not in request(apache.port, "GET", f"{location}/").body


@pytest.mark.allow_log("MW00051", "MW00028")
@pytest.mark.parametrize("location, language", NOTES)
def test_the_notes_examples_answer_500_and_log_where_the_store_is_not_granted(
        apache, location, language):
    r = request(apache.port, "GET", f"{location}-ungranted/")
    assert r.status == 500
    assert b"the store failed:" in r.body
    lines = apache.wait_for_log(f"store {location[1:]}: ")
    assert any("MW00051" in line for line in lines), lines


def jwt(claims, secret=b"make-run-demo-secret", alg="HS256"):
    """A token as any JWT library signs it."""
    def part(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    signed = part(json.dumps({"alg": alg, "typ": "JWT"}).encode()) + "." + part(
        json.dumps(claims).encode())
    mac = hmac.new(secret, signed.encode(), hashlib.sha256).digest()
    return signed + "." + part(mac)


def bearer(token):
    return [("Authorization", f"Bearer {token}")]


def test_the_jwt_checker_lets_a_valid_token_through_to_the_static_file(apache):
    report = (ROOT / "examples/jwt-checker/reports/q3.txt").read_bytes()
    # The token of the example's "# try:" line.
    conf = (ROOT / "examples/jwt-checker/jwt-checker.conf").read_text()
    [token] = re.findall(r"Bearer ([\w-]+\.[\w-]+\.[\w-]+)", conf)
    r = request(apache.port, "GET", "/reports/q3.txt", headers=bearer(token))
    assert r.status == 200 and r.body == report, r
    later = int(time.time()) + 600
    r = request(apache.port, "GET", "/reports/q3.txt",
                headers=bearer(jwt({"sub": "bo", "exp": later})))
    assert r.status == 200 and r.body == report, r
    log = "\n".join(apache.wait_for_log("jwt-checker: bo allowed"))
    assert "jwt_checker.wasm" in log, log


@pytest.mark.parametrize("headers, why", [
    ([], None),
    (bearer(jwt({"sub": "ada"}, secret=b"another secret")), "the signature is wrong"),
    (bearer(jwt({"sub": "ada", "exp": 1_000_000_000})), "the token has expired"),
    (bearer(jwt({"sub": "ada"}, alg="none")), "the algorithm is not HS256"),
    (bearer("not.a.token"), "not a JWT"),
])
def test_the_jwt_checker_refuses_with_a_401_that_says_why(apache, headers, why):
    r = request(apache.port, "GET", "/reports/q3.txt", headers=headers)
    assert r.status == 401, r
    challenge = r.header("www-authenticate").decode()
    assert challenge.startswith('Bearer realm="/reports"'), challenge
    if why is None:
        assert r.body == b"a bearer token is required\n"
    else:
        assert f'error="invalid_token", error_description="{why}"' in challenge, challenge
        assert r.body == f"the token is refused: {why}\n".encode()
    assert b"revenue" not in r.body


SECURITY_HEADERS = {
    "x-content-type-options": b"nosniff",
    "x-frame-options": b"DENY",
    "referrer-policy": b"no-referrer",
    # The snippet's WasmConfigVar, not the example's default.
    "content-security-policy": b"default-src 'self'; img-src 'self' data:",
}


def assert_secured(r):
    for name, value in SECURITY_HEADERS.items():
        assert r.all(name) == [value], (name, r.headers)
    # Over http, where browsers ignore it.
    assert r.header("strict-transport-security") is None, r.headers
    [timing] = r.all("server-timing")
    assert re.fullmatch(rb"backend;dur=\d+\.\d", timing), timing


def test_the_security_headers_middleware_heads_a_static_file(apache):
    page = (ROOT / "examples/security-headers/public/index.html").read_bytes()
    # mod_dir's index, served by Apache's static handler inside the layer.
    r = request(apache.port, "GET", "/secured/")
    assert r.status == 200 and r.body == page, r
    assert r.header("content-length") == str(len(page)).encode(), r.headers
    assert r.header("content-type").startswith(b"text/html"), r.headers
    assert_secured(r)
    with Connection(apache.port) as conn:
        r = conn.request("HEAD", "/secured/index.html")
        assert r.status == 200 and r.body == b"", r
        assert_secured(r)
        # A 404 is headed too; the connection goes on after both.
        r = conn.request("GET", "/secured/nothing.html")
        assert r.status == 404, r
        assert_secured(r)
        assert conn.request("GET", "/secured/index.html").body == page


def test_the_json_rewrite_middleware_redacts_and_renames_a_proxied_answer(apache):
    # The API behind mod_proxy says more than the snippet lets out.
    direct = json.loads(request(apache.port, "GET", "/json/api/whoami").body)
    assert {"client_addr", "request_id", "location"} <= direct.keys(), direct
    r = request(apache.port, "GET", "/public-api/whoami")
    assert r.status == 200, r
    assert r.header("content-type") == b"application/json", r.headers
    assert r.header("content-length") == str(len(r.body)).encode(), r.headers
    assert json.loads(r.body) == {"location": "/json", "tls": False, "user": None}, r.body
    # The try: line's POST: the request body reaches the API through both.
    r = request(apache.port, "POST", "/public-api/users", body=b'{"name":"Ada"}',
                headers=[("Content-Type", "application/json")])
    assert r.status == 201, r
    assert json.loads(r.body) == {"id": 1, "name": "Ada", "nameLength": 3}, r.body


def test_the_json_rewrite_middleware_passes_other_answers_untouched(apache):
    # The API's 400 is text/plain: streamed through as the proxy got it.
    r = request(apache.port, "GET", "/public-api/users/x")
    assert (r.status, r.body) == (400, b"not a user id: x\n"), r
    assert r.header("content-type").startswith(b"text/plain"), r.headers
