"""Existing apps, unchanged, built by `mod_wasm build-python` (a Flask app)
and `mod_wasm build-js` (a Hono app): their example snippets as `make run`
includes them (one instance per 1000 requests), and the same components
with a fresh instance per request."""

import hashlib
import json
import urllib.parse

import pytest

from apache import ROOT, WASM_DIR, Site
from http1 import request
from streaming import MIB, pattern_upload

CONFS = [ROOT / "examples/flask-app/flask-app.conf", ROOT / "examples/hono-app/hono-app.conf"]
SITE = f"""
Define MOD_WASM_WASM_DIR {WASM_DIR}
Include {CONFS[0]}
Include {CONFS[1]}
<Location /fresh/flask>
    SetHandler wasm-handler
    WasmComponent {WASM_DIR}/flask_app.wasm
</Location>
"""

# (where, the framework). Flask takes its mount point from SCRIPT_NAME, so
# it serves below any <Location>; the Hono app names its base path itself
# (basePath("/hono")), so it has one place.
APPS = [
    ("/flask", "Flask"),
    ("/fresh/flask", "Flask"),
    ("/hono", "Hono"),
]


@pytest.fixture(scope="module")
def apache_site():
    return Site(SITE.replace("{", "{{").replace("}", "}}"), "existing-apps")


@pytest.fixture(scope="module")
def mpm():
    return "event"


@pytest.mark.parametrize("base,framework", APPS)
def test_the_index_and_hello_answer(apache, base, framework):
    r = request(apache.port, "GET", f"{base}/")
    assert r.status == 200, r.body
    assert framework.encode() in r.body
    r = request(apache.port, "GET", f"{base}/hello")
    assert (r.status, r.body) == (200, f"Hello from {framework}!\n".encode())


def test_flask_renders_its_templates_with_urls_below_its_location(apache):
    r = request(apache.port, "GET", "/flask/", headers=[("User-Agent", "pytest-agent")])
    assert r.status == 200
    assert r.header("content-type") == b"text/html; charset=utf-8"
    # base.html extended by index.html, url_for with SCRIPT_NAME, the header.
    assert b"<title>Flask on mod_wasm</title>" in r.body
    assert b'href="/flask/users/1"' in r.body
    assert b"You are pytest-agent." in r.body


@pytest.mark.parametrize("base,framework", APPS)
def test_a_path_parameter_reaches_the_view(apache, base, framework):
    r = request(apache.port, "GET", f"{base}/users/42?x=1")
    assert r.status == 200, r.body
    data = json.loads(r.body)
    assert str(data["id"]) == "42"
    assert data["name"] == "user 42"
    assert data["url"].endswith(f"{base}/users/42?x=1")


@pytest.mark.parametrize("base,framework", APPS)
def test_a_json_body_goes_in_and_comes_out(apache, base, framework):
    sent = {"name": "zoë", "tags": ["a", "b"], "n": 3}
    r = request(apache.port, "POST", f"{base}/api/echo", body=json.dumps(sent).encode(),
                headers=[("Content-Type", "application/json")])
    assert r.status == 200, r.body
    assert r.header("content-type").startswith(b"application/json")
    assert json.loads(r.body) == {"received": sent, "keys": 3}


@pytest.mark.parametrize("base,framework", APPS)
def test_a_form_post_is_parsed(apache, base, framework):
    form = urllib.parse.urlencode({"name": "Ada <Lovelace>"}).encode()
    r = request(apache.port, "POST", f"{base}/greet", body=form,
                headers=[("Content-Type", "application/x-www-form-urlencoded")])
    assert r.status == 200, r.body
    # Escaped by each framework's own means (Jinja, the app's escape()).
    assert b"Hello, Ada &" in r.body and b"Lovelace&" in r.body
    assert b"<Lovelace>" not in r.body


@pytest.mark.parametrize("base,framework", APPS)
def test_a_streamed_response_arrives_whole(apache, base, framework):
    chunks = []
    r = request(apache.port, "GET", f"{base}/count/300", on_chunk=chunks.append)
    assert r.status == 200
    assert b"".join(chunks) == "".join(f"line {i}\n" for i in range(300)).encode()


@pytest.mark.parametrize("base,framework", APPS)
def test_a_body_over_10_mib_is_streamed_to_the_app(apache, base, framework):
    pieces, digest = pattern_upload(12 * MIB, 256 * 1024)
    r = request(apache.port, "POST", f"{base}/upload", body=iter(pieces),
                headers=[("Content-Type", "application/octet-stream")])
    assert r.status == 200, r.body
    assert json.loads(r.body) == {"bytes": 12 * MIB, "sha256": digest}


@pytest.mark.allow_log("MW00015")
@pytest.mark.parametrize("base,framework", APPS)
def test_an_exception_in_a_view_is_a_500_with_the_traceback_logged(apache, base, framework):
    r = request(apache.port, "GET", f"{base}/fail")
    assert r.status == 500
    assert b"fails on purpose" not in r.body  # the client sees no internals
    # Flask's traceback names the view; Hono's onError logs the error.
    apache.wait_for_log("in fail" if framework == "Flask" else "Error: this handler fails on purpose")
    apache.wait_for_log("MW00015: guest stderr for " + f"{base}/fail")
    # The instance (reused or not) serves the next request.
    again = request(apache.port, "GET", f"{base}/users/1")
    assert again.status == 200


def test_every_url_the_snippets_offer_answers(apache):
    # Their "# try:" lines, which `make run` prints (test_examples.py checks
    # the other examples').
    paths = [line.removeprefix("# try:").strip() for conf in CONFS
             for line in conf.read_text().splitlines() if line.startswith("# try:")]
    assert len(paths) == 4, paths
    for path in paths:
        r = request(apache.port, "GET", path)
        assert 200 <= r.status < 300, (path, r.status, r.body[:200])
