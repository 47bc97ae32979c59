"""A Docker network of the plugin's own: made on a free subnet, joined, left and removed.

Its containers are made by a :class:`~pytest_dockernet.core.containers.ContainerFactory`;
this module keeps the network's own job and the doors a test uses: :meth:`Network.run`,
:meth:`Network.run_job`, :meth:`Network.run_many`, :meth:`Network.connect`,
:meth:`Network.disconnect` and :meth:`Network.remove`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from functools import partial
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from typing import Any

import docker
import docker.errors
import requests
from docker.types import IPAMConfig, IPAMPool

from ..engine import cleanup
from ..engine.addresses import address6_on, address_on, check_static_address
from ..engine.cleanup import CleanupFailure
from ..engine.connection import engine_errors
from ..engine.naming import RunIdentity, normalize_aliases
from ..engine.podman import is_podman
from ..engine.subnets import SubnetAllocator
from ..errors import ArgumentError, DockernetError, NetworkError, ServiceStartError, hide_frames_of_own_errors
from .containers import UNSPECIFIED, ContainerFactory, Home, check_job_kwargs
from .faults import NetworkFaults
from .service import ExecResult, Service
from .specs import Command, NetworkSpec, ServiceSpec
from .together import first_error, run_together
from .wait import WaitArgument, until_ready

log = logging.getLogger("pytest_dockernet")

HERMETIC_ON_PODMAN = (
    "hermetic networks are not available on podman: there, a container's dns= replaces"
    " podman's DNS server (aardvark-dns) rather than being its upstream, so no alias would"
    " resolve; leave hermetic off (--dockernet-hermetic, the dockernet marker's hermetic=)"
)

# How long a new overlay network is waited for to be allocated by the swarm's manager.
OVERLAY_ALLOCATION_SECONDS = 10.0


def refuse_unsupported(client: docker.DockerClient, spec: NetworkSpec) -> None:
    """Raise :class:`NetworkError` when the engine cannot make a network of ``spec``."""
    if spec.hermetic and is_podman(client):
        raise NetworkError(HERMETIC_ON_PODMAN)


def _wait_until_allocated(client: docker.DockerClient, network_id: str) -> None:
    """Return once the swarm's manager has allocated a new overlay network.

    The manager allocates it after ``network create`` returned; until then the engine
    inspects it with an empty ``Driver`` (seen in a CI run). Past the time-out the network
    is used as it is: the engine attaches containers once it is allocated."""
    deadline = time.monotonic() + OVERLAY_ALLOCATION_SECONDS
    while time.monotonic() < deadline:
        with contextlib.suppress(docker.errors.APIError, requests.RequestException):
            if client.api.inspect_network(network_id).get("Driver"):
                return
        time.sleep(0.05)
    log.debug("overlay network %s not allocated after %g s", network_id[:12], OVERLAY_ALLOCATION_SECONDS)


class Network(NetworkFaults):
    """A user-defined bridge network with an explicit subnet, addressed by ID.

    Make one with :meth:`create` (the fixtures do it for you). Services started with
    :meth:`run` live on this network only and reach each other by their aliases; jobs run
    to completion with :meth:`run_job`. :meth:`remove` tears everything down, containers
    first.
    """

    def __init__(
        self,
        client: docker.DockerClient,
        network_id: str,
        name: str,
        subnet: IPv4Network,
        identity: RunIdentity,
        *,
        test: str | None = None,
        internal: bool = False,
        hermetic: bool = False,
        subnet6: IPv6Network | None = None,
        driver: str = "bridge",
        spec: NetworkSpec | None = None,
    ) -> None:
        self.client = client
        self.driver = driver
        """``bridge``, or ``overlay`` (an attachable network of a swarm)."""
        self.id = network_id
        """The engine's network ID: the plugin never looks a network up by name."""
        self.name = name
        """``{prefix}-{run}-{worker}-{n}``: unique per run, worker and network."""
        self.subnet = subnet
        """The subnet carved for this network from the pool."""
        self.subnet6 = subnet6
        """The IPv6 /64 of a dual-stack network (``ipv6=True``), else None."""
        self.spec = spec or NetworkSpec(
            test=test, internal=internal, hermetic=hermetic, ipv6=subnet6 is not None
        )
        """What the network was made to be."""
        self.internal = self.spec.internal
        """Whether the network has no route outside (``docker network create --internal``)."""
        self.hermetic = self.spec.hermetic
        """Whether names its embedded DNS does not know fail at once instead of being forwarded."""
        self.identity = identity
        self.test = self.spec.test
        self.services: list[Service] = []
        """The services started on this network, in start order."""
        self.started = 0
        """How many containers this network has started (services and jobs), including removed ones."""
        self.containers = ContainerFactory(
            client, identity, Home(network_id, name, subnet, self.test, self.hermetic)
        )
        """What makes this network's containers (names, labels, DNS, ports, exit checks)."""
        self._guests: list[tuple[Service, list[str]]] = []
        self._lock = threading.Lock()
        self._removed = False

    @property
    def gateway(self) -> IPv4Address:
        """The network's gateway: the first address of :attr:`subnet`."""
        return next(self.subnet.hosts())

    @property
    def guests(self) -> list[tuple[Service, list[str]]]:
        """Services of other networks attached here with :meth:`connect`, with their aliases here."""
        with self._lock:
            return [(service, list(aliases)) for service, aliases in self._guests]

    @classmethod
    def create(
        cls,
        client: docker.DockerClient,
        allocator: SubnetAllocator,
        identity: RunIdentity,
        spec: NetworkSpec | None = None,
        *,
        driver: str = "bridge",
    ) -> Network:
        """Create a labelled network of ``spec`` on a free subnet of the allocator's pools.

        With ``spec.ipv6`` the network is dual-stack: it also gets a /64 of the allocator's
        IPv6 pools. Hermetic networks start their containers with no DNS upstream.
        ``driver`` is ``bridge``, or ``overlay`` on a swarm manager: an attachable overlay
        network, whose subnet the swarm's manager checks against every other of the swarm.
        """
        __tracebackhide__ = hide_frames_of_own_errors
        spec = spec or NetworkSpec()
        refuse_unsupported(client, spec)
        name = identity.next_network_name()

        def create_on(subnet: IPv4Network, subnet6: IPv6Network | None) -> str:
            pools = [IPAMPool(subnet=str(subnet), gateway=str(next(subnet.hosts())))]
            if subnet6 is not None:
                pools.append(IPAMPool(subnet=str(subnet6), gateway=str(next(subnet6.hosts()))))
            response = client.api.create_network(
                name,
                driver=driver,
                attachable=True if driver == "overlay" else None,
                options=spec.option_dict,
                ipam=IPAMConfig(driver="default", pool_configs=pools),
                internal=spec.internal,
                enable_ipv6=subnet6 is not None,
                labels=identity.labels(spec.test, spec.label_dict),
            )
            return str(response["Id"])

        subnet6: IPv6Network | None = None
        with engine_errors(f"creating network {name}"):
            try:
                if spec.ipv6:
                    network_id, subnet, subnet6 = allocator.allocate_dual(create_on, holding=spec.holding)
                else:
                    network_id, subnet = allocator.allocate(
                        lambda subnet: create_on(subnet, None), holding=spec.holding
                    )
            except docker.errors.APIError as exc:
                raise NetworkError(
                    f"the engine refused to create network {name}: {exc.explanation or exc}"
                ) from None
        log.debug("created network %s (%s) on %s %s", name, network_id[:12], subnet, subnet6 or "")
        if driver == "overlay":
            _wait_until_allocated(client, network_id)
        return cls(client, network_id, name, subnet, identity, subnet6=subnet6, driver=driver, spec=spec)

    def run(
        self,
        image: str,
        command: Command | None = None,
        *,
        alias: str | Sequence[str] | None = None,
        name: str | None = None,
        environment: dict[str, str] | list[str] | None = None,
        ip: str | IPv4Address | None = None,
        min_uptime: float = 0.0,
        wait: WaitArgument = None,
        **docker_kwargs: Any,
    ) -> Service:
        """Start a long-running container from ``image`` on this network; return its :class:`Service`.

        ``alias`` (one name or several) becomes network-scoped DNS names other
        containers on this network resolve. The container name is
        ``{network name}-{name or first alias or a number}``. ``ip`` gives it a static
        address of :attr:`subnet`. ``docker_kwargs`` go to docker-py's ``containers.run``
        (``ports``, ``volumes``, ``healthcheck``...), except network settings: a service
        lives on this network only (use :meth:`connect`). The image is pulled when it is
        not present. ``min_uptime`` (seconds) watches that long for a crash (returning at
        once if the container exits); ``wait`` (a :mod:`pytest_dockernet.wait` strategy,
        or a list that must all hold) returns only once the service is ready.

        A container that **has exited** when ``run`` checks it — right after the start,
        during ``min_uptime`` (whose watch returns the moment it exits), and at every poll
        of ``wait`` — raises :class:`ServiceStartError` with its exit status and last log
        lines, and is removed at once; one that is still running is returned. That holds
        for every exit status, 0 included: a command meant to finish is a job, for
        :meth:`run_job`. A check right after the start may still find a command that exits
        within milliseconds running: pass ``min_uptime`` where such a crash must be caught
        every time.
        """
        __tracebackhide__ = hide_frames_of_own_errors
        spec = ServiceSpec.of(
            image,
            command,
            alias=alias,
            name=name,
            environment=environment,
            ip=ip,
            min_uptime=min_uptime,
            wait=wait,
            **docker_kwargs,
        )
        return self.start(spec)

    def start(self, spec: ServiceSpec, *, cancel: threading.Event | None = None) -> Service:
        """Start the service ``spec`` describes (what :meth:`run` does once it made the spec).

        A start interrupted by any ``BaseException`` (Ctrl-C, pytest-timeout's signal), or whose
        wait is cancelled through ``cancel``, removes the container: nobody was handed it.
        """
        __tracebackhide__ = hide_frames_of_own_errors
        address = check_static_address(spec.ip, self.subnet, self.name) if spec.ip is not None else None
        with engine_errors(f"starting a container from {spec.image!r} on network {self.name}"):
            container, cname = self.containers.create_service(spec, address)
            # Recorded before it starts: whatever interrupts the start, the teardown removes it.
            service = Service(self, container, list(spec.aliases), UNSPECIFIED, image=spec.image)
            service.static_ip = address
            self.adopt(service)
            try:
                self.containers.start_service(container, cname, spec, address)
            except DockernetError:
                self._abandon(service)  # removed already, and reported: it never ran
                raise
            except BaseException:
                self._remove_interrupted(service)
                raise
            try:
                service.ip = self.ip_of(container.attrs)
                service.ip6 = address6_on(container.attrs, self.id, self.name)
            except BaseException:
                self._remove_interrupted(service)  # it runs, but nobody can be handed it
                raise
            try:
                until_ready(service, spec.wait, cancel)
            except ServiceStartError:
                service.remove()  # exited while waited for: its logs are in the message
                raise
            except DockernetError:
                raise  # not ready: it stays for the failure report, and goes with the network
            except BaseException:
                self._remove_interrupted(service)
                raise
        return service

    def _remove_interrupted(self, service: Service) -> None:
        # A removal that fails leaves it listed: the network's teardown tries again, and says so.
        if cleanup.remove_container(self.client, service.id, service.name) is None:
            self.forget(service)

    def run_job(
        self,
        image: str,
        command: Command | None = None,
        *,
        stdin: str | bytes | None = None,
        timeout: float = 60.0,
        alias: str | Sequence[str] | None = None,
        environment: dict[str, str] | list[str] | None = None,
        **docker_kwargs: Any,
    ) -> ExecResult:
        """Run a one-shot container on this network to completion: ``docker run --rm --network``.

        ``stdin`` (str or bytes) is written to its standard input, which is then closed.
        Returns an :class:`ExecResult` (``exit_code``, ``output``: stdout and stderr as the
        engine logged them, ``ok``), whatever the exit status. The container carries the
        plugin's labels and is removed afterwards (kept with ``--dockernet-keep``). Past
        ``timeout`` seconds it is killed and :class:`JobTimeoutError` is raised, holding
        the output so far. Images are pulled, and image or command errors reported, as by
        :meth:`run`.
        """
        __tracebackhide__ = hide_frames_of_own_errors
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ArgumentError(f"run_job timeout must be more than 0 seconds, not {timeout!r}")
        check_job_kwargs(docker_kwargs)
        aliases = normalize_aliases(alias)
        data = stdin.encode() if isinstance(stdin, str) else None if stdin is None else bytes(stdin)
        with engine_errors(f"running a job from {image!r} on network {self.name}"):
            container, cname = self.containers.create(
                image, command, aliases, None, environment, docker_kwargs, job=True, stdin=data is not None
            )
            job = Service(self, container, aliases, UNSPECIFIED, image=image)  # no address until it runs
            self.adopt(job)  # a failing test's report shows it; teardown removes it if we cannot
            try:
                return self.containers.run_to_completion(job.id, cname, image, command, data, timeout)
            finally:
                self._remove_job(job)

    def _remove_job(self, job: Service) -> None:
        if self.identity.keep:
            return  # listed, and kept with the network, like every other container
        failure = cleanup.remove_container(self.client, job.id, job.name)
        if failure is None:
            self.forget(job)
        else:
            # Left in services: the network's teardown tries again and reports it.
            cleanup.warn_failures([failure], stacklevel=4)

    def run_many(self, specs: Sequence[Mapping[str, Any] | ServiceSpec]) -> list[Service]:
        """Start independent services concurrently; return them in the order given.

        Each spec holds :meth:`run`'s arguments by name, ``image`` included:
        ``{"image": "redis:7", "alias": "cache"}`` (or is a :class:`ServiceSpec`). Starting
        several at once saves most of the engine's per-container start time. If any fails,
        the others still finish starting (and are removed with the network), and the first
        error is raised.
        """
        __tracebackhide__ = hide_frames_of_own_errors
        made = [spec if isinstance(spec, ServiceSpec) else ServiceSpec.of(**spec) for spec in specs]
        if len(made) <= 1:
            return [self.start(spec) for spec in made]
        futures = run_together(
            [partial(self._start_cancellable, spec) for spec in made], name="dockernet-run"
        )
        error = first_error(futures)
        if error is not None:
            raise error
        return [future.result() for future in futures]

    def ip_of(self, attrs: dict[str, Any]) -> IPv4Address:
        """A container's IPv4 address on this network, from its inspect data."""
        address = address_on(attrs, self.id, self.name)
        if address is None:
            raise DockernetError(f"container {attrs.get('Name')} has no address on network {self.name}")
        return address

    def connect(
        self, service: Service, aliases: str | Sequence[str] | None = None, *, ip: str | None = None
    ) -> IPv4Address:
        """Attach ``service`` to this network with ``aliases``; return its address here.

        For a service of another network this adds an endpoint; for one of this
        network that was disconnected, it heals the partition, and with no
        ``aliases`` given its original aliases come back. ``ip`` gives it a static address
        here. What the service reports (addresses, published ports) is refreshed from the engine.
        """
        __tracebackhide__ = hide_frames_of_own_errors
        names = normalize_aliases(aliases)
        if not names and service.network is self:
            names = service.aliases
        with engine_errors(f"connecting {service.name} to network {self.name}"):
            try:
                self.client.api.connect_container_to_network(
                    service.id,
                    self.id,
                    aliases=names or None,
                    ipv4_address=check_static_address(ip, self.subnet, self.name) if ip else None,
                )
            except docker.errors.APIError as exc:
                raise NetworkError(
                    f"connecting {service.name} to network {self.name} failed: {exc.explanation or exc}"
                ) from None
            if service.network is not self:
                with self._lock:
                    self._guests.append((service, names))
            attrs = service.reload()
        if service.network is self:
            service.ip = self.ip_of(attrs)
            service.ip6 = address6_on(attrs, self.id, self.name)
        return self.ip_of(attrs)

    def disconnect(self, service: Service) -> None:
        """Detach ``service`` from this network: it can no longer reach it or be reached on it.

        Docker republishes the ports of a container that leaves the network carrying them
        on new host ports: what the service reports is refreshed from the engine.
        """
        __tracebackhide__ = hide_frames_of_own_errors
        with engine_errors(f"disconnecting {service.name} from network {self.name}"):
            try:
                self.client.api.disconnect_container_from_network(service.id, self.id)
            except docker.errors.APIError as exc:
                raise NetworkError(
                    f"disconnecting {service.name} from network {self.name} failed: {exc.explanation or exc}"
                ) from None
            service.reload()
        with self._lock:
            self._guests = [(guest, names) for guest, names in self._guests if guest is not service]

    def forget(self, service: Service) -> None:
        """Stop accounting for ``service`` (already removed by :meth:`Service.remove`)."""
        with self._lock:
            if service in self.services:
                self.services.remove(service)

    def _start_cancellable(self, spec: ServiceSpec, cancel: threading.Event) -> Service:
        return self.start(spec, cancel=cancel)

    def _abandon(self, service: Service) -> None:
        """Forget a container that never ran (its start failed, and it was removed)."""
        with self._lock:
            if service in self.services:
                self.services.remove(service)
                self.started -= 1

    def adopt(self, service: Service) -> None:
        """Account for a container of this network that is not yet in :attr:`services` (a job)."""
        with self._lock:
            self.services.append(service)
            self.started += 1

    def remove(self) -> list[CleanupFailure]:
        """Remove the services (in parallel), then the network; return what could not be.

        Safe to call twice. Never raises for a failed removal: failures are returned
        for the caller to report (see :func:`pytest_dockernet.engine.cleanup.warn_failures`).
        """
        with self._lock:
            if self._removed:
                return []
            self._removed = True
            own = [(s.id, s.name) for s in self.services]
            guests = [guest for guest, _ in self._guests]
        failures = cleanup.remove_containers(self.client, own)
        for guest in guests:
            # A guest already gone is fine: remove_network forces out whatever is left.
            with contextlib.suppress(docker.errors.APIError):
                self.client.api.disconnect_container_from_network(guest.id, self.id, force=True)
        failure = cleanup.remove_network(self.client, self.id, self.name)
        if failure is None and self.driver == "overlay":
            failure = cleanup.confirm_network_gone(self.client, self.id, self.name)
        if failure:
            failures.append(failure)
        return failures

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc_info: object) -> None:
        cleanup.warn_failures(self.remove())

    def __repr__(self) -> str:
        return f"<Network {self.name} {self.subnet} id={self.id[:12]}>"
