"""Start and stop Debian's apache2 with a generated configuration.

Each server gets its own directory (ServerRoot, PidFile, logs, runtime
files), an ephemeral port on 127.0.0.1, and is ready when its port accepts
connections. Run as root (as in CI), the children switch to www-data.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "target/apache/mod_wasm.so"
WASM_DIR = ROOT / "target/wasm32-wasip2/release"
HELLO = WASM_DIR / "hello.wasm"
GUEST = WASM_DIR / "test_guest.wasm"
# Legacy mode (WasmModule): WASI preview1 modules.
WASIP1_DIR = ROOT / "target/wasm32-wasip1/release"
LEGACY = WASIP1_DIR / "legacy_test_guest.wasm"
APACHE = "/usr/sbin/apache2"
MODULES = Path("/usr/lib/apache2/modules")
# Generous: the Python and JavaScript examples take ~20 s each to compile.
START_TIMEOUT = 180

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

# Log levels worse than these fail a test unless the test allows their tag.
BAD_LEVEL = re.compile(r"\[[a-z_]*:(error|crit|alert|emerg)\]")
CHILD_DIED = re.compile(r"exit signal|child process \d+ still did not exit|seg(mentation )?fault",
                        re.IGNORECASE)


@contextlib.contextmanager
def running(site, mpm, name, prepare=None):
    """A started server for site under mpm; prepare(server) runs first."""
    server = Apache(site, mpm=mpm, name=name)
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
    # throughput (DESIGN.md); Apache must never inherit it.
    env.pop("RUST_BACKTRACE", None)
    env.pop("RUST_LIB_BACKTRACE", None)
    return env


class ConfigError(Exception):
    """Apache refused the configuration; .output holds what it said."""

    def __init__(self, output):
        super().__init__(output)
        self.output = output


class Apache:
    def __init__(self, body, mpm="event", name="apache"):
        self.mpm = mpm
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
LoadModule wasm_module {MODULE}
{MPM_SETTINGS[self.mpm]}
KeepAliveTimeout 30
Timeout 120
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
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

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
        unread lines (left for new_log)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.peek_log()
            if any(text in line for line in lines) or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def _unread_log(self):
        if not self.error_log.exists():
            return b""
        with open(self.error_log, "rb") as f:
            f.seek(self.log_offset)
            return f.read()

    def unexpected_errors(self, lines, allowed_tags=()):
        bad = []
        for line in lines:
            if CHILD_DIED.search(line):
                bad.append(line)
            elif BAD_LEVEL.search(line) and not any(tag in line for tag in allowed_tags):
                bad.append(line)
        return bad


class PeakRssGrowth:
    """Samples the children's resident memory while the block runs;
    .mib is the largest growth of any one child over its size before."""

    def __init__(self, server):
        self.children = server.children()
        self.before = {pid: rss_kib(pid) for pid in self.children}
        self.peak = dict(self.before)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample)
        self.mib = 0.0

    def _sample(self):
        while not self.done.is_set():
            for pid in self.children:
                try:
                    self.peak[pid] = max(self.peak[pid], rss_kib(pid))
                except OSError:
                    pass
            self.done.wait(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()
        self.mib = max(self.peak[p] - self.before[p] for p in self.children) / 1024


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0



def self_signed_cert(directory):
    """A throwaway certificate for 127.0.0.1: cert.pem and key.pem in
    directory (readable by the children, which run as another user)."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(Path(directory) / "key.pem"),
         "-out", str(Path(directory) / "cert.pem")],
        check=True, capture_output=True)
