"""Logging: every message has its own MWnnnnn tag, LogLevel's per-module
form (wasm:debug) works, and a guest's lines name the location and the
request's id, the one LogFormat's %L prints."""

import re
import time

import pytest

from apache import ROOT, Apache
from http1 import request

TAG = re.compile(r"MW\d{5}")
# How a tag is written in C: MWLOGNO(00012) "text" (mod_wasm.h).
LOGNO = re.compile(r"MWLOGNO\((\d{5})\)")

SITE = """
LogFormat "%L %U" ids
CustomLog {dir}/ids.log ids
<Location /t>
    SetHandler wasm-handler
    WasmComponent {guest}
</Location>
"""


def test_every_tag_is_used_once_and_documented():
    used = []
    for source in sorted((ROOT / "mod_wasm").glob("*.c")):
        text = source.read_text()
        used += [f"MW{n}" for n in LOGNO.findall(text)]
        # Only through the macro, so that this check sees every one.
        spelled = TAG.findall(text)
        assert not spelled, f"{source.name} spells tags out instead of MWLOGNO: {spelled}"
    assert len(used) >= 40, used  # the 40 of this writing: the macro is found
    repeated = sorted({tag for tag in used if used.count(tag) > 1})
    assert not repeated, f"tags used more than once: {repeated}"
    table = (ROOT / "docs/log-messages.md").read_text()
    documented = set(re.findall(r"^\| (MW\d{5}) \|", table, re.M))
    assert set(used) == documented, (set(used) ^ documented)


def logged_levels(log_level):
    # Before the site: directives log at the level set when they are read.
    server = Apache(f"LogLevel {log_level}\n" + SITE, name="loglevel")
    try:
        server.start()
        assert request(server.port, "GET", "/t/echo").status == 200
        return "\n".join(server.new_log())
    finally:
        server.cleanup()


def test_loglevel_per_module_turns_our_debug_lines_on_and_off():
    # Only ours at debug: our start-up lines, no core debug lines.
    log = logged_levels("warn wasm:debug")
    assert "[wasm:debug]" in log and "MW00001" in log and "MW00030" in log, log
    assert not re.search(r"\[(core|mpm_\w+):(debug|info)\]", log), log
    # Everything at debug but ours.
    log = logged_levels("debug wasm:warn")
    assert "[core:debug]" in log or "[mpm_event:debug]" in log, log
    assert "[wasm:" not in log, log


@pytest.mark.allow_log("MW00015")
def test_a_guests_lines_name_the_location_and_the_request_id():
    server = Apache(SITE, name="request-id")
    try:
        server.start()
        assert request(server.port, "GET", "/t/stderr").status == 200
        line = next(l for l in server.wait_for_log("MW00015") if "MW00015" in l)
        match = re.search(r"guest stderr for /t/stderr \((WasmComponent .*<Location /t>"
                          r" at [^,]+), request ([^)]+)\): ", line)
        assert match, line
        request_id = match.group(2)
        # Apache writes the access log after the response went out: the
        # client may read its answer before the line is there.
        deadline = time.monotonic() + 10
        while True:
            log = server.dir / "ids.log"
            access = log.read_text().splitlines() if log.exists() else []
            if f"{request_id} /t/stderr" in access or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert f"{request_id} /t/stderr" in access, (request_id, access)
    finally:
        server.cleanup()
