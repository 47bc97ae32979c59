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


def connect(timeout: float = 60.0) -> docker.DockerClient:
    """A client from the environment, checked with a ping.

    Raises :class:`EngineUnavailableError` naming the endpoint and how to start an
    engine, instead of the connection library's traceback.
    """
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except docker.errors.DockerException as exc:
        reason = str(exc).split(": ", 1)[-1] if "Error while fetching server API version" in str(exc) else exc
        raise EngineUnavailableError(
            f"no Docker engine answers at {endpoint()} ({reason}); {HOW_TO_START}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - requests/urllib3 errors vary by transport
        raise EngineUnavailableError(
            f"no Docker engine answers at {endpoint()} ({exc}); {HOW_TO_START}"
        ) from None
    return client


def engine_key(client: docker.DockerClient) -> str:
    """An identity of the engine that does not depend on how it is reached.

    Lock files are per engine: two endpoints of one engine (a socket and TCP) share them.
    """
    try:
        engine_id = client.api.info().get("ID")
    except docker.errors.DockerException:
        engine_id = None
    return str(engine_id or client.api.base_url)


@contextlib.contextmanager
def engine_errors(action: str) -> Iterator[None]:
    """Turn a connection to the engine lost during ``action`` into one sentence.

    A restarted or stopped engine otherwise surfaces as a stack of urllib3 errors.
    """
    try:
        yield
    except requests.exceptions.ConnectionError as exc:
        reason = exc.args[0] if exc.args else exc
        raise EngineUnavailableError(
            f"lost the Docker engine at {endpoint()} while {action}: {reason}"
        ) from None
