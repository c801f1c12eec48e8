"""WasmMiddleware: WASI 0.3 components of the wasi:http/middleware world
around whatever Apache serves — a static file, a CGI script, a mod_proxy
backend, a WasmComponent (docs/directives/WasmMiddleware.md). The
middleware is tests/middleware-guest, which does what the request's x-mw
field says. Every test runs under each MPM."""

import time

import pytest

from apache import MODULES, WASM_DIR, Site
from http1 import Connection, request

MW = WASM_DIR / "middleware_test_guest.wasm"

SITE = f"""
LoadModule alias_module {MODULES}/mod_alias.so
LoadModule mime_module {MODULES}/mod_mime.so
LoadModule headers_module {MODULES}/mod_headers.so
LoadModule cgid_module {MODULES}/mod_cgid.so
LoadModule proxy_module {MODULES}/mod_proxy.so
LoadModule proxy_http_module {MODULES}/mod_proxy_http.so
TypesConfig /etc/mime.types
ScriptSock {{dir}}/run/cgid.sock

Alias /static {{dir}}/htdocs
Alias /nested {{dir}}/htdocs
ScriptAlias /cgi/ {{dir}}/cgi-bin/
# The same scripts without a middleware: the proxy's backend. Its
# connections are not kept (see test_access_checker.py).
ScriptAlias /backend/ {{dir}}/cgi-bin/
ProxyPass /proxied/ http://127.0.0.1:{{port}}/backend/ disablereuse=On

<Location /static>
    WasmMiddleware {MW}
    Header set X-Site-Policy strict
</Location>
<Location /static/slow>
    WasmTimeout 1
</Location>
# The section's WasmInstanceReuse applies to its middlewares.
<Location /static/reused>
    WasmInstanceReuse 3
</Location>
# For the failure tests alone: under prefork, a later connection may land in
# another child, which must not have an instance of its own yet.
<Location /static/kept>
    WasmInstanceReuse 100
    WasmTimeout 1
</Location>
<Location /nested/reused>
    WasmMiddleware {MW}
    WasmInstanceReuse 100
</Location>
<Location /cgi>
    WasmMiddleware {MW}
</Location>
<Location /proxied>
    WasmMiddleware {MW}
</Location>
<Location /component>
    SetHandler wasm-handler
    WasmComponent {{guest}}
    WasmMiddleware {MW}
</Location>
# Two layers, the outer one from the section around the inner one's.
<Location /nested>
    WasmMiddleware {MW}
</Location>
<Location /nested/inner>
    WasmMiddleware {MW}
</Location>
<Location /nested/inner/off>
    WasmMiddleware Off
</Location>
# The middleware served as content: its next handler is an error.
<Location /as-component>
    SetHandler wasm-handler
    WasmComponent {MW}
</Location>
<Location /wasm-status>
    SetHandler wasm-status
</Location>
"""

FILE = b"the static file's content\n" * 100

# What the backend saw: the x-seen fields the middlewares added, the
# method, and the request body.
ECHO_CGI = """#!/bin/sh
printf 'Content-Type: text/plain\\n\\n'
printf 'seen %s\\n' "$HTTP_X_SEEN"
printf 'method %s\\n' "$REQUEST_METHOD"
cat
"""


def prepare(server):
    htdocs = server.dir / "htdocs"
    for sub in ("", "slow", "inner", "inner/off", "reused", "kept"):
        (htdocs / sub).mkdir(parents=True, exist_ok=True)
        (htdocs / sub / "file.txt").write_bytes(FILE)
    cgi = server.dir / "cgi-bin"
    cgi.mkdir()
    (cgi / "echo.cgi").write_text(ECHO_CGI)
    (cgi / "echo.cgi").chmod(0o755)


@pytest.fixture(scope="module")
def apache_site():
    return Site(SITE, "middleware", prepare)


def mw(*words):
    return [("x-mw", ",".join(words))] if words else []


# -- around a static file ----------------------------------------------------

def test_a_static_file_passes_through_unchanged(apache):
    r = request(apache.port, "GET", "/static/file.txt")
    assert r.status == 200, r
    assert r.body == FILE
    assert r.header("x-via") == b"1"
    assert r.header("content-length") == str(len(FILE)).encode()
    assert r.header("content-type") == b"text/plain"
    # Apache's own headers still apply to the middleware's answer.
    assert r.header("x-site-policy") == b"strict"
    assert r.header("last-modified") is not None


def test_a_head_request_gets_the_files_head(apache):
    r = request(apache.port, "HEAD", "/static/file.txt")
    assert r.status == 200, r
    assert r.body == b""
    assert r.header("content-length") == str(len(FILE)).encode()
    assert r.header("x-via") == b"1"


def test_a_conditional_request_gets_304_through_the_middleware(apache):
    etag = request(apache.port, "GET", "/static/file.txt").header("etag")
    r = request(apache.port, "GET", "/static/file.txt", headers=[("If-None-Match", etag)])
    assert r.status == 304, r
    assert r.header("x-via") == b"1"


def test_a_middleware_waiting_on_a_timer_is_woken(apache):
    # The guest runs on the request's thread only when something wakes it:
    # a timer firing (on the child's runtime thread) must.
    started = time.monotonic()
    r = request(apache.port, "GET", "/static/file.txt", headers=mw("pause"))
    elapsed = time.monotonic() - started
    assert r.status == 200, r
    assert r.body == FILE
    assert r.header("x-via") == b"1"
    assert elapsed >= 0.2, elapsed


def test_a_missing_files_404_reaches_the_middleware(apache):
    r = request(apache.port, "GET", "/static/missing.txt", headers=mw("summary"))
    assert r.status == 200, r
    # What the handler returned instead of a response: its status, no body.
    assert r.body == b"status 404, type text/plain, 0 bytes\n", r.body
    plain = request(apache.port, "GET", "/static/missing.txt")
    assert plain.status == 404 and plain.body == b"", plain
    assert plain.header("x-via") == b"1"


def test_the_body_is_rewritten_as_it_streams(apache):
    r = request(apache.port, "GET", "/static/file.txt", headers=mw("upper"))
    assert r.status == 200, r
    assert r.body == FILE.upper()
    assert r.header("content-length") is None


def test_the_middleware_reads_the_whole_response(apache):
    r = request(apache.port, "GET", "/static/file.txt", headers=mw("summary"))
    assert r.body == f"status 200, type text/plain, {len(FILE)} bytes\n".encode(), r


def test_a_middleware_that_never_calls_the_next_handler_is_the_content(apache):
    r = request(apache.port, "GET", "/static/missing.txt", headers=mw("answer"))
    assert r.status == 200, r
    assert r.body == b"answered by middleware 1\n"
    assert r.header("x-site-policy") == b"strict"


def test_a_response_the_middleware_drops_is_not_read(apache):
    r = request(apache.port, "GET", "/static/file.txt", headers=mw("drop"))
    assert r.status == 200, r
    assert r.body == b"dropped a 200 response\n"


@pytest.mark.allow_log("MW00012", "MW00015")
def test_a_trap_before_the_head_is_a_500_with_nothing_of_the_file(apache):
    apache.new_log()
    r = request(apache.port, "GET", "/static/file.txt", headers=mw("trap-before"))
    assert r.status == 500, r
    assert FILE[:20] not in r.body
    lines = apache.wait_for_log("MW00012")
    assert any("/static/file.txt" in line and "WasmMiddleware" in line for line in lines), lines
    assert request(apache.port, "GET", "/static/file.txt").body == FILE


@pytest.mark.allow_log("MW00014", "MW00015")
def test_a_trap_after_the_head_cuts_the_response(apache):
    apache.new_log()
    r = request(apache.port, "GET", "/static/file.txt", headers=mw("trap-after"))
    assert r.status == 200 and not r.complete, r
    apache.wait_for_log("MW00014")


@pytest.mark.allow_log("MW00020")
def test_a_middleware_waiting_past_its_timeout_gets_504(apache):
    apache.new_log()
    r = request(apache.port, "GET", "/static/slow/file.txt", headers=mw("wait"))
    assert r.status == 504, r
    apache.wait_for_log("MW00020")


def test_the_next_handler_runs_once(apache):
    r = request(apache.port, "GET", "/static/file.txt", headers=mw("twice"))
    assert r.status == 200, r
    assert r.body.startswith(b"second call: ErrorCode::InternalError"), r.body
    assert b"runs once" in r.body


@pytest.mark.allow_log("MW00056")
def test_a_middleware_may_not_change_the_target(apache):
    apache.new_log()
    r = request(apache.port, "GET", "/static/file.txt", headers=mw("retarget"))
    assert r.status == 200, r
    assert r.body.startswith(b"next failed: ErrorCode::InternalError"), r.body
    assert b"method and target" in r.body
    line = "\n".join(apache.wait_for_log("MW00056"))
    assert "/elsewhere" in line and "not its method or target" in line, line


# -- around CGI, mod_proxy and a component ------------------------------------

def backend_saw(response):
    """echo.cgi's seen and method lines, and the body it echoed."""
    assert response.status == 200, response
    lines = response.body.split(b"\n", 2)
    return lines[0].decode(), lines[1].decode(), lines[2] if len(lines) > 2 else b""


def test_the_request_a_middleware_changed_reaches_cgi(apache):
    r = request(apache.port, "GET", "/cgi/echo.cgi")
    seen, method, body = backend_saw(r)
    assert (seen, method, body) == ("seen 1", "method GET", b""), r
    assert r.header("x-via") == b"1"


def test_a_request_body_passes_through_to_cgi(apache):
    payload = bytes(range(256)) * 400
    r = request(apache.port, "POST", "/cgi/echo.cgi", body=payload)
    assert backend_saw(r)[2] == payload


def test_a_chunked_request_body_passes_through_to_cgi(apache):
    pieces = [b"first piece ", b"second piece ", b"third"]
    r = request(apache.port, "POST", "/cgi/echo.cgi", body=iter(pieces))
    assert backend_saw(r)[2] == b"".join(pieces)


def test_the_request_body_is_rewritten_on_its_way_to_cgi(apache):
    r = request(apache.port, "POST", "/cgi/echo.cgi", headers=mw("upper-request"),
                body=iter([b"make ", b"me ", b"loud"]))
    assert backend_saw(r)[2] == b"MAKE ME LOUD"


def test_a_proxied_response_passes_through(apache):
    r = request(apache.port, "GET", "/proxied/echo.cgi")
    seen, method, _ = backend_saw(r)
    assert (seen, method) == ("seen 1", "method GET"), r
    assert r.header("x-via") == b"1"


def test_a_request_body_passes_through_to_a_proxied_backend(apache):
    payload = b"sent through the proxy\n" * 1000
    r = request(apache.port, "POST", "/proxied/echo.cgi", body=payload)
    assert backend_saw(r)[2] == payload


def test_a_proxied_response_is_rewritten(apache):
    r = request(apache.port, "GET", "/proxied/echo.cgi", headers=mw("upper"))
    assert r.status == 200, r
    assert r.body.startswith(b"SEEN 1\nMETHOD GET"), r.body


def test_a_component_behind_a_middleware(apache):
    r = request(apache.port, "GET", "/component/echo")
    assert r.status == 200, r
    # The component saw the field the middleware added (hex of "1").
    assert b"header x-seen 31\n" in r.body, r.body
    assert r.header("x-via") == b"1"


def test_the_connection_goes_on_after_middleware_responses(apache):
    with Connection(apache.port) as conn:
        for words in ((), ("upper",), ("answer",), ("summary",), ()):
            r = conn.request("GET", "/static/file.txt", headers=mw(*words))
            assert r.status == 200, (words, r)
        r = conn.request("POST", "/cgi/echo.cgi", body=b"again")
        assert backend_saw(r)[2] == b"again"


# -- nesting -------------------------------------------------------------------

def test_middlewares_nest_in_section_order(apache):
    r = request(apache.port, "GET", "/nested/inner/file.txt")
    assert r.status == 200 and r.body == FILE, r
    # The inner one (depth 2) answered first, the outer one last.
    assert r.all("x-via") == [b"2", b"1"], r.headers


def test_the_inner_middleware_sees_what_the_outer_passed_on(apache):
    r = request(apache.port, "GET", "/nested/inner/file.txt", headers=mw("summary@2"))
    assert r.body == f"status 200, type text/plain, {len(FILE)} bytes\n".encode(), r.body
    assert r.all("x-via") == [b"1"], r.headers


def test_an_inner_middleware_that_answers_is_wrapped_by_the_outer(apache):
    r = request(apache.port, "GET", "/nested/inner/missing", headers=mw("answer@2"))
    assert r.status == 200, r
    assert r.body == b"answered by middleware 2\n"
    assert r.all("x-via") == [b"1"], r.headers


def test_the_outer_middleware_rewrites_what_the_inner_passed_back(apache):
    r = request(apache.port, "GET", "/nested/inner/missing", headers=mw("answer@2", "upper@1"))
    assert r.body == b"ANSWERED BY MIDDLEWARE 2\n", r.body


@pytest.mark.allow_log("MW00057", "MW00015")
def test_an_inner_trap_reaches_the_outer_as_an_error_response(apache):
    apache.new_log()
    r = request(apache.port, "GET", "/nested/inner/file.txt",
                headers=mw("trap-before@2", "summary@1"))
    assert r.status == 200, r
    assert r.body == b"status 500, type , 0 bytes\n", r.body
    apache.wait_for_log("MW00057")



# -- instances kept between requests -------------------------------------------

def instance_requests(conn, path, n):
    """The x-instance-requests of n requests in a row on `conn`."""
    seen = []
    for _ in range(n):
        r = conn.request("GET", path, headers=mw("count"))
        assert r.status == 200 and r.body == FILE, r
        seen.append(int(r.header("x-instance-requests")))
    return seen


def test_without_reuse_each_request_gets_a_fresh_middleware(apache):
    with Connection(apache.port) as conn:
        assert instance_requests(conn, "/static/file.txt", 3) == [1, 1, 1]


def test_a_section_with_instance_reuse_keeps_the_middlewares_instance(apache):
    with Connection(apache.port) as conn:
        # Three requests per instance (WasmInstanceReuse 3), then a new one.
        assert instance_requests(conn, "/static/reused/file.txt", 4) == [1, 2, 3, 1]
        # One that answered by itself was a clean end too: its instance
        # serves the next.
        r = conn.request("GET", "/static/reused/missing", headers=mw("answer"))
        assert r.body == b"answered by middleware 1\n", r
        assert instance_requests(conn, "/static/reused/file.txt", 1) == [3]


def test_each_reused_layer_keeps_its_own_instance(apache):
    with Connection(apache.port) as conn:
        for n in (1, 2, 3):
            r = conn.request("GET", "/nested/reused/file.txt", headers=mw("count"))
            assert r.status == 200 and r.body == FILE, r
            # The inner layer (from /nested/reused) answers first; the
            # section's reuse applies to both.
            assert r.all("x-via") == [b"2", b"1"], r.headers
            assert r.all("x-instance-requests") == [str(n).encode()] * 2, r.headers


@pytest.mark.allow_log("MW00012", "MW00015", "MW00020")
def test_a_reused_middleware_that_failed_is_not_kept(apache):
    with Connection(apache.port) as conn:
        assert instance_requests(conn, "/static/kept/file.txt", 2) == [1, 2]
        # A 500 closes the connection.
        r = conn.request("GET", "/static/kept/file.txt", headers=mw("trap-before"))
        assert r.status == 500, r
    with Connection(apache.port) as conn:
        assert instance_requests(conn, "/static/kept/file.txt", 2) == [1, 2]
        assert conn.request("GET", "/static/kept/file.txt", headers=mw("wait")).status == 504
    with Connection(apache.port) as conn:
        assert instance_requests(conn, "/static/kept/file.txt", 1) == [1]


def test_off_leaves_no_middleware(apache):
    r = request(apache.port, "GET", "/nested/inner/off/file.txt")
    assert r.status == 200 and r.body == FILE, r
    assert r.header("x-via") is None


def test_a_middleware_served_as_a_component_has_no_next_handler(apache):
    r = request(apache.port, "GET", "/as-component/x", headers=mw("retarget"))
    assert r.status == 200, r
    assert r.body.startswith(b"next failed: ErrorCode::InternalError"), r.body
    assert b"no next handler" in r.body and b"WasmMiddleware" in r.body, r.body
    # One that answers by itself is an ordinary component.
    r = request(apache.port, "GET", "/as-component/x", headers=mw("answer"))
    assert (r.status, r.body) == (200, b"answered by middleware 1\n"), r


def test_the_status_page_counts_middleware_requests(apache):
    request(apache.port, "GET", "/static/file.txt")
    page = request(apache.port, "GET", "/wasm-status?auto").body.decode()
    assert "middleware_test_guest.wasm" in page, page
