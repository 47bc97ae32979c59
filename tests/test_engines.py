"""One run on several engines (--dockernet-engine): the main engine and a second dockerd of
the test's own (see test_engine_restart.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import docker
import pytest
from conftest import TEST_IMAGE
from test_reaper import kill_lingering, leftovers, ready_files, run_of, start, wait_for

from pytest_dockernet.engine import connection as engine_module
from pytest_dockernet.engine.images import import_busybox
from pytest_dockernet.runs.lease import leases

PLACED = f"""
import json, os
import docker
import pytest

@pytest.mark.parametrize("n", range(6))
def test_placed(docker_network, docker_client, worker_id, n):
    service = docker_network.run({TEST_IMAGE!r}, ["sleep", "60"], alias="one")
    assert service.exec(["nslookup", "one"]).ok
    record = {{
        "worker": worker_id,
        "fixture": docker_client.info()["ID"],
        "network": docker_network.client.api.inspect_network(docker_network.id)["Id"],
        "from_env": docker.from_env().info()["ID"],
    }}
    with open(f"placed-{{n}}.json", "w") as out:
        json.dump(record, out)
"""


@pytest.fixture
def two_engines(engine, image, docker_client):
    """The main engine's URL and the second engine's, each with the test image."""
    second = docker.DockerClient(base_url=engine.host)
    import_busybox(second, TEST_IMAGE)
    return engine_module.endpoint(), engine.host, docker_client, second


def engine_args(urls):
    return [arg for url in urls for arg in ("--dockernet-engine", url)]


def test_workers_are_placed_on_the_engines_in_turn_and_each_network_lives_on_one(pytester, two_engines):
    main_url, second_url, main, second = two_engines
    pytester.makepyfile(PLACED)
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2", *engine_args([main_url, second_url]))
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        ["run *: created 6 networks and 6 containers; removed 6 networks and 6 containers"]
    )
    records = [json.loads(path.read_text()) for path in pytester.path.glob("placed-*.json")]
    expected = {"gw0": main.info()["ID"], "gw1": second.info()["ID"]}
    for record in records:
        assert record["fixture"] == record["from_env"] == expected[record["worker"]], record
    assert {record["worker"] for record in records} == {"gw0", "gw1"}
    run = result.stdout.str().split("run ", 1)[1][:8]
    assert leftovers(main, run) == []
    assert leftovers(second, run) == []


HOLD = f"""
import os, time

def test_hold_one(docker_network):
    docker_network.run({TEST_IMAGE!r}, ["sleep", "300"], alias="held")
    open(f"ready-{{os.environ['PYTEST_XDIST_WORKER']}}-{{os.getpid()}}", "w").write(docker_network.name)
    time.sleep(120)

def test_hold_two(docker_network):
    test_hold_one(docker_network)
"""


def test_ls_shows_each_engine_and_the_reapers_clean_both_after_a_sigkill(pytester, two_engines):
    main_url, second_url, main, second = two_engines
    pytester.makepyfile(HOLD)
    urls = ",".join([main_url, second_url])
    controller = start(pytester, "-p", "xdist", "-n", "2", env={"PYTEST_DOCKERNET_ENGINES": urls})
    workers: set[int] = set()
    try:
        ready = wait_for(lambda: ready_files(pytester.path, 2), 60, "both workers to hold a network")
        run = run_of(ready[0])
        workers = {int(path.name.split("-")[2]) for path in ready}
        listing = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest_dockernet",
                "ls",
                "--run",
                run,
                "--engine",
                main_url,
                "--engine",
                second_url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        lines = listing.splitlines()
        assert lines[0].split()[:3] == ["RUN", "ENGINE", "STATE"], listing
        assert {tuple(line.split()[:3]) for line in lines[1:]} == {
            (run, main_url, "alive"),
            (run, second_url, "alive"),
        }, listing
        assert run in leases(main)
        assert run in leases(second)  # a lease on each engine of the run
        controller.send_signal(signal.SIGKILL)
        controller.wait()
        killed = time.monotonic()
        for client in (main, second):
            wait_for(
                lambda c=client: not leftovers(c, run) and run not in leases(c), 30, "the run to be reaped"
            )
        print(f"both engines reaped {time.monotonic() - killed:.2f} s after the SIGKILL")
    finally:
        controller.kill()
        controller.communicate()
        kill_lingering(workers)


def test_a_bad_engine_url_is_one_sentence(pytester):
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_subprocess("--dockernet-engine", "docker.example:2375")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: pytest-dockernet: --dockernet-engine: 'docker.example:2375' is not an engine URL; expected one starting with unix://*"
        ]
    )
