"""The run's closing words: what it made, removed, kept and left, on every engine."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..core.manager import Tally
from ..engine import connection as engine
from ..engine.cleanup import CleanupFailure, find_labelled
from ..engine.processes import ProcessRef, parse_start
from ..engine.statedir import default_state_dir
from ..errors import DockernetError
from ..runs.rundir import RunDir
from ..text import joined, plural
from .settings import Settings
from .state import PluginState

# How long the summary waits for the reaper to remove what a crashed worker left.
CRASH_WAIT_SECONDS = 10.0
# How long nothing of a crashed worker may be seen before its record is given up on.
QUIET_SECONDS = 2.0


@dataclass
class WorkerTally:
    """A worker's stored counts, and whether it crashed before its session's end."""

    worker: str
    pid: int
    tally: Tally
    crashed: bool


def worker_tallies(state: PluginState) -> list[WorkerTally]:
    """The counts the run's xdist workers stored (see :func:`~.state.store_tally`)."""
    try:
        run_dir = state.run_dir or RunDir(default_state_dir(), state.identity.run)
    except DockernetError:
        return []  # no state directory: the workers could store nothing (their tests said why)
    found = []
    for record in run_dir.tallies().values():
        data = dict(record.get("tally") or {})
        failures = [CleanupFailure(**f) for f in data.pop("failures", [])]
        tally = Tally(**data, failures=failures)
        pid = int(record.get("pid") or 0)
        process = ProcessRef(pid, parse_start(record.get("start")))
        crashed = not record.get("finished") and not process.alive()
        found.append(WorkerTally(str(record.get("worker", "?")), pid, tally, crashed))
    return found


def add_reaped(state: PluginState, crashed: WorkerTally) -> str | None:
    """Count in what the reaper removed for a crashed worker; one line saying so, or None.

    A crashed worker's own counts stop at its last change: whatever it had made and not
    removed is what the reaper removed for it (by its pid), so that is added to both its
    created and removed counts. The reaper is waited for, a few seconds at most.
    """
    run_dir = state.run_dir or RunDir(default_state_dir(), state.identity.run)
    deadline = time.monotonic() + CRASH_WAIT_SECONDS
    quiet_since: float | None = None
    while True:
        reaped = run_dir.reaped().get(crashed.pid)
        if reaped is not None:
            break
        if left_by(state.settings, state.identity.run, crashed.pid) is False:
            # Nothing of it is left: the reaper removed it and is writing its record, or it
            # had made nothing to remove. A moment for the record, then the latter.
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > QUIET_SECONDS:
                return f"worker {crashed.worker} (pid {crashed.pid}) crashed; it left nothing to remove"
        else:
            quiet_since = None
        if time.monotonic() > deadline:
            return None  # unaccounted() says what is still there
        time.sleep(0.2)
    tally, reaped = crashed.tally, reaped or {}
    failed = {
        kind: sum(1 for f in tally.failures if f.kind == kind) for kind in ("network", "container", "volume")
    }
    networks, containers, volumes = (reaped.get(kind, 0) for kind in ("networks", "containers", "volumes"))
    tally.networks_created = max(
        tally.networks_created, tally.networks_removed + networks + failed["network"]
    )
    tally.containers_created = max(
        tally.containers_created, tally.containers_removed + containers + failed["container"]
    )
    tally.volumes_created = max(tally.volumes_created, tally.volumes_removed + volumes + failed["volume"])
    tally.networks_removed += networks
    tally.containers_removed += containers
    tally.volumes_removed += volumes
    what = [plural(networks, "network"), plural(containers, "container")]
    if volumes:
        what.append(plural(volumes, "volume"))
    return (
        f"worker {crashed.worker} (pid {crashed.pid}) crashed; the reaper removed the {joined(what)} it left"
    )


def left_by(settings: Settings, run: str, pid: int) -> bool | None:
    """Whether anything made by process ``pid`` of ``run`` is still on the run's engines
    (None when an engine could not say)."""
    try:
        for url in settings.engines or (None,):
            client = engine.connect(timeout=settings.engine_timeout, url=url)
            try:
                containers, networks = find_labelled(client, run, pid)
            finally:
                client.close()
            if containers or networks:
                return True
    except Exception:  # noqa: BLE001 - the summary must never fail: unaccounted() reports it
        return None
    return False


def unaccounted(settings: Settings, run: str, failures: list[CleanupFailure]) -> str | None:
    """What of the run is still on its engines although no failure accounts for it."""
    containers: list[dict[str, Any]] = []
    networks: list[dict[str, Any]] = []
    try:
        for url in settings.engines or (None,):
            client = engine.connect(timeout=settings.engine_timeout, url=url)
            try:
                found = find_labelled(client, run)
            finally:
                client.close()
            containers += found[0]
            networks += found[1]
    except Exception as exc:  # noqa: BLE001 - the summary must never fail
        return f"could not check the engine for leftovers of the run: {engine.readable_reason(exc)}"
    failed = {failure.id for failure in failures}
    networks = [n for n in networks if n["Id"] not in failed]
    containers = [c for c in containers if c["Id"] not in failed]
    if not networks and not containers:
        return None
    return (
        f"{plural(len(networks), 'network')} and {plural(len(containers), 'container')} of the run"
        " are still on the engine (a process of the run did not finish its teardown); the"
        " reaper removes them once the run's processes are gone"
    )


def write_summary(terminalreporter: Any, state: PluginState) -> None:
    """The ``pytest-dockernet`` section of the terminal summary (the controller's, or a lone run's)."""
    workers = worker_tallies(state)
    crash_lines = [
        line for worker in workers if worker.crashed for line in [add_reaped(state, worker)] if line
    ]
    tallies = [worker.tally for worker in workers]
    if state.manager is not None:
        tallies.append(state.manager.tally)
    if not tallies:
        return
    run = state.identity.run
    total = Tally()
    for tally in tallies:
        total.add(tally)
    write = terminalreporter.write_line
    terminalreporter.section("pytest-dockernet")
    if total.swept_runs:
        write(
            f"swept {plural(total.swept, 'resource')} left by {plural(len(total.swept_runs), 'dead run')}"
            f" ({', '.join(total.swept_runs)}) before starting"
        )
    if total.sweep_problem:
        write(f"the start-up sweep of dead runs failed: {total.sweep_problem}")
    created = [plural(total.networks_created, "network"), plural(total.containers_created, "container")]
    removed = [plural(total.networks_removed, "network"), plural(total.containers_removed, "container")]
    if total.volumes_created:
        created.append(plural(total.volumes_created, "volume"))
        removed.append(plural(total.volumes_removed, "volume"))
    write(f"run {run}: created {joined(created)}; removed {joined(removed)}")
    for line in crash_lines:
        write(line)
    if total.kept or total.kept_volumes:
        kept = [plural(len(total.kept), "network"), plural(total.kept_containers, "container")]
        if total.kept_volumes:
            kept.append(plural(total.kept_volumes, "volume"))
        write(f"kept {joined(kept)} (--dockernet-keep): " + ", ".join(sorted(total.kept)))
    if total.failures:
        write(f"left behind {plural(len(total.failures), 'resource')} that could not be removed:")
        for failure in total.failures:
            write(f"  {failure}")
    if total.kept or total.kept_volumes or total.failures:
        write("remove them with:")
        write(f"  {removal_command(run)}")
    if not state.settings.keep:
        leftover = unaccounted(state.settings, run, total.failures)
        if leftover:
            write(leftover)


def removal_command(run: str) -> str:
    """One shell command that removes every resource of ``run``, containers first."""
    return f"pytest-dockernet prune --run {run}"
