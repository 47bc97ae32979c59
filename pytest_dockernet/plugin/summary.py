"""The run's closing words: what it made, removed, kept and left, on every engine."""

from __future__ import annotations

from typing import Any

from ..core.manager import Tally
from ..engine import connection as engine
from ..engine.cleanup import CleanupFailure, find_labelled
from ..engine.statedir import default_state_dir
from ..runs.rundir import RunDir
from ..text import joined, plural
from .settings import Settings
from .state import PluginState


def worker_tallies(state: PluginState) -> list[Tally]:
    run_dir = state.run_dir or RunDir(default_state_dir(), state.identity.run)
    tallies = []
    for data in run_dir.tallies().values():
        failures = [CleanupFailure(**f) for f in data.pop("failures", [])]
        tallies.append(Tally(**data, failures=failures))
    return tallies


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
    tallies = worker_tallies(state)
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
