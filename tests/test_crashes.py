"""A crashed xdist worker's resources are counted, and what the reaper removed for it is said."""

from __future__ import annotations

import re

from conftest import TEST_IMAGE, wait_until_gone
from test_plugin import run_id

CRASHING = f"""
import os

import pytest

IMAGE = {TEST_IMAGE!r}
SLEEP = ["sleep", "300"]


def test_crash(docker_network, docker_network_factory):
    docker_network.run(IMAGE, SLEEP, alias="a")
    docker_network_factory().run(IMAGE, SLEEP, alias="b")
    os._exit(1)  # the worker dies mid-test: no teardown, no session end


@pytest.mark.parametrize("n", range(4))
def test_fine(docker_network, n):
    docker_network.run(IMAGE, SLEEP, alias="c")
"""


def test_a_crashed_workers_resources_are_counted_and_the_reapers_removals_said(
    pytester, image, docker_client
):
    pytester.makepyfile(test_crashing=CRASHING)
    # Without prefetching: a network prefetched for the crashed worker's next test would be
    # one more for the reaper to remove, and the counts below would depend on the order.
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2", "--dockernet-no-prefetch")
    result.assert_outcomes(passed=4, failed=1)
    text = result.stdout.str()
    assert "created 6 networks and 6 containers; removed 6 networks and 6 containers" in text, text
    crash = re.search(
        r"worker (gw\d) \(pid (\d+)\) crashed; the reaper removed the 2 networks and 2 containers it left",
        text,
    )
    assert crash, text
    assert "did not finish its teardown" not in text, text
    wait_until_gone(docker_client, run_id(result))
