"""mod-wasm:host (wit/host.wit) through Apache: a guest's log lines land in
the error log at the level it chose, and LogLevel filters them; the request
facts match what Apache itself logs. The json-api example is the guest."""

import json

import pytest

from apache import WASM_DIR, Site
from http1 import request

# %L is Apache's request id; each line also keeps the [module:level] the
# suite's log checks read.
SITE = f"""
ErrorLogFormat "[%t] [%-m:%l] [pid %P:tid %T] [id %L] %M"
<Location /json>
    SetHandler wasm-handler
    WasmComponent {WASM_DIR}/json_api.wasm
</Location>
<Location /quiet>
    SetHandler wasm-handler
    WasmComponent {WASM_DIR}/json_api.wasm
    LogLevel wasm:notice
</Location>
"""


@pytest.fixture(scope="module")
def apache_site():
    return Site(SITE.replace("{", "{{").replace("}", "}}"), "host-interface")


@pytest.fixture(scope="module")
def mpm():
    return "event"


def test_guest_lines_have_the_level_the_guest_chose(apache):
    assert request(apache.port, "GET", "/json/api/users/1").status == 200
    lines = apache.wait_for_log("json-api: headers")
    info = [line for line in lines if "json-api: GET /json/api/users/1" in line]
    debug = [line for line in lines if "json-api: headers" in line]
    assert len(info) == 1 and "[wasm:info]" in info[0], lines
    assert "MW00028: guest log for /json/api/users/1 (WasmComponent " in info[0]
    assert "<Location /json>" in info[0] and info[0].endswith("): json-api: GET /json/api/users/1")
    assert len(debug) == 1 and "[wasm:debug]" in debug[0], lines
    apache.new_log()


def test_log_level_filters_guest_lines(apache):
    r = request(apache.port, "GET", "/quiet/api/users/2")
    assert r.status == 200 and json.loads(r.body) == {"id": 2, "name": "user 2"}
    # A line after the request's own, so that a late guest line would be seen.
    assert request(apache.port, "GET", "/json/api/users/3").status == 200
    lines = apache.wait_for_log("json-api: GET /json/api/users/3")
    assert any("json-api: GET /json/api/users/3" in line for line in lines), lines
    assert not [line for line in lines if "/quiet" in line], lines
    apache.new_log()


def test_request_id_is_the_one_apache_logs(apache):
    r = request(apache.port, "GET", "/json/api/whoami")
    facts = json.loads(r.body)
    lines = apache.wait_for_log("json-api: GET /json/api/whoami")
    line = next(line for line in lines if "json-api: GET /json/api/whoami" in line)
    assert f"[id {facts['request_id']}]" in line, (facts, line)
    apache.new_log()
