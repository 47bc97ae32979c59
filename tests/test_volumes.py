"""Named volumes: labelled, removed with their test, kept, listed, reaped and swept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from conftest import SUITE_LABELS, TEST_IMAGE
from test_reaper import dead_pid, ready_files, start, wait_for

from pytest_dockernet import new_run_id
from pytest_dockernet.engine.cleanup import find_labelled_volumes
from pytest_dockernet.engine.naming import LABEL_HOST, LABEL_PID, LABEL_RUN, LABEL_TEST, this_host

SLEEP = ["sleep", "300"]


def volumes_of(client, run):
    return [volume["Name"] for volume in find_labelled_volumes(client, run)]


def test_a_volume_carries_data_between_containers_and_goes_with_release(manager, image, docker_client):
    volume = manager.create_volume(test="t::v", labels={"team": "qa"})
    with manager.create_network() as net:
        writer = net.run(image, SLEEP, volumes=[volume.mount("/data")])
        assert writer.exec(["sh", "-c", "echo kept-data > /data/file"]).ok
        read = net.run_job(image, ["cat", "/data/file"], volumes={volume: {"bind": "/data", "mode": "ro"}})
        assert read.output == "kept-data\n"
        labels = docker_client.api.inspect_volume(volume.name)["Labels"]
        assert labels[LABEL_RUN] == manager.identity.run
        assert labels[LABEL_TEST] == "t::v"
        assert labels["team"] == "qa"
    assert manager.release_volume(volume) == []
    assert volumes_of(docker_client, manager.identity.run) == []
    assert (manager.tally.volumes_created, manager.tally.volumes_removed) == (1, 1)


def test_docker_volume_goes_after_the_containers_that_use_it(pytester, image, docker_client):
    pytester.makepyfile(
        f"""
        def test_uses_a_volume(docker_network, docker_volume):
            data = docker_volume()
            box = docker_network.run({TEST_IMAGE!r}, ["sleep", "300"], volumes=[data.mount("/data")])
            assert box.exec(["touch", "/data/x"]).ok
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["run *: created 1 network, 1 container and 1 volume; removed 1 network, 1 container and 1 volume"]
    )
    run = result.stdout.str().split("run ")[-1][:8]
    assert volumes_of(docker_client, run) == []


def test_kept_volumes_are_listed_and_pruned(pytester, image, docker_client, prune_afterwards):
    pytester.makepyfile("def test_keeps(docker_volume):\n    docker_volume()\n")
    result = pytester.runpytest_subprocess("--dockernet-keep")
    prune_afterwards(result.stdout.str().split("run ")[-1][:8])
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["kept 0 networks, 0 containers and 1 volume (--dockernet-keep): *"])
    run = result.stdout.str().split("run ")[-1][:8]
    listed = subprocess.run(
        [sys.executable, "-m", "pytest_dockernet", "ls", "--run", run, "-v"], capture_output=True, text=True
    )
    header, row, *details = listed.stdout.splitlines()
    assert header.split()[-1] == "VOLUMES"
    assert row.split()[1] == "kept"
    assert row.split()[-1] == "1"
    assert any(line.split()[:1] == ["volume"] for line in details)
    pruned = subprocess.run(
        [sys.executable, "-m", "pytest_dockernet", "prune", "--run", run], capture_output=True, text=True
    )
    assert pruned.returncode == 0, pruned.stderr
    assert volumes_of(docker_client, run) == []


def test_the_reaper_removes_a_killed_runs_volumes(pytester, image, docker_client):
    pytester.makepyfile(
        f"""
        import os, time

        def test_hold(docker_network, docker_volume):
            data = docker_volume()
            docker_network.run({TEST_IMAGE!r}, ["sleep", "300"], volumes=[data.mount("/data")])
            with open(f"ready-0-{{os.getpid()}}", "w") as out:
                out.write(docker_network.name)
            time.sleep(120)
        """
    )
    process = start(pytester)
    try:
        ready = wait_for(lambda: ready_files(pytester.path, 1), 60, "the test to hold a volume")
        run = ready[0].read_text().split("-")[1]
        assert len(volumes_of(docker_client, run)) == 1
        process.send_signal(signal.SIGKILL)
        process.wait()
        wait_for(lambda: not volumes_of(docker_client, run), 10, "the reaper to remove the volume")
    finally:
        process.kill()
        process.wait()


def test_the_sweep_removes_a_dead_runs_volume(docker_client, planted_host, pytester):
    run = new_run_id()
    labels = {**SUITE_LABELS, LABEL_RUN: run, LABEL_PID: str(dead_pid()), LABEL_HOST: this_host()}
    docker_client.api.create_volume(f"fake-{run}", labels=labels)
    pytester.makepyfile("def test_next(docker_network):\n    pass\n")
    swept = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        env={**os.environ, **planted_host, "PYTEST_DOCKERNET_SWEEP": "1"},
        timeout=120,
    )
    assert "1 passed" in swept.stdout, swept.stdout
    assert f"swept 1 resource left by 1 dead run ({run}) before starting" in swept.stdout
    assert volumes_of(docker_client, run) == []
