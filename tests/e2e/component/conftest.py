"""Component mode: the site the component tests talk to (a module with a
site of its own overrides apache_site). {hello}, {guest} and {port} are
filled in by Apache.config_text."""

import pytest

from apache import Site

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


@pytest.fixture(scope="module")
def apache_site():
    return Site(SITE, "component")
