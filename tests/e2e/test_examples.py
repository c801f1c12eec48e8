"""The examples' config snippets, included as `make run` includes them."""

from apache import ROOT, WASM_DIR, Apache
from http1 import request

SITE = f"""
Define MOD_WASM_WASM_DIR {WASM_DIR}
IncludeOptional {ROOT}/examples/*/*.conf
"""


def test_hello_snippet_serves_the_hello_example():
    server = Apache(SITE.replace("{", "{{").replace("}", "}}"), name="examples")
    try:
        server.start()
        r = request(server.port, "GET", "/hello/from/the/snippet")
        assert r.status == 200
        assert r.body == b"Hello from WebAssembly! You asked for /hello/from/the/snippet\n"
        assert not server.unexpected_errors(server.new_log())
    finally:
        server.cleanup()
