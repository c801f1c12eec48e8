"""Packaging: `make install` into a DESTDIR, and the package `make deb`
builds, installed into Debian's own Apache with apt-get and served by a
second Apache instance.

The tests run `make install` and `make deb` themselves. Neither compiles
anything (the module and the hello example are taken as `make build` left
them, which the first test checks), and `make deb` only repacks when one of
its inputs changed, so the package tested is always the current one, also
when this file runs on its own.

The package is installed as an admin would install it, so its maintainer
scripts do what Debian's module packages do: postinst enables the module in
/etc/apache2 and asks for a restart of the machine's Apache, which a
policy-rc.d refuses for the duration (one is put in place if the machine has
none that does); the purge at the end undoes the rest, and the test checks
that /etc/apache2 is then as it was. Serving is checked on a separate
instance, /etc/apache2-mwtest (Debian's multiple-instance support:
apache2ctl, a2enmod and envvars follow APACHE_CONFDIR), listening on an
ephemeral 127.0.0.1 port, never on the machine's own.
"""

import contextlib
import filecmp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import tomllib
from pathlib import Path

import pytest

from apache import BAD_LEVEL, CHILD_DIED, HELLO, MODULE, ROOT, free_port
from http1 import request

PACKAGE = "libapache2-mod-wasm"
PACKAGING = ROOT / "packaging/debian"
MODULES_DIR = Path("/usr/lib/apache2/modules")
SYSTEM_MODULE = MODULES_DIR / "mod_wasm.so"
MAIN_CONFDIR = Path("/etc/apache2")
EXAMPLES = Path("/usr/share/libapache2-mod-wasm/examples")
DOCS = Path("/usr/share/doc/libapache2-mod-wasm")
CACHE = Path("/var/cache/apache2/mod_wasm")
STATE = Path("/var/lib/apache2")
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
# The main instance's runtime directories: apache2ctl configtest, which
# apache2-maintscript-helper runs before it would restart Apache, creates
# them. Removed afterwards if the test made them.
MAIN_RUNTIME_DIRS = (Path("/var/run/apache2"), Path("/var/lock/apache2"))

# The second instance, and the directories its envvars derive from the name.
SUFFIX = "mwtest"
CONFDIR = Path(f"/etc/apache2-{SUFFIX}")
RUN_DIR = Path(f"/var/run/apache2-{SUFFIX}")
LOCK_DIR = Path(f"/var/lock/apache2-{SUFFIX}")
LOG_DIR = Path(f"/var/log/apache2-{SUFFIX}")
# a2enmod and friends keep who enabled what here; the instance gets its own.
STATE_DIR = Path(f"/var/lib/apache2-{SUFFIX}")
START_TIMEOUT = 180

VERSION = tomllib.loads((ROOT / "host/Cargo.toml").read_text())["package"]["version"]


def clean_env(**extra):
    """The environment for everything started here: no Rust backtraces for
    Apache (they cost it a third of its throughput), no make state from a
    `make test` around us, apt-get without questions."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE",
                        "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
           # An APACHE_CONFDIR from outside would point a2enmod, and the
           # package's maintainer scripts, at another instance.
           and not k.startswith("APACHE_")}
    env["DEBIAN_FRONTEND"] = "noninteractive"
    env.update(extra)
    return env


def run(args, timeout=600, **env):
    done = subprocess.run(args, env=clean_env(**env), capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    done.output = done.stdout + done.stderr
    return done


def ok(args, timeout=600, **env):
    done = run(args, timeout, **env)
    assert done.returncode == 0, f"{' '.join(map(str, args))}: exit {done.returncode}\n{done.output}"
    return done


def arch():
    return ok(["dpkg", "--print-architecture"]).stdout.strip()


def deb_path():
    return ROOT / f"target/debian/{PACKAGE}_{VERSION}_{arch()}.deb"


def package_status():
    done = run(["dpkg-query", "-W", "-f", "${Status}", PACKAGE])
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def is_installed():
    return package_status() == "install ok installed"


def is_absent():
    """Never installed, or purged."""
    status = package_status()
    return status == "unknown" or status.endswith(" not-installed")


@pytest.fixture(scope="module")
def built():
    """The module and hello example as `make build` left them."""
    for path in (MODULE, HELLO):
        assert path.exists(), f"{path} is missing: run `make build` first"


@pytest.fixture(scope="module")
def deb(built):
    ok(["make", "-s", "deb"])
    path = deb_path()
    assert path.exists(), f"make deb left no {path}"
    return path


def test_install_and_deb_build_nothing(built):
    """Dry runs: packaging neither runs cargo nor compiles the module again."""
    for goal in (["install", "DESTDIR=/nonexistent"], ["deb"]):
        commands = ok(["make", "-n", *goal]).stdout
        for word in ("cargo", "install-deps", "apxs -c", "clang"):
            assert word not in commands, f"make -n {goal[0]} would run {word}:\n{commands}"


def test_make_install_destdir(built, tmp_path):
    before = SYSTEM_MODULE.stat() if SYSTEM_MODULE.exists() else None
    destdir = tmp_path / "root"
    ok(["make", "-s", "install", f"DESTDIR={destdir}"])

    installed = destdir / "usr/lib/apache2/modules/mod_wasm.so"
    assert filecmp.cmp(installed, MODULE, shallow=False)
    assert installed.stat().st_mode & 0o777 == 0o644
    mods = destdir / "etc/apache2/mods-available"
    assert (mods / "wasm.load").read_text() == \
        "LoadModule wasm_module /usr/lib/apache2/modules/mod_wasm.so\n"
    assert (mods / "wasm.conf").read_text() == (PACKAGING / "wasm.conf").read_text()
    # Only under DESTDIR.
    after = SYSTEM_MODULE.stat() if SYSTEM_MODULE.exists() else None
    assert (before and (before.st_ino, before.st_mtime_ns)) == \
        (after and (after.st_ino, after.st_mtime_ns))

    # Again, over a wasm.conf the admin changed: that one stays.
    (mods / "wasm.conf").write_text("# mine\n")
    done = ok(["make", "-s", "install", f"DESTDIR={destdir}"])
    assert (mods / "wasm.conf").read_text() == "# mine\n"
    assert (mods / "wasm.conf.new").read_text() == (PACKAGING / "wasm.conf").read_text()
    assert "kept your" in done.output


def test_make_uninstall_destdir_undoes_install(built, tmp_path):
    destdir = tmp_path / "root"
    ok(["make", "-s", "install", f"DESTDIR={destdir}"])
    module = destdir / "usr/lib/apache2/modules/mod_wasm.so"
    mods = destdir / "etc/apache2/mods-available"
    enabled = destdir / "etc/apache2/mods-enabled"
    enabled.mkdir(parents=True)
    # As a2enmod leaves them.
    for name in ("wasm.load", "wasm.conf"):
        (enabled / name).symlink_to(f"../mods-available/{name}")
    done = ok(["make", "-s", "uninstall", f"DESTDIR={destdir}"])
    assert not module.exists() and not (mods / "wasm.load").exists(), done.output
    assert not (mods / "wasm.conf").exists(), done.output
    assert not any(enabled.iterdir()), list(enabled.iterdir())
    assert "restart Apache" in done.output

    # A wasm.conf the admin changed stays, as dpkg keeps a changed conffile.
    ok(["make", "-s", "install", f"DESTDIR={destdir}"])
    (mods / "wasm.conf").write_text("# mine\n")
    done = ok(["make", "-s", "uninstall", f"DESTDIR={destdir}"])
    assert (mods / "wasm.conf").read_text() == "# mine\n"
    assert not module.exists()
    assert "kept your changed" in done.output


def test_deb_contents(deb):
    fields = {}
    for line in ok(["dpkg-deb", "-f", str(deb)]).stdout.splitlines():
        if not line.startswith(" ") and ":" in line:
            name, value = line.split(":", 1)
            fields[name] = value.strip()
    assert fields["Package"] == PACKAGE
    assert fields["Version"] == VERSION
    assert fields["Architecture"] == arch()
    assert fields["Section"] == "httpd"
    depends = [d.strip() for d in fields["Depends"].split(",")]
    # The module ABI: what the machine's apache2-bin provides.
    provides = ok(["dpkg-query", "-W", "-f", "${Provides}", "apache2-bin"]).stdout
    api = [d for d in depends if d.startswith("apache2-api-")]
    assert len(api) == 1 and re.search(rf"\b{api[0]}\b", provides), (depends, provides)
    assert "apache2-bin (>= 2.4.16)" in depends
    # dpkg-shlibdeps' answer: libc and libgcc_s, what the module links.
    assert any(d.startswith("libc6 (>= ") for d in depends), depends
    assert any(d.startswith("libgcc-s1") for d in depends), depends

    listing = ok(["dpkg-deb", "-c", str(deb)]).stdout.splitlines()
    files = {line.split()[-1].lstrip(".") for line in listing if line.startswith("-")}
    assert files == {
        "/usr/lib/apache2/modules/mod_wasm.so",
        "/etc/apache2/mods-available/wasm.load",
        "/etc/apache2/mods-available/wasm.conf",
        f"{EXAMPLES}/hello.wasm",
        f"{EXAMPLES}/wasm-hello.conf",
        f"{DOCS}/README.md.gz",
        f"{DOCS}/copyright",
        f"{DOCS}/changelog.gz",
        # The manual's other pages, as the README links to them.
        *(f"{DOCS}/{page.relative_to(ROOT)}" for page in
          [*ROOT.glob("docs/*.md"), *ROOT.glob("docs/directives/*.md")]),
    }
    # Owned by root, as --root-owner-group makes them.
    assert all(" root/root " in line for line in listing), listing

    with tempfile.TemporaryDirectory() as control:
        ok(["dpkg-deb", "-e", str(deb), control])
        control = Path(control)
        assert sorted((control / "conffiles").read_text().split()) == [
            "/etc/apache2/mods-available/wasm.conf", "/etc/apache2/mods-available/wasm.load"]
        for script in ("postinst", "prerm", "postrm"):
            assert (control / script).stat().st_mode & 0o111
            ok(["sh", "-n", str(control / script)])
        assert "apache2_invoke enmod wasm" in (control / "postinst").read_text()
        assert "apache2_invoke dismod wasm" in (control / "prerm").read_text()


def snapshot(top):
    """Every entry below top: its kind and content (or link target)."""
    entries = {}
    for path in sorted(top.rglob("*")):
        if path.is_symlink():
            entries[str(path.relative_to(top))] = ("link", os.readlink(path))
        elif path.is_dir():
            entries[str(path.relative_to(top))] = ("dir", None)
        else:
            entries[str(path.relative_to(top))] = ("file", path.read_bytes())
    return entries


def state_markers(name):
    return sorted(str(p) for p in STATE.rglob(name)) if STATE.exists() else []


@contextlib.contextmanager
def service_actions_refused():
    """Maintainer scripts restart Apache through invoke-rc.d; a policy-rc.d
    that exits 101 makes that a no-op. One that already refuses is kept,
    anything else is set aside until the block ends."""
    if POLICY_RC_D.exists() and run([str(POLICY_RC_D), "apache2", "restart"]).returncode == 101:
        yield
        return
    saved = None
    if POLICY_RC_D.exists() or POLICY_RC_D.is_symlink():
        saved = POLICY_RC_D.with_name("policy-rc.d.mod_wasm-test")
        os.rename(POLICY_RC_D, saved)
    POLICY_RC_D.write_text("#!/bin/sh\n# tests/e2e/tooling/test_packaging.py: no service changes\nexit 101\n")
    POLICY_RC_D.chmod(0o755)
    try:
        yield
    finally:
        POLICY_RC_D.unlink()
        if saved:
            os.rename(saved, POLICY_RC_D)


def instance_env():
    return dict(APACHE_CONFDIR=str(CONFDIR), APACHE_STATE_DIRECTORY=str(STATE_DIR),
                # apache2ctl would hand `start` to systemctl (apache2@mwtest)
                # where systemd runs: this makes it start apache2 itself.
                APACHE_STARTED_BY_SYSTEMD="1")


def remove_instance():
    for path in (CONFDIR, RUN_DIR, LOCK_DIR, LOG_DIR, STATE_DIR):
        shutil.rmtree(path, ignore_errors=True)


def setup_instance(port):
    """/etc/apache2-mwtest as Debian's setup-instance makes it (a copy of
    /etc/apache2 and a log directory), listening on 127.0.0.1:port only,
    with the module not enabled yet."""
    remove_instance()
    ok(["cp", "-a", str(MAIN_CONFDIR), str(CONFDIR)])
    for name in ("wasm.load", "wasm.conf"):
        (CONFDIR / "mods-enabled" / name).unlink(missing_ok=True)
    (CONFDIR / "ports.conf").write_text(f"Listen 127.0.0.1:{port}\n")
    LOG_DIR.mkdir()
    LOG_DIR.chmod(0o750)
    shutil.chown(LOG_DIR, "root", "adm")
    # The instance's envvars put its files in the -mwtest directories.
    shown = ok(["sh", "-c", ". \"$APACHE_CONFDIR/envvars\"; "
                "echo $APACHE_RUN_DIR $APACHE_LOCK_DIR $APACHE_LOG_DIR $APACHE_RUN_USER"],
               **instance_env()).stdout.split()
    assert shown == [str(RUN_DIR), str(LOCK_DIR), str(LOG_DIR), "www-data"], shown


def apache_pid():
    """The instance's parent: from its pid file or, before Apache wrote
    that, the apache2 process started with -d /etc/apache2-mwtest whose
    parent is not one."""
    try:
        return int((RUN_DIR / "apache2.pid").read_text())
    except (OSError, ValueError):
        pass
    ours = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if argv[:3] == [b"/usr/sbin/apache2", b"-d", str(CONFDIR).encode()]:
                ours[int(entry.name)] = ppid
    parents = [pid for pid, ppid in ours.items() if ppid not in ours]
    return parents[0] if len(parents) == 1 else None


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def children(ppid):
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == ppid:
                pids.append(int(entry.name))
    return pids


def start_instance():
    # A file, not a pipe: the daemon must not hold our end open.
    with tempfile.TemporaryFile("w+") as out:
        done = subprocess.run(["apache2ctl", "start"], env=clean_env(**instance_env()),
                              stdout=out, stderr=subprocess.STDOUT, timeout=START_TIMEOUT)
        out.seek(0)
        assert done.returncode == 0, f"apache2ctl start: exit {done.returncode}\n{out.read()}"


def wait_until_serving(port):
    """Until the port accepts connections, Apache has written its pid file
    (which it does after reading its configuration again, compiling what
    is not cached: the port accepts before) and has children; the parent's
    pid."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        pid = None
        with contextlib.suppress(OSError, ValueError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            pid = int((RUN_DIR / "apache2.pid").read_text())
        if pid and alive(pid) and children(pid):
            return pid
        time.sleep(0.1)
    raise TimeoutError(f"the instance did not serve on {port}")


def stop_instance():
    """apache2ctl stop, then wait for the parent to go; True if it did.
    Without a pid file yet (stopped while starting) the parent gets the
    SIGTERM that `apache2 -k stop` sends; one that does not go is killed,
    with its children, by their pids."""
    pid = apache_pid()
    if pid is None or not alive(pid):
        return True
    stopped = run(["apache2ctl", "stop"], 60, **instance_env()).returncode == 0
    if not stopped:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not alive(pid):
            return stopped
        time.sleep(0.1)
    for victim in [*children(pid), pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    return False


def remove_runtime_dirs(paths):
    """The main instance's runtime directories this test made, unless an
    Apache runs from them meanwhile."""
    for path in paths:
        if not (path / "apache2.pid").exists():
            shutil.rmtree(path, ignore_errors=True)


def purge():
    with service_actions_refused():
        return run(["apt-get", "purge", "-y", PACKAGE])


def test_package_serves_from_a_separate_instance(deb):
    if os.geteuid() != 0:
        pytest.skip("installs a package: needs root")
    if not is_absent():
        pytest.skip(f"{PACKAGE} is installed on this machine ({package_status()}); "
                    "this test would purge it")
    main_before = snapshot(MAIN_CONFDIR)
    runtime_dirs_made = [path for path in MAIN_RUNTIME_DIRS if not path.exists()]
    markers_before = state_markers("wasm")
    port = free_port()

    with contextlib.ExitStack() as cleanup:
        # Unwound in reverse: the instance stopped, its files removed, the
        # package purged, whatever the test got to.
        cleanup.callback(remove_runtime_dirs, runtime_dirs_made)
        cleanup.callback(lambda: is_absent() or purge())
        with service_actions_refused():
            done = run(["apt-get", "install", "-y", "--no-install-recommends", str(deb)])
        assert done.returncode == 0, done.output
        assert is_installed(), package_status()
        assert run(["dpkg", "--verify", PACKAGE]).output == ""
        for path in (SYSTEM_MODULE, EXAMPLES / "hello.wasm", EXAMPLES / "wasm-hello.conf",
                     MAIN_CONFDIR / "mods-available/wasm.load",
                     MAIN_CONFDIR / "mods-available/wasm.conf"):
            assert path.is_file(), path
        # Debian's convention: postinst enabled the module (as the package
        # maintainer, so that an admin's a2dismod survives upgrades).
        assert run(["a2query", "-m", "wasm"]).returncode == 0
        assert str(STATE / "module/enabled_by_maint/wasm") in state_markers("wasm")

        cleanup.callback(remove_instance)
        setup_instance(port)
        env = instance_env()
        done = ok(["a2enmod", "wasm"], **env)
        assert "Enabling module wasm" in done.output
        assert (CONFDIR / "mods-enabled/wasm.load").resolve() == \
            CONFDIR / "mods-available/wasm.load"
        os.symlink(EXAMPLES / "wasm-hello.conf", CONFDIR / "conf-available/wasm-hello.conf")
        ok(["a2enconf", "wasm-hello"], **env)
        done = ok(["apache2ctl", "configtest"], START_TIMEOUT, **env)
        assert "Syntax OK" in done.output

        cleanup.callback(stop_instance)
        start_instance()
        pid = wait_until_serving(port)

        response = request(port, "GET", "/wasm-hello")
        assert response.status == 200, response
        assert response.body == b"Hello from WebAssembly! You asked for /wasm-hello\n"
        # Served by children that run as www-data, from code wasm.conf's
        # WasmCacheDir kept.
        www_data = pwd.getpwnam("www-data").pw_uid
        kids = children(pid)
        assert kids and all(os.stat(f"/proc/{kid}").st_uid == www_data for kid in kids)
        assert list(CACHE.glob("hello-*.cwasm")), sorted(CACHE.iterdir())

        assert stop_instance(), "the instance did not stop on apache2ctl stop"
        log = (LOG_DIR / "error.log").read_text().splitlines()
        bad = [line for line in log if BAD_LEVEL.search(line) or CHILD_DIED.search(line)]
        assert not bad, "\n".join(bad)

        done = purge()
        assert done.returncode == 0, done.output
        assert is_absent(), package_status()
        for path in (SYSTEM_MODULE, EXAMPLES, CACHE,
                     MAIN_CONFDIR / "mods-available/wasm.load",
                     MAIN_CONFDIR / "mods-available/wasm.conf",
                     MAIN_CONFDIR / "mods-enabled/wasm.load",
                     MAIN_CONFDIR / "mods-enabled/wasm.conf"):
            assert not os.path.lexists(path), f"{path} is still there after the purge"
        assert run(["a2query", "-m", "wasm"]).returncode != 0
        assert state_markers("wasm") == markers_before
        assert snapshot(MAIN_CONFDIR) == main_before, "/etc/apache2 is not as it was"

    for path in (CONFDIR, RUN_DIR, LOCK_DIR, LOG_DIR, STATE_DIR):
        assert not path.exists(), path
