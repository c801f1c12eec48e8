"""What every e2e test shares: the helpers beside this file (apache.py,
http1.py, echo.py, streaming.py) are importable from every group's
directory; the `apache` fixture starts the server of the group's (or the
module's) `apache_site` under each MPM of `mpm`; and every Apache the tests
start has its whole error log checked.

A group's conftest.py (component/, legacy/, sandbox/) defines its
`apache_site`; a module with a site of its own overrides `apache_site`, and
one that needs fewer MPMs overrides `mpm`.
"""

import sys
from pathlib import Path

import pytest

# pytest's default import mode already puts this directory on sys.path for
# this file; said here too, so that the group directories' modules can rely
# on it whatever the mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import apache as harness  # noqa: E402
from apache import MPMS, LogWatch, log_report, running  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "allow_log(*tags): error-log tags this test expects to cause, on any "
                   "server running during it")
    harness.WATCH = LogWatch()


def pytest_unconfigure(config):
    harness.WATCH = None


@pytest.fixture(scope="module", params=MPMS)
def mpm(request):
    """The MPM of the module's `apache`: each of them, unless the module
    says otherwise."""
    return request.param


@pytest.fixture(scope="module")
def apache(apache_site, mpm):
    """A started server for apache_site (an apache.Site) under mpm. Its
    log is checked after every test and once more after it stopped."""
    with running(apache_site.body, mpm, f"{apache_site.name}-{mpm}",
                 apache_site.prepare, apache_site.allow) as server:
        yield server
    found = harness.WATCH.take(server)
    assert not found, log_report([(server, found)])


@pytest.fixture(autouse=True)
def error_log_is_clean(request):
    """Fails a test during which any running Apache logged an error it did
    not expect (allow_log names the tags it expects), or a child died; the
    servers that stopped during the test included, their shutdown too."""
    marker = request.node.get_closest_marker("allow_log")
    harness.WATCH.begin(marker.args if marker else ())
    yield
    found = harness.WATCH.end()
    assert not found, log_report(found)


@pytest.fixture(scope="module", autouse=True)
def error_logs_of_the_module_are_clean():
    """What servers stopped after the module's last test logged (a
    fixture's server, at its shutdown) and no test has reported."""
    yield
    found = harness.WATCH.found
    harness.WATCH.found = []
    assert not found, log_report(found)
