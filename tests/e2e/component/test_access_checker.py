"""WasmAccessChecker: a component decides whether a request goes on to
whatever serves it — a static file, a CGI script, a mod_proxy backend, a
WasmComponent — after Apache's own access control let it through
(docs/directives/WasmAccessChecker.md). The checker is the test guest
(tests/guest/src/checker.rs), which answers the verdict the request's
`x-verdict` field names, or the WASI 0.3 test guest. Every test runs under
each MPM."""

import base64
import hashlib
import re

import pytest

from apache import MODULES, WASM_DIR, Site
from http1 import Connection, request

P3 = WASM_DIR / "p3_test_guest.wasm"

SITE = f"""
LoadModule alias_module {MODULES}/mod_alias.so
LoadModule mime_module {MODULES}/mod_mime.so
LoadModule dir_module {MODULES}/mod_dir.so
LoadModule headers_module {MODULES}/mod_headers.so
LoadModule authz_host_module {MODULES}/mod_authz_host.so
LoadModule authn_core_module {MODULES}/mod_authn_core.so
LoadModule authn_file_module {MODULES}/mod_authn_file.so
LoadModule auth_basic_module {MODULES}/mod_auth_basic.so
LoadModule authz_user_module {MODULES}/mod_authz_user.so
LoadModule cgid_module {MODULES}/mod_cgid.so
LoadModule proxy_module {MODULES}/mod_proxy.so
LoadModule proxy_http_module {MODULES}/mod_proxy_http.so
TypesConfig /etc/mime.types
ScriptSock {{dir}}/run/cgid.sock

Alias /static {{dir}}/htdocs
ScriptAlias /cgi/ {{dir}}/cgi-bin/
# The same scripts, unchecked: the proxy's backend. Its connections are not
# kept: a worker-MPM child would wait on its own kept-alive backend
# connection when it stops.
ScriptAlias /backend/ {{dir}}/cgi-bin/
ProxyPass /proxied/ http://127.0.0.1:{{port}}/backend/ disablereuse=On

DirectoryIndex index.html
<Location /static>
    WasmAccessChecker {{guest}}
    Header set X-Site-Policy strict
    <If "%{{{{QUERY_STRING}}}} == 'public'">
        WasmAccessChecker Off
    </If>
</Location>
<Location /static/open>
    WasmAccessChecker Off
</Location>
<Location /static/nobody>
    Require ip 192.0.2.1
</Location>
<Location /static/slow>
    WasmTimeout 1
</Location>
<Location /static/p3>
    WasmAccessChecker {P3}
</Location>
<Location /static/reused>
    WasmInstanceReuse 100
</Location>
<Location /cgi>
    WasmAccessChecker {{guest}}
</Location>
<Location /cgi/env.cgi/members>
    AuthType Basic
    AuthName "members"
    AuthUserFile {{dir}}/passwords
    Require valid-user
</Location>
<Location /cgi/env.cgi/p3>
    WasmAccessChecker {P3}
</Location>
<Location /proxied>
    WasmAccessChecker {{guest}}
</Location>
<Location /hello>
    SetHandler wasm-handler
    WasmComponent {{hello}}
    WasmAccessChecker {{guest}}
</Location>
# Unchecked, except when the request asks for it.
<Location /guarded-on-demand>
    SetHandler wasm-handler
    WasmComponent {{hello}}
    <If "-n req('x-guard')">
        WasmAccessChecker {{guest}}
    </If>
</Location>
<Location /wasm-status>
    SetHandler wasm-status
</Location>
"""

FILE = b"the static file's content\n" * 10
INDEX = b"<p>the directory's index</p>\n"

# What the backend saw: the checker's Wasm-Auth-* fields, a field of its
# answer that is not one, Apache's user, and the request body's length.
ENV_CGI = """#!/bin/sh
printf 'Content-Type: text/plain\\n\\n'
printf 'user %s\\n' "$HTTP_WASM_AUTH_USER"
printf 'seen %s\\n' "$HTTP_WASM_AUTH_SEEN"
printf 'wasi %s\\n' "$HTTP_WASM_AUTH_WASI"
printf 'not-passed %s\\n' "$HTTP_X_NOT_PASSED"
printf 'remote-user %s\\n' "$REMOTE_USER"
printf 'body %s\\n' "$(wc -c | tr -d ' ')"
"""


def prepare(server):
    htdocs = server.dir / "htdocs"
    for name in ("open", "nobody", "slow", "p3", "reused"):
        (htdocs / name).mkdir(parents=True)
        (htdocs / name / "file.txt").write_bytes(FILE)
    (htdocs / "file.txt").write_bytes(FILE)
    (htdocs / "docs").mkdir()
    (htdocs / "docs" / "index.html").write_bytes(INDEX)
    cgi = server.dir / "cgi-bin"
    cgi.mkdir()
    (cgi / "env.cgi").write_text(ENV_CGI)
    (cgi / "env.cgi").chmod(0o755)
    sha = base64.b64encode(hashlib.sha1(b"secret").digest()).decode()
    (server.dir / "passwords").write_text(f"alice:{{SHA}}{sha}\n")
    (server.dir / "passwords").chmod(0o644)


@pytest.fixture(scope="module")
def apache_site():
    return Site(SITE, "access-checker", prepare)


def verdict(name, *more):
    return [("x-verdict", name), *more]


def backend_saw(response):
    """The env.cgi lines as a dict."""
    assert response.status == 200, response
    return dict(line.split(" ", 1) if " " in line else (line, "")
                for line in response.body.decode().splitlines())


# -- the verdicts ------------------------------------------------------------

def test_an_allowed_request_gets_the_static_file(apache):
    r = request(apache.port, "GET", "/static/file.txt", headers=verdict("allow"))
    assert r.status == 200, r
    assert r.body == FILE
    # Nothing of the allowing answer reaches the client.
    assert r.header("x-not-passed") is None
    assert r.header("wasm-auth-user") is None


def test_a_refusal_is_sent_as_the_checker_wrote_it(apache):
    r = request(apache.port, "GET", "/static/file.txt", headers=verdict("deny"))
    assert r.status == 403, r
    assert r.body == b"refused by the checker\n"
    assert r.header("content-type") == b"text/x-refusal"
    assert r.header("x-checker") == b"0.2"
    assert r.header("content-length") == str(len(r.body)).encode()
    log = "\n".join(apache.wait_for_log("is refused with 403"))
    assert "/static/file.txt" in log and "MW00055" in log, log


def test_a_401_keeps_its_www_authenticate(apache):
    r = request(apache.port, "GET", "/static/file.txt", headers=verdict("login"))
    assert r.status == 401, r
    assert r.header("www-authenticate") == b'Bearer realm="test"'
    assert r.body == b"log in first\n"


def test_a_redirect_to_a_login_page(apache):
    r = request(apache.port, "GET", "/static/file.txt?x=1", headers=verdict("redirect"))
    assert r.status == 302, r
    assert r.header("location") == b"/login?from=/static/file.txt?x=1"
    assert FILE not in r.body


def test_a_refused_head_request_has_no_body(apache):
    r = request(apache.port, "HEAD", "/static/file.txt", headers=verdict("deny"))
    assert r.status == 403, r
    assert r.body == b""
    assert r.header("x-checker") == b"0.2"


def test_a_refused_request_body_is_read_and_the_connection_goes_on(apache):
    with Connection(apache.port) as conn:
        r = conn.request("POST", "/cgi/env.cgi", headers=verdict("deny"), body=b"x" * 100_000)
        assert r.status == 403, r
        assert r.body == b"refused by the checker\n"
        again = conn.request("GET", "/static/file.txt", headers=verdict("allow"))
        assert again.status == 200 and again.body == FILE, again


def test_a_refusal_goes_through_the_output_filters(apache):
    r = request(apache.port, "GET", "/static/file.txt", headers=verdict("deny"))
    assert r.status == 403, r
    assert r.header("x-site-policy") == b"strict"


# mod_dir serves a directory's index by a subrequest whose answer replaces
# the request's own (ap_internal_fast_redirect), and answers a directory
# without its slash with a redirect: neither gets past a refusal.
def test_a_directory_index_is_checked(apache):
    r = request(apache.port, "GET", "/static/docs/", headers=verdict("deny"))
    assert r.status == 403 and r.body == b"refused by the checker\n", r
    r = request(apache.port, "GET", "/static/docs/", headers=verdict("allow"))
    assert r.status == 200 and r.body == INDEX, r


def test_a_directory_without_its_slash_is_refused_not_redirected(apache):
    r = request(apache.port, "GET", "/static/docs", headers=verdict("deny"))
    assert r.status == 403 and r.body == b"refused by the checker\n", r
    r = request(apache.port, "GET", "/static/docs", headers=verdict("allow"))
    assert r.status == 301, r


def test_every_request_is_checked_not_just_the_first_on_a_connection(apache):
    with Connection(apache.port) as conn:
        for name, status in [("allow", 200), ("deny", 403), ("allow", 200), ("login", 401)]:
            r = conn.request("GET", "/static/file.txt", headers=verdict(name))
            assert r.status == status, (name, r)


# -- what the backend gets ---------------------------------------------------

def test_the_checker_s_fields_reach_a_cgi_script(apache):
    r = request(apache.port, "POST", "/cgi/env.cgi?q=1", body=b"y" * 5000,
                headers=verdict("allow", ("x-user", "bob")))
    saw = backend_saw(r)
    assert saw["user"] == "bob"
    # The checker got the head, the client and no body; the script all of it.
    assert saw["seen"] == "POST /cgi/env.cgi?q=1 from 127.0.0.1 user - body 0", saw
    assert saw["body"] == "5000", saw
    assert saw["not-passed"] == "", saw


def test_a_client_cannot_forge_the_checker_s_fields(apache):
    r = request(apache.port, "GET", "/cgi/env.cgi",
                headers=verdict("allow", ("Wasm-Auth-User", "mallory"),
                                ("wasm-auth-wasi", "forged")))
    saw = backend_saw(r)
    assert saw["user"] == "checked", saw
    assert saw["wasi"] == "", saw


def test_the_checker_runs_after_apache_authenticated_the_user(apache):
    # Apache asks first: without credentials the checker is never asked.
    r = request(apache.port, "GET", "/cgi/env.cgi/members", headers=verdict("deny"))
    assert r.status == 401, r
    assert r.header("www-authenticate") == b'Basic realm="members"'
    assert b"refused by the checker" not in r.body
    # With them, the checker sees Apache's user, and may still refuse.
    credentials = ("Authorization", "Basic " + base64.b64encode(b"alice:secret").decode())
    saw = backend_saw(request(apache.port, "GET", "/cgi/env.cgi/members",
                              headers=verdict("allow", credentials)))
    assert saw["seen"] == "GET /cgi/env.cgi/members from 127.0.0.1 user alice body 0", saw
    assert saw["remote-user"] == "alice", saw
    r = request(apache.port, "GET", "/cgi/env.cgi/members", headers=verdict("deny", credentials))
    assert r.status == 403 and r.body == b"refused by the checker\n", r


def test_the_checker_guards_a_proxied_backend(apache):
    saw = backend_saw(request(apache.port, "GET", "/proxied/env.cgi",
                              headers=verdict("allow", ("x-user", "carol"))))
    # mod_proxy passed the checker's fields on to the backend.
    assert saw["user"] == "carol", saw
    assert saw["seen"].startswith("GET /proxied/env.cgi from 127.0.0.1"), saw
    r = request(apache.port, "GET", "/proxied/env.cgi", headers=verdict("deny"))
    assert r.status == 403 and r.body == b"refused by the checker\n", r


def test_the_checker_guards_a_wasm_component(apache):
    r = request(apache.port, "GET", "/hello", headers=verdict("allow"))
    assert r.status == 200 and b"Hello" in r.body, r
    r = request(apache.port, "GET", "/hello", headers=verdict("deny"))
    assert r.status == 403 and r.body == b"refused by the checker\n", r


# -- composed with Apache's configuration ------------------------------------

@pytest.mark.allow_log("AH01630")
def test_require_refuses_before_the_checker_is_asked(apache):
    r = request(apache.port, "GET", "/static/nobody/file.txt", headers=verdict("allow"))
    assert r.status == 403, r
    assert FILE not in r.body
    log = "\n".join(apache.wait_for_log("AH01630"))
    assert "htdocs/nobody/file.txt" in log, log


def test_off_in_a_nested_section_and_in_an_if(apache):
    deny = verdict("deny")
    assert request(apache.port, "GET", "/static/open/file.txt", headers=deny).body == FILE
    assert request(apache.port, "GET", "/static/file.txt?public", headers=deny).body == FILE
    r = request(apache.port, "GET", "/static/file.txt?private", headers=deny)
    assert r.status == 403 and r.body == b"refused by the checker\n", r


def test_a_checker_only_inside_an_if(apache):
    assert request(apache.port, "GET", "/guarded-on-demand", headers=verdict("deny")).status == 200
    r = request(apache.port, "GET", "/guarded-on-demand",
                headers=verdict("deny", ("x-guard", "1")))
    assert r.status == 403 and r.body == b"refused by the checker\n", r


def test_a_wasi_0_3_checker(apache):
    assert request(apache.port, "GET", "/static/p3/file.txt",
                   headers=verdict("allow")).body == FILE
    r = request(apache.port, "GET", "/static/p3/file.txt", headers=verdict("deny"))
    assert r.status == 403 and r.body == b"refused by a WASI 0.3 checker\n", r
    saw = backend_saw(request(apache.port, "GET", "/cgi/env.cgi/p3", headers=verdict("allow")))
    assert saw["wasi"] == "0.3", saw


def test_a_checker_with_reused_instances(apache):
    with Connection(apache.port) as conn:
        for name, status in [("allow", 200), ("deny", 403)] * 3:
            r = conn.request("GET", "/static/reused/file.txt", headers=verdict(name))
            assert r.status == status, (name, r)


# -- a checker that fails refuses ---------------------------------------------

@pytest.mark.allow_log("MW00012")
def test_a_trapping_checker_refuses_with_500_and_nothing_leaks(apache):
    r = request(apache.port, "GET", "/static/file.txt", headers=verdict("trap"))
    assert r.status == 500, r
    assert FILE not in r.body
    log = "\n".join(apache.wait_for_log("MW00012"))
    assert "/static/file.txt" in log, log
    # The next request is served as ever.
    assert request(apache.port, "GET", "/static/file.txt", headers=verdict("allow")).body == FILE


@pytest.mark.allow_log("MW00020")
def test_a_looping_checker_times_out_with_504(apache):
    r = request(apache.port, "GET", "/static/slow/file.txt", headers=verdict("spin"))
    assert r.status == 504, r
    assert FILE not in r.body
    apache.wait_for_log("MW00020")


@pytest.mark.allow_log("MW00053")
def test_a_refusal_too_big_to_keep_is_a_500(apache):
    r = request(apache.port, "GET", "/static/file.txt", headers=verdict("huge"))
    assert r.status == 500, r
    assert b"rrrr" not in r.body
    log = "\n".join(apache.wait_for_log("MW00053"))
    assert "more than a refusal may hold" in log, log


@pytest.mark.allow_log("MW00012")
def test_an_informational_answer_is_a_500(apache):
    r = request(apache.port, "GET", "/static/file.txt", headers=verdict("informational"))
    assert r.status == 500, r
    assert FILE not in r.body
    log = "\n".join(apache.wait_for_log("MW00012"))
    assert "status 103, which is not a final HTTP status" in log, log


# -- the status page ---------------------------------------------------------

def test_the_status_page_counts_the_checker(apache):
    before = checker_requests(apache)
    for _ in range(3):
        request(apache.port, "GET", "/static/file.txt", headers=verdict("allow"))
    assert checker_requests(apache) >= before + 3


def checker_requests(apache):
    r = request(apache.port, "GET", "/wasm-status?auto")
    assert r.status == 200, r
    fields = dict(line.split(": ", 1) for line in r.body.decode().splitlines() if ": " in line)
    [key] = [k for k, v in fields.items() if re.fullmatch(r"Location\d+", k) and v == "/static"]
    return int(fields[key + "Requests"])
