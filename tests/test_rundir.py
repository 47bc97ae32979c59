"""The per-run directory: registered processes, tallies, and stale directories. No engine needed."""

from __future__ import annotations

import os
import subprocess
import time

from pytest_dockernet.engine.processes import ProcessRef
from pytest_dockernet.runs.rundir import STALE_AFTER_SECONDS, RunDir, remove_stale


def dead_process() -> ProcessRef:
    process = subprocess.Popen(["true"])
    started = ProcessRef.of(process.pid)
    process.wait()
    return started


def age(run_dir: RunDir, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(run_dir.path, (then, then))


def test_processes_and_tallies_round_trip(tmp_path):
    run_dir = RunDir(tmp_path, "r1")
    me = ProcessRef.current()
    run_dir.register(me)
    run_dir.register(ProcessRef(4242))
    assert run_dir.processes() == {me, ProcessRef(4242)}
    run_dir.write_tally("gw0", {"networks_created": 2})
    run_dir.write_tally("gw1", {"networks_created": 3})
    assert run_dir.tallies() == {"gw0": {"networks_created": 2}, "gw1": {"networks_created": 3}}
    assert RunDir(tmp_path, "r2").tallies() == {}, "another run's directory is another directory"
    assert (run_dir.path.stat().st_mode & 0o777) == 0o700


def test_only_old_directories_of_dead_runs_are_removed(tmp_path):
    dead, young, alive = RunDir(tmp_path, "dead"), RunDir(tmp_path, "young"), RunDir(tmp_path, "alive")
    for run_dir in (dead, young):
        run_dir.register(dead_process())
    alive.register(ProcessRef.current())
    age(dead, STALE_AFTER_SECONDS + 1)
    age(alive, STALE_AFTER_SECONDS + 1)
    assert remove_stale(tmp_path) == 1
    assert not dead.path.exists()
    assert young.path.exists(), "may be a run registering its first process"
    assert alive.path.exists()
