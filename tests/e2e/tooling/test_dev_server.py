"""`mod_wasm serve SITE_DIR`, the development server: it lists the routes of
a folder of components, serves the folder through Apache and the module's
file routes, shows requests on stdout, and stops cleanly on a signal sent
to it alone (a terminal's Ctrl-C reaches Apache too; kill does not)."""

import contextlib
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from apache import GUEST, HELLO, ROOT, clean_env, free_port, unexpected_errors
from http1 import request

CLI = ROOT / "target/release/mod_wasm"
# Until the "Ctrl-C" line: the routes are listed before Apache starts.
BANNER_TIMEOUT = 10
# Until the port accepts connections: the first start compiles.
START_TIMEOUT = 90
STOP_TIMEOUT = 15


class DevServer:
    """A running `mod_wasm serve`; stdout and stderr are read as they come,
    so that access-log lines never fill a pipe."""

    def __init__(self, site, cache_home, grants=lambda port: []):
        """grants(port): more options, given the port it will listen on."""
        self.port = free_port()
        env = clean_env()
        # A cache of the test's own, out of the user's, which Apache's
        # children (www-data) can reach.
        env["XDG_CACHE_HOME"] = str(cache_home)
        # Its own session: the signal reaches the CLI alone, as kill would,
        # and so does nothing else that signals this process group.
        self.process = subprocess.Popen(
            [str(CLI), "serve", "--port", str(self.port), *grants(self.port), str(site)],
            env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)
        self.lines = queue.Queue()
        self.stdout = []
        self.stderr = []
        self.readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.stdout, True),
                             daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr, False),
                             daemon=True)]
        for reader in self.readers:
            reader.start()

    def _read(self, pipe, kept, queued):
        for raw in pipe:
            line = raw.decode(errors="replace").rstrip("\n")
            kept.append(line)
            if queued:
                self.lines.put(line)

    def output(self):
        return "stdout:\n" + "\n".join(self.stdout) + "\nstderr:\n" + "\n".join(self.stderr)

    def banner(self):
        """The stdout lines up to and including "Ctrl-C stops it."."""
        deadline = time.monotonic() + BANNER_TIMEOUT
        lines = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                assert self.process.poll() is None, "it exited early\n" + self.output()
                continue
            lines.append(line)
            if "Ctrl-C" in line:
                return lines
        raise AssertionError("no Ctrl-C line\n" + self.output())

    def wait_until_listening(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "Apache did not start\n" + self.output()
            if accepts(self.port):
                return
            time.sleep(0.1)
        raise AssertionError(f"nothing listens on {self.port}\n" + self.output())

    def wait_for_stdout(self, text, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.stdout):
                return True
            time.sleep(0.05)
        return False

    def interrupt(self):
        """SIGINT to the CLI alone; its exit code."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=STOP_TIMEOUT)

    def stop_cleanly(self):
        """Interrupts it, and fails if it did not exit with 0 or if its
        Apache logged an error or lost a child (its error log is stderr),
        start-up and shutdown included."""
        code = self.interrupt()
        # The readers end at EOF, once Apache and the CLI have exited.
        for reader in self.readers:
            reader.join(timeout=STOP_TIMEOUT)
        assert code == 0, self.output()
        bad = unexpected_errors(self.stderr)
        assert not bad, "unexpected lines in the dev server's error log:\n" + "\n".join(bad)

    def kill(self):
        """Whatever is left, after a failed test: the CLI's whole session
        (Apache and its children included)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def config_dir(banner):
    """The run's private directory, from the line naming its configuration."""
    for line in banner:
        found = re.search(r"(/\S+)/httpd\.conf", line)
        if found:
            return Path(found.group(1))
    raise AssertionError("no configuration path in\n" + "\n".join(banner))


@pytest.fixture(scope="module")
def place():
    """A folder Apache's children (www-data) can read: pytest's own
    temporary directories are private to root."""
    parent = ROOT / "target/tmp"
    parent.mkdir(parents=True, exist_ok=True)
    os.chmod(parent, 0o755)
    root = Path(tempfile.mkdtemp(prefix="mod_wasm-dev-server-", dir=parent))
    site = root / "site"
    files = {
        "api/hello.wasm": HELLO,
        "users/[id].wasm": HELLO,
        "users/me.wasm": HELLO,
        "docs/index.wasm": HELLO,
        # The test guest answers by the last segment of the path.
        "env.wasm": GUEST,
        "read.wasm": GUEST,
        "fetch.wasm": GUEST,
        # Hidden: never a route (the module answers 404), so never listed.
        ".well-known/secret.wasm": HELLO,
    }
    for name, source in files.items():
        path = site / name
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
    (site / "public").mkdir()
    (site / "public/style.css").write_text("body { color: teal }\n")
    (root / "cache").mkdir()
    (root / "data").mkdir()
    (root / "data/note.txt").write_text("a note for the guest\n")
    for directory, _, _ in os.walk(root):
        os.chmod(directory, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def grants(place):
    """--env, --dir and --allow-outgoing (to the dev server itself)."""
    return lambda port: ["--env", "GREETING=hello there", "--dir", f"{place / 'data'}:/data:ro",
                         "--allow-outgoing", f"http://127.0.0.1:{port}"]


@pytest.fixture(scope="module")
def served(place):
    server = DevServer(place / "site", place / "cache", grants(place))
    try:
        server.banner_lines = server.banner()
        server.wait_until_listening()
        yield server
        server.stop_cleanly()
    finally:
        server.kill()


def test_lists_the_routes(served, place):
    text = "\n".join(served.banner_lines)
    site = (place / "site").resolve()
    assert f"serving {site} on http://127.0.0.1:{served.port}" in text
    assert re.search(r"^\s+/api/hello\s+=> api/hello\.wasm$", text, re.M), text
    assert re.search(r"^\s+/users/\[id\]\s+=> users/\[id\]\.wasm$", text, re.M), text
    assert re.search(r"^\s+/\*\s+=> public/ \(static files\)$", text, re.M), text
    # The cache it was given, usable by www-data.
    assert f"cached in {place / 'cache' / 'mod_wasm'}" in text, text
    assert config_dir(served.banner_lines).is_dir()


def listed_urls(banner):
    return [m.group(1) for m in
            (re.match(r"^\s+(/\S*)\s+=> (?!public/)", line) for line in banner) if m]


def test_lists_exactly_the_routes_the_module_serves(served):
    urls = listed_urls(served.banner_lines)
    assert "/users/me" in urls and "/docs/" in urls, urls
    assert not any("well-known" in url for url in urls), urls
    for url in urls:
        response = request(served.port, "GET", url.replace("[id]", "42"))
        # The guest's own answer: hello's echoes the path; the test guest's
        # /read and /fetch, asked for nothing, answer 403 and 502 with
        # "error: ...". Never Apache's 404.
        assert response.status != 404, (url, served.output())
        assert response.status == 200 or response.body.startswith(b"error: "), \
            (url, response.status, response.body)
    # What is not listed is not served.
    assert request(served.port, "GET", "/.well-known/secret").status == 404


def test_grants_environment_folders_and_outgoing_requests(served):
    env = request(served.port, "GET", "/env")
    assert b"GREETING=hello there\n" in env.body, env.body
    read = request(served.port, "GET", "/read?path=/data/note.txt")
    assert (read.status, read.body) == (200, b"a note for the guest\n"), read.body
    fetched = request(served.port, "GET", f"/fetch?url=http://127.0.0.1:{served.port}/api/hello")
    assert fetched.status == 200 and fetched.body.startswith(b"status 200\n"), fetched.body
    # Only where --allow-outgoing said.
    other = request(served.port, "GET", "/fetch?url=http://127.0.0.2:9/")
    assert other.status == 502, other.body


def test_a_bad_grant_is_an_error_before_apache_starts(place):
    for bad in (["--env", "1X=y"], ["--dir", "/no/such/folder"], ["--dir", "/tmp:relative"]):
        done = subprocess.run([str(CLI), "serve", *bad, str(place / "site")], env=clean_env(),
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 2, (bad, done)
        assert bad[0] in done.stderr, done
        assert not done.stdout, done


def test_serves_a_route_and_logs_it(served):
    response = request(served.port, "GET", "/api/hello")
    assert response.status == 200, served.output()
    assert b"/api/hello" in response.body
    # The access log goes to stdout, for the developer to see.
    assert served.wait_for_stdout('"GET /api/hello HTTP/1.1" 200'), served.output()


def test_serves_a_dynamic_segment(served):
    response = request(served.port, "GET", "/users/42")
    assert response.status == 200, served.output()
    assert b"/users/42" in response.body


def test_serves_public_files(served):
    response = request(served.port, "GET", "/style.css")
    assert response.status == 200, served.output()
    assert response.body == b"body { color: teal }\n"
    assert response.header("content-type").startswith(b"text/css")


def test_an_unknown_url_is_404(served):
    assert request(served.port, "GET", "/nope").status == 404


def test_sigint_stops_apache_and_removes_its_files(place):
    server = DevServer(place / "site", place / "cache")
    try:
        banner = server.banner()
        run_dir = config_dir(banner)
        server.wait_until_listening()
        assert request(server.port, "GET", "/api/hello").status == 200, server.output()
        server.stop_cleanly()
        assert not accepts(server.port)
        assert not run_dir.exists(), server.output()
    finally:
        server.kill()


def test_a_missing_folder_is_an_error():
    done = subprocess.run([str(CLI), "serve", "/nonexistent"], env=clean_env(),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done
    assert "/nonexistent" in done.stderr, done
    assert not done.stdout


def test_unknown_options_are_an_error_and_help_is_not():
    done = subprocess.run([str(CLI), "serve", "--bogus", "."], env=clean_env(),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done
    assert "--bogus" in done.stderr
    done = subprocess.run([str(CLI), "serve", "--help"], env=clean_env(),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done
    assert "Usage: mod_wasm serve" in done.stdout
