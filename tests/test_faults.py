"""The run's own processes failing at the worst moments, for real, on the real engine.

Each test is one row of README.rst's "Never leak, whatever happens" table.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import docker
import filelock
import psutil
import pytest
from conftest import SUITE_ID, SUITE_LABEL_KEY, TEST_IMAGE, core_identity
from test_reaper import HOLDING_TEST, leftovers, ready_files, run_of, start, wait_for

from pytest_dockernet import LockTimeoutError, NetworkManager, new_run_id
from pytest_dockernet.engine import connection as engine
from pytest_dockernet.engine.processes import ProcessRef
from pytest_dockernet.runs.reaper import ensure_reaper
from pytest_dockernet.runs.rundir import RunDir

# One worker creates networks at once; the other has created nothing when the controller
# is killed, then goes on as an orphan until execnet notices (at its next report).
ORPHANS = """
import time
import pytest

@pytest.mark.parametrize("n", range(2))
def test_make(docker_network_factory, n):
    if n == 1:
        time.sleep(2)
    for _ in range(20):
        docker_network_factory()
"""


def probed(probe: str) -> dict[str, str]:
    """The environment that puts a label of the test's own on everything a run makes."""
    return {"PYTEST_DOCKERNET_LABELS": f"{SUITE_LABEL_KEY}={SUITE_ID},probe={probe}"}


def count(client, probe: str) -> int:
    filters = {"label": [f"probe={probe}"]}
    return len(client.api.containers(all=True, filters=filters)) + len(client.api.networks(filters=filters))


def running(processes: list[psutil.Process]) -> list[int]:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process.pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def test_sigkill_in_the_first_second_leaves_nothing_though_orphans_go_on(pytester, image, docker_client):
    pytester.makepyfile(ORPHANS)
    probe = new_run_id()
    controller = start(pytester, "-p", "xdist", "-n", "2", env=probed(probe))
    try:
        wait_for(lambda: count(docker_client, probe), 60, "the run's first network", interval=0.01)
        # The workers and the reaper: every process that could still create or remove.
        family = psutil.Process(controller.pid).children(recursive=True)
        controller.kill()
        controller.wait()
        wait_for(lambda: not running(family), 120, "the orphaned workers and the reaper to exit")
    finally:
        controller.kill()
        controller.wait()
        for pid in running(family):
            os.kill(pid, signal.SIGKILL)
    assert count(docker_client, probe) == 0, "a worker made networks after the reaper's last look"


def test_warnings_as_errors_behave_like_a_plain_run(pytester, image, docker_client):
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.parametrize("n", range(3))
        def test_service(docker_network, n):
            box = docker_network.run({TEST_IMAGE!r}, ["sleep", "300"], alias="box")
            # Attached streams (exec and job stdin) close their sockets, too.
            assert box.exec(["cat"], stdin="in").output == "in"
            assert docker_network.run_job({TEST_IMAGE!r}, ["cat"], stdin="job").output == "job"
        """
    )
    for args in ([], ["-p", "xdist", "-n", "2"]):
        result = pytester.runpytest_subprocess("-W", "error", *args)
        result.assert_outcomes(passed=3)
        assert "ResourceWarning" not in result.stdout.str()


def test_ctrl_c_of_an_xdist_run_still_prints_an_honest_summary(pytester, image, docker_client):
    pytester.makepyfile(HOLDING_TEST)
    process = start(pytester, "-p", "xdist", "-n", "2", new_session=True)
    try:
        ready = wait_for(lambda: ready_files(pytester.path, 2), 60, "both workers to hold a network")
        run = run_of(ready[0])
        os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    assert "KeyboardInterrupt" in output, output
    assert f"run {run}: created 2 networks and 2 containers; removed 2 networks and 2 containers" in output, (
        output
    )
    assert "still on the engine" not in output
    assert leftovers(docker_client, run) == []


def test_the_reaper_lock_is_the_runs_own_and_a_time_out_is_one_sentence(tmp_path):
    run_dir = RunDir(tmp_path, "r1")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import filelock, sys, time; lock = filelock.FileLock(sys.argv[1]); lock.acquire(); print(1, flush=True); time.sleep(60)",
            str(run_dir.reaper_lock),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "1\n"
        with pytest.raises(LockTimeoutError) as excinfo:
            ensure_reaper(run_dir, ProcessRef.current(), tmp_path, lock_timeout=0.2)
        assert str(excinfo.value) == (
            "could not acquire the reaper lock of run r1 (--dockernet-lock-timeout)"
            f" {run_dir.reaper_lock} within 0.2 s: another process of the run holds it"
        )
        # Another run's reaper lock is another file: held or not, this one is free.
        with filelock.FileLock(str(RunDir(tmp_path, "r2").reaper_lock), timeout=0):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_calls_from_threads_survive_the_environment_changing_under_them(docker_client):
    """pytest sets and deletes PYTEST_CURRENT_TEST at every test phase while the plugin's
    background threads call the engine. requests iterates os.environ at every call (proxy
    settings), and a key deleted meanwhile raised KeyError: a container's removal failed
    with "'PYTEST_CURRENT_TEST'" in a CI run. Made frequent here by a tiny switch interval."""
    manager_client = NetworkManager.for_client(docker.from_env(), core_identity()).client
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            os.environ["DOCKERNET_CHURN"] = "x"
            del os.environ["DOCKERNET_CHURN"]

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    churner = threading.Thread(target=churn)
    churner.start()
    errors = []
    try:
        for _ in range(300):
            try:
                manager_client.ping()
            except Exception as exc:  # noqa: BLE001 - counted
                errors.append(exc)
    finally:
        stop.set()
        churner.join()
        sys.setswitchinterval(interval)
    assert errors == []
    assert manager_client.api.trust_env is False  # a unix socket: no proxy applies
    assert engine.connect().api.trust_env is False
