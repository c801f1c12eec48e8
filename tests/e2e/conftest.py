"""Fixtures: a real Apache per MPM, and an error-log check after every test."""

import pytest

from apache import running

MPMS = ["event", "prefork", "worker"]

# The site every component test talks to. {hello}, {guest} and {port} are
# filled in by Apache.config_text.
SITE = """
LoadModule filter_module /usr/lib/apache2/modules/mod_filter.so
LoadModule substitute_module /usr/lib/apache2/modules/mod_substitute.so

<Location /hello>
    SetHandler wasm-handler
    WasmComponent {hello}
</Location>

<Location /t>
    SetHandler wasm-handler
    WasmComponent {guest}
</Location>

# Inherits SetHandler and WasmComponent from /t, adds a body limit.
<Location /t/limited>
    LimitRequestBody 1024
</Location>

# A limit that trips after the echo has begun.
<Location /t/limited100k>
    LimitRequestBody 100000
</Location>

# An output filter that fails mid-response on a long line.
<Location /t/substituted>
    AddOutputFilterByType SUBSTITUTE text/plain
    Substitute s/start/begin/
    SubstituteMaxLineLength 8k
</Location>

# Overrides the component of /t.
<Location /t/override>
    WasmComponent {hello}
</Location>

# The same file as /t again: compiled once, loaded once.
<Location /again>
    SetHandler wasm-handler
    WasmComponent {guest}
</Location>

<Location /unconfigured>
    SetHandler wasm-handler
</Location>

<VirtualHost 127.0.0.1:{port}>
    ServerName a.test
    <Location /v>
        SetHandler wasm-handler
        WasmComponent {hello}
    </Location>
</VirtualHost>

<VirtualHost 127.0.0.1:{port}>
    ServerName b.test
    <Location /v>
        SetHandler wasm-handler
    </Location>
    <Location /w>
        SetHandler wasm-handler
        WasmComponent {guest}
    </Location>
</VirtualHost>
"""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "allow_log(*tags): error-log tags this test expects to cause")


@pytest.fixture(scope="module", params=MPMS)
def apache(request):
    with running(SITE, request.param, request.param) as server:
        yield server


@pytest.fixture(autouse=True)
def error_log_is_clean(request):
    """Fails a test that made Apache log an error it did not expect, or a
    child die."""
    if "apache" not in request.fixturenames:
        yield
        return
    server = request.getfixturevalue("apache")
    server.new_log()
    yield
    marker = request.node.get_closest_marker("allow_log")
    allowed = marker.args if marker else ()
    bad = server.unexpected_errors(server.new_log(), allowed)
    assert not bad, "unexpected lines in the error log:\n" + "\n".join(bad)
