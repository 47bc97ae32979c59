"""The containers of one network: named, labelled, created, started and watched.

A :class:`ContainerFactory` holds the rules every container of a network follows,
services and jobs alike: a unique name, the run's labels, the endpoint with its aliases,
no DNS upstream on hermetic networks, published ports on loopback, the image pulled when
missing, and a container that exited at once reported with its logs. :class:`Network`
wraps what it makes in :class:`Service` records; a job (``docker run --rm --network``) is
run to completion here too (:meth:`ContainerFactory.run_to_completion`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import docker
import docker.errors
import requests
from docker.models import containers as docker_containers
from docker.models.containers import Container

from ..engine import cleanup
from ..engine.addresses import LOOPBACK, on_loopback
from ..engine.connection import is_local
from ..engine.images import pull_image
from ..engine.naming import RunIdentity, container_name
from ..errors import (
    ArgumentError,
    ImageUnavailableError,
    InvalidAddressError,
    JobTimeoutError,
    ServiceStartError,
    hide_frames_of_own_errors,
)
from .service import ExecResult, close_attached, feed_stdin, logs_text
from .specs import FOREIGN_NETWORK_KWARGS, Command, ServiceSpec

EXIT_LOG_LINES = 20
# How long a container its restart policy is bringing back is waited for, after its start.
RESTARTING_SECONDS = 10.0
# The address a job's record shows before (and after) it runs; reports print it as "-".
UNSPECIFIED = IPv4Address("0.0.0.0")


@dataclass(frozen=True)
class Home:
    """The network a factory's containers are made on, as the factory needs to know it."""

    id: str
    name: str
    subnet: IPv4Network
    test: str | None
    hermetic: bool


def check_job_kwargs(docker_kwargs: dict[str, Any]) -> None:
    """Refuse the docker-py keywords :meth:`Network.run_job` decides itself."""
    __tracebackhide__ = hide_frames_of_own_errors
    for key in FOREIGN_NETWORK_KWARGS:
        if key in docker_kwargs:
            raise ArgumentError(
                f"Network.run_job() does not take {key!r}: a container lives on the network that"
                " runs it; use another network's connect() to attach it there too"
            )
    for key in ("detach", "stdin_open", "remove", "auto_remove"):
        if key in docker_kwargs:
            raise ArgumentError(
                f"Network.run_job() does not take {key}=: it runs the command to completion"
                " (stdin= gives it input) and removes the container itself"
            )


def shown(command: Command | None) -> str:
    """A command as messages show it."""
    if command is None:
        return "the image's default"
    return repr(command if isinstance(command, str) else list(command))


class ContainerFactory:
    """Makes the containers of one network (see the module's note)."""

    def __init__(self, client: docker.DockerClient, identity: RunIdentity, home: Home) -> None:
        self.client = client
        self.identity = identity
        self.home = home
        self._names: set[str] = set()
        self._lock = threading.Lock()

    # ---- creating ---------------------------------------------------------------------

    def claim_name(self, suffix: str | None) -> str:
        """A container name of this network no other container of it has: ``{network}-{suffix}``."""
        with self._lock:
            number = 1 if suffix else len(self._names) + 1
            candidate = container_name(self.home.name, suffix or str(number))
            while candidate in self._names:
                number += 1
                candidate = container_name(self.home.name, f"{suffix}-{number}" if suffix else str(number))
            self._names.add(candidate)
        return candidate

    def create(
        self,
        image: str,
        command: Command | None,
        aliases: list[str],
        name: str | None,
        environment: list[str] | dict[str, str] | None,
        docker_kwargs: dict[str, Any],
        *,
        ip: str | None = None,
        job: bool = False,
        stdin: bool = False,
    ) -> tuple[Container, str]:
        """Create (not start) a labelled container on the network; return it and its name."""
        __tracebackhide__ = hide_frames_of_own_errors
        cname = self.claim_name(name or (aliases[0] if aliases else None) or ("job" if job else None))
        labels = self.identity.labels(self.home.test, docker_kwargs.pop("labels", None))
        endpoint = self.client.api.create_endpoint_config(aliases=aliases or None, ipv4_address=ip)
        if self.home.hermetic and "dns" not in docker_kwargs:
            # The embedded DNS forwards names it does not know to the container's upstream
            # servers, from inside the container: with loopback as the only one, nothing
            # answers, and the name never leaves the machine. Docker's DNS then sends no
            # answer at all, so the resolver's own time-out ends the lookup: one attempt of
            # one second (glibc reads these options; some clients, like busybox nslookup, do not).
            docker_kwargs["dns"] = [LOOPBACK]
            docker_kwargs.setdefault("dns_opt", ["timeout:1", "attempts:1"])
        ports = docker_kwargs.get("ports")
        if ports and is_local():
            # Publish on loopback only: a test's service has no business on the LAN.
            docker_kwargs["ports"] = {port: on_loopback(binding) for port, binding in ports.items()}
        create_args = dict(
            command=command,
            name=cname,
            environment=environment,
            labels=labels,
            detach=not job,
            stdin_open=stdin,
            network=self.home.id,
            networking_config={self.home.id: endpoint},
            **docker_kwargs,
        )
        try:
            container = self._create_container(image, create_args)
        except Exception:
            raise
        except BaseException:
            # Interrupted (Ctrl-C, pytest-timeout's signal) while the engine may have made it:
            # its name is this network's alone, so it is removed by name before going on.
            self.remove_by_name(cname)
            raise
        container.attrs["Name"] = f"/{cname}"  # known before any inspect
        return container, cname

    def remove_by_name(self, cname: str) -> None:
        """Remove the container called ``cname`` if the engine has one (nothing else is said)."""
        with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
            self.client.api.remove_container(cname, force=True, v=True)

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
        stop_timeout = kwargs.pop("stop_timeout", None)  # the engine's, which run() lacks
        args = docker_containers._create_container_args(kwargs)  # type: ignore[attr-defined]
        if stop_timeout is not None:
            args["stop_timeout"] = int(stop_timeout)
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

    # ---- services ---------------------------------------------------------------------

    def create_service(self, spec: ServiceSpec, ip: str | None) -> tuple[Container, str]:
        """Create (not start) a service's container; return it and its name."""
        __tracebackhide__ = hide_frames_of_own_errors
        docker_kwargs = spec.options.kwargs()
        stdin_open = bool(docker_kwargs.pop("stdin_open", False))
        return self.create(
            spec.image,
            spec.command_arg,
            list(spec.aliases),
            spec.name,
            spec.environment_arg,
            docker_kwargs,
            ip=ip,
            stdin=stdin_open,
        )

    def start_service(self, container: Container, cname: str, spec: ServiceSpec, ip: str | None) -> None:
        """Start a created service's container and check it runs; it is then inspected.

        A container that cannot start, or that has exited when checked (right after the
        start and, with ``min_uptime``, that long after), is removed and reported with
        its exit status and last log lines.
        """
        __tracebackhide__ = hide_frames_of_own_errors
        container_id = str(container.id)
        try:
            container.start()
            if spec.min_uptime > 0:
                self._watch_for_exit(container_id, spec.min_uptime)
            container.reload()
        except docker.errors.APIError as exc:
            self.discard(container_id, cname)
            reason = str(exc.explanation or exc)
            # Docker: "Address already in use"; podman: "... is already allocated to container ID".
            if ip is not None and ("already in use" in reason or "already allocated" in reason):
                raise InvalidAddressError(
                    f"address {ip} of subnet {self.home.subnet} is already taken on network {self.home.name}"
                    f" (container {cname}, image {spec.image!r}): choose another, or leave ip unset"
                ) from None
            raise ServiceStartError(
                f"container {cname} (image {spec.image!r}, command {spec.command_arg!r}) could not start: {reason}"
            ) from None
        state = container.attrs.get("State", {})
        deadline = time.monotonic() + RESTARTING_SECONDS
        while state.get("Restarting") and time.monotonic() < deadline:
            # Exited, and its restart policy brings it back (a compose file's restart:
            # on-failure): it has an address once it runs again.
            time.sleep(0.1)
            container.reload()
            state = container.attrs.get("State", {})
        if not state.get("Running") or state.get("Restarting"):
            self._fail_exited(container_id, cname, spec.image, state, default_command=spec.command is None)

    def _watch_for_exit(self, container_id: str, seconds: float) -> None:
        # Returns when the container exits; a read time-out means it stayed up.
        with contextlib.suppress(requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            self.client.api.wait(container_id, timeout=seconds)  # type: ignore[arg-type]  # requests takes floats

    def _fail_exited(
        self,
        container_id: str,
        cname: str,
        image: str,
        state: dict[str, Any],
        *,
        default_command: bool = False,
    ) -> None:
        __tracebackhide__ = hide_frames_of_own_errors
        try:
            logs = logs_text(self.client.api, container_id, EXIT_LOG_LINES).rstrip()
        except docker.errors.DockerException as exc:
            logs = f"(logs unavailable: {exc})"
        self.discard(container_id, cname)
        hint = ""
        if state.get("ExitCode") == 0:
            hint = (
                "; the image's default command finished: give a command that keeps running, such"
                " as ['sleep', 'infinity'], or use run_job() for a command meant to finish"
                if default_command
                else "; a command meant to finish is a job: use run_job()"
            )
        raise ServiceStartError(
            f"container {cname} (image {image!r}) exited at once with status"
            f" {state.get('ExitCode')}{' (' + state['Error'] + ')' if state.get('Error') else ''}{hint};"
            f" its last log lines:\n{logs or '(no output)'}"
        )

    def discard(self, container_id: str, cname: str) -> None:
        """Remove a container that never became a service; warn if that fails."""
        failure = cleanup.remove_container(self.client, container_id, cname)
        if failure:
            cleanup.warn_failures([failure], stacklevel=3)

    # ---- jobs -------------------------------------------------------------------------

    def run_to_completion(
        self,
        container_id: str,
        cname: str,
        image: str,
        command: Command | None,
        data: bytes | None,
        timeout: float,
    ) -> ExecResult:
        """Start a created job, feed it ``data``, wait up to ``timeout`` seconds; its result.

        Past the time-out the job is killed and :class:`JobTimeoutError` holds its output so far.
        """
        __tracebackhide__ = hide_frames_of_own_errors
        api = self.client.api
        attached = (
            api.attach_socket(container_id, params={"stdin": 1, "stream": 1}) if data is not None else None
        )
        try:
            try:
                api.start(container_id)
            except docker.errors.APIError as exc:
                raise ServiceStartError(
                    f"job {cname} (image {image!r}, command {shown(command)}) could not start:"
                    f" {exc.explanation or exc}"
                ) from None
            if attached is not None and data is not None:
                feed_stdin(attached, data).join()
        finally:
            if attached is not None:
                close_attached(attached)
        try:
            status = api.wait(container_id, timeout=timeout)  # type: ignore[arg-type]  # requests takes floats
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
            if isinstance(exc, requests.exceptions.ConnectionError) and "timed out" not in str(exc).lower():
                raise
            output = logs_text(api, container_id)
            api.kill(container_id)
            raise JobTimeoutError(
                f"job {cname} (image {image!r}, command {shown(command)}) was still running after"
                f" {timeout:g} s and was killed; its output so far:\n{output.rstrip() or '(no output)'}",
                output,
            ) from None
        return ExecResult(int(status.get("StatusCode", -1)), logs_text(api, container_id))
