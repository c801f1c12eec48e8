"""WasmInstanceReuse: an instance serves several requests one after another.
Its memory carries over; everything of a request (its body, its log, its
deadline) does not, and an instance that failed is never reused. Requests
that must land on one process share a keep-alive connection (prefork has
several children, each with its own instances)."""

import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from apache import GUEST, MODULES, WASM_DIR, Site
from http1 import Connection, request

SITE = """
WasmCacheDir {cache}

<Location /fresh>
    SetHandler wasm-handler
    WasmComponent {guest}
</Location>

<Location /three>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmInstanceReuse 3
</Location>

# Inherits the component and the reuse, turns reuse off.
<Location /three/off>
    WasmInstanceReuse Off
</Location>

<Location /many>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmInstanceReuse 1000
</Location>

# For the failure tests alone: under prefork, a later connection may land in
# another child, which must not have an instance of its own yet.
<Location /trapped>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmInstanceReuse 1000
</Location>

<Location /stopped>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmInstanceReuse 1000
    WasmTimeout 1
</Location>

# The same component in another section: instances are not shared.
<Location /other>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmInstanceReuse 1000
</Location>

<Location /legacy>
    SetHandler wasm-handler
    WasmModule {legacy}
</Location>

<Location /python>
    SetHandler wasm-handler
    WasmComponent {wasm_dir}/python_hello.wasm
    WasmInstanceReuse 1000
</Location>

<Location /js>
    SetHandler wasm-handler
    WasmComponent {wasm_dir}/js_hello.wasm
    WasmInstanceReuse 1000
</Location>

# A section of the main server, and a directory whose components AddHandler
# finds (no WasmComponent directive), both seen from the two virtual hosts
# below: still one set of instances per virtual host.
<Location /shared>
    SetHandler wasm-handler
    WasmComponent {guest}
    WasmInstanceReuse 1000
</Location>

LoadModule mime_module {modules}/mod_mime.so
TypesConfig /etc/mime.types
LoadModule alias_module {modules}/mod_alias.so
Alias /files {files}
<Directory {files}>
    Options +ExecCGI
    AddHandler wasm-handler .wasm
    WasmInstanceReuse 1000
</Directory>

# The same section and component in two virtual hosts: each has its own
# instances (and its own directive line).
""" + "".join(f"""
<VirtualHost 127.0.0.1:{{port}}>
    ServerName {name}.test
    <Location /vhost>
        SetHandler wasm-handler
        WasmComponent {{guest}}
        WasmInstanceReuse 1000
    </Location>
</VirtualHost>
""" for name in ("a", "b")) + "".join(f"""
<Location /crowd{i}>
    SetHandler wasm-handler
    WasmComponent {{guest}}
    WasmInstanceReuse 1000
</Location>
""" for i in range(8))


@pytest.fixture(scope="module")
def cache():
    """One compiled-code cache for the three servers: the Python and
    JavaScript examples compile once, not once per MPM. Its parent is
    reachable by the children; the cache itself is root's (WasmCacheDir
    refuses one others may write)."""
    parent = Path(tempfile.mkdtemp(prefix="mod_wasm-reuse-cache-"))
    os.chmod(parent, 0o755)
    yield parent / "cache"
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="module")
def apache_site(cache):
    files = cache.parent / "files"
    files.mkdir()
    os.chmod(files, 0o755)
    shutil.copy(GUEST, files / "guest.wasm")
    site = (SITE.replace("{cache}", str(cache)).replace("{wasm_dir}", str(WASM_DIR))
            .replace("{modules}", str(MODULES)).replace("{files}", str(files)))
    return Site(site, "reuse")


def counts(conn, path, n, authority="127.0.0.1"):
    """The guest's request count for each of n requests on conn."""
    found = []
    for _ in range(n):
        r = conn.request("GET", path, authority=authority)
        assert r.status == 200, r.body
        found.append(int(r.body.split()[1]))
    return found


def test_without_the_directive_every_request_gets_a_fresh_instance(apache):
    with Connection(apache.port) as conn:
        assert counts(conn, "/fresh/count", 3) == [1, 1, 1]


def test_an_instance_serves_its_number_of_requests_then_a_fresh_one_takes_over(apache):
    with Connection(apache.port) as conn:
        assert counts(conn, "/three/count", 7) == [1, 2, 3, 1, 2, 3, 1]


def test_a_nested_section_turns_reuse_off(apache):
    with Connection(apache.port) as conn:
        assert counts(conn, "/three/off/count", 3) == [1, 1, 1]


def test_sections_do_not_share_instances(apache):
    with Connection(apache.port) as conn:
        first = counts(conn, "/other/count", 1)[0]
        counts(conn, "/many/count", 2)
        assert counts(conn, "/other/count", 1) == [first + 1]


def test_virtual_hosts_do_not_share_instances(apache):
    with Connection(apache.port) as conn:
        first = counts(conn, "/vhost/count", 2, authority="a.test")
        assert first[1] == first[0] + 1
        assert counts(conn, "/vhost/count", 1, authority="b.test") == [1]
        assert counts(conn, "/vhost/count", 1, authority="a.test") == [first[1] + 1]


@pytest.mark.parametrize("path", ["/shared/count", "/files/guest.wasm/count"])
def test_a_main_server_section_has_instances_per_virtual_host(apache, path):
    with Connection(apache.port) as conn:
        first = counts(conn, path, 2, authority="a.test")
        assert first[1] == first[0] + 1
        assert counts(conn, path, 1, authority="b.test") == [1]
        assert counts(conn, path, 1, authority="a.test") == [first[1] + 1]


@pytest.mark.allow_log("MW00012")
def test_an_instance_that_trapped_is_not_reused(apache):
    children = apache.children()
    with Connection(apache.port) as conn:
        assert counts(conn, "/trapped/count", 2) == [1, 2]
        # A 500 closes the connection.
        assert conn.request("GET", "/trapped/trap").status == 500
    with Connection(apache.port) as conn:
        assert counts(conn, "/trapped/count", 2) == [1, 2]
    assert not apache.lost_children(children)


@pytest.mark.allow_log("MW00020")
def test_an_instance_stopped_by_its_timeout_is_not_reused(apache):
    with Connection(apache.port) as conn:
        assert counts(conn, "/stopped/count", 2) == [1, 2]
        assert conn.request("GET", "/stopped/spin").status == 504
    with Connection(apache.port) as conn:
        assert counts(conn, "/stopped/count", 1) == [1]


def test_a_body_kept_from_an_earlier_request_reads_as_failed(apache):
    children = apache.children()
    with Connection(apache.port) as conn:
        r = conn.request("POST", "/many/keep-body", body=b"x" * 100_000)
        assert r.status == 200 and r.body == b"kept\n"
        # The kept stream belonged to a request that is gone.
        r = conn.request("GET", "/many/kept-body")
        assert r.status == 200
        assert r.body == b"the kept body failed\n"
    assert not apache.lost_children(children)


@pytest.mark.allow_log("MW00015")
def test_each_request_logs_what_its_guest_wrote(apache):
    with Connection(apache.port) as conn:
        served = counts(conn, "/many/count?log", 3)
    lines = apache.wait_for_log(f"count {served[-1]}")
    for n in served:
        [line] = [line for line in lines if line.endswith(f"count {n}")]
        assert "MW00015" in line and "for /many/count" in line, line


@pytest.mark.parametrize("location, language", [("/python", "Python"), ("/js", "JavaScript")])
def test_interpreted_guests_answer_every_request_of_a_reused_instance(apache, location,
                                                                      language):
    with Connection(apache.port) as conn:
        for i in range(5):
            body = f"request {i}".encode()
            r = conn.request("POST", f"{location}/{i}", body=body)
            assert r.status == 200
            assert r.body == (f"Hello from {language}! POST {location}/{i}, "
                              f"{len(body)} bytes of body\n").encode() + body


@pytest.mark.allow_log("AH00484")
def test_more_sections_than_idle_room_all_answer(apache):
    """Eight sections keep instances, more than a child's pool holds: an
    instance is evicted when room is needed, and no request fails, a
    legacy module's included."""
    failures = []

    def client(offset):
        # A connection per request: the event MPM closes idle keep-alive
        # connections when all its threads are busy.
        for i in range(40):
            r = request(apache.port, "GET", f"/crowd{(offset + i) % 8}/count")
            if r.status != 200 or not r.body.startswith(b"count "):
                failures.append((r.status, r.body))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [], apache.peek_log()
    # Idle instances now fill the pool; a module needs a slot too.
    for _ in range(4):
        assert request(apache.port, "GET", "/legacy").status == 200
    # With room for more, the evictions did not stop reuse.
    with Connection(apache.port) as conn:
        served = counts(conn, "/crowd0/count", 2)
    assert served[1] == served[0] + 1
    assert request(apache.port, "GET", "/fresh/count").status == 200
