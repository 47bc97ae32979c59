"""The pytest-dockernet command: ls and prune against the real engine."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from test_reaper import dead_pid, fake_run

from pytest_dockernet import new_run_id
from pytest_dockernet.engine.cleanup import find_labelled
from pytest_dockernet.engine.processes import ProcessRef
from pytest_dockernet.runs.cli import (
    EXIT_FAILURES,
    EXIT_NO_ENGINE,
    EXIT_NO_SUCH_RUN,
    EXIT_OK,
    EXIT_REFUSED,
    age,
    main,
)


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def runs(docker_client, image, planted_host):
    """A dead run and a live one of this test's own host, removed afterwards whatever happens."""
    dead, alive = new_run_id(), new_run_id()
    fake_run(docker_client, dead, dead_pid(), image)
    fake_run(docker_client, alive, ProcessRef.current(), image)
    yield dead, alive
    for run in (dead, alive):
        run_cli("prune", "--run", run, "--force")


def count(client, run):
    containers, networks = find_labelled(client, run)
    return len(containers) + len(networks)


def test_ls_groups_by_run_with_state(runs):
    dead, alive = runs
    code, out, _ = run_cli("ls")
    assert code == EXIT_OK
    header, *rows = out.splitlines()
    assert header.split() == ["RUN", "STATE", "AGE", "HOST", "PIDS", "NETWORKS", "CONTAINERS", "VOLUMES"]
    by_run = {row.split()[0]: row.split() for row in rows}
    assert by_run[dead][1] == "dead"
    assert by_run[alive][1] == "alive"
    assert by_run[alive][4] == str(os.getpid())
    assert by_run[dead][5:] == ["1", "1", "0"]
    code, out, _ = run_cli("ls", "--run", dead, "-v")
    assert f"network    fake-{dead}" in out
    assert f"container  fake-{dead}" in out
    assert alive not in out


def test_prune_removes_dead_runs_only(runs, docker_client):
    dead, alive = runs
    code, out, _ = run_cli("prune", "--dry-run")
    assert code == EXIT_OK
    assert "would remove" in out
    assert count(docker_client, dead) == 2
    code, out, _ = run_cli("prune")
    assert code == EXIT_OK
    assert f"run {dead}: removed 2 resources" in out
    assert count(docker_client, dead) == 0
    assert count(docker_client, alive) == 2


def test_prune_refuses_a_live_run_unless_forced(runs, docker_client):
    _, alive = runs
    code, _, err = run_cli("prune", "--run", alive)
    assert code == EXIT_REFUSED
    assert f"run {alive} is still alive" in err
    assert "--force" in err
    code, _, _ = run_cli("prune", "--run", alive, "--force")
    assert code == EXIT_OK
    assert count(docker_client, alive) == 0


def test_prune_all_asks_unless_yes(runs, docker_client):
    # No terminal to ask on: refused, nothing removed.
    done = subprocess.run(
        [sys.executable, "-m", "pytest_dockernet", "prune", "--all"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == EXIT_REFUSED
    assert "pass --yes" in done.stderr
    assert all(count(docker_client, run) == 2 for run in runs)
    dry = subprocess.run(
        [sys.executable, "-m", "pytest_dockernet", "prune", "--all", "--dry-run"],
        capture_output=True,
        text=True,
    )
    assert all(run in dry.stdout for run in runs)


def test_a_mistyped_run_id_says_no_such_run_exists():
    for command in ("ls", "prune"):
        code, out, err = run_cli(command, "--run", "nosuch")
        assert code == EXIT_NO_SUCH_RUN
        assert err.startswith("no run 'nosuch' on the engine at ")
        assert "'pytest-dockernet ls' lists the runs there" in err
        assert out == ""


def test_a_removal_that_fails_sets_exit_code_1(runs, monkeypatch):
    """The engine here removes everything; the refusal is injected (mock)."""
    from pytest_dockernet.engine import cleanup
    from pytest_dockernet.runs import sweeper as runs_module

    def refuse(client, containers):
        return [
            cleanup.CleanupFailure("container", cid, name, "operation not permitted")
            for cid, name in containers
        ]

    with monkeypatch.context() as patch:  # undone before the fixture's own cleanup
        patch.setattr(runs_module, "remove_containers", refuse)
        code, _, err = run_cli("prune", "--run", runs[0])
    assert code == EXIT_FAILURES
    assert "operation not permitted" in err


def test_no_engine_exit_code(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    code, _, err = run_cli("ls")
    assert code == EXIT_NO_ENGINE
    assert "no Docker engine answers at unix:///nonexistent/docker.sock" in err


def test_help_and_usage_errors():
    done = subprocess.run(
        ["pytest-dockernet", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"},
    )
    assert done.returncode == 0
    assert "ls" in done.stdout and "prune" in done.stdout  # noqa: PT018
    with pytest.raises(SystemExit) as excinfo:
        main(["prune", "--run", "x", "--all"])
    assert excinfo.value.code == 2


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        # An unset shell variable: "prune --run $RUN" must not mean "every dead run".
        (["prune", "--run", ""], {}, "argument --run: takes a run id, such as 3f2a9c1d"),
        (["ls", "--run", " "], {}, "argument --run: takes a run id"),
        (["prune", "--label", "="], {}, "argument --label: --label takes KEY=VALUE with a key, such as"),
        (["prune", "--label", "nokey"], {}, "not 'nokey'"),
        (["prune"], {"PYTEST_DOCKERNET_SWEEP_LABEL": "="}, "PYTEST_DOCKERNET_SWEEP_LABEL takes KEY=VALUE"),
    ],
)
def test_an_empty_run_or_label_is_a_usage_error_that_removes_nothing(args, env, message, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    done = subprocess.run(
        [sys.executable, "-m", "pytest_dockernet", *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2, done
    assert message in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("usage: pytest-dockernet"), lines  # argparse's usage, then one sentence
    assert [line for line in lines if "error" in line] == [lines[-1]], lines
    assert message in lines[-1], lines
    assert done.stdout == ""


def test_ages_read_well():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert [age(now - timedelta(seconds=s), now) for s in (5, 125, 7300, 200000)] == ["5s", "2m", "2h", "2d"]
    assert age(None) == "?"


def test_prune_of_a_run_of_another_host_needs_force(docker_client, image, planted_host, monkeypatch):
    other = new_run_id()
    monkeypatch.setenv("PYTEST_DOCKERNET_HOST", "another-host")
    fake_run(docker_client, other, dead_pid(), image)
    monkeypatch.setenv("PYTEST_DOCKERNET_HOST", planted_host["PYTEST_DOCKERNET_HOST"])
    try:
        code, out, _ = run_cli("ls", "--run", other)
        assert out.splitlines()[1].split()[1] == "unknown"
        code, _, err = run_cli("prune", "--run", other)
        assert code == EXIT_REFUSED
        assert f"run {other} was made on another host (another-host)" in err
        assert "pass --force once you know it is over" in err
        assert count(docker_client, other) == 2
        code, out, _ = run_cli("prune")
        assert count(docker_client, other) == 2, "a plain prune never judges another host's run"
        code, _, _ = run_cli("prune", "--run", other, "--force")
        assert code == EXIT_OK
        assert count(docker_client, other) == 0
    finally:
        run_cli("prune", "--run", other, "--force")


def test_a_recycled_pid_does_not_keep_a_dead_run_alive(docker_client, image, planted_host):
    # The labelled pid is alive (this very process), but the process that made the run
    # started at another time: its pid has been recycled, and the run is dead.
    started = ProcessRef.current().started
    assert started is not None
    recycled = ProcessRef(os.getpid(), started - 3600)
    run = new_run_id()
    fake_run(docker_client, run, recycled, image)
    try:
        _, out, _ = run_cli("ls", "--run", run)
        assert out.splitlines()[1].split()[1] == "dead"
        code, out, _ = run_cli("prune")
        assert code == EXIT_OK
        assert f"run {run}: removed 2 resources" in out
        assert count(docker_client, run) == 0
    finally:
        run_cli("prune", "--run", run, "--force")
