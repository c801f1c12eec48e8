"""A stock CPython for WASI preview1 (scripts/fetch-cpython-wasi) in legacy
CGI mode, configured as VMware's mod_wasm Python demo was: the interpreter
as WasmModule, the app's folder mapped, the script as WasmArg, CGI on. A
print() script, a WSGI app through wsgiref's CGIHandler, and Flask through
CGIHandler with its bytecode cached in a writable folder shared by every
request (PYTHONPYCACHEPREFIX)."""

import os
import subprocess

import pytest

from apache import ROOT, Site
from http1 import request

CPYTHON = ROOT / "target/tools/cpython/python-3.12.0.wasm"
SITE_PACKAGES = ROOT / "target/tools/cpython/site-packages"

HELLO = 'print("Content-Type: text/plain")\nprint()\nprint("hello")\n'

# A WSGI app with no framework: environ from CGI, the body from stdin.
WSGI = """\
from wsgiref.handlers import CGIHandler

def app(environ, start_response):
    size = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(size)
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-From", "wsgiref")])
    return [f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')} "
            f"{environ['QUERY_STRING']} {len(body)}\\n".encode()]

CGIHandler().run(app)
"""

FLASK = """\
from wsgiref.handlers import CGIHandler
from flask import Flask, jsonify

app = Flask(__name__)

@app.get("/hello")
def hello():
    return "Hello from Flask through CGI!\\n"

@app.get("/users/<int:user_id>")
def user(user_id):
    return jsonify(id=user_id)

CGIHandler().run(app)
"""

SITE = """
<Location /cgi-hello>
    SetHandler wasm-handler
    WasmModule {cpython}
    WasmMapDir /app {dir}/app ro
    WasmArg /app/hello.py
    WasmEnableCGI On
</Location>
<Location /cgi-wsgi>
    SetHandler wasm-handler
    WasmModule {cpython}
    WasmMapDir /app {dir}/app ro
    WasmArg /app/wsgi_app.py
    WasmEnableCGI On
</Location>
<Location /cgi-flask>
    SetHandler wasm-handler
    WasmModule {cpython}
    WasmMapDir /app {dir}/app ro
    WasmMapDir /site {site} ro
    WasmMapDir /pycache {dir}/pycache rw
    WasmEnv PYTHONPATH /site
    WasmEnv PYTHONPYCACHEPREFIX /pycache
    WasmArg /app/flask_cgi.py
    WasmEnableCGI On
    WasmTimeout 60
</Location>
"""


def prepare(server):
    app = server.dir / "app"
    app.mkdir()
    (app / "hello.py").write_text(HELLO)
    (app / "wsgi_app.py").write_text(WSGI)
    (app / "flask_cgi.py").write_text(FLASK)
    # Written by the children, as Apache's User.
    pycache = server.dir / "pycache"
    pycache.mkdir()
    os.chmod(pycache, 0o777)


@pytest.fixture(scope="module")
def apache_site():
    subprocess.run([ROOT / "scripts/fetch-cpython-wasi"], check=True)
    body = SITE.replace("{cpython}", str(CPYTHON)).replace("{site}", str(SITE_PACKAGES))
    return Site(body, "stock-cpython", prepare)


@pytest.fixture(scope="module")
def mpm():
    return "event"


def test_a_print_script_answers(apache):
    r = request(apache.port, "GET", "/cgi-hello")
    assert (r.status, r.body) == (200, b"hello\n")
    assert r.header("content-type") == b"text/plain"


def test_a_wsgi_app_runs_through_cgihandler(apache):
    r = request(apache.port, "POST", "/cgi-wsgi/some/path?a=1", body=b"x" * 1000)
    assert r.status == 201, r.body
    assert r.header("x-from") == b"wsgiref"
    assert r.body == b"POST /some/path a=1 1000\n"


def test_flask_runs_through_cgihandler_and_caches_its_bytecode(apache):
    r = request(apache.port, "GET", "/cgi-flask/hello")
    assert (r.status, r.body) == (200, b"Hello from Flask through CGI!\n")
    # The first request compiled Flask's modules; their .pyc files are in
    # the shared folder, under the guest's path of each source.
    cached = list((apache.dir / "pycache/site/flask").glob("*.pyc"))
    assert len(cached) > 5, cached
    r = request(apache.port, "GET", "/cgi-flask/users/9")
    assert (r.status, r.body) == (200, b'{"id":9}\n')
