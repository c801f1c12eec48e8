"""Configuration: what start-up accepts, and what it refuses with the file,
line and reason."""

import shutil

import pytest

from apache import GUEST, HELLO, Apache, ConfigError, assert_refused_at_its_line
from http1 import request

LOCATION = """
<Location /x>
    SetHandler wasm-handler
    WasmComponent {path}
</Location>
"""


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


BAD_FILES = {
    "missing": (lambda d: d / "missing.wasm", "cannot open"),
    "text": (lambda d: write(d, "text.wasm", b"hello, not wasm\n"),
             "is not a WebAssembly file"),
    "core-module": (lambda d: write(d, "core.wasm", b"\0asm\x01\0\0\0"),
                    "is a core WebAssembly module, not a component"),
    # A valid component that exports nothing.
    "no-export": (lambda d: write(d, "empty.wasm", b"\0asm\x0d\0\x01\0"),
                  "does not export wasi:http/incoming-handler"),
    "garbage-component": (lambda d: write(d, "broken.wasm", b"\0asm\x0d\0\x01\0\xff\xff"),
                          "does not compile"),
    # What start-up cannot read: a directory, a link to nothing. (Permission
    # bits do not stop root, which reads the configuration.)
    "directory": (lambda d: (d / "dir.wasm").mkdir() or d / "dir.wasm",
                  "is not a regular file"),
    "dangling-link": (lambda d: (d / "gone.wasm").symlink_to(d / "nothing") or d / "gone.wasm",
                      "cannot open"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_component_stops_start_up_naming_file_line_and_path(tmp_path, case):
    make, reason = BAD_FILES[case]
    path = make(tmp_path)
    server = Apache(LOCATION.replace("{path}", str(path)), name=f"bad-{case}")
    try:
        lines = server.config_text().splitlines()
        line = next(i for i, text in enumerate(lines, 1) if "WasmComponent" in text)
        for output in (server.configtest()[1], start_failure(server)):
            assert f"line {line} of {server.conf}" in output, output
            assert "WasmComponent" in output and str(path) in output, output
            assert reason in output, output
        assert server.configtest()[0] != 0
    finally:
        server.cleanup()


# A guest directive other than WasmComponent, given a file it cannot use.
BAD_GUESTS = {
    "checker-not-wasm": ("WasmAccessChecker",
                         lambda d: write(d, "checker.wasm", b"hello, not wasm\n"),
                         "is not a WebAssembly file"),
    # hello.wasm compiles, but exports the 0.2 handler: a middleware must
    # import and export wasi:http/handler@0.3.0.
    "middleware-0.2": ("WasmMiddleware", lambda d: HELLO, "is a WASI 0.2 component"),
}


@pytest.mark.parametrize("case", sorted(BAD_GUESTS))
def test_a_bad_guest_of_another_directive_stops_start_up_naming_file_and_line(tmp_path, case):
    directive, make, reason = BAD_GUESTS[case]
    path = make(tmp_path)
    server = Apache(f"<Location /x>\n    {directive} {path}\n</Location>\n",
                    name=f"bad-{case}")
    try:
        lines = server.config_text().splitlines()
        line = next(i for i, text in enumerate(lines, 1) if directive in text)
        for output in (server.configtest()[1], start_failure(server)):
            assert f"line {line} of {server.conf}" in output, output
            assert f"{directive}: {path} {reason}" in output, output
    finally:
        server.cleanup()


def start_failure(server):
    with pytest.raises(ConfigError) as refused:
        server.start()
    return refused.value.output


def test_good_config_passes_configtest():
    server = Apache(LOCATION.replace("{path}", "{hello}"), name="good")
    try:
        code, output = server.configtest()
        assert code == 0 and "Syntax OK" in output, output
    finally:
        server.cleanup()


def test_relative_path_is_under_server_root():
    server = Apache(LOCATION.replace("{path}", "app.wasm"), name="relative")
    try:
        shutil.copy(HELLO, server.dir / "app.wasm")
        server.start()
        assert request(server.port, "GET", "/x").body.startswith(b"Hello from WebAssembly!")
    finally:
        server.cleanup()


def test_one_file_in_many_locations_is_compiled_once():
    body = "".join(LOCATION.replace("/x", f"/x{i}").replace("{path}", "{guest}")
                   for i in range(3))
    server = Apache(body, name="shared")
    try:
        server.start()
        for i in range(3):
            assert request(server.port, "GET", f"/x{i}/echo").status == 200
        # The configuration is read twice at start-up, three locations each;
        # the first reading logs to the console, the second to the error log.
        console = server.console_log.read_text() + server.error_log.read_text()
        assert console.count(f"MW00001: compiled {GUEST}") == 1, console
        assert console.count(f"MW00001: reused compiled {GUEST}") == 5, console
    finally:
        server.cleanup()


# Apache logs each refused .htaccess line at alert.
@pytest.mark.allow_log("not allowed here")
@pytest.mark.parametrize("directive", [
    f"WasmComponent {HELLO}",
    # What guards a directory is the administrator's.
    f"WasmAccessChecker {HELLO}",
    "WasmAccessChecker Off",
    # So is what wraps its content.
    f"WasmMiddleware {HELLO}",
    "WasmMiddleware Off",
    # Limits and network grants: a content author must not widen what a
    # guest may do. (The legacy directives, WasmDir and WasmEnv included,
    # are allowed under AllowOverride Options, as they were in the original
    # mod_wasm: legacy/test_legacy_config.py.)
    "WasmAllowOutgoing *",
    "WasmTimeout 3600",
    "WasmMemoryLimit 1G",
    "WasmMaxInstances 5",
    "WasmInstanceReuse 10",
])
def test_admin_directives_are_not_allowed_in_htaccess(directive):
    body = """
LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so
<Directory {dir}/site>
    AllowOverride All
    Require all granted
</Directory>
Alias /site {dir}/site
"""
    server = Apache(body, name="htaccess")
    try:
        site = server.dir / "site"
        site.mkdir()
        site.chmod(0o755)
        (site / ".htaccess").write_text(directive + "\n")
        (site / "index.html").write_text("static\n")
        server.start()
        assert request(server.port, "GET", "/site/index.html").status == 500
        log = "\n".join(server.new_log())
        assert f"{directive.split()[0]} not allowed here" in log, log
    finally:
        server.cleanup()

BAD_DIRECTIVES = {
    "timeout-word": ("WasmTimeout soon", "'soon' is not a number of seconds"),
    "timeout-zero": ("WasmTimeout 0", "'0' is not a number of seconds"),
    "memory-suffix": ("WasmMemoryLimit 12X", "'12X' is not a size from 64K to 4G"),
    "memory-huge": ("WasmMemoryLimit 5G", "'5G' is not a size from 64K to 4G"),
    "memory-tiny": ("WasmMemoryLimit 1K", "'1K' is not a size from 64K to 4G"),
    "instances-zero": ("WasmMaxInstances 0", "'0' is not a number from 1"),
    "reuse-zero": ("WasmInstanceReuse 0", "'0' is neither Off nor a number of requests"),
    "reuse-word": ("WasmInstanceReuse always", "'always' is neither Off nor a number"),
    "reuse-keyword": ("WasmInstanceReuse 10 parallel=4",
                      "'parallel=4' is not concurrent=<requests at once>"),
    "reuse-concurrent-zero": ("WasmInstanceReuse 10 concurrent=0", "'0' is not a number from 1"),
    "reuse-concurrent-off": ("WasmInstanceReuse Off concurrent=4",
                             "needs a number of requests, not Off"),
    "env-name": ("WasmEnv A=B c", "'A=B' is not a variable name"),
    "dir-missing": ("WasmDir /nonexistent/dir", "/nonexistent/dir: No such file"),
    "dir-file": ("WasmDir {hello}", "is not a directory"),
    "dir-mode": ("WasmMapDir /data /tmp maybe", "the access mode 'maybe' is not ro or rw"),
    "outgoing-scheme": ("WasmAllowOutgoing ftp://example.com", "the scheme 'ftp'"),
    "outgoing-path": ("WasmAllowOutgoing http://example.com/api",
                      "not a path"),
    "outgoing-port": ("WasmAllowOutgoing example.com:99999", "is not 1-65535"),
    # Unbracketed, ::1 once read as :: on port 1.
    "outgoing-ipv6": ("WasmAllowOutgoing http://::1", "an IPv6 address goes in brackets"),
}


@pytest.mark.parametrize("case", sorted(BAD_DIRECTIVES))
def test_bad_limit_or_grant_stops_start_up_naming_file_and_line(case):
    directive, reason = BAD_DIRECTIVES[case]
    body = LOCATION.replace("{path}", "{hello}").replace(
        "</Location>", f"    {directive}\n</Location>")
    expected = [f"{directive.split()[0]}: ", reason]
    assert_refused_at_its_line(body, directive, expected, f"bad-{case}")


# Directives that cannot work together in one section: each would silently
# do nothing, so start-up refuses the second.
CONFLICTS = {
    "component-then-module": (["WasmComponent {hello}", "WasmModule {legacy}"],
                              "this section already has a guest"),
    "module-then-component": (["WasmModule {legacy}", "WasmComponent {hello}"],
                              "this section already has a guest"),
    "arg-with-component": (["WasmComponent {hello}", "WasmArg x"],
                           "applies to a WasmModule (legacy mode) only"),
    "entry-point-with-component": (["WasmComponent {hello}", "WasmEntryPoint run"],
                                   "applies to a WasmModule (legacy mode) only"),
    "cgi-before-component": (["WasmEnableCGI On", "WasmComponent {hello}"],
                             "which apply to a WasmModule (legacy mode) only"),
    "outgoing-with-module": (["WasmModule {legacy}", "WasmAllowOutgoing example.com"],
                             "applies to components only"),
    "outgoing-before-module": (["WasmAllowOutgoing example.com", "WasmModule {legacy}"],
                               "which applies to components only"),
    "reuse-with-module": (["WasmModule {legacy}", "WasmInstanceReuse 10"],
                          "applies to components only"),
    "reuse-before-module": (["WasmInstanceReuse 10", "WasmModule {legacy}"],
                            "this section has WasmInstanceReuse"),
}


@pytest.mark.parametrize("case", sorted(CONFLICTS))
def test_conflicting_directives_in_one_section_stop_start_up(case):
    (first, second), reason = CONFLICTS[case]
    body = f"<Location /x>\n    SetHandler wasm-handler\n    {first}\n    {second}\n</Location>\n"
    expected = [f"{second.split()[0]}", reason]
    assert_refused_at_its_line(body, second, expected, f"conflict-{case}")


def test_file_routes_refuse_a_regex_directory():
    body = '<Directory ~ "^/srv/site">\n    WasmFileRoutes On\n</Directory>\n'
    assert_refused_at_its_line(body, "WasmFileRoutes On", ["<Directory ~>"], "routes-regex")
