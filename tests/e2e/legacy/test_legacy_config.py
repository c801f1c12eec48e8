"""Legacy mode configuration: bad modules and directives stop start-up with
the file, line and reason; .htaccess files may use the legacy directives
under AllowOverride Options; a configuration written for VMware's
mod_wasm 0.12 works unchanged."""

import pytest

from apache import HELLO, LEGACY, WASIP1_DIR, Apache, assert_refused_at_its_line
from http1 import request

MODULE_LOCATION = """
<Location /x>
    SetHandler wasm-handler
    WasmModule {path}
</Location>
"""


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# A core module importing env.f, which no WASI host provides.
FOREIGN_IMPORT = (b"\0asm\x01\0\0\0" + b"\x01\x04\x01\x60\x00\x00"
                  + b"\x02\x09\x01\x03env\x01f\x00\x00")

BAD_MODULES = {
    "missing": (lambda d: d / "missing.wasm", "cannot open"),
    "text": (lambda d: write(d, "text.wasm", b"#!/bin/sh\necho hi\n"),
             "is not a WebAssembly file"),
    "component": (lambda d: HELLO, "is a WebAssembly component, not a WASI preview1 module"),
    "foreign-import": (lambda d: write(d, "foreign.wasm", FOREIGN_IMPORT),
                       "imports something mod_wasm does not provide"),
    "garbage": (lambda d: write(d, "broken.wasm", b"\0asm\x01\0\0\0\xff\xff"),
                "does not compile"),
}


@pytest.mark.parametrize("case", sorted(BAD_MODULES))
def test_bad_module_stops_start_up_naming_file_line_and_path(tmp_path, case):
    make, reason = BAD_MODULES[case]
    path = make(tmp_path)
    server = Apache(MODULE_LOCATION.replace("{path}", str(path)), name=f"bad-module-{case}")
    try:
        lines = server.config_text().splitlines()
        line = next(i for i, text in enumerate(lines, 1) if "WasmModule" in text)
        code, output = server.configtest()
        assert code != 0
        assert f"line {line} of {server.conf}" in output, output
        assert "WasmModule: " in output and str(path) in output, output
        assert reason in output, output
    finally:
        server.cleanup()


def test_one_module_in_many_locations_is_compiled_once():
    body = "".join(MODULE_LOCATION.replace("/x", f"/x{i}").replace("{path}", "{legacy}")
                   for i in range(3))
    server = Apache(body, name="shared-module")
    try:
        server.start()
        for i in range(3):
            r = request(server.port, "GET", f"/x{i}")
            assert r.status == 200 and r.body == b"unknown mode ''\n"
        # Read twice at start-up, three locations each (as for components).
        console = server.console_log.read_text() + server.error_log.read_text()
        assert console.count(f"MW00001: compiled {LEGACY}") == 1, console
        assert console.count(f"MW00001: reused compiled {LEGACY}") == 5, console
    finally:
        server.cleanup()


BAD_DIRECTIVES = {
    "both-guests": (f"WasmComponent {HELLO}",
                    "serves a component (WasmComponent) or a module (WasmModule), not both"),
    "cgi-word": ("WasmEnableCGI yes", "must be On or Off"),
}


@pytest.mark.parametrize("case", sorted(BAD_DIRECTIVES))
def test_bad_legacy_directive_stops_start_up_naming_file_and_line(case):
    directive, reason = BAD_DIRECTIVES[case]
    body = MODULE_LOCATION.replace("{path}", "{legacy}").replace(
        "</Location>", f"    {directive}\n</Location>")
    assert_refused_at_its_line(body, directive, [reason], f"bad-legacy-{case}")


def test_htaccess_may_configure_a_module_with_allowoverride_options(apache):
    r = request(apache.port, "GET", "/legacy/")
    assert r.status == 200
    assert r.body == b"FROM=htaccess\n"


@pytest.mark.allow_log("/nonexistent/module.wasm")
def test_a_bad_module_in_htaccess_fails_its_requests_with_a_log_line(apache):
    r = request(apache.port, "GET", "/broken/")
    assert r.status == 500
    lines = apache.wait_for_log("/nonexistent/module.wasm")
    assert any(".htaccess" in line and "WasmModule" in line for line in lines), lines


@pytest.mark.allow_log("hello.wasm")
def test_an_htaccess_module_gets_the_checks_a_configured_one_gets(apache):
    # Read through the same check as a configured module (its size, what
    # kind of Wasm it is), not handed to the compiler as any bytes.
    r = request(apache.port, "GET", "/not-a-module/")
    assert r.status == 500
    lines = apache.wait_for_log("hello.wasm")
    assert any("is a WebAssembly component, not a WASI preview1 module" in line
               for line in lines), lines


@pytest.mark.allow_log("not allowed here")
@pytest.mark.parametrize("target, directive", [
    ("/limits/", "WasmTimeout"),
    ("/no-options/", "WasmModule"),
])
def test_htaccess_cannot_set_limits_or_use_modules_without_options(apache, target, directive):
    r = request(apache.port, "GET", target)
    assert r.status == 500
    lines = apache.wait_for_log("not allowed here")
    assert any(f"{directive} not allowed here" in line for line in lines), lines


@pytest.mark.allow_log("MW00027")
@pytest.mark.parametrize("target, cause", [
    ("/no-execcgi/", "(WasmModule)"),
    ("/admin-module/", "(WasmDir at "),
    ("/admin-module-arg/", "(WasmArg at "),
])
def test_an_htaccess_module_or_grant_needs_execcgi(apache, target, cause):
    r = request(apache.port, "GET", target)
    assert r.status == 403
    line = next(l for l in apache.wait_for_log("MW00027") if "MW00027" in l)
    assert "Options ExecCGI" in line and cause in line, line


def test_a_changed_htaccess_module_is_compiled_again(apache):
    # A symlink switched to another module: the child notices the new file
    # (by its identity, not its name) and compiles it.
    link = apache.dir / "htdocs" / "switch" / "module.wasm"
    link.parent.mkdir(exist_ok=True)
    (link.parent / ".htaccess").write_text(
        f"SetHandler wasm-handler\nWasmModule {link}\n")
    link.unlink(missing_ok=True)
    link.symlink_to(WASIP1_DIR / "legacy_hello.wasm")
    assert request(apache.port, "GET", "/switch/").body == \
        b"Hello from a WASI preview1 module!\n"
    link.unlink()
    link.symlink_to(WASIP1_DIR / "legacy_test_guest.wasm")
    r = request(apache.port, "GET", "/switch/")
    assert r.status == 200 and r.body == b"unknown mode ''\n"


@pytest.mark.allow_log("MW00026")
def test_htaccess_grants_are_refused_for_an_admins_component(apache):
    r = request(apache.port, "GET", "/component/echo")
    assert r.status == 500
    line = next(l for l in apache.wait_for_log("MW00026") if "MW00026" in l)
    assert "WasmEnv at " in line and ".htaccess" in line, line


# The shape of the example configuration in the original mod_wasm's README
# and httpd.conf, with this build's modules in place of theirs.
UPSTREAM_STYLE = """
LoadModule dir_module /usr/lib/apache2/modules/mod_dir.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
TypesConfig /etc/mime.types
DocumentRoot {dir}/htdocs
<Directory {dir}/htdocs>
    Require all granted
</Directory>

<IfModule wasm_module>
    <Location /hello-wasm>
        SetHandler wasm-handler
        WasmModule WASIP1/legacy_hello.wasm
    </Location>

    <Location /list-dir>
        SetHandler wasm-handler
        WasmModule WASIP1/list_dir.wasm
        WasmMapDir /home {dir}/wasm_modules
        WasmArg /home
    </Location>

    <Location /hello-python-cgi>
        SetHandler wasm-handler
        WasmModule WASIP1/cgi_echo.wasm
        WasmArg    /opt/python-scripts/cgi_python.py
        WasmEnv    PYTHONHOME /opt/python-wasm/python311.zip/python3.11
        WasmEnv    PYTHONPATH /opt/python-wasm/python311.zip/python3.11
        WasmMapDir /opt {dir}/wasm_modules
        WasmMapDir ./ {dir}/wasm_modules
        WasmDir    /tmp
        WasmEnableCGI On
    </Location>

    <IfModule dir_module>
        DirectoryIndex index.php
    </IfModule>

    <Location /php-hello>
        AddHandler wasm-handler .php
        WasmModule WASIP1/c_cgi.wasm
        WasmDir    /tmp
        WasmMapDir / /
        WasmEnableCGI On
        WasmMapCGIFileNames On
    </Location>
</IfModule>
"""


def test_a_configuration_written_for_the_original_works_unchanged():
    server = Apache(UPSTREAM_STYLE.replace("WASIP1", str(WASIP1_DIR)), name="upstream")
    try:
        (server.dir / "wasm_modules").mkdir()
        (server.dir / "wasm_modules" / "a.txt").write_text("a\n")
        (server.dir / "htdocs" / "php-hello").mkdir(parents=True)
        (server.dir / "htdocs" / "php-hello" / "index.php").write_text("<?php\n")
        server.start()
        r = request(server.port, "GET", "/hello-wasm")
        assert r.status == 200 and r.body == b"Hello from a WASI preview1 module!\n"
        r = request(server.port, "GET", "/list-dir")
        assert r.status == 200 and r.body == b"/home:\n  a.txt\n"
        r = request(server.port, "POST", "/hello-python-cgi?q=1", body=b"posted")
        assert r.status == 200
        assert b"PYTHONHOME=/opt/python-wasm/python311.zip/python3.11\n" in r.body
        assert b"query: q=1\n" in r.body and r.body.endswith(b"posted")
        r = request(server.port, "GET", "/php-hello/?name=PHP")
        assert r.status == 200
        assert r.body.startswith(b"Hello, PHP, from C!\n"), r.body
        assert not server.unexpected_errors(server.new_log())
    finally:
        server.cleanup()

