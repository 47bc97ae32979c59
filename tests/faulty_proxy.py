"""A Docker API proxy of the suite's own, on a unix socket, that fails chosen requests on purpose.

It forwards every request to the real engine, except those a :class:`Fault` picks: those
it answers itself with an HTTP 500, resets (the client sees "connection reset by peer"),
or stalls before forwarding. The engine behind it is never touched: this is how the
suite shows what a flaky engine (a CI daemon answering 500s, a proxy dropping connections)
does to the plugin, without faking docker-py.

Requests are parsed one at a time on each keep-alive connection; once a connection is
hijacked (attach, exec start) or sends a chunked body (build, import), the rest of it is
piped as it is.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


def engine_socket() -> str:
    """The unix socket of the engine the suite uses (DOCKER_HOST's, else Docker's own)."""
    host = os.environ.get("DOCKER_HOST", "")
    return host[len("unix://") :] if host.startswith("unix://") else "/var/run/docker.sock"


@dataclass
class Fault:
    """Fail the next ``times`` requests whose ``METHOD path`` matches ``pattern`` (after ``skip`` of them)."""

    pattern: str
    kind: str = "500"
    """``500``, ``reset`` (close the connection with a RST), or ``stall`` (wait ``seconds``, then forward)."""
    times: int = 1
    seconds: float = 0.0
    skip: int = 0
    hits: int = 0

    def matches(self, request_line: str) -> bool:
        if self.hits >= self.times or re.search(self.pattern, request_line) is None:
            return False
        if self.skip > 0:
            self.skip -= 1
            return False
        return True


@dataclass
class FaultyProxy:
    """The proxy: ``url`` for DOCKER_HOST; :meth:`inject` adds faults; :attr:`log` lists what it did."""

    path: Path
    upstream: str = field(default_factory=engine_socket)
    faults: list[Fault] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: socket.socket | None = None
    _stopped: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def inject(
        self, pattern: str, kind: str = "500", times: int = 1, seconds: float = 0.0, skip: int = 0
    ) -> Fault:
        fault = Fault(pattern, kind, times, seconds, skip)
        with self._lock:
            self.faults.append(fault)
        return fault

    def heal(self) -> None:
        with self._lock:
            self.faults.clear()

    def start(self) -> FaultyProxy:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.path))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.close()

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stopped.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _fault_for(self, request_line: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(request_line):
                    fault.hits += 1
                    self.log.append(f"{fault.kind} {request_line}")
                    return fault
        return None

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(self.upstream)
        except OSError:
            client.close()
            return
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
        reader = client.makefile("rb")
        try:
            while True:
                head = _read_head(reader)
                if head is None:
                    return
                request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
                headers = head.decode("latin-1").lower()
                body = b""
                length = re.search(r"\ncontent-length:\s*(\d+)", headers)
                if length:
                    body = reader.read(int(length.group(1)))
                fault = self._fault_for(request_line)
                if fault is not None and fault.kind == "500":
                    message = b'{"message":"injected fault: the engine failed this call"}'
                    client.sendall(
                        b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(message)}\r\nConnection: close\r\n\r\n".encode()
                        + message
                    )
                    return
                if fault is not None and fault.kind == "reset":
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if fault is not None and fault.kind == "stall":
                    time.sleep(fault.seconds)
                upstream.sendall(head + body)
                if (
                    "\nupgrade:" in headers
                    or "transfer-encoding: chunked" in headers
                    or "/attach" in request_line
                ):
                    _pipe_reader(reader, upstream)  # hijacked or streamed: the rest as it is
                    return
                if re.search(r"/exec/[^/]+/start", request_line):
                    _pipe_reader(reader, upstream)
                    return
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                client.close()
            with contextlib.suppress(OSError):
                upstream.close()


def _read_head(reader: object) -> bytes | None:
    lines = []
    while True:
        line = reader.readline()  # type: ignore[attr-defined]
        if not line:
            return None
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def _pipe_reader(reader: object, target: socket.socket) -> None:
    try:
        while True:
            data = reader.read1(65536)  # type: ignore[attr-defined]
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def faulty_proxy(directory: Path) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(directory / "faulty.sock").start()
    try:
        yield proxy
    finally:
        proxy.stop()
