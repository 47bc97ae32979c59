"""The plugin's resources on the engine, grouped by run, and whether each run is alive.

The engine is the source of truth: a run is whatever carries its ``pytest-dockernet.run``
label. A run of this host is alive while any process named in its labels (the process
that made a resource, or the run's root process) is alive — the same pid *and* start time,
so a recycled pid does not count. A run of another host is judged by its lease on the
engine (:mod:`pytest_dockernet.lease`): dead once the lease has expired by the engine's
clock; without a lease it cannot be judged. Runs kept on purpose are never swept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import docker
import filelock

from ..engine.cleanup import (
    CleanupFailure,
    find_labelled,
    find_labelled_volumes,
    remove_containers,
    remove_network,
    remove_volume,
)
from ..engine.naming import (
    LABEL_HOST,
    LABEL_KEEP,
    LABEL_PID,
    LABEL_PID_START,
    LABEL_ROOT_PID,
    LABEL_ROOT_START,
    LABEL_RUN,
    this_host,
)
from ..engine.processes import ProcessRef, parse_start
from ..engine.statedir import lock_path
from ..text import plural
from .lease import EngineClock, Lease, engine_clock, leases, parse_engine_time
from .lease import release as release_lease
from .rundir import remove_stale


def processes_in(labels: dict[str, str]) -> set[ProcessRef]:
    """The processes a resource's labels name: its creator and the run's root."""
    found = set()
    for pid_key, start_key in ((LABEL_PID, LABEL_PID_START), (LABEL_ROOT_PID, LABEL_ROOT_START)):
        pid = labels.get(pid_key, "")
        if pid.isdigit():
            found.add(ProcessRef(int(pid), parse_start(labels.get(start_key))))
    return found


@dataclass
class RunInfo:
    """One run's resources on the engine and what its labels say about it."""

    run: str
    containers: list[dict[str, Any]] = field(default_factory=list)
    networks: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    lease: Lease | None = None
    """The run's newest lease on the engine, if it holds one (see :mod:`pytest_dockernet.lease`)."""
    clock: EngineClock | None = None
    """The engine's clock when the run was listed: what its lease is judged by."""

    def _labels(self) -> Iterable[dict[str, str]]:
        for item in self.containers + self.networks + self.volumes:
            yield item.get("Labels") or {}
        if self.lease is not None:
            yield self.lease.labels

    @property
    def hosts(self) -> set[str]:
        """The host names in the run's labels (empty when none says)."""
        return {labels[LABEL_HOST] for labels in self._labels() if labels.get(LABEL_HOST)}

    @property
    def processes(self) -> set[ProcessRef]:
        """Every process in the run's labels (creators and the root), with start times."""
        return {process for labels in self._labels() for process in processes_in(labels)}

    @property
    def pids(self) -> set[int]:
        """Every process id in the run's labels: creators and the root process."""
        return {process.pid for process in self.processes}

    def has_label(self, label: tuple[str, str] | None) -> bool:
        """Whether a resource (or the lease) of the run carries ``label`` (KEY, VALUE); True for None."""
        if label is None:
            return True
        key, value = label
        return any(labels.get(key) == value for labels in self._labels())

    @property
    def kept(self) -> bool:
        """Whether the run was made with ``--dockernet-keep``."""
        return any(labels.get(LABEL_KEEP) == "1" for labels in self._labels())

    @property
    def local(self) -> bool:
        """Whether every resource of the run says it was made on this host."""
        return self.hosts == {this_host()}

    def alive(self) -> bool | None:
        """True or False for a run of this host (by its processes) or for a run of another
        host that holds a lease (by the lease, on the engine's clock); None otherwise."""
        if self.local:
            return any(process.alive() for process in self.processes)
        if self.lease_expired is None:
            return None
        return not self.lease_expired

    @property
    def lease_expired(self) -> bool | None:
        """Whether the run's lease has expired; None when it holds none."""
        if self.lease is None or self.clock is None:
            return None
        return self.lease.expired(self.clock)

    @property
    def created(self) -> datetime | None:
        """When its oldest resource was created."""
        stamps = [c["Created"] for c in self.containers if isinstance(c.get("Created"), int)]
        times = [datetime.fromtimestamp(stamp, timezone.utc) for stamp in stamps]
        for item in self.networks + self.volumes:
            parsed = _parse_time(item.get("Created") or item.get("CreatedAt") or "")
            if parsed:
                times.append(parsed)
        return min(times) if times else None


def _parse_time(text: str) -> datetime | None:
    # Docker writes RFC 3339, for networks with nanoseconds (2026-11-22T14:55:26.123456789Z),
    # for volumes without (2026-11-22T14:55:26Z).
    return parse_engine_time(text)


def inventory(client: docker.DockerClient, run: str | None = None) -> list[RunInfo]:
    """The plugin's resources on the engine grouped by run (of one ``run`` if given)."""
    containers, networks = find_labelled(client, run)
    runs: dict[str, RunInfo] = {}
    for container in containers:
        key = (container.get("Labels") or {}).get(LABEL_RUN, "")
        runs.setdefault(key, RunInfo(key)).containers.append(container)
    for network in networks:
        key = (network.get("Labels") or {}).get(LABEL_RUN, "")
        runs.setdefault(key, RunInfo(key)).networks.append(network)
    for volume in find_labelled_volumes(client, run):
        key = (volume.get("Labels") or {}).get(LABEL_RUN, "")
        runs.setdefault(key, RunInfo(key)).volumes.append(volume)
    held = leases(client, run)
    if held:
        clock = engine_clock(client)
        for key, lease in held.items():
            info = runs.setdefault(key, RunInfo(key))
            info.lease, info.clock = lease, clock
    return sorted(runs.values(), key=lambda info: info.created or datetime.min.replace(tzinfo=timezone.utc))


@dataclass
class Removal:
    """What a removal of a run's (or one process's) resources removed, by kind, and what it could not."""

    networks: int = 0
    containers: int = 0
    volumes: int = 0
    failures: list[CleanupFailure] = field(default_factory=list)

    @property
    def removed(self) -> int:
        """How many resources went, of every kind."""
        return self.networks + self.containers + self.volumes


def remove_resources(client: docker.DockerClient, run: str, pid: int | None = None) -> Removal:
    """Remove a run's containers, then its networks and volumes (only ``pid``'s, if given).

    The whole run's lease goes last, once everything else went.
    """
    containers, networks = find_labelled(client, run, pid)
    failures = remove_containers(client, [(c["Id"], c["Names"][0].lstrip("/")) for c in containers])
    removal = Removal(containers=len(containers) - len(failures), failures=failures)
    for network in networks:
        failure = remove_network(client, network["Id"], network["Name"])
        if failure:
            failures.append(failure)
        else:
            removal.networks += 1
    for volume in find_labelled_volumes(client, run, pid):
        failure = remove_volume(client, volume["Name"])
        if failure:
            failures.append(failure)
        else:
            removal.volumes += 1
    if pid is None and not failures:
        release_lease(client, run)
    return removal


def remove_run(
    client: docker.DockerClient, run: str, pid: int | None = None
) -> tuple[int, list[CleanupFailure]]:
    """Remove a run's containers, then its networks and volumes (only ``pid``'s, if given).

    The whole run's lease goes last, once everything else went. Returns how many resources
    went, and what could not be removed (:func:`remove_resources` says it by kind).
    """
    removal = remove_resources(client, run, pid)
    return removal.removed, removal.failures


@dataclass
class SweepReport:
    """What a sweep of dead runs removed, and what it could not."""

    runs: list[str] = field(default_factory=list)
    removed: int = 0
    failures: list[CleanupFailure] = field(default_factory=list)

    def __str__(self) -> str:
        if not self.runs:
            return "no leftovers of dead runs"
        text = (
            f"swept {plural(self.removed, 'resource')} of {plural(len(self.runs), 'dead run')}"
            f" ({', '.join(self.runs)})"
        )
        return text + (f"; {len(self.failures)} could not be removed" if self.failures else "")


def dead_runs(
    client: docker.DockerClient, *, include_kept: bool = False, label: tuple[str, str] | None = None
) -> list[RunInfo]:
    """Runs of this host whose processes are all gone, and runs of any host whose lease has
    expired (kept runs only if asked; only runs carrying ``label``, if given)."""
    return [
        info
        for info in inventory(client)
        if info.alive() is False and (include_kept or not info.kept) and info.has_label(label)
    ]


def sweep(client: docker.DockerClient, runs: Iterable[RunInfo]) -> SweepReport:
    """Remove the resources of ``runs``."""
    report = SweepReport()
    for info in runs:
        removed, failures = remove_run(client, info.run)
        report.runs.append(info.run)
        report.removed += removed
        report.failures.extend(failures)
    return report


def sweep_dead_runs(
    client: docker.DockerClient, state_dir: Path, engine: str, label: tuple[str, str] | None = None
) -> SweepReport | None:
    """Sweep the dead runs (see :func:`dead_runs`) off the engine identified by ``engine``.

    One process at a time per engine, and nobody waits for it: when another process is
    sweeping this engine already, this returns None at once. A run never waits on another
    run's sweep, however slow that engine is. Directories of dead runs in ``state_dir``
    go too. With ``label`` (KEY, VALUE), only runs carrying it are swept.
    """
    lock = filelock.FileLock(str(lock_path(state_dir, "sweep", engine)), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        return None
    try:
        report = sweep(client, dead_runs(client, label=label))
        remove_stale(state_dir)
        return report
    finally:
        lock.release()
