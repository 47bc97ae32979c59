r"""Compose files on the plugin's own isolated networks, nothing left behind.

A compose file is read by Docker Compose's own ``config`` and checked key by key
(:mod:`.compose_model`), then started through the plugin's networks, services, jobs and
volumes, so every resource carries the run's labels: teardown, the reaper, the sweep and
``pytest-dockernet ls/prune`` cover a stack like anything else. Each compose network
becomes a plugin :class:`Network` on a subnet of the pool (one that holds the file's
``ipv4_address``\ es, when it gives some); every service is reachable by its name, its
``container_name`` and its ``aliases:`` on each network it joins. Services start
concurrently, level by level in ``depends_on`` order.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from ..engine.images import build_image
from ..errors import ComposeError, ServiceStartError
from . import wait as waits
from .compose_model import ComposeFile, ComposeService, Problems, load
from .service import ExecResult, Service
from .specs import NetworkSpec, ServiceSpec
from .together import first_error, run_together

if TYPE_CHECKING:
    from .manager import NetworkManager
    from .network import Network
    from .volumes import Volume

__all__ = ["ComposeFile", "ComposeService", "ComposeStack", "load", "release", "start"]


@dataclass
class ComposeStack:
    """A started compose file: ``stack["name"]`` is the :class:`Service` of service ``name``."""

    services: dict[str, Service] = field(default_factory=dict)
    """Long-running services, by compose name."""
    jobs: dict[str, ExecResult] = field(default_factory=dict)
    """Services others wait for with ``service_completed_successfully``: what they returned."""
    networks: dict[str, Network] = field(default_factory=dict)
    """The plugin network standing for each compose network."""
    volumes: dict[str, Volume] = field(default_factory=dict)
    """The plugin volume standing for each named compose volume."""

    def __getitem__(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            known = ", ".join(sorted(self.services)) or "none"
            raise KeyError(f"no service {name!r} in this stack (its services: {known})") from None


def start(
    compose: ComposeFile, manager: NetworkManager, *, test: str | None = None, hermetic: bool = False
) -> ComposeStack:
    """Create the file's networks and volumes, then start its services in dependency order.

    ``hermetic`` makes every network of the stack hermetic (see :class:`NetworkSpec`). What
    started is in the returned stack even when a later service fails: release it with
    :func:`release` either way.
    """
    __tracebackhide__ = True
    check_addresses(compose, manager)
    stack = ComposeStack()
    try:
        _start_into(stack, compose, manager, test, hermetic)
    except BaseException:
        release(stack, manager)
        raise
    return stack


def check_addresses(compose: ComposeFile, manager: NetworkManager) -> None:
    """Refuse, naming every one, static addresses no subnet of the manager's pool can hold."""
    __tracebackhide__ = True
    allocator = manager.allocator
    pools = ", ".join(map(str, allocator.pools))
    problems = Problems(str(compose.path))
    for network in compose.networks:
        addresses = compose.addresses(network)
        if not addresses:
            continue
        outside = [
            (name, address)
            for name, address in addresses.items()
            if not any(address in p for p in allocator.pools)
        ]
        for name, address in outside:
            problems.add(
                f"service {name!r} on network {network!r}",
                f"ipv4_address {address} is outside the subnet"
                f" pool {pools} (give an address inside it, or a --dockernet-pool that holds it)",
            )
        if outside:
            continue
        subnet = allocator.subnet_holding(list(addresses.values()))
        if subnet is None:
            shown = ", ".join(f"{address} ({name})" for name, address in addresses.items())
            problems.add(
                f"network {network!r}",
                f"the addresses {shown} do not fit in one /{allocator.subnet_size}"
                " (--dockernet-subnet-size) of the pool",
            )
            continue
        reserved = {
            subnet.network_address: "its subnet's own address",
            subnet.broadcast_address: "its subnet's broadcast address",
            next(subnet.hosts()): "its subnet's gateway",
        }
        for name, address in addresses.items():
            if address in reserved:
                problems.add(
                    f"service {name!r} on network {network!r}",
                    f"ipv4_address {address} is {reserved[address]} ({subnet}); choose another",
                )
    problems.raise_any()


def _start_into(
    stack: ComposeStack, compose: ComposeFile, manager: NetworkManager, test: str | None, hermetic: bool
) -> None:
    for name, network in compose.networks.items():
        spec = NetworkSpec.of(
            test=test,
            internal=network.internal,
            hermetic=hermetic,
            ipv6=network.ipv6,
            labels=network.labels or None,
            options=network.options or None,
            holding=compose.addresses(name).values(),
        )
        stack.networks[name] = manager.create_network(spec)
    for name, volume in compose.volumes.items():
        stack.volumes[name] = manager.create_volume(
            test=test,
            labels={**volume["labels"], "pytest-dockernet-compose.volume": name},
            driver=volume["driver"],
            driver_opts=volume["driver_opts"],
        )
    healthy_needed = {
        n for s in compose.services.values() for n, c in s.depends_on.items() if c == "service_healthy"
    }
    jobs = {
        n for s in compose.services.values() for n, c in s.depends_on.items() if c.endswith("successfully")
    }
    pending = dict(compose.services)
    while pending:
        ready = [
            s for s in pending.values() if all(n in stack.services or n in stack.jobs for n in s.depends_on)
        ]
        if not ready:
            raise ComposeError(
                f"compose file {compose.path}: services {sorted(pending)} depend on each other in a cycle"
            )
        futures = run_together(
            [
                partial(_start_one, compose, stack, manager, s, s.name in healthy_needed, s.name in jobs)
                for s in ready
            ],
            name="dockernet-compose",
        )
        error = first_error(futures)
        if error is not None:
            raise error
        for service in ready:
            del pending[service.name]


def _start_one(
    compose: ComposeFile,
    stack: ComposeStack,
    manager: NetworkManager,
    service: ComposeService,
    healthy: bool,
    job: bool,
    cancel: threading.Event,
) -> None:
    network_names = list(service.networks)
    home = stack.networks[network_names[0]]
    home_config = service.networks[network_names[0]]
    image = _image(service, home)
    kwargs: dict[str, Any] = dict(service.options)
    volumes, tmpfs = _mounts(service, stack, manager, home.test)
    if tmpfs:
        kwargs["tmpfs"] = {**kwargs.get("tmpfs", {}), **tmpfs}
    kwargs.update(
        environment=service.environment,
        volumes=volumes or None,
        alias=[*service.aliases, *home_config["aliases"]],
    )
    if service.entrypoint is not None:
        kwargs["entrypoint"] = service.entrypoint
    if service.ports:
        kwargs["ports"] = service.ports
    if service.healthcheck:
        kwargs["healthcheck"] = service.healthcheck
    if job:
        kwargs.pop("restart_policy", None)  # it runs once, to completion
        result = home.run_job(image, service.command, **kwargs)
        if not result.ok:
            raise ServiceStartError(
                f"compose service {service.name!r} exited with status {result.exit_code}, but services"
                f" wait for it to complete successfully; its output:\n{result.output.rstrip() or '(none)'}"
            )
        stack.jobs[service.name] = result
        return
    if home_config["ipv4_address"]:
        kwargs["ip"] = home_config["ipv4_address"]
    wanted = ServiceSpec.of(
        image, service.command, name=service.name, wait=waits.healthy() if healthy else None, **kwargs
    )
    started = home.start(wanted, cancel=cancel)
    for network in network_names[1:]:
        config = service.networks[network]
        stack.networks[network].connect(
            started, aliases=[*service.aliases, *config["aliases"]], ip=config["ipv4_address"]
        )
    stack.services[service.name] = started


def _image(service: ComposeService, network: Network) -> str:
    build = service.build
    if build is None:
        assert service.image is not None
        return service.image
    digest = hashlib.sha256(f"{build.context}\0{build.dockerfile}".encode()).hexdigest()[:12]
    tag = service.image or f"dockernet-compose/{service.name}:{digest}"
    build_image(
        network.client,
        build.context,
        tag,
        dockerfile=build.dockerfile,
        buildargs=build.args or None,
        target=build.target,
    )
    return tag


def _mounts(
    service: ComposeService, stack: ComposeStack, manager: NetworkManager, test: str | None
) -> tuple[list[str], dict[str, str]]:
    volumes, tmpfs = [], {}
    for mount in service.mounts:
        mode = "ro" if mount.read_only else "rw"
        if mount.kind == "tmpfs":
            tmpfs[mount.target] = ""
        elif mount.kind == "bind":
            volumes.append(f"{mount.source}:{mount.target}:{mode}")
        elif mount.source:
            volumes.append(f"{stack.volumes[mount.source].name}:{mount.target}:{mode}")
        else:
            # An anonymous volume: a labelled one of the plugin's, so that it goes with the stack.
            key = f"{service.name}:{mount.target}"
            stack.volumes[key] = manager.create_volume(
                test=test, labels={"pytest-dockernet-compose.volume": key}
            )
            volumes.append(f"{stack.volumes[key].name}:{mount.target}:{mode}")
    return volumes, tmpfs


def release(stack: ComposeStack, manager: NetworkManager, *, later: bool = False) -> None:
    """Remove (or keep) what :func:`start` made: networks with their services, then volumes."""
    for network in reversed(list(stack.networks.values())):
        (manager.release_later if later else manager.release)(network)
    for volume in stack.volumes.values():
        (manager.release_volume_later if later else manager.release_volume)(volume)
