"""The plugin's resources on the engine, grouped by run, and whether each run is alive.

The engine is the source of truth: a run is whatever carries its ``pytest-dockernet.run``
label. A run of this host is alive while any process named in its labels (the process
that made a resource, or the run's root process) is alive; runs of other hosts, and runs
kept on purpose, are never judged dead.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import docker

from .cleanup import CleanupFailure, find_labelled, remove_containers, remove_network
from .naming import LABEL_HOST, LABEL_KEEP, LABEL_PID, LABEL_ROOT_PID, LABEL_RUN, sanitize_label_value


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: it exists
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(0) is all we can tell
    return state not in ("Z", "X")


def this_host() -> str:
    """This host's name as the plugin writes it in labels."""
    return sanitize_label_value(socket.gethostname())


@dataclass
class RunInfo:
    """One run's resources on the engine and what its labels say about it."""

    run: str
    containers: list[dict[str, Any]] = field(default_factory=list)
    networks: list[dict[str, Any]] = field(default_factory=list)

    def _labels(self) -> Iterable[dict[str, str]]:
        for item in self.containers + self.networks:
            yield item.get("Labels") or {}

    @property
    def hosts(self) -> set[str]:
        """The host names in the run's labels (empty when none says)."""
        return {labels[LABEL_HOST] for labels in self._labels() if labels.get(LABEL_HOST)}

    @property
    def pids(self) -> set[int]:
        """Every process id in the run's labels: creators and the root process."""
        pids = set()
        for labels in self._labels():
            for key in (LABEL_PID, LABEL_ROOT_PID):
                if labels.get(key, "").isdigit():
                    pids.add(int(labels[key]))
        return pids

    @property
    def kept(self) -> bool:
        """Whether the run was made with ``--dockernet-keep``."""
        return any(labels.get(LABEL_KEEP) == "1" for labels in self._labels())

    @property
    def local(self) -> bool:
        """Whether every resource of the run says it was made on this host."""
        return self.hosts == {this_host()}

    def alive(self) -> bool | None:
        """True or False for a run of this host; None when that cannot be told here."""
        if not self.local:
            return None
        return any(pid_alive(pid) for pid in self.pids)

    @property
    def created(self) -> datetime | None:
        """When its oldest resource was created."""
        stamps = [c["Created"] for c in self.containers if isinstance(c.get("Created"), int)]
        times = [datetime.fromtimestamp(stamp, timezone.utc) for stamp in stamps]
        for network in self.networks:
            parsed = _parse_time(network.get("Created", ""))
            if parsed:
                times.append(parsed)
        return min(times) if times else None


def _parse_time(text: str) -> datetime | None:
    # Docker writes RFC 3339 with nanoseconds: 2026-11-22T14:55:26.123456789Z
    try:
        head, _, rest = text.partition(".")
        zone = rest[rest.find("+") :] if "+" in rest else "+00:00"
        return datetime.fromisoformat(head + zone)
    except ValueError:
        return None


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
    return sorted(runs.values(), key=lambda info: info.created or datetime.min.replace(tzinfo=timezone.utc))


def remove_run(
    client: docker.DockerClient, run: str, pid: int | None = None
) -> tuple[int, list[CleanupFailure]]:
    """Remove a run's containers, then its networks (only those made by ``pid``, if given).

    Returns how many resources went, and what could not be removed.
    """
    containers, networks = find_labelled(client, run, pid)
    failures = remove_containers(client, [(c["Id"], c["Names"][0].lstrip("/")) for c in containers])
    for network in networks:
        failure = remove_network(client, network["Id"], network["Name"])
        if failure:
            failures.append(failure)
    return len(containers) + len(networks) - len(failures), failures


@dataclass
class SweepReport:
    """What a sweep of dead runs removed, and what it could not."""

    runs: list[str] = field(default_factory=list)
    removed: int = 0
    failures: list[CleanupFailure] = field(default_factory=list)

    def __str__(self) -> str:
        if not self.runs:
            return "no leftovers of dead runs"
        text = f"swept {self.removed} resources of {len(self.runs)} dead runs ({', '.join(self.runs)})"
        return text + (f"; {len(self.failures)} could not be removed" if self.failures else "")


def dead_runs(client: docker.DockerClient, *, include_kept: bool = False) -> list[RunInfo]:
    """Runs of this host whose processes are all gone (kept runs only if asked)."""
    return [info for info in inventory(client) if info.alive() is False and (include_kept or not info.kept)]


def sweep(client: docker.DockerClient, runs: Iterable[RunInfo]) -> SweepReport:
    """Remove the resources of ``runs``."""
    report = SweepReport()
    for info in runs:
        removed, failures = remove_run(client, info.run)
        report.runs.append(info.run)
        report.removed += removed
        report.failures.extend(failures)
    return report
