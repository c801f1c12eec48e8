"""The examples' config snippets, included as `make run` includes them."""

import pytest

from apache import ROOT, WASIP1_DIR, WASM_DIR, Apache
from http1 import request

SITE = f"""
Define MOD_WASM_WASM_DIR {WASM_DIR}
Define MOD_WASM_WASIP1_DIR {WASIP1_DIR}
Define MOD_WASM_ROOT {ROOT}
IncludeOptional {ROOT}/examples/*/*.conf
"""


@pytest.fixture(scope="module")
def examples():
    server = Apache(SITE.replace("{", "{{").replace("}", "}}"), name="examples")
    try:
        server.start()
        yield server
        assert not server.unexpected_errors(server.new_log())
    finally:
        server.cleanup()


def test_hello_snippet_serves_the_hello_example(examples):
    r = request(examples.port, "GET", "/hello/from/the/snippet")
    assert r.status == 200
    assert r.body == b"Hello from WebAssembly! You asked for /hello/from/the/snippet\n"


def test_legacy_hello_prints_the_response(examples):
    r = request(examples.port, "GET", "/legacy-hello")
    assert r.status == 200
    assert r.body == b"Hello from a WASI preview1 module!\n"


def test_cgi_echo_echoes_env_query_and_body_with_its_status(examples):
    r = request(examples.port, "POST", "/cgi-echo/extra?status=201&x=y", body=b"the body")
    assert r.status == 201
    assert r.header("content-type") == b"text/plain"
    lines = r.body.decode().splitlines()
    assert "REQUEST_METHOD=POST" in lines and "PATH_INFO=/extra" in lines
    assert "GREETING=set with WasmEnv" in lines
    assert "query: status=201&x=y" in lines
    assert r.body.endswith(b"body (8 bytes):\nthe body")


def test_list_dir_lists_its_mapped_directory(examples):
    r = request(examples.port, "GET", "/list-dir")
    assert r.status == 200
    lines = r.body.decode().splitlines()
    assert lines[0] == "/data:"
    assert "  list-dir/" in lines and "  c-cgi/" in lines


def test_the_c_cgi_program_answers(examples):
    r = request(examples.port, "POST", "/c-cgi?name=Apache", body=b"12345")
    assert r.status == 200
    assert r.body == b"Hello, Apache, from C!\nPOST request, 5 bytes of body\n"
