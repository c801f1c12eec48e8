"""The compiled-code cache on disk (WasmCacheDir) and the instance pool:
a second start loads what the first compiled, a changed file is compiled
again, children map the cache files, and an unsafe directory is refused."""

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from apache import GUEST, HELLO, Apache, ConfigError, running
from http1 import request

SITE = """
{cache}
<Location /app>
    SetHandler wasm-handler
    WasmComponent {dir}/app.wasm
</Location>
"""


def site(cache_line):
    return SITE.replace("{cache}", cache_line)


def logs(server):
    return server.console_log.read_text() + server.error_log.read_text()


def start_with(cache, wasm, name):
    """A server serving wasm at /app with WasmCacheDir cache."""
    server = Apache(site(f"WasmCacheDir {cache}"), name=name)
    shutil.copy(wasm, server.dir / "app.wasm")
    server.start()
    return server


@pytest.fixture
def cache():
    """A cache directory path (not yet created) the children can reach:
    pytest's own temporary directories are private to root."""
    parent = Path(tempfile.mkdtemp(prefix="mod_wasm-cache-"))
    os.chmod(parent, 0o755)
    yield parent / "cache"
    shutil.rmtree(parent, ignore_errors=True)


def test_a_second_start_loads_what_the_first_compiled(cache):
    first = start_with(cache, HELLO, "cache-cold")
    try:
        assert request(first.port, "GET", "/app").body.startswith(b"Hello from WebAssembly!")
        assert f"MW00001: compiled {first.dir}/app.wasm" in logs(first)
    finally:
        first.cleanup()
    entries = list(cache.glob("app-*.cwasm"))
    assert len(entries) == 1, entries
    assert stat.S_IMODE(entries[0].stat().st_mode) == 0o444
    assert stat.S_IMODE(cache.stat().st_mode) == 0o755

    second = start_with(cache, HELLO, "cache-warm")
    try:
        assert request(second.port, "GET", "/app").body.startswith(b"Hello from WebAssembly!")
        text = logs(second)
        assert "MW00001: compiled" not in text, text
        assert (f"MW00001: loaded from the cache directory the compiled {second.dir}/app.wasm"
                in text), text
        # The children map the cache file rather than copying it: the
        # compiled code is shared between processes.
        for child in second.children():
            maps = open(f"/proc/{child}/maps").read()
            assert str(entries[0]) in maps, maps
        assert not second.unexpected_errors(text.splitlines())
    finally:
        second.cleanup()


def test_a_changed_file_is_compiled_again(cache):
    first = start_with(cache, HELLO, "cache-v1")
    first.cleanup()
    second = start_with(cache, GUEST, "cache-v2")
    try:
        r = request(second.port, "GET", "/app/echo")
        assert r.status == 200 and b"method GET" in r.body
        assert f"MW00001: compiled {second.dir}/app.wasm" in logs(second)
        assert len(list(cache.glob("app-*.cwasm"))) == 2
    finally:
        second.cleanup()


def test_the_default_cache_is_in_the_runtime_directory():
    with running(site(""), "event", "cache-default",
                 prepare=lambda s: shutil.copy(HELLO, s.dir / "app.wasm")) as server:
        assert request(server.port, "GET", "/app").status == 200
        assert len(list((server.dir / "run/mod_wasm").glob("app-*.cwasm"))) == 1


def test_cache_off_keeps_compiled_code_in_memory():
    with running(site("WasmCacheDir off"), "event", "cache-off",
                 prepare=lambda s: shutil.copy(HELLO, s.dir / "app.wasm")) as server:
        assert request(server.port, "GET", "/app").status == 200
        assert not (server.dir / "run/mod_wasm").exists()


def test_a_corrupt_cache_file_is_replaced(cache):
    start_with(cache, HELLO, "cache-whole").cleanup()
    [entry] = cache.glob("app-*.cwasm")
    whole = entry.read_bytes()
    os.chmod(entry, 0o644)
    entry.write_bytes(whole[:4096])
    server = start_with(cache, HELLO, "cache-truncated")
    try:
        assert request(server.port, "GET", "/app").status == 200
        assert f"MW00001: compiled {server.dir}/app.wasm" in logs(server)
        # Written again, read-only as before.
        [rewritten] = cache.glob("app-*.cwasm")
        assert rewritten.stat().st_size > 4096
        assert stat.S_IMODE(rewritten.stat().st_mode) == 0o444
    finally:
        server.cleanup()
    # Whole again: the next start loads it rather than compiling.
    again = start_with(cache, HELLO, "cache-rewritten")
    try:
        assert request(again.port, "GET", "/app").body.startswith(b"Hello from WebAssembly!")
        text = logs(again)
        assert "MW00001: compiled" not in text, text
        assert (f"MW00001: loaded from the cache directory the compiled {again.dir}/app.wasm"
                in text), text
    finally:
        again.cleanup()


@pytest.mark.parametrize("mode", [0o777, 0o775])
def test_a_directory_others_can_write_is_refused(cache, mode):
    cache.mkdir()
    os.chmod(cache, mode)
    server = Apache(site(f"WasmCacheDir {cache}"), name="cache-unsafe")
    try:
        shutil.copy(HELLO, server.dir / "app.wasm")
        code, output = server.configtest()
        assert code != 0, output
        assert re.search(rf"Syntax error on line \d+ of {server.conf}", output), output
        assert "WasmCacheDir" in output and "writable by group or others" in output, output
    finally:
        server.cleanup()


def test_the_cache_directory_must_come_first(cache):
    body = SITE.replace("{cache}", "") + f"WasmCacheDir {cache}\n"
    server = Apache(body, name="cache-late")
    try:
        shutil.copy(HELLO, server.dir / "app.wasm")
        with pytest.raises(ConfigError) as refused:
            server.start()
        assert "must come before the first WasmComponent" in refused.value.output
    finally:
        server.cleanup()


@pytest.mark.parametrize("mpm, requests", [("event", 4), ("prefork", 1)])
def test_each_child_has_an_instance_pool_for_its_threads(mpm, requests):
    with running(site(""), mpm, f"pool-{mpm}",
                 prepare=lambda s: shutil.copy(HELLO, s.dir / "app.wasm")) as server:
        for _ in range(20):
            assert request(server.port, "GET", "/app").status == 200
        text = logs(server)
        assert f"instances come from a pool for {requests} requests at once" in text, text
        assert "no instance pool" not in text
        # The pool resets memories with PAGEMAP_SCAN through a file the
        # child opened while it was still root (engine.rs says why); without
        # it, every reset rewrites the whole keep-resident region.
        for child in server.children():
            fds = [os.readlink(f"/proc/{child}/fd/{fd}") for fd in os.listdir(f"/proc/{child}/fd")]
            assert f"/proc/{child}/pagemap" in fds, fds
