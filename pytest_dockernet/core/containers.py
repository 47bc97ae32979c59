"""One-shot jobs: a container run to completion on a network, ``docker run --rm --network``.

A client, a migration or a smoke check, run as its own container beside the services.
The container is created with stdin attached only when the job has input (docker drops
input that nobody attached), started, waited for with a time-out, and removed.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any

import docker.errors
import requests

from ..engine.cleanup import remove_container, warn_failures
from ..engine.connection import engine_errors
from ..errors import JobTimeoutError, ServiceStartError, hide_frames_of_own_errors
from .service import Command, ExecResult, Service, close_attached, feed_stdin, logs_text

if TYPE_CHECKING:
    from .network import Network

# The address a job's record shows before (and after) it runs; reports print it as "-".
UNSPECIFIED = IPv4Address("0.0.0.0")


def run_job(
    network: Network,
    image: str,
    command: Command | None,
    stdin: str | bytes | None,
    timeout: float,
    aliases: list[str],
    environment: dict[str, str] | list[str] | None,
    docker_kwargs: dict[str, Any],
) -> ExecResult:
    """What :meth:`Network.run_job` does; see there."""
    __tracebackhide__ = hide_frames_of_own_errors
    if not timeout > 0:
        raise ValueError(f"run_job timeout must be more than 0 seconds, not {timeout!r}")
    network._check_kwargs(docker_kwargs, job=True)
    data = stdin.encode() if isinstance(stdin, str) else None if stdin is None else bytes(stdin)
    with engine_errors(f"running a job from {image!r} on network {network.name}"):
        container, _ = network._create(
            image, command, aliases, None, environment, docker_kwargs, job=True, stdin=data is not None
        )
        job = Service(network, container, aliases, UNSPECIFIED, image=image)  # no address until it runs
        network.adopt(job)  # a failing test's report shows it; teardown removes it if we cannot
        try:
            return _run_to_completion(network, job, image, command, data, timeout)
        finally:
            _remove(network, job)


def _run_to_completion(
    network: Network, job: Service, image: str, command: Command | None, data: bytes | None, timeout: float
) -> ExecResult:
    __tracebackhide__ = hide_frames_of_own_errors
    api = network.client.api
    attached = api.attach_socket(job.id, params={"stdin": 1, "stream": 1}) if data is not None else None
    try:
        try:
            api.start(job.id)
        except docker.errors.APIError as exc:
            raise ServiceStartError(
                f"job {job.name} (image {image!r}, command {_shown(command)}) could not start:"
                f" {exc.explanation or exc}"
            ) from None
        if attached is not None and data is not None:
            feed_stdin(attached, data).join()
    finally:
        if attached is not None:
            close_attached(attached)
    try:
        status = api.wait(job.id, timeout=timeout)  # type: ignore[arg-type]  # requests takes floats
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
        if isinstance(exc, requests.exceptions.ConnectionError) and "timed out" not in str(exc).lower():
            raise
        output = _output(api, job.id)
        api.kill(job.id)
        raise JobTimeoutError(
            f"job {job.name} (image {image!r}, command {_shown(command)}) was still running after"
            f" {timeout:g} s and was killed; its output so far:\n{output.rstrip() or '(no output)'}",
            output,
        ) from None
    return ExecResult(int(status.get("StatusCode", -1)), _output(api, job.id))


def _output(api: Any, container_id: str) -> str:
    return logs_text(api, container_id)


def _shown(command: Command | None) -> str:
    if command is None:
        return "the image's default"
    return repr(command if isinstance(command, str) else list(command))


def _remove(network: Network, job: Service) -> None:
    if network.identity.keep:
        return  # listed, and kept with the network, like every other container
    failure = remove_container(network.client, job.id, job.name)
    if failure is None:
        network.forget(job)
    else:
        # Left in network.services: the network's teardown tries again and reports it.
        warn_failures([failure], stacklevel=4)
