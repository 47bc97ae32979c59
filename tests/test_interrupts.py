"""A test interrupted while its services start (pytest-timeout, Ctrl-C) leaves nothing running past it.

Real pytest sessions with the real pytest-timeout: its ``signal`` method raises in the
test's thread while a service starts, waits, or a grouped start is under way; its
``thread`` method ends the whole process (then the run's reaper removes everything).
"""

from __future__ import annotations

import os
import re

import pytest
from conftest import TEST_IMAGE, wait_until_gone
from test_plugin import RUN_LINE, leftovers, run_id
from test_reaper import wait_for

from pytest_dockernet import new_run_id

INTERRUPTED = f"""
import time

import pytest

from pytest_dockernet import service_fixture, wait
from pytest_dockernet.engine.naming import LABEL_RUN, LABEL_TEST

IMAGE = {TEST_IMAGE!r}
NEVER = wait.port(9, timeout=120)  # nothing listens there: the start waits until interrupted

stuck = service_fixture(IMAGE, ["sleep", "300"], alias="stuck", wait=NEVER)
beside = service_fixture(IMAGE, ["sleep", "300"], alias="beside")
alone = service_fixture(IMAGE, ["sleep", "300"], alias="alone", wait=NEVER, scope="module")


@pytest.mark.timeout(4)
def test_interrupted_grouped_start(stuck, beside):
    pass


@pytest.mark.timeout(4)
def test_interrupted_run(docker_network):
    docker_network.run(IMAGE, ["sleep", "300"], alias="ready")
    docker_network.run(IMAGE, ["sleep", "300"], alias="slow", wait=NEVER)


@pytest.mark.timeout(4)
def test_interrupted_module_service(alone):
    pass


def test_nothing_of_them_runs_on(docker_client, dockernet_manager):
    # Their containers go with their tests' teardown (in the background), not at the run's end.
    run = dockernet_manager.identity.run
    deadline = time.monotonic() + 30
    while True:
        running = [
            container["Names"][0]
            for container in docker_client.api.containers(filters={{"label": f"{{LABEL_RUN}}={{run}}"}})
            if "interrupted" in (container.get("Labels") or {{}}).get(LABEL_TEST, "")
        ]
        if not running:
            break
        assert time.monotonic() < deadline, running
        time.sleep(0.2)
"""


@pytest.mark.parametrize(
    "xdist", [(), ("-p", "xdist", "-n", "2", "--dist", "loadfile")], ids=["serial", "xdist"]
)
def test_a_time_out_mid_start_leaves_nothing_running_and_counts_agree(pytester, image, docker_client, xdist):
    pytester.makepyfile(test_interrupted=INTERRUPTED)
    result = pytester.runpytest_subprocess("-p", "timeout", "--timeout-method", "signal", *xdist)
    result.assert_outcomes(passed=1, failed=1, errors=2)
    text = result.stdout.str()
    # Counted in the report part: with CI set, pytest's short summary repeats messages whole.
    report = text.split("short test summary info")[0]
    assert report.count("Timeout (>4.0s) from pytest-timeout") == 3, text
    match = RUN_LINE.search(text)
    assert match, text
    removed = re.search(r"removed \d+ networks? and (\d+) containers?", text)
    assert removed is not None, text
    assert removed.group(1) == match.group(3), text  # containers: created == removed
    assert match.group(2) == match.group(4), text  # networks: created == removed
    assert "did not finish its teardown" not in text, text
    assert leftovers(docker_client, run_id(result)) == []
    wait_until_gone(docker_client, run_id(result))


def test_the_thread_method_ends_the_process_and_the_reaper_removes_everything(
    pytester, image, docker_client, monkeypatch
):
    probe = f"interrupt-probe={new_run_id()}"
    monkeypatch.setenv("PYTEST_DOCKERNET_LABELS", f"{os.environ['PYTEST_DOCKERNET_LABELS']},{probe}")
    pytester.makepyfile(test_interrupted=INTERRUPTED)
    result = pytester.runpytest_subprocess("-p", "timeout", "--timeout-method", "thread", "-k", "grouped")
    # The thread method dumps the stacks and ends the process at once: no summary of ours.
    assert "Timeout" in result.stdout.str() + result.stderr.str()
    assert "pytest-dockernet" not in result.stdout.str()

    def gone() -> bool:
        # The low-level calls: containers.list() inspects each one, and the reaper removes them meanwhile.
        containers = docker_client.api.containers(all=True, filters={"label": probe})
        networks = docker_client.api.networks(filters={"label": probe})
        return not containers and not networks

    wait_for(gone, 30, "the reaper to remove what the ended process made")
