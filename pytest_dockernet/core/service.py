"""A running container on a plugin network, and the result of running a command in it."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Any

import docker.errors
from docker.utils.socket import frames_iter

from ..engine.addresses import address6_on, address_on
from ..engine.cleanup import CleanupFailure, remove_container
from ..engine.connection import engine_errors, engine_host
from ..errors import ArgumentError, ServiceError, hide_frames_of_own_errors
from .specs import Command

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

    from .network import Network


@dataclass(frozen=True)
class ExecResult:
    """What a command run by :meth:`Service.exec` returned."""

    exit_code: int
    """The command's exit status."""
    output: str
    """Its stdout and stderr together (in the order the engine read them), decoded as UTF-8."""

    @property
    def ok(self) -> bool:
        """Whether the command exited with status 0."""
        return self.exit_code == 0


class Service:
    """A container started by :meth:`Network.run`, attached to that network by alias."""

    def __init__(
        self,
        network: Network,
        container: Container,
        aliases: Sequence[str],
        ip: IPv4Address,
        ip6: IPv6Address | None = None,
        image: str | None = None,
    ) -> None:
        self._image = image
        self.network = network
        """The network that started this service."""
        self.container = container
        """The docker-py ``Container``."""
        self.aliases = list(aliases)
        """The network-scoped DNS aliases this service answers to on :attr:`network`."""
        self.ip = ip
        """Its IPv4 address on :attr:`network` (the last one it had there, once it left)."""
        self.ip6 = ip6
        """Its IPv6 address on :attr:`network`, when that network has IPv6 (else None)."""
        self.static_ip: str | None = None
        """The static address it was started with (``ip=``), which it keeps across partitions."""

    @property
    def name(self) -> str:
        """The container name: ``{network name}-{alias, name or number}``."""
        return str(self.container.name)

    @property
    def id(self) -> str:
        """The container ID."""
        return str(self.container.id)

    @property
    def image(self) -> str:
        """The image reference the service was started from, as given (podman's inspect data
        names it fully, ``docker.io/...``)."""
        return self._image or str(self.container.attrs.get("Config", {}).get("Image", ""))

    @property
    def _api(self) -> docker.APIClient:
        return self.container.client.api  # type: ignore[union-attr]

    def exec(
        self,
        cmd: Command,
        *,
        stdin: str | bytes | None = None,
        environment: dict[str, str] | None = None,
        user: str | None = None,
        workdir: str | None = None,
    ) -> ExecResult:
        """Run ``cmd`` in the container and wait for it to finish.

        ``stdin``, when given, is written to the command's standard input, which is
        then closed (docker attaches stdin only when asked to: without that, input
        would be silently dropped).
        """
        __tracebackhide__ = hide_frames_of_own_errors
        with engine_errors(f"running {cmd!r} in container {self.name}"):
            return self._exec(cmd, stdin, environment, user, workdir)

    def _exec(
        self,
        cmd: Command,
        stdin: str | bytes | None,
        environment: dict[str, str] | None,
        user: str | None,
        workdir: str | None,
    ) -> ExecResult:
        try:
            exec_id: str = self._api.exec_create(
                self.id,
                cmd,
                stdout=True,
                stderr=True,
                stdin=stdin is not None,
                environment=environment,
                user=user or "",
                workdir=workdir,
            )["Id"]
        except docker.errors.APIError as exc:
            raise ServiceError(
                f"cannot run {cmd!r} in container {self.name}: {exc.explanation or exc}"
            ) from None
        data = None if stdin is None else stdin.encode() if isinstance(stdin, str) else bytes(stdin)
        raw = self._exec_output(exec_id, data)
        return ExecResult(self._exit_code(exec_id), raw.decode("utf-8", "replace"))

    def _exec_output(self, exec_id: str, data: bytes | None) -> bytes:
        # docker-py reads an exec's output with no time-out (a command may run silent for
        # long): EngineWatch ends the read if the engine stops answering meanwhile.
        attached = self._api.exec_start(exec_id, socket=True)
        writer = feed_stdin(attached, data) if data is not None else None
        watch = EngineWatch(self._api, attached)
        try:
            with watch:
                output = b"".join(chunk for _, chunk in frames_iter(attached, tty=False))  # type: ignore[no-untyped-call]
        except OSError:
            watch.raise_if_lost()
            raise
        finally:
            if writer is not None:
                writer.join()
            close_attached(attached)
        watch.raise_if_lost()
        return output

    def _exit_code(self, exec_id: str) -> int:
        # The stream ends a moment before the engine records the exit code.
        for _ in range(100):
            info = self._api.exec_inspect(exec_id)
            if not info.get("Running") and info.get("ExitCode") is not None:
                return int(info["ExitCode"])
            time.sleep(0.01)
        return int(info.get("ExitCode") or -1)

    def ip_on(self, network: Network) -> IPv4Address | None:
        """Its IPv4 address on ``network`` (any network it is attached to), or None.

        Read from what the engine said at the last change of attachment (run, connect,
        disconnect, partition, start...): current, without another engine call.
        """
        return address_on(self.container.attrs, network.id, network.name)

    def ip6_on(self, network: Network) -> IPv6Address | None:
        """Its IPv6 address on ``network``, or None (no IPv6 there, or not attached)."""
        return address6_on(self.container.attrs, network.id, network.name)

    def host_port(self, container_port: int, protocol: str = "tcp") -> int:
        """The host port that ``container_port`` is published on (``ports={6379: None}``).

        Raises ``LookupError`` when the port is not published.
        """
        __tracebackhide__ = hide_frames_of_own_errors
        bindings = (self.container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(
            f"{container_port}/{protocol}"
        )
        if not bindings:
            raise ArgumentError(
                f"port {container_port}/{protocol} of {self.name} is not published: pass ports={{{container_port}: None}}"
            )
        ipv4 = [b for b in bindings if ":" not in b.get("HostIp", "")] or bindings
        return int(ipv4[0]["HostPort"])

    def address(self, container_port: int, protocol: str = "tcp") -> tuple[str, int]:
        """``(host, port)`` where the test process reaches published ``container_port``."""
        bindings = (self.container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(
            f"{container_port}/{protocol}"
        ) or [{}]
        host_ip = bindings[0].get("HostIp", "")
        host = engine_host() if host_ip in ("", "0.0.0.0", "::") else host_ip
        return host, self.host_port(container_port, protocol)

    def stop(self, timeout: int = 10) -> None:
        """Stop the container (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        seconds = grace_seconds("stop", timeout)
        self._lifecycle("stopping", lambda: self.container.stop(timeout=seconds))

    def start(self) -> None:
        """Start the stopped container again, with its aliases."""
        self._lifecycle("starting", self.container.start)

    def restart(self, timeout: int = 10) -> None:
        """Stop and start the container (SIGKILL after ``timeout`` seconds of SIGTERM)."""
        seconds = grace_seconds("restart", timeout)
        self._lifecycle("restarting", lambda: self.container.restart(timeout=seconds))

    def pause(self) -> None:
        """Freeze every process of the container: it stays on the network but answers nothing."""
        self._lifecycle("pausing", self.container.pause)

    def unpause(self) -> None:
        """Thaw a paused container."""
        self._lifecycle("unpausing", self.container.unpause)

    def kill(self, signal: str | int = "SIGKILL") -> None:
        """Send ``signal`` to the container's main process."""
        self._lifecycle(f"sending {signal} to", lambda: self.container.kill(signal=signal))

    def _lifecycle(self, action: str, operation: Callable[[], object]) -> None:
        __tracebackhide__ = hide_frames_of_own_errors
        with engine_errors(f"{action} container {self.name}"):
            try:
                operation()
            except docker.errors.APIError as exc:
                raise ServiceError(
                    f"{action} container {self.name} failed: {exc.explanation or exc}"
                ) from None
            attrs = self.reload()
        # A container that starts again may get another address: keep .ip current.
        self.ip = address_on(attrs, self.network.id, self.network.name) or self.ip
        self.ip6 = address6_on(attrs, self.network.id, self.network.name) or self.ip6

    def remove(self) -> CleanupFailure | None:
        """Remove the container now, before its network goes; return what failed, if anything."""
        failure = remove_container(self.container.client, self.id, self.name)  # type: ignore[arg-type]
        self.network.forget(self)
        return failure

    def logs(self, tail: int | None = None) -> str:
        """The container's stdout and stderr so far (the last ``tail`` lines if given)."""
        __tracebackhide__ = hide_frames_of_own_errors
        with engine_errors(f"reading the logs of container {self.name}"):
            return logs_text(self._api, self.id, tail)

    def reload(self) -> dict[str, Any]:
        """Refresh and return the container's inspect data."""
        self.container.reload()
        return self.container.attrs

    def __repr__(self) -> str:
        return f"<Service {self.name} aliases={self.aliases} ip={self.ip}>"


def grace_seconds(action: str, timeout: object) -> int:
    """A stop's grace period as the engine takes it: whole seconds, 0 or more.

    Docker takes -1 as "wait for ever", so a negative one is refused here rather than
    waited on until the engine time-out blames a frozen engine.
    """
    __tracebackhide__ = hide_frames_of_own_errors
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
        raise ArgumentError(f"{action}(timeout=...) takes whole seconds, 0 or more, not {timeout!r}")
    return timeout


class EngineWatch:
    """While a stream without a time-out is read, ping the engine every client time-out.

    A ping that fails (the engine frozen, gone) shuts the stream's socket, so the read
    ends, and :meth:`raise_if_lost` raises the ping's error: a frozen engine fails the call
    after one to two time-outs, as every other call does, while a command that runs silent
    for long on a live engine is never cut short.
    """

    def __init__(self, api: docker.APIClient, attached: Any) -> None:
        self._api = api
        self._sock: Any = getattr(attached, "_sock", attached)
        self._done = threading.Event()
        self._lost: Exception | None = None
        self._thread = threading.Thread(target=self._watch, name="dockernet-engine-watch", daemon=True)

    def __enter__(self) -> EngineWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        interval = float(self._api.timeout or 60)
        while not self._done.wait(interval):
            try:
                self._api.ping()
            except docker.errors.APIError:
                continue  # an error, but an answer: the engine is there
            except Exception as exc:  # noqa: BLE001 - requests' errors, whatever the transport
                if self._done.is_set():
                    return
                self._lost = exc
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
                return

    def raise_if_lost(self) -> None:
        """Raise the error of the ping that found the engine gone, if one did."""
        if self._lost is not None:
            raise self._lost


def feed_stdin(attached: Any, data: bytes) -> threading.Thread:
    """Write ``data`` to an attached stream's stdin, then close it (EOF), from a thread.

    From a thread: a command that answers before reading all its input would otherwise
    fill its output pipe while we block on sending.
    """
    sock: Any = getattr(attached, "_sock", attached)

    def feed() -> None:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the command exited without reading everything

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    return writer


def close_attached(attached: Any) -> None:
    """Close an attached stream and the socket under it.

    docker-py hands out a ``SocketIO`` over the connection's socket: closing the wrapper
    leaves the socket open (a ``ResourceWarning``, an error under ``-W error``).
    """
    sock = getattr(attached, "_sock", None)  # taken first: closing the wrapper forgets it
    attached.close()
    if sock is not None:
        sock.close()


def logs_text(api: docker.APIClient, container_id: str, tail: int | None = None) -> str:
    """A container's logs as text, for messages and reports."""
    raw = api.logs(container_id, stdout=True, stderr=True, tail=tail if tail else "all")
    return bytes(raw).decode("utf-8", "replace")
