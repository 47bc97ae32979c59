"""Never leak, whatever happens: processes killed for real in the middle of real runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAILING_REMOVAL_CONFTEST, SUITE_LABELS, TEST_IMAGE, create_plain_network

from pytest_dockernet import new_run_id
from pytest_dockernet.engine.cleanup import find_labelled
from pytest_dockernet.engine.naming import LABEL_HOST, LABEL_PID, LABEL_PID_START, LABEL_RUN
from pytest_dockernet.engine.processes import ProcessRef, format_start

# A test of the suite that holds a network and a service, says so, and waits to be killed.
HOLDING_TEST = f"""
import os, time
import pytest

@pytest.mark.parametrize("n", range(2))
def test_hold(docker_network, n):
    docker_network.run({TEST_IMAGE!r}, ["sleep", "300"], alias="held")
    with open(f"ready-{{n}}-{{os.getpid()}}", "w") as out:
        out.write(docker_network.name)
    time.sleep(120)
"""


def start(
    pytester: pytest.Pytester, *args: str, env: dict[str, str] | None = None, new_session: bool = False
) -> subprocess.Popen[str]:
    """A pytest run in the background (in a process group of its own with ``new_session``,
    so that a signal can reach it and its workers as a terminal's Ctrl-C does)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=new_session,
    )


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def seconds_until_reaped(client, run: str, since: float, timeout: float = 30) -> float:
    """Wait until nothing of ``run`` is left; return the seconds since ``since`` (monotonic)."""
    wait_for(lambda: not leftovers(client, run), timeout, f"run {run} to be reaped", interval=0.02)
    return time.monotonic() - since


def text_of(path: Path) -> str:
    """What ``path`` holds, or "" while it is missing or not yet written (a file is created
    before it is written: a CI run once read one empty)."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def ready_files(path: Path, count: int) -> list[Path]:
    """The ready files of ``path`` once ``count`` of them hold their network's name."""
    files = [file for file in sorted(path.glob("ready-*")) if text_of(file)]
    return files if len(files) >= count else []


def run_of(ready: Path) -> str:
    return ready.read_text().split("-")[1]


def leftovers(client, run: str) -> list[str]:
    containers, networks = find_labelled(client, run)
    return [c["Names"][0] for c in containers] + [n["Name"] for n in networks]


def kill_lingering(pids: set[int]) -> None:
    for pid in pids:
        if ProcessRef(pid).alive():
            os.kill(pid, signal.SIGKILL)


def test_sigkill_of_the_controller_mid_run_leaves_nothing(pytester, image, docker_client):
    pytester.makepyfile(HOLDING_TEST)
    controller = start(pytester, "-p", "xdist", "-n", "2")
    try:
        ready = wait_for(lambda: ready_files(pytester.path, 2), 60, "both workers to hold a network")
        run = run_of(ready[0])
        workers = {int(p.name.split("-")[2]) for p in ready}
        assert len(leftovers(docker_client, run)) == 4
        controller.send_signal(signal.SIGKILL)
        controller.wait()
        elapsed = seconds_until_reaped(docker_client, run, since=time.monotonic(), timeout=10)
    finally:
        controller.kill()
        controller.wait()
    kill_lingering(workers)
    # The target is 2 s (bench/bench_reaper.py measures it); a loaded CI machine gets slack.
    assert elapsed < 5, f"reaped {elapsed:.2f} s after the controller died"


def test_a_worker_killed_mid_test_is_cleaned_while_the_run_goes_on(pytester, image, docker_client):
    pytester.makepyfile(
        test_dies=f"""
        import os, signal

        def test_dies(docker_network):
            docker_network.run({TEST_IMAGE!r}, ["sleep", "300"])
            with open("doomed", "w") as out:
                out.write(docker_network.id)
            os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would
        """,
        test_survives="""
        import os, time
        import docker

        def test_survives(docker_client):
            deadline = time.monotonic() + 60
            while not os.path.exists("doomed") and time.monotonic() < deadline:
                time.sleep(0.05)
            doomed = open("doomed").read()
            while time.monotonic() < deadline:
                if not docker_client.api.networks(filters={"id": doomed}):
                    return
                time.sleep(0.05)
            raise AssertionError("the dead worker's network is still there")
        """,
    )
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*worker 'gw*' crashed while running 'test_dies.py::test_dies'*"])
    run = result.stdout.str().split("run ")[-1][:8]
    assert leftovers(docker_client, run) == []


def test_ctrl_c_during_a_test_cleans_up_and_says_so(pytester, image, docker_client):
    pytester.makepyfile(HOLDING_TEST)
    process = start(pytester, "-k", "0")
    try:
        ready = wait_for(lambda: ready_files(pytester.path, 1), 60, "the test to hold a network")
        run = run_of(ready[0])
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    assert "KeyboardInterrupt" in output
    assert f"run {run}: created 1 network and 1 container; removed 1 network and 1 container" in output
    assert leftovers(docker_client, run) == []


def test_a_failed_removal_is_listed_by_ls_and_removed_by_prune(pytester, image, docker_client):
    pytester.makeconftest(FAILING_REMOVAL_CONFTEST)
    pytester.makepyfile(
        f"""
        def test_passes(docker_network):
            docker_network.run({TEST_IMAGE!r}, ["sleep", "300"], alias="stuck")
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*CleanupWarning: could not remove container dockernet-*-stuck*"])
    run = result.stdout.str().split("run ")[-1][:8]
    listed = cli(pytester, "ls", "-v")
    assert listed.returncode == 0
    line = next(line for line in listed.stdout.splitlines() if line.startswith(run))
    assert line.split()[1:2] == ["dead"]
    assert "-stuck" in listed.stdout
    dry = cli(pytester, "prune", "--run", run, "--dry-run")
    assert "would remove 0 networks and 1 container of 1 run" in dry.stdout
    assert leftovers(docker_client, run) != []
    pruned = cli(pytester, "prune", "--run", run)
    assert pruned.returncode == 0, pruned.stderr
    assert f"run {run}: removed 1 resource" in pruned.stdout
    assert leftovers(docker_client, run) == []


def cli(pytester: pytest.Pytester, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_dockernet", *args], cwd=pytester.path, capture_output=True, text=True
    )


def fake_run(docker_client, run: str, process: ProcessRef | int, image: str) -> None:
    """Resources as a run of the current host (``planted_host``) would have left them."""
    from pytest_dockernet.engine.naming import this_host

    process = process if isinstance(process, ProcessRef) else ProcessRef(process)
    labels = {
        **SUITE_LABELS,
        LABEL_RUN: run,
        LABEL_PID: str(process.pid),
        LABEL_PID_START: format_start(process.started),
        LABEL_HOST: this_host(),
    }
    network = create_plain_network(docker_client, f"fake-{run}", labels=labels)
    docker_client.containers.run(
        image, ["sleep", "300"], detach=True, name=f"fake-{run}", labels=labels, network=network
    )


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_two_runs_at_once_never_collide_and_sweep_only_dead_runs(
    pytester, image, docker_client, planted_host
):
    dead, alive = new_run_id(), new_run_id()
    fake_run(docker_client, dead, dead_pid(), image)
    fake_run(docker_client, alive, ProcessRef.current(), image)  # alive: this very process
    try:
        pytester.makepyfile(
            f"""
            import time
            import pytest

            @pytest.mark.parametrize("n", range(4))
            def test_pair(docker_network, n):
                a = docker_network.run({TEST_IMAGE!r}, ["sleep", "300"], alias="a")
                docker_network.run({TEST_IMAGE!r}, ["sleep", "300"], alias="b")
                assert a.exec(["ping", "-c1", "-W2", "b"]).exit_code == 0
                time.sleep(0.5)  # overlap with the other run
            """
        )
        sweep_on = {"PYTEST_DOCKERNET_SWEEP": "1", **planted_host}
        runs = [start(pytester, "-p", "xdist", "-n", "2", env=sweep_on) for _ in range(2)]
        outputs = [process.communicate(timeout=300)[0] for process in runs]
        for output in outputs:
            assert "4 passed" in output, output
        assert leftovers(docker_client, dead) == [], "the dead run was swept"
        assert len(leftovers(docker_client, alive)) == 2, "the live run was left alone"
        assert sum(f"swept 2 resources left by 1 dead run ({dead})" in output for output in outputs) == 1
        run_ids = [output.split("run ")[-1][:8] for output in outputs]
        assert run_ids[0] != run_ids[1]
        for run in run_ids:
            assert leftovers(docker_client, run) == []
    finally:
        for run in (dead, alive):
            subprocess.run(
                [sys.executable, "-m", "pytest_dockernet", "prune", "--run", run, "--force"],
                capture_output=True,
            )


def reaper_pids(run: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"pytest_dockernet.runs.reaper" in command and run.encode() in command:
                pids.append(int(entry.name))
    return [pid for pid in pids if ProcessRef(pid).alive()]


def test_one_reaper_per_run_that_exits_with_the_run(pytester, image, docker_client):
    pytester.makepyfile(HOLDING_TEST.replace("time.sleep(120)", "time.sleep(3)"))
    process = start(pytester, "-p", "xdist", "-n", "2")
    try:
        ready = wait_for(lambda: ready_files(pytester.path, 2), 60, "both workers to hold a network")
        run = run_of(ready[0])
        assert len(wait_for(lambda: reaper_pids(run), 10, "the reaper to start")) == 1, "one for both workers"
        process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    wait_for(lambda: not reaper_pids(run), 10, "the reaper to exit after the run")
    assert leftovers(docker_client, run) == []
