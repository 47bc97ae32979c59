"""Run leases on the engine: how hosts that share one engine tell a dead run from a live one.

A host can judge only its own processes. A run therefore also holds a **lease** on the
engine: a container that is created and never started, from a few-byte image made by
``docker import`` (nothing is pulled), labelled with the run and how long the lease lives
without renewal. The run's reaper renews it by creating a fresh one and removing the older
ones, so the newest lease's ``Created`` time, stamped by the engine, says when the run last
showed life. A lease is expired once the engine's own clock (``SystemTime``) is more than
that long past it: the hosts' clocks never enter, so clock skew between hosts is harmless.

After an engine restart no run could renew while the engine was down; a lease is never
judged expired before the engine has been up for a whole lease again (see
:func:`engine_up_since`). A run with no lease (a core script, a kept run, an older
version) is never judged by its lease.
"""

from __future__ import annotations

import io
import logging
import re
import tarfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import docker
import docker.errors

from ..engine.cleanup import remove_container
from ..engine.images import import_rootfs
from ..engine.naming import LABEL_RUN
from ..engine.podman import is_podman

log = logging.getLogger("pytest_dockernet")

LEASE_IMAGE = "pytest-dockernet/lease:1"
LABEL_LEASE_OF = "pytest-dockernet.lease-of"
"""The run a lease container is the lease of (not ``pytest-dockernet.run``: a lease is no
resource of the run's tests, and nothing that counts a run's resources sees it)."""
LABEL_LEASE_SECONDS = "pytest-dockernet.lease-seconds"
DEFAULT_LEASE_SECONDS = 60.0
RENEWALS_PER_LEASE = 4
LEASE_NAME_PART = "-lease-"


def renew_every(seconds: float) -> float:
    """How often a lease of ``seconds`` is renewed: several times within its life."""
    return seconds / RENEWALS_PER_LEASE


def _rootfs() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("lease")  # an empty file: the container is never started
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(b""))
    return buffer.getvalue()


def lease_image(client: docker.DockerClient) -> str:
    """The lease image, imported once per engine (a tar of one empty file)."""
    return import_rootfs(client, LEASE_IMAGE, _rootfs, ['CMD ["/lease"]'])


@dataclass(frozen=True)
class Lease:
    """The newest lease container of one run."""

    run: str
    id: str
    created: datetime
    seconds: float
    labels: dict[str, str]

    def expired(self, clock: EngineClock) -> bool:
        """Whether the engine's clock is more than :attr:`seconds` past the last renewal,
        and past the engine's start (an engine that was down let no run renew)."""
        since = max(self.created, clock.up_since) if clock.up_since else self.created
        return clock.now - since > timedelta(seconds=self.seconds)


@dataclass(frozen=True)
class EngineClock:
    """The engine's time now, and since when it has been up (None when it cannot be told)."""

    now: datetime
    up_since: datetime | None


def parse_engine_time(text: str) -> datetime | None:
    """An RFC 3339 time as Docker writes it (nanoseconds, ``Z`` or an offset), or None."""
    match = _RFC3339.match(text.strip())
    if match is None:
        return None
    stamp, fraction, zone = match.groups()
    zone = "+00:00" if zone in (None, "Z") else zone
    return datetime.fromisoformat(f"{stamp}{(fraction or '')[:7]}{zone}")


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$")


def engine_clock(client: docker.DockerClient) -> EngineClock:
    """The engine's clock (``docker info``'s ``SystemTime``) and when it last started."""
    now = parse_engine_time(str(client.info().get("SystemTime", "")))
    if now is None:
        raise ValueError("the engine did not say its time (docker info: SystemTime)")
    return EngineClock(now, engine_up_since(client))


def engine_up_since(client: docker.DockerClient) -> datetime | None:
    """When the engine last started: the default ``bridge`` network is made anew at every
    daemon start. None when the engine has no such network (``--bridge none``), and on
    podman, whose Docker API shows its default network as made at every call."""
    if is_podman(client):
        return None
    try:
        found = client.api.networks(names=["bridge"])
    except docker.errors.APIError:
        return None
    stamps = [parse_engine_time(str(n.get("Created", ""))) for n in found if n.get("Name") == "bridge"]
    known = [stamp for stamp in stamps if stamp is not None]
    return max(known) if known else None


def _lease_containers(client: docker.DockerClient, run: str | None = None) -> list[dict[str, Any]]:
    label = LABEL_LEASE_OF if run is None else f"{LABEL_LEASE_OF}={run}"
    return list(client.api.containers(all=True, filters={"label": [label]}))


def leases(client: docker.DockerClient, run: str | None = None) -> dict[str, Lease]:
    """The newest lease of every run on the engine (of ``run`` only, if given)."""
    newest: dict[str, Lease] = {}
    for container in _lease_containers(client, run):
        labels = dict(container.get("Labels") or {})
        owner = labels.get(LABEL_LEASE_OF, "")
        try:
            seconds = float(labels.get(LABEL_LEASE_SECONDS, ""))
        except ValueError:
            continue
        # The listing gives whole seconds, cut down: the next second errs toward alive.
        created = datetime.fromtimestamp(int(container.get("Created", 0)) + 1, timezone.utc)
        lease = Lease(owner, str(container["Id"]), created, seconds, labels)
        if owner not in newest or lease.created >= newest[owner].created:
            newest[owner] = lease
    return newest


def take_lease(
    client: docker.DockerClient, run: str, seconds: float, labels: dict[str, str], name: str
) -> str:
    """Create the first lease of ``run`` (``labels`` are the run's own); return its ID."""
    lease_labels = {key: value for key, value in labels.items() if key != LABEL_RUN}
    lease_labels.update({LABEL_LEASE_OF: run, LABEL_LEASE_SECONDS: f"{seconds:g}"})
    # Network mode "none": the lease joins no network, on Docker and podman alike.
    created = client.api.create_container(
        lease_image(client),
        name=name,
        labels=lease_labels,
        host_config=client.api.create_host_config(network_mode="none"),
    )
    return str(created["Id"])


def renew(client: docker.DockerClient, run: str) -> bool:
    """Renew ``run``'s lease: a new lease container with the newest one's labels, then the
    older ones go. False when the run holds no lease (nothing to renew)."""
    current = _lease_containers(client, run)
    if not current:
        return False
    newest = max(current, key=lambda c: int(c.get("Created", 0)))
    labels = dict(newest.get("Labels") or {})
    old_name = (newest.get("Names") or ["/lease"])[0].lstrip("/")
    name = f"{old_name.partition(LEASE_NAME_PART)[0]}{LEASE_NAME_PART}{_stamp()}"
    take_lease(client, run, float(labels.get(LABEL_LEASE_SECONDS, DEFAULT_LEASE_SECONDS)), labels, name)
    for container in current:
        remove_container(client, str(container["Id"]), "lease")
    return True


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")


def release(client: docker.DockerClient, run: str) -> int:
    """Remove every lease container of ``run`` (once its resources are gone); return how many."""
    found = _lease_containers(client, run)
    for container in found:
        remove_container(client, str(container["Id"]), "lease")
    return len(found)


def expired_leases(client: docker.DockerClient) -> list[Lease]:
    """The leases on the engine that have expired, by the engine's clock."""
    found = leases(client)
    if not found:
        return []
    clock = engine_clock(client)
    return [lease for lease in found.values() if lease.expired(clock)]


def lease_name(prefix: str, run: str) -> str:
    """The first lease container's name; each renewal's ends in a new time stamp."""
    return f"{prefix}-{run}{LEASE_NAME_PART}{_stamp()}"
