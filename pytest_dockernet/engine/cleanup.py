"""Removing containers and networks without ever masking a test's result.

Removal can fail on some engines (the CircleCI lesson: a storage driver that cannot
remove a root filesystem). Such a failure is recorded as a :class:`CleanupFailure` and
reported as a :class:`CleanupWarning`; only ``NotFound`` (already gone) is ignored.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors

from ..errors import CleanupWarning
from .naming import LABEL_PID, LABEL_RUN

log = logging.getLogger("pytest_dockernet")

MAX_PARALLEL_REMOVALS = 8
FORCE_REMOVE_ATTEMPTS = 5


@dataclass(frozen=True)
class CleanupFailure:
    """A container or network that could not be removed, with the engine's reason."""

    kind: str
    """``"container"``, ``"network"`` or ``"volume"``."""
    id: str
    name: str
    message: str
    test: str = ""
    """The test whose network it was, when known."""

    def __str__(self) -> str:
        text = f"could not remove {self.kind} {self.name} ({self.id[:12]}): {self.message}"
        return f"{text} (a network of test {self.test})" if self.test else text


def _reason(exc: Exception) -> str:
    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        return str(exc.explanation)
    return str(exc) or type(exc).__name__


def find_labelled(
    client: docker.DockerClient, run: str | None = None, pid: int | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The containers and networks labelled by the plugin (of one ``run``, made by ``pid``)."""
    labels = [LABEL_RUN if run is None else f"{LABEL_RUN}={run}"]
    if pid is not None:
        labels.append(f"{LABEL_PID}={pid}")
    filters = {"label": labels}
    return client.api.containers(all=True, filters=filters), client.api.networks(filters=filters)


def find_labelled_volumes(
    client: docker.DockerClient, run: str | None = None, pid: int | None = None
) -> list[dict[str, Any]]:
    """The named volumes labelled by the plugin (of one ``run``, made by ``pid``)."""
    labels = [LABEL_RUN if run is None else f"{LABEL_RUN}={run}"]
    if pid is not None:
        labels.append(f"{LABEL_PID}={pid}")
    found = client.api.volumes(filters={"label": labels}).get("Volumes") or []
    return [dict(volume) for volume in found]


def remove_volume(client: docker.DockerClient, name: str) -> CleanupFailure | None:
    """Remove one named volume; one still used by a container is a failure to report."""
    try:
        client.api.remove_volume(name)
    except docker.errors.NotFound:
        return None
    except Exception as exc:  # noqa: BLE001 - any failure is reported, none may escape
        return CleanupFailure("volume", name, name, _reason(exc))
    log.debug("removed volume %s", name)
    return None


def is_volume_in_use(message: str) -> bool:
    """Whether a volume removal failed because a container still uses the volume (Docker:
    "volume is in use"; podman: "volume ... is being used by the following container(s)")."""
    return "in use" in message or "being used by" in message


def remove_container(client: docker.DockerClient, container_id: str, name: str) -> CleanupFailure | None:
    """Kill and remove one container with its anonymous volumes."""
    try:
        client.api.remove_container(container_id, force=True, v=True)
    except docker.errors.NotFound:
        pass
    except Exception as exc:  # noqa: BLE001 - any failure is reported, none may escape
        if "already in progress" in _reason(exc):
            return None  # the reaper, or a concurrent teardown, is removing it
        return CleanupFailure("container", container_id, name, _reason(exc))
    log.debug("removed container %s", name)
    return None


def remove_containers(
    client: docker.DockerClient, containers: Sequence[tuple[str, str]]
) -> list[CleanupFailure]:
    """Remove ``(id, name)`` containers, several at a time."""
    if len(containers) <= 1:
        results = [remove_container(client, cid, name) for cid, name in containers]
    else:
        workers = min(MAX_PARALLEL_REMOVALS, len(containers))
        with ThreadPoolExecutor(workers, thread_name_prefix="dockernet-rm") as pool:
            results = list(pool.map(lambda item: remove_container(client, *item), containers))
    return [failure for failure in results if failure is not None]


def remove_network(client: docker.DockerClient, network_id: str, name: str) -> CleanupFailure | None:
    """Remove a network by ID, force-disconnecting endpoints still attached to it."""
    try:
        client.api.remove_network(network_id)
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        if "active endpoints" not in _reason(exc):
            return CleanupFailure("network", network_id, name, _reason(exc))
        # Someone else's container, or a stale endpoint after a daemon restart.
        return _force_remove_network(client, network_id, name)
    except Exception as exc:  # noqa: BLE001
        return CleanupFailure("network", network_id, name, _reason(exc))
    log.debug("removed network %s", name)
    return None


def confirm_network_gone(
    client: docker.DockerClient, network_id: str, name: str, seconds: float = 10.0
) -> CleanupFailure | None:
    """Wait until the engine no longer lists a network whose removal it accepted.

    A swarm's overlay network is removed through the swarm's manager: the engine still lists
    it for a moment (0.3 s measured) after ``network rm`` returned.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            client.api.inspect_network(network_id)
        except docker.errors.NotFound:
            return None
        except Exception as exc:  # noqa: BLE001 - any failure is reported, none may escape
            return CleanupFailure("network", network_id, name, _reason(exc))
        time.sleep(0.05)
    return CleanupFailure("network", network_id, name, f"still listed {seconds:g} s after its removal")


def _force_remove_network(client: docker.DockerClient, network_id: str, name: str) -> CleanupFailure | None:
    # A container another process is removing right now cannot be disconnected ("marked
    # for removal"), but it is gone a moment later: try a few times.
    for attempt in range(FORCE_REMOVE_ATTEMPTS):
        try:
            endpoints = client.api.inspect_network(network_id).get("Containers") or {}
            for container_id in endpoints:
                with contextlib.suppress(docker.errors.NotFound):
                    client.api.disconnect_container_from_network(container_id, network_id, force=True)
            client.api.remove_network(network_id)
        except docker.errors.NotFound:
            return None
        except Exception as exc:  # noqa: BLE001
            if attempt + 1 == FORCE_REMOVE_ATTEMPTS:
                return CleanupFailure("network", network_id, name, _reason(exc))
            time.sleep(0.2)
            continue
        log.debug("removed network %s after disconnecting %d endpoints", name, len(endpoints))
        return None
    return None


def warn_failures(failures: Iterable[CleanupFailure], stacklevel: int = 2) -> list[CleanupFailure]:
    """Emit a :class:`CleanupWarning` per failure.

    Returns the failures whose warning was turned into an exception by a warnings
    filter (``-W error``): the caller must report those another way, since a cleanup
    problem must never become a test error.
    """
    unreported = []
    for failure in failures:
        try:
            warnings.warn(CleanupWarning(str(failure)), stacklevel=stacklevel + 1)
        except Warning:
            unreported.append(failure)
    return unreported
