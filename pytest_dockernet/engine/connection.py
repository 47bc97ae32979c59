"""Connecting to the Docker engine, with one clear sentence when none answers.

The engine is found as the docker CLI finds it: ``DOCKER_HOST``, else the Docker context
named by ``DOCKER_CONTEXT``, else the current context of ``docker context use`` (Docker
Desktop, colima and rootless setups live there), else the local socket.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import docker
import docker.errors
import requests
import urllib3
from docker.utils import parse_host

from ..errors import DockernetError, EngineError, EngineUnavailableError
from .podman import is_podman

T = TypeVar("T")

DEFAULT_ENDPOINT = "unix:///var/run/docker.sock"
DEFAULT_TIMEOUT = 60.0
HOW_TO_GET_ACCESS = (
    "add the user to the docker group ('sudo usermod -aG docker $USER', then log in again),"
    " use rootless Docker, or set DOCKER_HOST to an engine this user may use"
)
HOW_TO_START = (
    "start an engine (for example 'sudo systemctl start docker', or 'sudo dockerd &'),"
    " or set DOCKER_HOST to one that runs"
)


def endpoint() -> str:
    """The endpoint the plugin uses: ``$DOCKER_HOST``, the Docker context's, or the local socket."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    context = _context()
    return context[0] if context else DEFAULT_ENDPOINT


def _context() -> tuple[str, Any] | None:
    """The host and TLS settings of the Docker context in use, unless it is the default one.

    Read once per environment: ``endpoint()`` is asked on every published port and wait,
    and the context lives in files.
    """
    return _context_of(os.environ.get("DOCKER_CONTEXT") or None, os.environ.get("DOCKER_CONFIG"))


@functools.lru_cache(maxsize=8)
def _context_of(name: str | None, config: str | None) -> tuple[str, Any] | None:
    # ``config`` ($DOCKER_CONFIG) is read by docker-py itself; it is here as part of the key.
    try:
        context = docker.ContextAPI.get_context(name)
    except docker.errors.DockerException as exc:
        raise EngineUnavailableError(f"cannot read Docker context {name or '(current)'}: {exc}") from None
    if context is None and name:
        host = _context_host_from_meta(name)
        if host is None:
            raise EngineUnavailableError(
                f"Docker context {name!r} (DOCKER_CONTEXT) does not exist; 'docker context ls' lists them"
            )
        return host, None
    if context is None:
        return None
    if context.Name == "default" or not context.Host:
        return None
    return str(context.Host), context.TLSConfig


def _context_host_from_meta(name: str) -> str | None:
    # docker-py looks for contexts beside config.json and finds none when that file does not
    # exist, though the docker CLI writes contexts without it: read the context's endpoint
    # where the CLI keeps it (contexts with TLS material still need docker-py to find them).
    config = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    meta = config / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest() / "meta.json"
    try:
        host = json.loads(meta.read_text())["Endpoints"]["docker"]["Host"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(host) if host else None


def client(timeout: float = DEFAULT_TIMEOUT, url: str | None = None) -> docker.DockerClient:
    """A client for the engine the plugin uses (see the module's note), or for the engine at
    ``url`` (with the environment's TLS settings); nothing is called yet."""
    if url:
        environment = {**os.environ, "DOCKER_HOST": url}
        made = docker.from_env(timeout=timeout, environment=environment)  # type: ignore[arg-type]
    elif not os.environ.get("DOCKER_HOST") and (context := _context()) is not None:
        host, tls = context
        made = docker.DockerClient(base_url=host, tls=tls, timeout=timeout)  # type: ignore[arg-type]
    else:
        made = docker.from_env(timeout=timeout)  # type: ignore[arg-type]  # requests takes floats
    return without_proxy_lookups(made)


def without_proxy_lookups(client: docker.DockerClient) -> docker.DockerClient:
    """``client``, which no longer reads the environment at every call unless it talks HTTP(S).

    requests looks for proxy settings by iterating ``os.environ`` at every call; pytest sets
    and deletes ``PYTEST_CURRENT_TEST`` at every test phase, so a call from a background
    thread (teardown, prefetching) failed now and then with ``KeyError: 'PYTEST_CURRENT_TEST'``.
    No proxy applies to a unix socket, a named pipe or SSH (docker-py's ``http+docker://``
    base URLs); TCP endpoints keep reading the environment.
    """
    if str(client.api.base_url).startswith("http+docker://"):
        client.api.trust_env = False
    return client


def is_local() -> bool:
    """Whether the engine is reached through a local socket (not TCP or SSH)."""
    return endpoint().startswith(("unix://", "npipe://"))


def engine_host() -> str:
    """Where the engine's published ports are reachable from here."""
    if is_local():
        return "127.0.0.1"
    # docker-py's own reading of DOCKER_HOST forms (tcp://, ssh://, host:port, ...).
    return str(urlsplit(parse_host(endpoint())).hostname or "127.0.0.1")


def connect(timeout: float = DEFAULT_TIMEOUT, url: str | None = None) -> docker.DockerClient:
    """A client from the environment (or for ``url``), checked with a ping; ``timeout``
    bounds every call.

    Raises :class:`EngineUnavailableError` naming the endpoint and how to start an
    engine, instead of the connection library's traceback.
    """
    try:
        engine = client(timeout, url)
        engine.ping()
    except EngineUnavailableError:
        raise
    except Exception as exc:  # noqa: BLE001 - docker, requests and urllib3 errors vary by transport
        reason = readable_reason(exc)
        if reason == "permission denied":
            raise EngineUnavailableError(
                f"the Docker engine's socket {url or endpoint()} may not be opened by this user"
                f" (permission denied); {HOW_TO_GET_ACCESS}"
            ) from None
        raise EngineUnavailableError(
            f"no Docker engine answers at {url or endpoint()} ({reason}); {HOW_TO_START}"
        ) from None
    return engine


def readable_reason(exc: BaseException) -> str:
    """The root cause of a connection failure in a few words.

    urllib3 nests it: ``(('Connection aborted.', FileNotFoundError(2, 'No such file or
    directory')))`` becomes ``connection aborted: no such file or directory``.
    """
    cause: BaseException | None = exc
    innermost = exc
    seen = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        innermost = cause
        if isinstance(cause, OSError) and cause.strerror:
            return _sentence_case(cause.strerror)
        nested = [arg for arg in cause.args if isinstance(arg, BaseException)]
        cause = (
            nested[0] if nested else (getattr(cause, "reason", None) or cause.__cause__ or cause.__context__)
        )
    if innermost is not exc and isinstance(innermost, OSError) and str(innermost):
        # http.client's RemoteDisconnected and friends: an OSError that says it in words.
        return _sentence_case(str(innermost))
    text = str(exc)
    if "Error while fetching server API version" in text:
        text = text.split(": ", 1)[-1]
    return text or type(exc).__name__


def _sentence_case(text: str) -> str:
    return text[0].lower() + text[1:] if text else text


def engine_key(client: docker.DockerClient) -> str:
    """An identity of the engine that does not depend on how it is reached.

    Lock files are per engine: two endpoints of one engine (a socket and TCP) share them.
    Podman answers every ``info`` with a new random ``ID``: its key is its host name and
    storage root instead.
    """
    try:
        info = with_retries("reading the engine's ID", client.api.info)
    except EngineError:
        return str(client.api.base_url)
    with engine_errors("reading the engine's ID"):
        if is_podman(client):
            return f"podman {info.get('Name')} {info.get('DockerRootDir')}"
    return str(info.get("ID") or client.api.base_url)


class engine_errors:
    """Turn what an engine does wrong during ``action`` into one sentence naming ``action``.

    A frozen engine (a time-out) and a lost one (a refused or reset connection, a stream cut
    short) raise :class:`EngineUnavailableError`; an error the engine answers with (an HTTP
    500) that nothing inside the block handled raises :class:`EngineError`. The plugin's own
    errors pass as they are. A class rather than a generator: no ``contextlib`` frame shows.
    """

    def __init__(self, action: str) -> None:
        self.action = action

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> Literal[False]:
        __tracebackhide__ = True
        if exc is None or isinstance(exc, DockernetError):
            return False
        action = self.action
        if isinstance(exc, requests.exceptions.Timeout):
            raise EngineUnavailableError(
                f"the Docker engine at {endpoint()} did not answer in time while {action}"
                f" ({readable_reason(exc)}): it is frozen or overloaded; --dockernet-engine-timeout"
                " sets how long each call may take"
            ) from None
        if isinstance(exc, LOST):
            lost = EngineUnavailableError(
                f"lost the Docker engine at {endpoint()} while {action}: {readable_reason(exc)}"
            )
            lost.transient = True
            raise lost from None
        if isinstance(exc, docker.errors.APIError):
            status = exc.status_code or 0
            failed = EngineError(
                f"the Docker engine at {endpoint()} failed while {action}: {exc.explanation or exc}"
                + (f" (HTTP {status})" if status else "")
            )
            failed.transient = status >= 500
            raise failed from None
        return False


# What a lost connection looks like, whichever layer reports it.
LOST = (
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
    ConnectionError,
)


def with_retries(action: str, call: Callable[[], T], attempts: int = 3) -> T:
    """``call()`` under :class:`engine_errors`, tried again after a passing failure.

    For the calls a session makes before its first test (the engine's identity, the run's
    lease): an HTTP 5xx or a reset connection is tried twice more, 0.2 s and 0.4 s later,
    rather than failing every test of the process; a refusal or a frozen engine is not.
    """
    __tracebackhide__ = True
    for attempt in range(attempts):
        try:
            with engine_errors(action):
                return call()
        except (EngineError, EngineUnavailableError) as exc:
            if attempt == attempts - 1 or not exc.transient:
                raise
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")
