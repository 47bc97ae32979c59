"""Connecting to the Docker engine, with one clear sentence when none answers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import docker
import docker.errors
import requests

from .errors import EngineUnavailableError

DEFAULT_ENDPOINT = "unix:///var/run/docker.sock"
DEFAULT_TIMEOUT = 60.0
HOW_TO_START = (
    "start an engine (for example 'sudo systemctl start docker', or 'sudo dockerd &'),"
    " or set DOCKER_HOST to one that runs"
)


def endpoint() -> str:
    """The endpoint ``docker.from_env()`` will try: ``$DOCKER_HOST`` or the local socket."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_ENDPOINT


def is_local() -> bool:
    """Whether the engine is reached through a local socket (not TCP or SSH)."""
    return endpoint().startswith(("unix://", "npipe://"))


def engine_host() -> str:
    """Where the engine's published ports are reachable from here."""
    if is_local():
        return "127.0.0.1"
    return urlsplit(endpoint().replace("tcp://", "http://", 1)).hostname or "127.0.0.1"


def connect(timeout: float = DEFAULT_TIMEOUT) -> docker.DockerClient:
    """A client from the environment, checked with a ping; ``timeout`` bounds every call.

    Raises :class:`EngineUnavailableError` naming the endpoint and how to start an
    engine, instead of the connection library's traceback.
    """
    try:
        client = docker.from_env(timeout=timeout)  # type: ignore[arg-type]  # requests takes floats
        client.ping()
    except Exception as exc:  # noqa: BLE001 - docker, requests and urllib3 errors vary by transport
        raise EngineUnavailableError(
            f"no Docker engine answers at {endpoint()} ({readable_reason(exc)}); {HOW_TO_START}"
        ) from None
    return client


def readable_reason(exc: BaseException) -> str:
    """The root cause of a connection failure in a few words.

    urllib3 nests it: ``(('Connection aborted.', FileNotFoundError(2, 'No such file or
    directory')))`` becomes ``connection aborted: no such file or directory``.
    """
    cause: BaseException | None = exc
    seen = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror[0].lower() + cause.strerror[1:]
        nested = [arg for arg in cause.args if isinstance(arg, BaseException)]
        cause = (
            nested[0] if nested else (getattr(cause, "reason", None) or cause.__cause__ or cause.__context__)
        )
    text = str(exc)
    if "Error while fetching server API version" in text:
        text = text.split(": ", 1)[-1]
    return text or type(exc).__name__


def engine_key(client: docker.DockerClient) -> str:
    """An identity of the engine that does not depend on how it is reached.

    Lock files are per engine: two endpoints of one engine (a socket and TCP) share them.
    """
    with engine_errors("reading the engine's ID"):
        try:
            engine_id = client.api.info().get("ID")
        except docker.errors.APIError:
            engine_id = None
    return str(engine_id or client.api.base_url)


@contextlib.contextmanager
def engine_errors(action: str) -> Iterator[None]:
    """Turn an engine lost or frozen during ``action`` into one sentence.

    A restarted, stopped or frozen engine otherwise surfaces as a stack of urllib3 errors.
    """
    try:
        yield
    except requests.exceptions.Timeout as exc:
        raise EngineUnavailableError(
            f"the Docker engine at {endpoint()} did not answer in time while {action}"
            f" ({readable_reason(exc)}): it is frozen or overloaded; --dockernet-engine-timeout"
            " sets how long each call may take"
        ) from None
    except requests.exceptions.ConnectionError as exc:
        raise EngineUnavailableError(
            f"lost the Docker engine at {endpoint()} while {action}: {readable_reason(exc)}"
        ) from None
