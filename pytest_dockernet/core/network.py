"""A Docker bridge network of the plugin's own, and the services started on it."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from typing import Any

import docker
import docker.errors
import requests
from docker.models import containers as docker_containers
from docker.models.containers import Container
from docker.types import IPAMConfig, IPAMPool

from ..engine import cleanup
from ..engine.addresses import LOOPBACK, address6_on, address_on, check_static_address, on_loopback
from ..engine.cleanup import CleanupFailure
from ..engine.connection import engine_errors, is_local
from ..engine.images import pull_image
from ..engine.naming import Labels, RunIdentity, container_name, normalize_aliases
from ..engine.podman import is_podman
from ..engine.subnets import SubnetAllocator
from ..errors import (
    DockernetError,
    ImageUnavailableError,
    InvalidAddressError,
    NetworkError,
    ServiceStartError,
    hide_frames_of_own_errors,
)
from .service import Command, ExecResult, Service, logs_text
from .wait import WaitArgument, until_ready

log = logging.getLogger("pytest_dockernet")

EXIT_LOG_LINES = 20
MAX_PARALLEL_STARTS = 8
# Keys of ``docker_kwargs`` that would put a container on another network than this one.
_FOREIGN_NETWORK_KWARGS = ("network", "network_mode", "networking_config")


HERMETIC_ON_PODMAN = (
    "hermetic networks are not available on podman: there, a container's dns= replaces"
    " podman's DNS server (aardvark-dns) rather than being its upstream, so no alias would"
    " resolve; leave hermetic off (--dockernet-hermetic, the dockernet marker's hermetic=)"
)


# How long a new overlay network is waited for to be allocated by the swarm's manager.
OVERLAY_ALLOCATION_SECONDS = 10.0


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


class Network:
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
        self.internal = internal
        """Whether the network has no route outside (``docker network create --internal``)."""
        self.hermetic = hermetic
        """Whether names its embedded DNS does not know fail at once instead of being forwarded."""
        self.identity = identity
        self.test = test
        self.services: list[Service] = []
        """The services started on this network, in start order."""
        self.started = 0
        """How many containers this network has started (services and jobs), including removed ones."""
        self._guests: list[tuple[Service, list[str]]] = []
        self._names: set[str] = set()
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
        *,
        test: str | None = None,
        internal: bool = False,
        hermetic: bool = False,
        ipv6: bool = False,
        labels: Labels | None = None,
        options: dict[str, str] | None = None,
        driver: str = "bridge",
    ) -> Network:
        """Create a labelled network on a free subnet of the allocator's pools.

        With ``ipv6`` the network is dual-stack: it also gets a /64 of the allocator's IPv6
        pools. ``hermetic`` networks start their containers with no DNS upstream. ``driver``
        is ``bridge``, or ``overlay`` on a swarm manager: an attachable overlay network, whose
        subnet the swarm's manager checks against every other of the swarm.
        """
        __tracebackhide__ = hide_frames_of_own_errors
        if hermetic and is_podman(client):
            raise NetworkError(HERMETIC_ON_PODMAN)
        name = identity.next_network_name()

        def create_on(subnet: IPv4Network, subnet6: IPv6Network | None) -> str:
            pools = [IPAMPool(subnet=str(subnet), gateway=str(next(subnet.hosts())))]
            if subnet6 is not None:
                pools.append(IPAMPool(subnet=str(subnet6), gateway=str(next(subnet6.hosts()))))
            response = client.api.create_network(
                name,
                driver=driver,
                attachable=True if driver == "overlay" else None,
                options=options,
                ipam=IPAMConfig(driver="default", pool_configs=pools),
                internal=internal,
                enable_ipv6=subnet6 is not None,
                labels=identity.labels(test, labels),
            )
            return str(response["Id"])

        subnet6: IPv6Network | None = None
        with engine_errors(f"creating network {name}"):
            try:
                if ipv6:
                    network_id, subnet, subnet6 = allocator.allocate_dual(create_on)
                else:
                    network_id, subnet = allocator.allocate(lambda subnet: create_on(subnet, None))
            except docker.errors.APIError as exc:
                raise NetworkError(
                    f"the engine refused to create network {name}: {exc.explanation or exc}"
                ) from None
        log.debug("created network %s (%s) on %s %s", name, network_id[:12], subnet, subnet6 or "")
        if driver == "overlay":
            _wait_until_allocated(client, network_id)
        return cls(
            client,
            network_id,
            name,
            subnet,
            identity,
            test=test,
            internal=internal,
            hermetic=hermetic,
            subnet6=subnet6,
            driver=driver,
        )

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
        aliases = normalize_aliases(alias)
        address = check_static_address(ip, self.subnet, self.name) if ip is not None else None
        self._check_kwargs(docker_kwargs)
        with engine_errors(f"starting a container from {image!r} on network {self.name}"):
            service = self._start(
                image, command, aliases, name, environment, address, min_uptime, docker_kwargs
            )
            try:
                until_ready(service, wait)
            except ServiceStartError:
                service.remove()  # exited while waited for: its logs are in the message
                raise
        return service

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
        from .containers import run_job

        return run_job(
            self, image, command, stdin, timeout, normalize_aliases(alias), environment, docker_kwargs
        )

    def _create(
        self,
        image: str,
        command: Command | None,
        aliases: list[str],
        name: str | None,
        environment: dict[str, str] | list[str] | None,
        docker_kwargs: dict[str, Any],
        *,
        ip: str | None = None,
        job: bool = False,
        stdin: bool = False,
    ) -> tuple[Container, str]:
        """Create (not start) a labelled container on this network; return it and its name."""
        __tracebackhide__ = hide_frames_of_own_errors
        cname = self._claim_name(name or (aliases[0] if aliases else None) or ("job" if job else None))
        labels = self.identity.labels(self.test, docker_kwargs.pop("labels", None))
        endpoint = self.client.api.create_endpoint_config(aliases=aliases or None, ipv4_address=ip)
        if self.hermetic and "dns" not in docker_kwargs:
            # The embedded DNS forwards names it does not know to the container's upstream
            # servers, from inside the container: with loopback as the only one, nothing
            # answers, and the name never leaves the machine. Docker's DNS then sends no
            # answer at all, so the resolver's own time-out ends the lookup: one attempt of
            # one second (glibc reads these options; some clients, like busybox nslookup, do not).
            docker_kwargs["dns"] = [LOOPBACK]
            docker_kwargs.setdefault("dns_opt", ["timeout:1", "attempts:1"])
        create_args = dict(
            command=command,
            name=cname,
            environment=environment,
            labels=labels,
            detach=not job,
            stdin_open=stdin,
            network=self.id,
            networking_config={self.id: endpoint},
            **docker_kwargs,
        )
        container = self._create_container(image, create_args)
        container.attrs["Name"] = f"/{cname}"  # known before any inspect
        return container, cname

    def _start(
        self,
        image: str,
        command: Command | None,
        aliases: list[str],
        name: str | None,
        environment: dict[str, str] | list[str] | None,
        ip: str | None,
        min_uptime: float,
        docker_kwargs: dict[str, Any],
    ) -> Service:
        __tracebackhide__ = hide_frames_of_own_errors
        stdin_open = bool(docker_kwargs.pop("stdin_open", False))
        container, cname = self._create(
            image, command, aliases, name, environment, docker_kwargs, ip=ip, stdin=stdin_open
        )
        container_id = str(container.id)
        try:
            container.start()
            if min_uptime > 0:
                self._watch_for_exit(container_id, min_uptime)
            container.reload()
        except docker.errors.APIError as exc:
            self._discard(container_id, cname)
            reason = str(exc.explanation or exc)
            # Docker: "Address already in use"; podman: "... is already allocated to container ID".
            if ip is not None and ("already in use" in reason or "already allocated" in reason):
                raise InvalidAddressError(
                    f"address {ip} of subnet {self.subnet} is already taken on network {self.name}"
                    f" (container {cname}, image {image!r}): choose another, or leave ip unset"
                ) from None
            raise ServiceStartError(
                f"container {cname} (image {image!r}, command {command!r}) could not start: {reason}"
            ) from None
        state = container.attrs.get("State", {})
        if not state.get("Running"):
            self._fail_exited(container_id, cname, image, state)
        service = self._service(container, aliases, image)
        with self._lock:
            self.services.append(service)
            self.started += 1
        return service

    def _service(self, container: Container, aliases: list[str], image: str | None = None) -> Service:
        attrs = container.attrs
        ip6 = address6_on(attrs, self.id, self.name)
        return Service(self, container, aliases, self._ip_of(attrs), ip6, image=image)

    def _watch_for_exit(self, container_id: str, seconds: float) -> None:
        # Returns when the container exits; a read time-out means it stayed up.
        with contextlib.suppress(requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            self.client.api.wait(container_id, timeout=seconds)  # type: ignore[arg-type]  # requests takes floats

    def run_many(self, specs: Sequence[dict[str, Any]]) -> list[Service]:
        """Start independent services concurrently; return them in the order given.

        Each spec holds :meth:`run`'s arguments by name, ``image`` included:
        ``{"image": "redis:7", "alias": "cache"}``. Starting several at once saves most
        of the engine's per-container start time. If any fails, the others still
        finish starting (and are removed with the network), and the first error is raised.
        """
        __tracebackhide__ = hide_frames_of_own_errors
        specs = [dict(spec) for spec in specs]
        if len(specs) <= 1:
            return [self.run(**spec) for spec in specs]
        with ThreadPoolExecutor(
            min(len(specs), MAX_PARALLEL_STARTS), thread_name_prefix="dockernet-run"
        ) as pool:
            futures = [pool.submit(self._run_spec, spec) for spec in specs]
        for future in futures:
            error = future.exception()
            if error is not None:
                raise error
        return [future.result() for future in futures]

    def _run_spec(self, spec: dict[str, Any]) -> Service:
        return self.run(**spec)

    def _check_kwargs(self, docker_kwargs: dict[str, Any], *, job: bool = False) -> None:
        for key in _FOREIGN_NETWORK_KWARGS:
            if key in docker_kwargs:
                raise TypeError(
                    f"Network.{'run_job' if job else 'run'}() does not take {key!r}: a container lives"
                    " on the network that runs it; use another network's connect() to attach it there too"
                )
        if job:
            for key in ("detach", "stdin_open", "remove", "auto_remove"):
                if key in docker_kwargs:
                    raise TypeError(
                        f"Network.run_job() does not take {key}=: it runs the command to completion"
                        " (stdin= gives it input) and removes the container itself"
                    )
        elif docker_kwargs.pop("detach", True) is not True:
            raise TypeError(
                "Network.run() starts long-running services and always detaches; run a command to"
                " completion with run_job(), or in a service with Service.exec()"
            )
        volumes = docker_kwargs.get("volumes")
        if isinstance(volumes, dict):
            # Volumes of docker_volume may stand for their names as keys.
            docker_kwargs["volumes"] = {str(key): value for key, value in volumes.items()}
        ports = docker_kwargs.get("ports")
        if ports and is_local():
            # Publish on loopback only: a test's service has no business on the LAN.
            docker_kwargs["ports"] = {port: on_loopback(binding) for port, binding in ports.items()}

    def _claim_name(self, suffix: str | None) -> str:
        with self._lock:
            number = 1 if suffix else len(self._names) + 1
            candidate = container_name(self.name, suffix or str(number))
            while candidate in self._names:
                number += 1
                candidate = container_name(self.name, f"{suffix}-{number}" if suffix else str(number))
            self._names.add(candidate)
        return candidate

    def _create_container(self, image: str, create_args: dict[str, Any]) -> Container:
        __tracebackhide__ = hide_frames_of_own_errors
        try:
            return self._create_container_once(image, create_args)
        except docker.errors.ImageNotFound:
            pass
        pull_image(self.client, image)
        return self._create_container_once(image, create_args)

    def _create_container_once(self, image: str, create_args: dict[str, Any]) -> Container:
        __tracebackhide__ = hide_frames_of_own_errors
        # What ``containers.create`` does, minus its inspect: run() inspects after start anyway.
        # _create_container_args is docker-py's own (private, stable since 2.0) translation
        # of ``containers.run`` arguments, so docker_kwargs mean exactly what they mean there.
        kwargs = dict(create_args, image=image, version=self.client.api.api_version)
        args = docker_containers._create_container_args(kwargs)  # type: ignore[attr-defined]
        try:
            response = self.client.api.create_container(**args)
        except docker.errors.ImageNotFound:
            raise
        except docker.errors.APIError as exc:
            reason = str(exc.explanation or exc)
            if "invalid reference format" in reason:
                raise ImageUnavailableError(
                    f"image {image!r} is not a valid image reference ({reason}): write"
                    " [registry/]name[:tag] in lower case, such as redis:7"
                ) from None
            raise ServiceStartError(
                f"container {create_args['name']} (image {image!r}) could not be created: {reason}"
            ) from None
        return self.client.containers.prepare_model({"Id": response["Id"]})

    def _fail_exited(self, container_id: str, cname: str, image: str, state: dict[str, Any]) -> None:
        __tracebackhide__ = hide_frames_of_own_errors
        try:
            logs = logs_text(self.client.api, container_id, EXIT_LOG_LINES).rstrip()
        except docker.errors.DockerException as exc:
            logs = f"(logs unavailable: {exc})"
        self._discard(container_id, cname)
        hint = "; a command meant to finish is a job: use run_job()" if state.get("ExitCode") == 0 else ""
        raise ServiceStartError(
            f"container {cname} (image {image!r}) exited at once with status"
            f" {state.get('ExitCode')}{' (' + state['Error'] + ')' if state.get('Error') else ''}{hint};"
            f" its last log lines:\n{logs or '(no output)'}"
        )

    def _discard(self, container_id: str, cname: str) -> None:
        failure = cleanup.remove_container(self.client, container_id, cname)
        if failure:
            cleanup.warn_failures([failure], stacklevel=3)

    def _ip_of(self, attrs: dict[str, Any]) -> IPv4Address:
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
            service.ip = self._ip_of(attrs)
            service.ip6 = address6_on(attrs, self.id, self.name)
        return self._ip_of(attrs)

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

    def adopt(self, service: Service) -> None:
        """Account for a container of this network that is not yet in :attr:`services` (a job)."""
        with self._lock:
            self.services.append(service)
            self.started += 1

    def remove(self) -> list[CleanupFailure]:
        """Remove the services (in parallel), then the network; return what could not be.

        Safe to call twice. Never raises for a failed removal: failures are returned
        for the caller to report (see :func:`pytest_dockernet.cleanup.warn_failures`).
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
