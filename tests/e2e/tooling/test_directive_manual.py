"""The directive manual (docs/directives/): one page per directive of the
command table in mod_wasm/config.c, each with Apache's table of facts, and
an example that a real Apache accepts."""

import os
import pwd
import re

import pytest

from apache import MODULES, ROOT, WASIP1_DIR, WASM_DIR, Apache

DOCS = ROOT / "docs/directives"
CONFIG_C = ROOT / "mod_wasm/config.c"
ROWS = ["Description", "Syntax", "Default", "Context", "Override", "Status", "Module"]

# The harness loads only the MPM, mod_authz_core and mod_wasm; the examples
# may also use the modules a stock Debian Apache enables for AddHandler and
# DirectoryIndex.
EXTRA_MODULES = "".join(f"LoadModule {name}_module {MODULES}/mod_{name}.so\n"
                        for name in ("mime", "dir"))

# Paths in the examples that the test rewrites: /var/www/wasm/NAME.wasm is a
# built guest, any other /var/... path a directory of the test server.
DOC_PATH = re.compile(r"/var/[\w./-]*")


def directives():
    """The names in config.c's command table (AP_INIT_TAKE1("WasmX", ...))."""
    return set(re.findall(r'AP_INIT_\w+\(\s*"(\w+)"', CONFIG_C.read_text()))


def pages():
    # The module's overview (index.md) and the handlers' pages
    # (wasm-handler.md, wasm-status.md) are not directives.
    return {p.stem for p in DOCS.glob("Wasm*.md")}


def test_every_directive_has_a_page_and_no_page_is_stale():
    code, docs = directives(), pages()
    assert code, "no AP_INIT_* lines found in config.c"
    assert not code - docs, f"directives without a page: {sorted(code - docs)}"
    assert not docs - code, f"pages of no directive in config.c: {sorted(docs - code)}"


def test_the_index_lists_every_page():
    index = (DOCS / "README.md").read_text()
    missing = sorted(name for name in pages() if f"]({name}.md)" not in index)
    assert not missing, f"not linked from docs/directives/README.md: {missing}"


@pytest.mark.parametrize("name", sorted(pages()))
def test_page_has_title_and_all_table_rows_in_order(name):
    text = (DOCS / f"{name}.md").read_text()
    assert text.startswith(f"# {name} Directive\n"), f"{name}.md: title line"
    found = [m.group(1) for m in re.finditer(r"^\| *(\w+) *\|", text, re.MULTILINE)]
    assert [row for row in found if row in ROWS] == ROWS, f"{name}.md rows: {found}"
    assert "| Status | Extension |" in text and "| Module | mod_wasm |" in text, name


def real_path(doc_path):
    """What a path in an example stands for in the test's config: a built
    guest (by file name), or {dir}/var/... (created by the caller)."""
    if doc_path.endswith(".wasm"):
        name = doc_path.rsplit("/", 1)[1]
        built = [d / name for d in (WASM_DIR, WASIP1_DIR) if (d / name).is_file()]
        assert built, f"an example names {doc_path}, but no guest {name} is built"
        return str(built[0])
    return "{dir}" + doc_path


@pytest.mark.parametrize("name", sorted(pages()))
def test_example_passes_configtest(name):
    text = (DOCS / f"{name}.md").read_text()
    found = re.search(r"^## Example\n.*?^```apache\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert found, f"{name}.md has no ```apache block under ## Example"
    example = found.group(1)
    # Apache.config_text fills {placeholders} with str.format: keep any
    # literal braces of the example, then put {dir} in for the paths.
    body = DOC_PATH.sub(lambda m: real_path(m.group(0)),
                        example.replace("{", "{{").replace("}", "}}"))
    server = Apache(EXTRA_MODULES + body, name=f"doc-{name}")
    try:
        # Directories must exist (WasmDir checks at start-up); mode 0755 and
        # owned by root, as WasmCacheDir requires of its directory; a
        # WasmStateDir belongs to the children's user, as it requires.
        state_dirs = set(re.findall(r"^\s*WasmStateDir\s+(\S+)", example, re.MULTILINE))
        for path in set(DOC_PATH.findall(example)):
            if not path.endswith(".wasm"):
                directory = server.dir / path.lstrip("/")
                directory.mkdir(parents=True, exist_ok=True)
                directory.chmod(0o755)
                if path in state_dirs and os.geteuid() == 0:
                    www = pwd.getpwnam("www-data")
                    os.chown(directory, www.pw_uid, www.pw_gid)
        code, output = server.configtest()
        assert code == 0 and "Syntax OK" in output, f"{name}.md example:\n{body}\n{output}"
    finally:
        server.cleanup()
