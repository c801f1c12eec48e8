"""A folder of components is a site: AddHandler wasm-handler .wasm serves
the component the request's file is, and WasmFileRoutes maps extension-less
URLs, [name] segments and public/ onto that folder, through a real Apache."""

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from apache import GUEST, HELLO, MODULES, WASM_DIR, Apache, Site
from http1 import request

SDK_GUEST = WASM_DIR / "sdk_test_guest.wasm"

# SITE is filled in by the fixture; {port} and friends by Apache.config_text.
SITE = """
LoadModule mime_module MODULES/mod_mime.so
LoadModule dir_module MODULES/mod_dir.so
LoadModule headers_module MODULES/mod_headers.so
TypesConfig /etc/mime.types
DocumentRoot "SITE"
<Directory "SITE">
    Options +ExecCGI
    AddHandler wasm-handler .wasm
    WasmFileRoutes On
    DirectoryIndex index.wasm
    WasmEnv GREETING from-the-directory
    Header always add X-Merged once
    WasmTimeout 0.5
</Directory>
<Directory "SITE/noexec">
    Options -ExecCGI
</Directory>
<Directory "SITE/plain">
    WasmFileRoutes Off
</Directory>
<Directory "SITE/wrapped">
    WasmComponent GUEST
</Directory>
<Location /routes/claimed>
    SetHandler wasm-handler
    WasmComponent GUEST
</Location>
<Directory "SITE/every-file">
    SetHandler wasm-handler
    WasmFileRoutes On
</Directory>
""".replace("MODULES", str(MODULES)).replace("GUEST", str(GUEST))


def make_site():
    """The site folder; Apache's children (www-data) must be able to read it."""
    root = Path(tempfile.mkdtemp(prefix="mod_wasm-site-"))
    os.chmod(root, 0o755)
    files = {
        "api/hello.wasm": HELLO,
        "docs/index.wasm": HELLO,
        "routes/[id].wasm": SDK_GUEST,
        "routes/me.wasm": HELLO,
        "routes/[id]/posts/[post].wasm": SDK_GUEST,
        "env.wasm": GUEST,
        "spin.wasm": GUEST,
        "swap.wasm": HELLO,
        "noexec/hello.wasm": HELLO,
        "plain/hello.wasm": HELLO,
        "wrapped/hello.wasm": HELLO,
        "every-file/hi.wasm": HELLO,
        "routes/x/[userId].wasm": SDK_GUEST,
        "deep/[any]/env.wasm": GUEST,
    }
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
    (root / "broken.wasm").write_bytes(b"\0asm but not really")
    # A WASI 0.3 component, served by the same rules.
    shutil.copyfile(WASM_DIR / "p3_test_guest.wasm", root / "wasi03.wasm")
    (root / "public").mkdir()
    (root / "public/style.css").write_text("body { color: teal }\n")
    (root / "api/secret.toml").write_text("token = 'do not serve'\n")
    (root / ".env").write_text("TOKEN=do-not-serve\n")
    (root / "every-file/public").mkdir()
    (root / "every-file/public/notes.txt").write_text("static\n")
    for directory, _, _ in os.walk(root):
        os.chmod(directory, 0o755)
    return root


@pytest.fixture(scope="module")
def site():
    root = make_site()
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def apache_site(site):
    return Site(SITE.replace("SITE", str(site)), "routes")


@pytest.fixture(scope="module")
def mpm():
    return "event"


def test_route_components_are_compiled_at_start_up(apache, site):
    log = Path(apache.error_log).read_text()
    assert f"MW00035: 15 component files below {site}/ are ready" in log, log
    # The broken one is named, and start-up went on.
    [warning] = {line.split("] ", 3)[-1] for line in log.splitlines() if "MW00034" in line}
    assert "WasmFileRoutes" in warning and "broken.wasm" in warning, warning
    # Children map the compiled code from the cache, as for WasmComponent.
    for child in apache.children():
        maps = Path(f"/proc/{child}/maps").read_text()
        # (Entry names keep the letters of the file name: [id] gives id-.)
        assert "/mod_wasm/id-" in maps and "/mod_wasm/hello-" in maps, maps


def test_an_extensionless_url_serves_its_wasm_file(apache):
    r = request(apache.port, "GET", "/api/hello?x=1")
    assert r.status == 200
    # The guest sees the URL asked for, not the file.
    assert r.body == b"Hello from WebAssembly! You asked for /api/hello\n"


def test_a_wasm_url_is_served_by_its_handler(apache):
    r = request(apache.port, "GET", "/api/hello.wasm")
    assert r.status == 200
    assert r.body == b"Hello from WebAssembly! You asked for /api/hello.wasm\n"


def test_a_dynamic_segment_is_a_param(apache):
    r = request(apache.port, "GET", "/routes/42")
    assert r.status == 200
    assert r.body == b"path /routes/42\nparam id = 42\nid Some(\"42\")\n"


def test_nested_dynamic_segments_are_decoded(apache):
    r = request(apache.port, "GET", "/routes/a%20b/posts/7")
    assert r.status == 200
    lines = r.body.decode().splitlines()
    assert lines[0] == "path /routes/a%20b/posts/7"
    assert sorted(lines[1:3]) == ["param id = a b", "param post = 7"]


def test_a_literal_name_wins_over_a_dynamic_one(apache):
    r = request(apache.port, "GET", "/routes/me")
    assert r.body == b"Hello from WebAssembly! You asked for /routes/me\n"


def test_a_param_name_keeps_its_case(apache):
    r = request(apache.port, "GET", "/routes/x/7")
    assert r.body == b"path /routes/x/7\nparam userId = 7\nid None\n"


def test_a_client_cannot_send_a_param(apache):
    r = request(apache.port, "GET", "/routes/42", headers=[("Mod-Wasm-Params", "id=forged"),
                                                           ("mod_wasm_params", "x=1")])
    assert r.status == 200
    assert r.body == b"path /routes/42\nparam id = 42\nid Some(\"42\")\n"


def test_a_directory_index_component(apache):
    r = request(apache.port, "GET", "/docs/")
    assert r.status == 200
    assert r.body.startswith(b"Hello from WebAssembly!")


def test_public_files_are_static(apache):
    r = request(apache.port, "GET", "/style.css")
    assert r.status == 200
    assert r.body == b"body { color: teal }\n"
    assert r.header("content-type").startswith(b"text/css")


def test_the_directorys_grants_and_limits_apply(apache):
    assert request(apache.port, "GET", "/env").body == b"GREETING=from-the-directory\n"
    r = request(apache.port, "GET", "/deep/anything/env")
    assert r.body == b"GREETING=from-the-directory\n"


def test_the_directory_is_merged_once_whatever_the_walks(apache):
    # The route's own walk, and core's after a route declined, each start
    # from the server's defaults: an appending directive (Header add)
    # applies once.
    for target in ("/deep/anything/env", "/api/hello", "/api/hello.wasm", "/style.css",
                   "/routes/claimed", "/routes/42", "/nope"):
        r = request(apache.port, "GET", target)
        assert r.all("x-merged") == [b"once"], (target, r.all("x-merged"))


@pytest.mark.allow_log("MW00020")
def test_the_directorys_timeout_applies(apache):
    started = time.monotonic()
    r = request(apache.port, "GET", "/spin")
    assert r.status == 504
    assert time.monotonic() - started < 20
    apache.wait_for_log("MW00020")


def test_what_matches_nothing_is_a_404(apache):
    assert request(apache.port, "GET", "/nope").status == 404
    assert request(apache.port, "GET", "/routes/1/other/2").status == 404
    assert request(apache.port, "GET", "/missing.wasm").status == 404


@pytest.mark.allow_log("MW00033")
def test_a_broken_file_is_a_500_and_the_others_still_serve(apache):
    children = apache.children()
    r = request(apache.port, "GET", "/broken")
    assert r.status == 500
    lines = apache.wait_for_log("MW00033")
    assert any("broken.wasm" in line and "/broken" in line for line in lines), lines
    assert request(apache.port, "GET", "/api/hello").status == 200
    assert not apache.lost_children(children)


def test_a_wasi_03_file_is_served(apache):
    r = request(apache.port, "GET", "/wasi03?x=1")
    assert r.status == 200, r
    assert r.body == b"Hello from WASI 0.3! You asked for /wasi03?x=1\n"


def test_a_replaced_file_is_served_without_a_restart(apache, site):
    assert request(apache.port, "GET", "/swap").body.startswith(b"Hello from WebAssembly!")
    assert request(apache.port, "GET", "/swap").body.startswith(b"Hello from WebAssembly!")
    # Replaced as deploy tools do: a new file renamed over the old one.
    fresh = site / "swap.wasm.new"
    shutil.copyfile(GUEST, fresh)
    os.chmod(fresh, 0o644)
    os.replace(fresh, site / "swap.wasm")
    assert request(apache.port, "GET", "/swap").body == b"test guest: /swap\n"


def test_a_file_added_after_start_up_is_served(apache, site):
    assert request(apache.port, "GET", "/late").status == 404
    shutil.copyfile(HELLO, site / "late.wasm")
    os.chmod(site / "late.wasm", 0o644)
    r = request(apache.port, "GET", "/late")
    assert r.status == 200 and r.body.startswith(b"Hello from WebAssembly!")


@pytest.mark.allow_log("MW00032")
def test_a_component_file_needs_exec_cgi(apache):
    assert request(apache.port, "GET", "/noexec/hello").status == 403
    apache.wait_for_log("MW00032")


def test_routes_can_be_turned_off_below(apache):
    assert request(apache.port, "GET", "/plain/hello").status == 404
    # The file itself is still served by its handler.
    assert request(apache.port, "GET", "/plain/hello.wasm").status == 200


def test_a_configured_component_keeps_its_urls(apache):
    # A WasmComponent in effect wins over the route and over the file.
    assert request(apache.port, "GET", "/wrapped/hello").body == b"test guest: /wrapped/hello\n"
    named = request(apache.port, "GET", "/wrapped/hello.wasm")
    assert named.body == b"test guest: /wrapped/hello.wasm\n"
    # /routes/claimed would be routes/[id].wasm; the admin's <Location> keeps it.
    r = request(apache.port, "GET", "/routes/claimed")
    assert r.body == b"test guest: /routes/claimed\n"


def test_only_components_and_public_are_reachable(apache):
    # A wws worker's .toml holds its secrets; dot-files and sources likewise.
    for target in ("/api/secret.toml", "/.env", "/public/../.env"):
        r = request(apache.port, "GET", target)
        assert r.status == 404 and b"do" not in r.body, target
    # public/ as a route prefix is static only: no route runs from it.
    assert request(apache.port, "GET", "/public/style.css").status == 200


def test_public_stays_static_where_sethandler_makes_every_file_a_component(apache):
    assert request(apache.port, "GET", "/every-file/hi").body.startswith(b"Hello from")
    r = request(apache.port, "GET", "/every-file/notes.txt")
    assert r.status == 200 and r.body == b"static\n"


def test_file_routes_belong_in_a_directory_section():
    bad = """
<Location /x>
    WasmFileRoutes On
</Location>
"""
    server = Apache(bad, mpm="event", name="routes-bad")
    try:
        code, output = server.configtest()
    finally:
        server.cleanup()
    assert code != 0
    assert "WasmFileRoutes belongs in a <Directory> section" in output
    assert "routes-bad" in output or "line" in output
