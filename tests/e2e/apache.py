"""Start and stop Debian's apache2 with a generated configuration.

Each server gets its own directory (ServerRoot, PidFile, logs, runtime
files), an ephemeral port on 127.0.0.1, and is ready when its port accepts
connections. Run as root (as in CI), the children switch to www-data.

Under pytest (tests/e2e/conftest.py installs a LogWatch), every server's
error log is scanned, all of it: after each test, and once more after the
server stopped, for what a shutdown logs. Each line is judged by the tags
allowed where it was written (Site.allow, and a test's allow_log marker
while that test runs); a child that died is never allowed.
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "target/apache/mod_wasm.so"
WASM_DIR = ROOT / "target/wasm32-wasip2/guest"
HELLO = WASM_DIR / "hello.wasm"
GUEST = WASM_DIR / "test_guest.wasm"
# Legacy mode (WasmModule): WASI preview1 modules.
WASIP1_DIR = ROOT / "target/wasm32-wasip1/guest"
LEGACY = WASIP1_DIR / "legacy_test_guest.wasm"
APACHE = "/usr/sbin/apache2"
MODULES = Path("/usr/lib/apache2/modules")
# Generous: the Python and JavaScript examples take ~20 s each to compile,
# serially, and a fresh machine's first start reads everything cold.
START_TIMEOUT = 300

MPM_SETTINGS = {
    # One child with a few threads: every request lands in the same process,
    # so a test can watch that process.
    "event": """
StartServers 1
ServerLimit 1
ThreadsPerChild 4
MaxRequestWorkers 4
MinSpareThreads 1
MaxSpareThreads 4
""",
    "worker": """
StartServers 1
ServerLimit 1
ThreadsPerChild 4
MaxRequestWorkers 4
MinSpareThreads 1
MaxSpareThreads 4
""",
    "prefork": """
StartServers 2
MinSpareServers 1
MaxSpareServers 4
MaxRequestWorkers 4
""",
}

# The MPMs every per-MPM fixture runs under.
MPMS = ["event", "prefork", "worker"]

# Log levels worse than these fail a test unless the test allows their tag.
# Module names may hold digits: [http2:error], [proxy_http2:error].
BAD_LEVEL = re.compile(r"\[[a-z0-9_]*:(error|crit|alert|emerg)\]")
# Apache's own, and no fault of the module: the event MPM's listener may
# have closed its pollset when a worker hands a kept-alive connection back
# to it while the server stops (seen once in a cache test's restart).
APACHE_SHUTDOWN_RACES = ("AH03093",)
CHILD_DIED = re.compile(r"exit signal|child process \d+ still did not exit|seg(mentation )?fault",
                        re.IGNORECASE)


@dataclass
class Site:
    """What a fixture's server serves: the configuration body (see
    Apache.config_text), a name for its directory, prepare(server) to run
    before it starts, and the error-log tags expected of it as a whole
    (start-up and shutdown included)."""
    body: str
    name: str
    prepare: object = None
    allow: tuple = ()


class LogWatch:
    """The running servers, and the error-log tags allowed meanwhile (those
    of the test that runs). Installed by tests/e2e/conftest.py; without one
    (scripts/bench, scripts/soak) nothing is scanned."""

    def __init__(self):
        self.servers = []
        self.allowed = ()
        self.found = []  # [(server, lines)] found when a server stopped

    def begin(self, allowed):
        """A test starts: from here on, each server's lines may have these,
        and its new_log starts here."""
        self.allowed = tuple(allowed)
        for server in self.servers:
            server.new_log()
            server.allow_from_here(self.allowed)

    def end(self):
        """A test ends: the unexpected lines of every running server so far,
        and of those that stopped meanwhile (each line reported once)."""
        bad = [(server, server.scan_log()) for server in self.servers]
        bad += self.found
        self.found = []
        self.allowed = ()
        return [(server, lines) for server, lines in bad if lines]

    def take(self, server):
        """The lines found when server stopped, not reported yet."""
        mine = [lines for s, lines in self.found if s is server]
        self.found = [(s, lines) for s, lines in self.found if s is not server]
        return [line for lines in mine for line in lines]


WATCH = None


def log_report(found):
    """found: [(server, lines)], as a failure message."""
    return "\n".join(f"unexpected lines in the error log of {server.dir.name}:\n"
                     + "\n".join(lines) for server, lines in found)


@contextlib.contextmanager
def running(site, mpm, name, prepare=None, allow=()):
    """A started server for site under mpm; prepare(server) runs first.
    allow: the error-log tags expected of it throughout."""
    server = Apache(site, mpm=mpm, name=name, allow=allow)
    try:
        if prepare:
            prepare(server)
        server.start()
        yield server
    finally:
        server.cleanup()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env():
    env = dict(os.environ)
    # A backtrace captured on every store drop costs a third of the
    # throughput (docs/architecture.md, "Hazards"); Apache must never inherit it.
    env.pop("RUST_BACKTRACE", None)
    env.pop("RUST_LIB_BACKTRACE", None)
    return env


class ConfigError(Exception):
    """Apache refused the configuration; .output holds what it said."""

    def __init__(self, output):
        super().__init__(output)
        self.output = output


def assert_refused_at_its_line(body, directive, expected, name):
    """Configtest of body fails at the line of directive, saying each of
    the expected texts."""
    server = Apache(body, name=name)
    try:
        word = directive.split()[0]
        lines = server.config_text().splitlines()
        line = next(i for i, text in enumerate(lines, 1) if text.strip().startswith(word))
        code, output = server.configtest()
        assert code != 0
        assert f"line {line} of {server.conf}" in output, output
        for text in expected:
            assert text in output, output
    finally:
        server.cleanup()


def unexpected_errors(lines, allowed_tags=()):
    """The error-log lines that fail a test: a child that died, or an error
    (or worse) without one of allowed_tags."""
    bad = []
    for line in lines:
        # A test that kills a child on purpose allows Apache's AH00052.
        if CHILD_DIED.search(line) and not any(tag in line for tag in allowed_tags):
            bad.append(line)
        elif BAD_LEVEL.search(line) and not any(
                tag in line for tag in (*allowed_tags, *APACHE_SHUTDOWN_RACES)):
            bad.append(line)
    return bad


class Apache:
    def __init__(self, body, mpm="event", name="apache", allow=(), module=MODULE):
        """module: the mod_wasm.so to load (make bench's A/B run loads an
        earlier build)."""
        self.mpm = mpm
        self.module = module
        self.dir = Path(tempfile.mkdtemp(prefix=f"mod_wasm-{name}-"))
        os.chmod(self.dir, 0o755)
        (self.dir / "run").mkdir()
        self.port = free_port()
        self.conf = self.dir / "httpd.conf"
        self.error_log = self.dir / "error.log"
        self.console_log = self.dir / "console.log"
        self.body = body
        self.process = None
        self.log_offset = 0
        # The error-log scan: tags allowed from each offset on, how far the
        # log was scanned, and the tags this server allows throughout.
        self.allow = tuple(allow)
        self.allowed_from = [(0, self.allow)]
        self.scanned = 0
        self.run_from = 0

    def config_text(self):
        user = ""
        if os.geteuid() == 0:
            user = "User www-data\nGroup www-data\n"
        return f"""
ServerRoot {self.dir}
ServerName 127.0.0.1
Listen 127.0.0.1:{self.port}
PidFile {self.dir}/httpd.pid
ErrorLog {self.error_log}
LogLevel info wasm:debug
DefaultRuntimeDir {self.dir}/run
{user}
LoadModule mpm_{self.mpm}_module {MODULES}/mod_mpm_{self.mpm}.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
LoadModule wasm_module {self.module}
{MPM_SETTINGS[self.mpm]}
KeepAliveTimeout 30
Timeout 120
GracefulShutdownTimeout 10
""" + self.body.format(port=self.port, hello=HELLO, guest=GUEST, legacy=LEGACY,
                      dir=self.dir)

    def write_config(self):
        self.conf.write_text(self.config_text())

    def configtest(self):
        """apache2 -t: (exit code, output)."""
        self.write_config()
        done = subprocess.run([APACHE, "-t", "-f", str(self.conf)], env=clean_env(),
                              capture_output=True, text=True, timeout=START_TIMEOUT)
        return done.returncode, done.stdout + done.stderr

    def start(self):
        # The port was free when picked; another process may have taken it
        # since. Pick again rather than fail.
        for _ in range(3):
            try:
                return self._start()
            except ConfigError as refused:
                if "Address already in use" not in refused.output:
                    raise
                self.port = free_port()
        return self._start()

    def _start(self):
        self.write_config()
        # A run's scan begins where its log does: what an attempt refused
        # for its port wrote before is not this run's.
        self.run_from = self.scanned = self._log_size()
        self.allowed_from = [(self.run_from, self.allow + (WATCH.allowed if WATCH else ()))]
        # Before it opens its error log, Apache writes to stderr: keep that in
        # a file (a pipe nobody reads could fill up and stall it). Its own
        # session, because prefork's shutdown signals its whole process group.
        with open(self.console_log, "wb") as console:
            self.process = subprocess.Popen(
                [APACHE, "-f", str(self.conf), "-DFOREGROUND"], env=clean_env(),
                stdout=console, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.console_log.read_text(errors="replace")
                log = self.error_log.read_text() if self.error_log.exists() else ""
                self.process = None
                raise ConfigError(output + log)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                time.sleep(0.05)
                continue
            # The parent listens before it forks its children: tests that
            # compare child pids need them all there first.
            self._wait_for_children(deadline)
            if WATCH:
                WATCH.servers.append(self)
            return self
        self.stop()
        raise TimeoutError(f"apache did not listen on {self.port}")

    def _wait_for_children(self, deadline):
        """Until the set of children is non-empty and the same twice in a
        row, 0.2 s apart."""
        seen = None
        while time.monotonic() < deadline:
            children = self.children()
            if children and children == seen:
                return
            seen = children
            time.sleep(0.2)

    def stop(self):
        """Stops the server; under a LogWatch, then scans the rest of its
        log (the shutdown's lines are judged by the server's own tags)."""
        if self.process is None:
            return
        self.allow_from_here(())
        # A graceful stop (apachectl -k graceful-stop): an ungraceful one
        # (SIGTERM) races in Debian's 2.4 event MPM, whose main thread
        # shuts down the workers' sockets while a worker frees the one it
        # just closed, and the child dies of SIGSEGV in apr_os_sock_get
        # (seen about once in 60 stops, without any guest running). Idle
        # kept-alive connections close at once; GracefulShutdownTimeout
        # bounds the rest.
        self.process.send_signal(signal.SIGWINCH)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        if WATCH and self in WATCH.servers:
            WATCH.servers.remove(self)
            bad = self.scan_log(final=True) + self._scan_console()
            if bad:
                WATCH.found.append((self, bad))

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def lost_children(self, before):
        """The pids in before that are no longer children: children that
        died. Prefork may fork spare children at any time (when its children
        are busy or lingering on closed connections); those are no loss."""
        return sorted(set(before) - set(self.children()))

    def children(self):
        """The pids of the parent's child processes."""
        ppid = self.process.pid
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == ppid:
                pids.append(int(entry.name))
        return sorted(pids)

    def new_log(self):
        """Error log lines written since the last call."""
        data = self._unread_log()
        self.log_offset += len(data)
        return data.decode(errors="replace").splitlines()

    def peek_log(self):
        """The lines new_log would return, leaving them for it."""
        return self._unread_log().decode(errors="replace").splitlines()

    def wait_for_log(self, text, timeout=10):
        """Waits until a line containing text is in the unread log; the
        unread lines (left for new_log). Fails if none comes in time."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.peek_log()
            if any(text in line for line in lines):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError(f"no line with {text!r} in the error log within "
                                     f"{timeout} s; unread lines:\n" + "\n".join(lines[-50:]))
            time.sleep(0.05)

    def _unread_log(self):
        if not self.error_log.exists():
            return b""
        with open(self.error_log, "rb") as f:
            f.seek(self.log_offset)
            return f.read()

    def _log_size(self):
        return self.error_log.stat().st_size if self.error_log.exists() else 0

    def allow_from_here(self, tags):
        """The lines written from now on may have these tags (and the
        server's own)."""
        self.allowed_from.append((self._log_size(), self.allow + tuple(tags)))

    def scan_log(self, final=False):
        """The unexpected lines of the log not scanned yet, each judged by
        the tags allowed where it was written. Whole lines only, unless
        final (the server has stopped)."""
        if not self.error_log.exists():
            return []
        with open(self.error_log, "rb") as f:
            f.seek(self.scanned)
            data = f.read()
        if not final:
            data = data[:data.rfind(b"\n") + 1]
        bad = []
        offset = self.scanned
        for raw in data.splitlines(keepends=True):
            allowed = next(tags for start, tags in reversed(self.allowed_from)
                           if start <= offset)
            line = raw.decode(errors="replace").rstrip("\r\n")
            bad += self.unexpected_errors([line], allowed)
            offset += len(raw)
        self.scanned = offset
        return bad

    def _scan_console(self):
        """What Apache wrote before it opened its error log, judged by the
        tags allowed at start-up."""
        if not self.console_log.exists():
            return []
        lines = self.console_log.read_text(errors="replace").splitlines()
        return self.unexpected_errors(lines, self.allowed_from[0][1])

    def unexpected_errors(self, lines, allowed_tags=()):
        return unexpected_errors(lines, allowed_tags)


class PeakRssGrowth:
    """Samples the children's resident memory while the block runs, the
    set of children again at every round (a prefork child forked meanwhile
    may serve the request); .mib is the largest growth of any one child over
    its first sample, .measured the children sampled at least twice. Fails
    if no child could be measured."""

    def __init__(self, server):
        self.server = server
        self.first = {}
        self.peak = {}
        self.samples = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.error = None
        self.mib = 0.0
        self.measured = 0
        self._round()

    def _round(self):
        for pid in self.server.children():
            try:
                kib = _vm_rss_kib(pid)
            except (ProcessLookupError, FileNotFoundError):
                if Path(f"/proc/{pid}").exists():
                    raise
                continue  # it exited between the listing and the reading
            if kib is None:
                continue  # exited, not reaped yet: a zombie has no memory
            self.first.setdefault(pid, kib)
            self.peak[pid] = max(self.peak.get(pid, 0), kib)
            self.samples[pid] = self.samples.get(pid, 0) + 1

    def _run(self):
        try:
            while not self.done.is_set():
                self._round()
                self.done.wait(0.05)
        except BaseException as e:  # re-raised by __exit__
            self.error = e

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()
        if exc[0] is not None:
            return
        if self.error is not None:
            raise self.error
        self._round()
        measured = [pid for pid, n in self.samples.items() if n >= 2]
        self.measured = len(measured)
        assert measured, f"no child was measured: {self.samples}"
        self.mib = max(self.peak[p] - self.first[p] for p in measured) / 1024


def rss_kib(pid):
    """The resident memory of pid in KiB; 0 for a process that has exited
    (a zombie, not reaped yet, has no VmRSS line)."""
    return _vm_rss_kib(pid) or 0


def _vm_rss_kib(pid):
    """rss_kib, but None where there is no VmRSS line."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None



def self_signed_cert(directory):
    """A throwaway certificate for 127.0.0.1: cert.pem and key.pem in
    directory (readable by the children, which run as another user)."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(Path(directory) / "key.pem"),
         "-out", str(Path(directory) / "cert.pem")],
        check=True, capture_output=True)
