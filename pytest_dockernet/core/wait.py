"""Readiness: return from ``Network.run`` only when the service is ready.

Each strategy polls with a back-off (from ``interval`` up to ``max_interval``) until it
succeeds or its ``timeout`` passes. The container's state is checked on every poll, so a
container that exits while being waited for fails at once with its exit code and logs.
The log, port, http and healthcheck waits need no ``exec`` (it fails on some CI engines);
only :func:`command` runs one.

Where the port and http probes connect from: the test process.

- ``port`` must not be fooled by Docker's port publishing: the proxy behind a published
  host port accepts connections even while nothing listens in the container. So with a
  local engine on Linux it connects straight to the container's address, where only a
  real listener accepts. Where that address cannot be reached from here (Docker Desktop,
  a remote ``DOCKER_HOST``, tests running in a container of their own), it connects to the
  published port and counts it as listening only when the connection is held open or
  the server speaks: the proxy closes a connection at once when nothing listens behind it.
- ``http`` needs an HTTP answer, which no proxy gives on its own: it uses the published
  port when there is one, else the container's address.

With Docker Desktop or a remote engine, publish the port you wait on.
"""

from __future__ import annotations

import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from http import client as http_client
from typing import TYPE_CHECKING

import docker.errors

from ..engine.connection import is_local
from ..engine.podman import is_podman, run_healthcheck
from ..errors import (
    ArgumentError,
    DockernetError,
    ServiceNotReadyError,
    ServiceStartError,
    hide_frames_of_own_errors,
)
from .together import Cancelled

if TYPE_CHECKING:
    from .service import Service

DEFAULT_TIMEOUT = 30.0
DEFAULT_INTERVAL = 0.02
DEFAULT_MAX_INTERVAL = 0.1
LOG_LINES = 20
# How long a connection through a published port must stay open, silent, to show a real
# listener: Docker's proxy closes one within milliseconds when nothing listens behind it.
PROXY_GRACE_SECONDS = 0.3
# How often a wait for a HEALTHCHECK runs the check itself on podman (see healthy()).
PODMAN_HEALTHCHECK_EVERY = 0.5


@dataclass(frozen=True, eq=False)
class Strategy:
    """A readiness condition: ``check`` returns True once it holds.

    Two strategies are equal when they wait for the same thing in the same way: the
    built-in ones compare by what they were given (``wait.port(6379) == wait.port(6379)``),
    a strategy of your own by its ``check`` function.
    """

    description: str
    check: Callable[[Service], bool]
    timeout: float = DEFAULT_TIMEOUT
    interval: float = DEFAULT_INTERVAL
    max_interval: float = DEFAULT_MAX_INTERVAL
    parts: tuple[Strategy, ...] = ()
    key: Hashable = None
    """What the check is, for comparisons (None: the check function itself)."""

    def __post_init__(self) -> None:
        __tracebackhide__ = hide_frames_of_own_errors
        for name in ("timeout", "interval", "max_interval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ArgumentError(f"wait {self.description}: {name} must be more than 0, not {value!r}")
        object.__setattr__(self, "parts", tuple(self.parts))

    @property
    def identity(self) -> tuple[Hashable, ...]:
        """What equality and hashing compare."""
        check: Hashable = self.check if self.key is None else self.key
        return (check, self.timeout, self.interval, self.max_interval, self.parts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Strategy) and self.identity == other.identity

    def __hash__(self) -> int:
        return hash(self.identity)


def _strategy(
    description: str, check: Callable[[Service], bool], timeout: float, interval: float, key: Hashable
) -> Strategy:
    return Strategy(description, check, timeout=timeout, interval=interval, key=key)


def log(
    pattern: str | re.Pattern[str], *, timeout: float = DEFAULT_TIMEOUT, interval: float = DEFAULT_INTERVAL
) -> Strategy:
    """Ready when a line of the container's output matches ``pattern`` (a regex)."""
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    return _strategy(
        f"a log line matching {regex.pattern!r}",
        lambda service: any(regex.search(line) for line in service.logs().splitlines()),
        timeout,
        interval,
        ("log", regex.pattern, regex.flags),
    )


def _probe_address(service: Service, port: int) -> tuple[str, int]:
    try:
        return service.address(port)
    except LookupError:
        return str(service.ip), port


def port(
    container_port: int, *, timeout: float = DEFAULT_TIMEOUT, interval: float = DEFAULT_INTERVAL
) -> Strategy:
    """Ready when a process in the container listens on TCP ``container_port``.

    Published or not; a published port's proxy alone does not count (see the module's note).
    """
    direct = {"reachable": direct_probe_possible()}

    def listens(service: Service) -> bool:
        if direct["reachable"]:
            verdict = connects(str(service.ip), container_port)
            if verdict is not None:
                return verdict
        try:
            host, host_port = service.address(container_port)
        except LookupError:
            # Nothing published: the direct probe is the only way, and a connection that
            # timed out under load (seen in CI) is no proof that there is no route.
            return False
        direct["reachable"] = False  # no route to the container from here: use the proxy
        return held_open(host, host_port)

    return _strategy(
        f"a process to listen on TCP port {container_port}",
        listens,
        timeout,
        interval,
        ("port", container_port),
    )


def direct_probe_possible() -> bool:
    """Whether container addresses may be reachable from here: a local engine on Linux."""
    return is_local() and sys.platform.startswith("linux")


def connects(host: str, port: int) -> bool | None:
    """True when ``host:port`` accepts, False when it refuses, None when it cannot be reached."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except ConnectionRefusedError:
        return False
    except OSError:
        return None


def held_open(host: str, port: int) -> bool:
    """Whether a connection to a published port reaches a real listener behind the proxy."""
    try:
        with socket.create_connection((host, port), timeout=1) as connection:
            connection.settimeout(PROXY_GRACE_SECONDS)
            try:
                return bool(connection.recv(1))  # the server spoke first; b"": closed on us
            except TimeoutError:
                return True  # held open, silent: a listener waiting for the client to speak
    except OSError:
        return False


def http(
    container_port: int,
    path: str = "/",
    *,
    status: int | Iterable[int] = 200,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = DEFAULT_INTERVAL,
) -> Strategy:
    """Ready when ``GET path`` on ``container_port`` answers with ``status`` (one or several)."""
    wanted = {status} if isinstance(status, int) else set(status)

    def answers(service: Service) -> bool:
        host, host_port = _probe_address(service, container_port)
        connection = http_client.HTTPConnection(host, host_port, timeout=2)
        try:
            connection.request("GET", path)
            return connection.getresponse().status in wanted
        except (OSError, http_client.HTTPException):
            return False
        finally:
            connection.close()

    return _strategy(
        f"GET {path} on port {container_port} to answer {sorted(wanted)}",
        answers,
        timeout,
        interval,
        ("http", container_port, path, tuple(sorted(wanted))),
    )


def healthy(*, timeout: float = DEFAULT_TIMEOUT, interval: float = DEFAULT_INTERVAL) -> Strategy:
    """Ready when the container's Docker HEALTHCHECK reports ``healthy``.

    On podman, which runs healthchecks only where systemd does, the wait runs the check
    itself through podman's API, at most every :data:`PODMAN_HEALTHCHECK_EVERY` seconds."""
    last_run: dict[str, float] = {}

    def is_healthy(service: Service) -> bool:
        attrs = service.container.attrs
        health = attrs.get("State", {}).get("Health")
        # podman gives every container a Health, with an empty status where none is set.
        if health is None or (
            not health.get("Status") and not (attrs.get("Config") or {}).get("Healthcheck")
        ):
            raise ServiceNotReadyError(
                f"service {service.name} has no HEALTHCHECK to wait for: give the image one,"
                " or pass healthcheck={...} to run(), or wait on something else",
            )
        if health.get("Status") == "healthy":
            return True
        client = service.container.client
        now = time.monotonic()
        if (
            client is not None
            and is_podman(client)
            and now - last_run.get(service.id, -1e9) >= PODMAN_HEALTHCHECK_EVERY
        ):
            last_run[service.id] = now
            run_healthcheck(client, service.id, timeout)
            return bool(service.reload().get("State", {}).get("Health", {}).get("Status") == "healthy")
        return False

    return _strategy("the HEALTHCHECK to report healthy", is_healthy, timeout, interval, ("healthy",))


def command(
    cmd: str | Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, interval: float = DEFAULT_INTERVAL
) -> Strategy:
    """Ready when ``cmd`` run in the container exits with status 0 (needs ``exec``)."""
    key = ("command", cmd if isinstance(cmd, str) else tuple(cmd))
    return _strategy(f"{cmd!r} to succeed", lambda service: service.exec(cmd).ok, timeout, interval, key)


def all_of(*strategies: Strategy) -> Strategy:
    """Ready when every one of ``strategies`` is, each within its own timeout."""
    __tracebackhide__ = hide_frames_of_own_errors
    if not strategies:
        raise ArgumentError("all_of() needs at least one strategy")
    for strategy in strategies:
        if not isinstance(strategy, Strategy):
            raise ArgumentError(f"all_of() takes strategies of pytest_dockernet.wait, not {strategy!r}")
    return Strategy(
        " and ".join(s.description for s in strategies), _always, parts=strategies, key=("all_of",)
    )


def _always(service: Service) -> bool:
    return True


WaitArgument = Strategy | Sequence[Strategy] | None


def until_ready(service: Service, wait: WaitArgument, cancel: threading.Event | None = None) -> None:
    """Block until ``service`` satisfies ``wait`` (a strategy or a list of them, all needed).

    With ``cancel``, the wait stops with :class:`~pytest_dockernet.core.together.Cancelled`
    once the event is set (a grouped start whose test was interrupted).
    """
    __tracebackhide__ = hide_frames_of_own_errors
    if wait is None:
        return
    strategies = [wait] if isinstance(wait, Strategy) else list(wait)
    for strategy in strategies:
        for part in strategy.parts or [strategy]:
            _poll(service, part, cancel or threading.Event())


def _poll(service: Service, strategy: Strategy, cancel: threading.Event) -> None:
    __tracebackhide__ = hide_frames_of_own_errors
    started = time.monotonic()
    delay = strategy.interval
    while True:
        if cancel.is_set():
            raise Cancelled(f"the wait of {service.name} for {strategy.description} was cancelled")
        state = _state(service)
        if not state.get("Running"):
            raise ServiceStartError(
                f"service {service.name} (image {service.image!r}) exited with status {state.get('ExitCode')}"
                f" while waiting for {strategy.description}; its last log lines:\n{_tail(service)}"
            )
        if strategy.check(service):
            return
        waited = time.monotonic() - started
        if waited >= strategy.timeout:
            raise ServiceNotReadyError(
                f"service {service.name} (image {service.image!r}) was not ready after {waited:.1f} s"
                f" waiting for {strategy.description}{_what_listens(service, strategy)};"
                f" its last log lines:\n{_tail(service)}",
                service.name,
            )
        pause(cancel, min(delay, max(0.0, strategy.timeout - waited)))
        delay = min(delay * 1.5, strategy.max_interval)


def pause(cancel: threading.Event, seconds: float) -> None:
    """Wait ``seconds``, or less once ``cancel`` is set.

    On the main thread it sleeps instead: that is where signals interrupt (pytest-timeout's,
    Ctrl-C), and an exception a signal handler raises inside ``Event.wait`` can leave its
    lock released and surface as ``RuntimeError: release unlocked lock`` (seen in CI) in
    place of the interruption. ``cancel`` is set by other threads for waits on theirs.
    """
    if threading.current_thread() is threading.main_thread():
        time.sleep(seconds)
    else:
        cancel.wait(seconds)


# Docker's embedded DNS listens in every container's namespace, on 127.0.0.11 (as in /proc).
EMBEDDED_DNS = "0B00007F:"


def _what_listens(service: Service, strategy: Strategy) -> str:
    # For a wait on a port: the ports it does listen on, and those its image EXPOSEs, as far
    # as they can be read (/proc/net/tcp through exec; the image's config).
    if not (isinstance(strategy.key, tuple) and strategy.key[:1] == ("port",)):
        return ""
    facts = []
    tables = ""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            read = service.exec(["cat", table])
        except (DockernetError, docker.errors.DockerException):
            continue
        tables += read.output if read.ok else ""
    listening = sorted(
        {
            int(fields[1].rsplit(":", 1)[1], 16)
            for fields in (line.split() for line in tables.splitlines())
            if len(fields) > 3
            and fields[3] == "0A"
            and ":" in fields[1]
            and not fields[1].startswith(EMBEDDED_DNS)
        }
    )
    if tables:
        facts.append(
            f"it listens on TCP {', '.join(map(str, listening))}"
            if listening
            else "it listens on no TCP port"
        )
    try:
        exposed = sorted((service.reload().get("Config") or {}).get("ExposedPorts") or {})
    except (DockernetError, docker.errors.DockerException):
        exposed = []
    if exposed:
        facts.append(f"its image EXPOSEs {', '.join(exposed)}")
    return f" ({'; '.join(facts)})" if facts else ""


def _state(service: Service) -> dict[str, object]:
    try:
        state: dict[str, object] = service.reload().get("State", {})
    except docker.errors.NotFound:
        return {"Running": False, "ExitCode": "unknown (the container is gone)"}
    return state


def _tail(service: Service) -> str:
    try:
        return service.logs(tail=LOG_LINES).rstrip() or "(no output)"
    except DockernetError as exc:
        return f"(logs unavailable: {exc})"
    except docker.errors.DockerException as exc:
        return f"(logs unavailable: {exc})"
