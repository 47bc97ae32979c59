"""A second dockerd of the tests' own (and the benchmarks'): in a network namespace of its own
(its bridges and iptables rules stay there), with its own socket and data and exec roots, so
neither starting nor stopping it can disturb the engine everything else runs on."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import psutil


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def stop_reapers_of(url: str) -> None:
    """Kill the reapers of runs on the engine at ``url``, which is gone for good: they would
    go on retrying it for their whole patience (an hour)."""
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if (
                "pytest_dockernet.runs.reaper" in (process.info["cmdline"] or [])
                and process.environ().get("DOCKER_HOST") == url
            ):
                process.kill()


class Engine:
    """A dockerd that the test can stop and start again."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.host = f"unix://{root}/docker.sock"
        self.netns = root.name
        self.process: subprocess.Popen[bytes] | None = None
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(["ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up"], check=True)

    def start(self) -> None:
        log = open(self.root / "dockerd.log", "ab")  # noqa: SIM115 - the daemon keeps it
        self.process = subprocess.Popen(
            [
                "nsenter",  # the network namespace only: dockerd needs the host's cgroup mounts
                f"--net=/run/netns/{self.netns}",
                "dockerd",
                "--host",
                self.host,
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "--pidfile",
                str(self.root / "docker.pid"),
                "--shutdown-timeout",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        _wait_for(self.answers, 60, "the second engine to answer")

    def answers(self) -> bool:
        try:
            docker.DockerClient(base_url=self.host, timeout=5).ping()
        except Exception:  # noqa: BLE001
            return False
        return True

    def freeze(self) -> None:
        """SIGSTOP: the socket still accepts connections, and nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.thaw()
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


@contextmanager
def running_engine() -> Iterator[Engine]:
    """A second engine, started, and torn down (namespace, mounts, files) afterwards."""
    root = Path(tempfile.mkdtemp(prefix="dn-", dir="/tmp"))  # unix socket paths must stay short
    second = Engine(root)
    try:
        second.start()
        yield second
    finally:
        second.stop()
        stop_reapers_of(second.host)
        subprocess.run(["ip", "netns", "del", second.netns], capture_output=True)
        subprocess.run(["umount", "-R", str(root / "exec")], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
