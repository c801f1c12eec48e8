"""Graceful restart: the configuration is read again, a replaced .wasm file
is compiled again, an unchanged one is not."""

import os
import shutil
import signal
import threading
import time

from apache import GUEST, HELLO, Apache
from http1 import request

SITE = """
<Location /app>
    SetHandler wasm-handler
    WasmComponent {dir}/app.wasm
</Location>
<Location /hello>
    SetHandler wasm-handler
    WasmComponent {hello}
</Location>
"""


def wait_for(predicate, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_graceful_restart_recompiles_only_what_changed():
    server = Apache(SITE, name="graceful")
    try:
        shutil.copy(HELLO, server.dir / "app.wasm")
        server.start()
        assert request(server.port, "GET", "/app/echo").body.startswith(b"Hello from")

        # Deploy a new file the way deploys do (a new inode, renamed into
        # place), then reload gracefully.
        shutil.copy(GUEST, server.dir / "app.wasm.new")
        os.replace(server.dir / "app.wasm.new", server.dir / "app.wasm")
        old_children = server.children()
        server.process.send_signal(signal.SIGUSR1)

        def new_generation_serves():
            r = request(server.port, "GET", "/app/echo")
            return r.status == 200 and b"method GET" in r.body

        assert wait_for(new_generation_serves), "the replaced component was not served"
        assert request(server.port, "GET", "/hello").body.startswith(b"Hello from")
        assert set(server.children()) != set(old_children)

        log = server.console_log.read_text() + server.error_log.read_text()
        app = server.dir / "app.wasm"
        assert log.count(f"MW00001: compiled {app}") == 2, log
        assert log.count(f"MW00001: compiled {HELLO}") == 1, log
        assert log.count(f"MW00001: reused compiled {HELLO}") == 2, log
        assert not server.unexpected_errors(log.splitlines())
    finally:
        server.cleanup()


def test_graceful_restart_lets_requests_in_flight_finish():
    """A request that started on the old file ends normally while the new
    generation already serves the replaced one."""
    # Prefork: the tests' event and worker settings allow one child process
    # (ServerLimit 1), whose slot the old generation holds until its request
    # ends, so a new generation could not start beside it.
    server = Apache(SITE, mpm="prefork", name="graceful-in-flight")
    try:
        shutil.copy(GUEST, server.dir / "app.wasm")
        server.start()
        held = {}
        slow = threading.Thread(target=lambda: held.update(
            r=request(server.port, "GET", "/app/sleep?ms=8000")))
        slow.start()
        # The request is in the old guest by then. (Had it not arrived yet,
        # the new file would answer it, and the body check below fails.)
        time.sleep(1)

        shutil.copy(HELLO, server.dir / "app.wasm.new")
        os.replace(server.dir / "app.wasm.new", server.dir / "app.wasm")
        server.process.send_signal(signal.SIGUSR1)

        def new_generation_serves():
            return request(server.port, "GET", "/app/x").body.startswith(b"Hello from")

        assert wait_for(new_generation_serves), "the replaced component was not served"
        # The new file served while the old request was still running.
        assert slow.is_alive(), "the reload waited for the request to end"
        slow.join()
        assert held["r"].status == 200 and held["r"].body == b"slept\n", held["r"]
        assert not server.unexpected_errors(server.new_log())
    finally:
        server.cleanup()
