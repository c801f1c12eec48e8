"""Apache's own features around a wasm-handler location work as they do
around any content handler: mod_headers adds and edits headers both ways,
mod_deflate compresses what a component sends (streamed too), mod_auth_basic
keeps unauthenticated requests away from the guest and tells it the user,
and mod_rewrite maps old URLs onto component locations."""

import base64
import gzip
import json
import subprocess
import zlib
from urllib.parse import urlsplit

import pytest

from apache import MODULES, WASM_DIR, Site
from echo import parse_echo
from http1 import request

# The harness loads mpm, authz_core and mod_wasm; the rest is loaded here.
# {guest}, {hello}, {dir} are Apache.config_text's to fill in.
SITE = f"""
LoadModule headers_module {MODULES}/mod_headers.so
LoadModule filter_module {MODULES}/mod_filter.so
LoadModule deflate_module {MODULES}/mod_deflate.so
LoadModule auth_basic_module {MODULES}/mod_auth_basic.so
LoadModule authn_core_module {MODULES}/mod_authn_core.so
LoadModule authn_file_module {MODULES}/mod_authn_file.so
LoadModule authz_user_module {MODULES}/mod_authz_user.so
LoadModule rewrite_module {MODULES}/mod_rewrite.so

<Location /t>
    SetHandler wasm-handler
    WasmComponent {{guest}}
</Location>

# Security headers as a site would set them around an application.
# "always" also reaches error responses Apache makes itself.
<Location /secure>
    SetHandler wasm-handler
    WasmComponent {{guest}}
    Header always set Strict-Transport-Security "max-age=63072000; includeSubDomains"
    Header always set X-Frame-Options DENY
    Header set X-Content-Type-Options nosniff
    Header set Content-Security-Policy "default-src 'self'"
    # Edits a header the guest set, each of its values.
    Header edit Set-Cookie "^(.*)$" "$1; Secure"
    Header unset X-Bytes
    RequestHeader set X-From-Apache "set by mod_headers"
    RequestHeader unset X-Secret
</Location>

# Compression by type: the guest's Content-Type chooses.
<Location /gz>
    SetHandler wasm-handler
    WasmComponent {{guest}}
    AddOutputFilterByType DEFLATE text/plain
</Location>
# A Content-Type with parameters (text/plain; charset=utf-8).
<Location /gz/hello>
    WasmComponent {{hello}}
</Location>
# Compression of whatever the location answers.
<Location /gzall>
    SetHandler wasm-handler
    WasmComponent {{guest}}
    SetOutputFilter DEFLATE
</Location>

<Location /json>
    SetHandler wasm-handler
    WasmComponent {WASM_DIR}/json_api.wasm
</Location>
<Location /private>
    SetHandler wasm-handler
    WasmComponent {WASM_DIR}/json_api.wasm
    AuthType Basic
    AuthName "wasm area"
    AuthBasicProvider file
    AuthUserFile {{dir}}/htpasswd
    Require valid-user
</Location>
# Authenticated is not enough here: mod_authz_user's "Require user".
<Location /bob>
    SetHandler wasm-handler
    WasmComponent {WASM_DIR}/json_api.wasm
    AuthType Basic
    AuthName "bob's area"
    AuthUserFile {{dir}}/htpasswd
    Require user bob
</Location>

RewriteEngine on
# An old URL space served by a component; [PT] lets <Location> match the
# rewritten path.
RewriteRule "^/old/(.*)$" "/t/$1" [PT]
# A versioned API path onto a guest that routes on its path, and a front
# controller that gets the route in its query.
RewriteRule "^/v1/(.*)$" "/json/$1" [PT]
RewriteRule "^/front/(.*)$" "/t/echo?route=$1" [PT,QSA]
# A permanent redirect; the query string goes along by default.
RewriteRule "^/moved/(.*)$" "/t/$1" [R=301,L]
"""


def write_passwords(server):
    # The children (www-data) read the password file: in the server's own
    # world-readable directory, not pytest's private tmp_path.
    htpasswd = server.dir / "htpasswd"
    subprocess.run(["htpasswd", "-cbB", str(htpasswd), "alice", "wonderland"],
                   check=True, capture_output=True)
    subprocess.run(["htpasswd", "-bB", str(htpasswd), "bob", "builder"],
                   check=True, capture_output=True)
    htpasswd.chmod(0o644)


@pytest.fixture(scope="module")
def apache_site():
    return Site(SITE, "features", write_passwords)


@pytest.fixture(scope="module")
def mpm():
    return "event"


def basic(user, password):
    return ("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())


SECURITY = {
    "strict-transport-security": b"max-age=63072000; includeSubDomains",
    "x-frame-options": b"DENY",
    "x-content-type-options": b"nosniff",
    "content-security-policy": b"default-src 'self'",
}


# --- mod_headers ---------------------------------------------------------

def test_security_headers_on_component_responses(apache):
    r = request(apache.port, "GET", "/secure/headers")
    assert r.status == 200 and r.body == b"headers\n"
    for name, value in SECURITY.items():
        assert r.all(name) == [value], name
    # The guest's own headers are there, edited where configured.
    assert r.header("content-type") == b"text/x-test"
    assert r.all("x-multi") == [b"one", b"two"]
    assert r.all("set-cookie") == [b"a=1; Path=/; Secure", b"b=2; Path=/; Secure"]
    assert r.header("x-bytes") is None
    # Outside /secure the same guest answers without any of them.
    plain = request(apache.port, "GET", "/t/headers")
    assert not any(plain.header(name) for name in SECURITY)
    assert plain.all("set-cookie") == [b"a=1; Path=/", b"b=2; Path=/"]


def test_a_guest_error_status_gets_the_headers_too(apache):
    # A 404 the guest answers itself is its response, not Apache's error
    # document: every header applies, as for any handler's own 404.
    r = request(apache.port, "GET", "/secure/status?code=404")
    assert r.status == 404 and r.body == b"status 404\n"
    for name, value in SECURITY.items():
        assert r.all(name) == [value], name


@pytest.mark.allow_log("MW00012")
def test_always_headers_reach_apaches_own_error_response(apache):
    # The guest traps: Apache sends its 500 page. Only "always" headers are
    # on responses Apache generates (mod_headers' documented rule).
    r = request(apache.port, "GET", "/secure/trap")
    assert r.status == 500
    assert b"Internal Server Error" in r.body
    assert r.header("strict-transport-security") == SECURITY["strict-transport-security"]
    assert r.header("x-frame-options") == b"DENY"
    assert r.header("x-content-type-options") is None
    lines = apache.wait_for_log("MW00012")
    assert any("MW00012" in line and "/secure/trap" in line for line in lines), lines


def test_request_headers_set_by_apache_reach_the_guest(apache):
    r = request(apache.port, "GET", "/secure/echo",
                headers=[("X-From-Apache", "forged by the client"), ("X-Secret", "hidden"),
                         ("X-Kept", "kept")])
    assert r.status == 200
    headers = dict(parse_echo(r.body)[1])
    assert headers["x-from-apache"] == b"set by mod_headers"
    assert "x-secret" not in headers
    assert headers["x-kept"] == b"kept"
    # Elsewhere the client's values arrive untouched.
    headers = dict(parse_echo(request(apache.port, "GET", "/t/echo",
                                      headers=[("X-Secret", "hidden")]).body)[1])
    assert headers["x-secret"] == b"hidden" and "x-from-apache" not in headers


# --- mod_deflate ---------------------------------------------------------

GZIP = [("Accept-Encoding", "gzip")]


def test_deflate_compresses_a_component_response_by_type(apache):
    plain = request(apache.port, "GET", "/gz/hello/x")
    assert plain.status == 200 and plain.header("content-encoding") is None
    assert plain.body == b"Hello from WebAssembly! You asked for /gz/hello/x\n"
    zipped = request(apache.port, "GET", "/gz/hello/x", headers=GZIP)
    assert zipped.status == 200
    assert zipped.header("content-encoding") == b"gzip"
    assert b"accept-encoding" in zipped.header("vary").lower()
    assert zipped.body[:2] == b"\x1f\x8b"
    assert gzip.decompress(zipped.body) == plain.body
    # The guest's /big is application/octet-stream: not compressed here.
    other = request(apache.port, "GET", "/gz/big?mib=1", headers=GZIP)
    assert other.header("content-encoding") is None and len(other.body) == 1 << 20


def test_deflate_of_a_large_streamed_response_is_byte_exact(apache):
    plain = request(apache.port, "GET", "/gzall/big?mib=8")
    assert plain.header("content-encoding") is None
    assert plain.body == bytes(range(256)) * 4096 * 8
    zipped = request(apache.port, "GET", "/gzall/big?mib=8", headers=GZIP)
    assert zipped.status == 200 and zipped.complete
    assert zipped.header("content-encoding") == b"gzip"
    assert b"accept-encoding" in zipped.header("vary").lower()
    # The pattern compresses well: it really was compressed, not passed.
    assert len(zipped.body) < len(plain.body) // 10
    assert gzip.decompress(zipped.body) == plain.body


def test_deflate_keeps_a_slow_response_streaming(apache):
    # /gz/slow: "first\n", a pause of a second, "last\n", as text/plain.
    # mod_deflate flushes what it has at each of the guest's flushes, so
    # "first\n" decompresses from what arrives before the pause.
    r = request(apache.port, "GET", "/gz/slow", headers=GZIP, keep_chunks=True)
    assert r.status == 200 and r.header("content-encoding") == b"gzip"
    assert gzip.decompress(r.body) == request(apache.port, "GET", "/gz/slow").body
    assert gzip.decompress(r.body) == b"first\nlast\n"
    early = [data for at, data in r.chunks if at < r.chunks[0][0] + 0.5]
    assert r.last_byte_at - r.chunks[0][0] > 0.6
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert inflater.decompress(b"".join(early)) == b"first\n"


# --- mod_auth_basic, mod_authn_file, mod_authz_user ----------------------

def guest_lines(apache, path):
    """The json-api guest logs one info line per request it handles."""
    return [line for line in apache.peek_log() if f"json-api: GET {path}" in line]


def test_no_credentials_is_401_and_the_guest_does_not_run(apache):
    r = request(apache.port, "GET", "/private/api/whoami")
    assert r.status == 401
    assert r.header("www-authenticate") == b'Basic realm="wasm area"'
    # Apache's own page, not anything from the guest.
    assert b"could not verify that you" in r.body and b"client_addr" not in r.body
    # A request that does reach the guest, to know its line would be there.
    ok = request(apache.port, "GET", "/private/api/users/5", headers=[basic("alice", "wonderland")])
    assert ok.status == 200 and json.loads(ok.body) == {"id": 5, "name": "user 5"}
    apache.wait_for_log("json-api: GET /private/api/users/5")
    assert len(guest_lines(apache, "/private/api/users/5")) == 1
    assert guest_lines(apache, "/private/api/whoami") == []


# Password mismatch, user not found, authorization failure: Apache logs
# each at error.
@pytest.mark.allow_log("AH01617", "AH01618", "AH01631")
def test_wrong_password_is_401_and_the_guest_does_not_run(apache):
    r = request(apache.port, "GET", "/private/api/whoami", headers=[basic("alice", "nope")])
    assert r.status == 401 and b"client_addr" not in r.body
    # Unknown user, and a known one that "Require user bob" refuses.
    assert request(apache.port, "GET", "/private/api/whoami",
                   headers=[basic("mallory", "x")]).status == 401
    r = request(apache.port, "GET", "/bob/api/whoami", headers=[basic("alice", "wonderland")])
    assert r.status == 401
    lines = apache.wait_for_log("AH01631")
    # Password mismatch, user not found, authorization failure.
    for tag in ("AH01617", "AH01618", "AH01631"):
        assert any(tag in line for line in lines), (tag, lines)
    assert not [line for line in lines if "json-api:" in line], lines


def test_the_guest_sees_the_authenticated_user(apache):
    r = request(apache.port, "GET", "/private/api/whoami", headers=[basic("alice", "wonderland")])
    assert r.status == 200
    facts = json.loads(r.body)
    assert facts["user"] == "alice"
    assert facts["location"] == "/private"
    r = request(apache.port, "GET", "/bob/api/whoami", headers=[basic("bob", "builder")])
    assert r.status == 200
    facts = json.loads(r.body)
    assert facts["user"] == "bob" and facts["location"] == "/bob"
    # Without a login, the same guest has no user.
    facts = json.loads(request(apache.port, "GET", "/json/api/whoami").body)
    assert facts["user"] is None


# --- mod_rewrite ---------------------------------------------------------

def test_a_rewritten_url_is_served_by_the_component(apache):
    r = request(apache.port, "GET", "/old/sub/echo?x=1&y=%20z")
    assert r.status == 200
    facts, _ = parse_echo(r.body)
    assert facts["method"] == "GET"
    # The guest sees the rewritten target (README "What the guest sees"),
    # as a proxied backend would: it answers for the URL Apache mapped.
    assert facts["target"] == "/t/sub/echo?x=1&y=%20z"


def test_a_guest_routes_on_the_rewritten_path(apache):
    r = request(apache.port, "GET", "/v1/api/users/5")
    assert r.status == 200, r.body
    assert json.loads(r.body) == {"id": 5, "name": "user 5"}
    r = request(apache.port, "GET", "/front/users/%C3%A9?x=1")
    facts, _ = parse_echo(r.body)
    # mod_rewrite puts the decoded path into the query as it is (it refuses
    # spaces and control characters itself); what no request target may
    # hold is percent-encoded again.
    assert facts["target"] == "/t/echo?route=users/%C3%A9&x=1"


def test_a_rewrite_redirect_keeps_the_query_string(apache):
    authority = f"127.0.0.1:{apache.port}"
    r = request(apache.port, "GET", "/moved/echo?x=1&y=%20z", authority=authority)
    assert r.status == 301
    # Absolute, built from Host (UseCanonicalName Off).
    assert r.header("location") == f"http://{authority}/t/echo?x=1&y=%20z".encode()
    # Apache's redirect page: the guest did not answer.
    assert b"Moved Permanently" in r.body and b"method GET" not in r.body
    moved = urlsplit(r.header("location").decode())
    followed = request(apache.port, "GET", f"{moved.path}?{moved.query}", authority=authority)
    assert followed.status == 200
    facts, _ = parse_echo(followed.body)
    assert facts["target"] == "/t/echo?x=1&y=%20z"
