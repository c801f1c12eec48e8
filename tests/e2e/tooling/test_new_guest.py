"""The README's recipe for a new guest outside this repository, followed as
written: its Cargo.toml and rust-toolchain.toml, the handler it shows as
`src/lib.rs`, and its build command, in a folder outside the tree. The
component it builds must be as small as the README says this repository's
guests are (the recipe carries the size profile), and Apache must serve it.

The only changes to the text are the two a user makes: the checkout's real
path for `/path/to/mod_wasm`, and (to build without downloading) this
workspace's Cargo.lock, so that cargo picks the versions already fetched."""

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from apache import HELLO, ROOT, clean_env, running
from http1 import request

README = ROOT / "README.md"
# Compiling the SDK and its dependencies for wasm32-wasip2 from nothing.
BUILD_TIMEOUT = 600


def section(text, heading):
    """The README's text from heading to the next heading of its level."""
    start = text.index(heading + "\n")
    level = heading.split(" ")[0]
    rest = text[start + len(heading) + 1:]
    end = re.search(rf"^{level} ", rest, re.M)
    return rest[:end.start()] if end else rest


def code_blocks(text, language):
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.M | re.S)


@pytest.fixture(scope="module")
def recipe():
    readme = README.read_text()
    handler = code_blocks(section(readme, "### In Rust, with guest-sdk"), "rust")[0]
    manifest, toolchain = code_blocks(section(readme, "#### A new guest, outside this repository"),
                                      "toml")
    assert manifest.startswith("# Cargo.toml\n") and "rust-toolchain.toml" in toolchain
    assert "/path/to/mod_wasm/guest-sdk" in manifest
    # Apache's children (www-data) read the built file: not under pytest's
    # private tmp.
    project = Path(tempfile.mkdtemp(prefix="mod_wasm-new-guest-"))
    try:
        (project / "Cargo.toml").write_text(
            manifest.replace("/path/to/mod_wasm", str(ROOT)))
        (project / "rust-toolchain.toml").write_text(toolchain)
        (project / "src").mkdir()
        (project / "src" / "lib.rs").write_text(handler)
        shutil.copy(ROOT / "Cargo.lock", project / "Cargo.lock")
        env = clean_env()
        for name in ("CARGO_TARGET_DIR", "RUSTUP_TOOLCHAIN", "CARGO_BUILD_TARGET"):
            env.pop(name, None)
        command = re.search(r"Then\s+`(cargo build[^`]*)`",
                            section(readme, "#### A new guest, outside this repository"))
        assert command, "the recipe names no build command"
        done = subprocess.run(command.group(1).split(), cwd=project, env=env,
                              capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        assert done.returncode == 0, done.stderr[-3000:]
        wasm = project / "target/wasm32-wasip2/release/my_guest.wasm"
        assert wasm.is_file(), sorted(p.name for p in wasm.parent.iterdir())
        project.chmod(0o755)
        for folder in wasm.relative_to(project).parents:
            (project / folder).chmod(0o755)
        yield wasm
    finally:
        shutil.rmtree(project, ignore_errors=True)


def test_the_recipe_builds_a_guest_as_small_as_the_repositorys(recipe):
    # Without the recipe's profile the same handler is several times larger
    # (debug info, no size optimisation); with it, within a few KB of the
    # in-tree hello built by the `guest` profile from the same code.
    size, hello = recipe.stat().st_size, HELLO.stat().st_size
    assert size < hello * 1.2, (size, hello)


def test_apache_serves_the_recipes_guest(recipe):
    site = f"""
<Location /mine>
    SetHandler wasm-handler
    WasmComponent {recipe}
</Location>
"""
    with running(site, "event", "new-guest") as server:
        r = request(server.port, "GET", "/mine/hello")
        assert r.status == 200, r
        assert r.body == b"Hello from WebAssembly! You asked for /mine/hello\n"
