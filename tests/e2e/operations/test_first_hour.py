"""What a new user runs into in the first hour: a guest in a section that
never hands it its requests is said at start-up, and so is a granted
directory the children cannot read; a component's answer does not inherit
the Content-Type of its .wasm file."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from apache import HELLO, MODULES, WASM_DIR, Apache, running
from http1 import request

UNHANDLED = """
<Location /forgot>
    WasmComponent {hello}
</Location>
<Location /misspelt>
    SetHandler wasm_handler
    WasmComponent {hello}
</Location>
<Location /right>
    SetHandler wasm-handler
    WasmComponent {hello}
</Location>
<VirtualHost *:{port}>
    SetHandler wasm-handler
    <Location /inherited>
        WasmComponent {hello}
    </Location>
</VirtualHost>
"""


def test_a_guest_its_section_never_runs_is_a_warning_at_startup():
    server = Apache(UNHANDLED, name="unhandled")
    try:
        code, output = server.configtest()
        assert code == 0, output
        warnings = [line for line in output.splitlines() if "MW00044" in line]
        assert len(warnings) == 2, output
        forgot, misspelt = warnings
        lines = server.config_text().splitlines()

        def line_of(text, after):
            return next(i for i, l in enumerate(lines, 1) if i > after and text in l)

        forgot_at = line_of("WasmComponent", line_of("<Location /forgot>", 0))
        assert f"WasmComponent in <Location /forgot> at {server.conf}:{forgot_at}" in forgot, \
            forgot
        assert "add SetHandler wasm-handler" in forgot, forgot
        section = line_of("<Location /misspelt>", 0)
        set_at, component_at = line_of("SetHandler", section), line_of("WasmComponent", section)
        assert f"<Location /misspelt> at {server.conf}:{component_at}" in misspelt, misspelt
        assert f"'wasm_handler' (SetHandler at {server.conf}:{set_at})" in misspelt, misspelt
    finally:
        server.cleanup()


CLOSED = """
<Location /closed>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmMapDir /data {dir}/closed/data ro
</Location>
<Location /open>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmMapDir /data {dir}/open
</Location>
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the children switch users only under root")
def test_a_grant_the_children_cannot_read_is_a_warning_and_a_hint():
    # Root reads the configuration and can open the directory; www-data,
    # which the children switch to, cannot search the folder above it.
    server = Apache(CLOSED, name="closed-grant", allow=("MW00012",))
    try:
        (server.dir / "closed" / "data").mkdir(parents=True)
        (server.dir / "closed" / "data" / "hello.txt").write_text("hidden\n")
        (server.dir / "closed").chmod(0o700)
        (server.dir / "open").mkdir()
        (server.dir / "open" / "hello.txt").write_text("shown\n")
        (server.dir / "open").chmod(0o755)
        code, output = server.configtest()
        assert code == 0, output
        warnings = [line for line in output.splitlines() if "MW00046" in line]
        assert len(warnings) == 1, output
        at = next(i for i, line in enumerate(server.config_text().splitlines(), 1)
                  if "closed/data" in line)
        assert f"WasmMapDir {server.dir}/closed/data in <Location /closed> at " \
               f"{server.conf}:{at}" in warnings[0], warnings[0]
        assert "run as www-data, who cannot read" in warnings[0], warnings[0]

        server.start()
        assert len([line for line in server.new_log() if "MW00046" in line]) == 1
        assert request(server.port, "GET", "/open/read?path=/data/hello.txt").body == b"shown\n"
        r = request(server.port, "GET", "/closed/read?path=/data/hello.txt")
        assert r.status == 500, r
        line = next(line for line in server.wait_for_log("cannot open the granted directory")
                    if "cannot open the granted directory" in line)
        assert "Permission denied" in line and "runs as user id 33" in line, line
    finally:
        server.cleanup()


ROUTES = """
LoadModule mime_module {modules}/mod_mime.so
TypesConfig /etc/mime.types
AddType application/json .json
DocumentRoot {site}
<Directory {site}>
    Require all granted
    Options +ExecCGI
    AddHandler wasm-handler .wasm
    WasmFileRoutes On
</Directory>
<Location /data.json>
    SetHandler wasm-handler
    WasmComponent {wws}
</Location>
"""


@pytest.fixture(scope="module")
def routes_site():
    # Apache's children (www-data) read it: not under pytest's private tmp.
    site = Path(tempfile.mkdtemp(prefix="mod_wasm-first-hour-"))
    (site / "users").mkdir()
    # wws-reply sets no Content-Type of its own.
    shutil.copy(WASM_DIR / "wws_reply.wasm", site / "users" / "[id].wasm")
    shutil.copy(HELLO, site / "hello.wasm")
    site.chmod(0o755)
    (site / "users").chmod(0o755)
    body = ROUTES.replace("{modules}", str(MODULES)).replace("{site}", str(site)) \
        .replace("{wws}", str(WASM_DIR / "wws_reply.wasm"))
    try:
        with running(body, "event", "first-hour-routes") as server:
            yield server
    finally:
        shutil.rmtree(site, ignore_errors=True)


@pytest.mark.parametrize("path", ["/users/42", "/users/%5Bid%5D.wasm", "/data.json"])
def test_a_guest_that_sets_no_type_sends_none(routes_site, path):
    # mod_mime gives the request's file (or the URL) its type; the answer
    # is the guest's, which set none.
    r = request(routes_site.port, "GET", path)
    assert r.status == 200, r
    assert b"Hello wasm!" in r.body, r.body
    assert r.header("content-type") is None, r.headers


def test_a_guests_own_type_stays(routes_site):
    r = request(routes_site.port, "GET", "/hello")
    assert r.status == 200
    assert r.header("content-type").startswith(b"text/plain"), r.headers
