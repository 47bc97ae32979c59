"""The Docker engine stopped and restarted in the middle of a run.

The engine here is a second dockerd of the test's own, in a network namespace of its own
(its bridges and iptables rules stay there) with its own socket and data and exec roots,
so neither starting nor stopping it can disturb the engine the rest of the suite runs on.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from conftest import TEST_IMAGE
from test_reaper import wait_for

from pytest_dockernet.cleanup import find_labelled
from pytest_dockernet.images import import_busybox

pytestmark = pytest.mark.skipif(
    shutil.which("dockerd") is None or os.getuid() != 0,
    reason="needs dockerd and root to run a second engine",
)


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
        wait_for(self.answers, 60, "the second engine to answer", interval=0.2)

    def answers(self) -> bool:
        try:
            docker.DockerClient(base_url=self.host, timeout=5).ping()
        except Exception:  # noqa: BLE001
            return False
        return True

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


@pytest.fixture
def engine() -> Iterator[Engine]:
    root = Path(tempfile.mkdtemp(prefix="dn-", dir="/tmp"))  # unix socket paths must stay short
    second = Engine(root)
    second.start()
    try:
        yield second
    finally:
        second.stop()
        subprocess.run(["ip", "netns", "del", second.netns], capture_output=True)
        subprocess.run(["umount", "-R", str(root / "exec")], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


IN_FLIGHT = f"""
import time

def test_in_flight(docker_network):
    service = docker_network.run({TEST_IMAGE!r}, ["sleep", "300"], alias="busy")
    docker_network.run({TEST_IMAGE!r}, ["sleep", "300"], alias="idle")
    open("ready", "w").write(docker_network.name)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        service.exec(["true"])
        time.sleep(0.05)
"""

# The reaper's part is tested in test_reaper.py; here the leftovers must wait for the sweep.
NO_REAPER = "from pytest_dockernet import reaper\nreaper.ensure_reaper = lambda *args, **kwargs: False\n"


def test_engine_restart_mid_run(pytester, engine, image):
    client = docker.DockerClient(base_url=engine.host)
    import_busybox(client, TEST_IMAGE)
    pytester.makeconftest(NO_REAPER)
    pytester.makepyfile(test_in_flight=IN_FLIGHT)
    env = {**os.environ, "DOCKER_HOST": engine.host, "PYTEST_DOCKERNET_SWEEP": "0"}
    inner = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: (pytester.path / "ready").exists(), 60, "the test to hold its network")
        run = (pytester.path / "ready").read_text().split("-")[1]
        engine.stop()
        output, _ = inner.communicate(timeout=60)  # the run must not hang
    finally:
        inner.kill()
        inner.wait()
    assert "1 failed" in output, output
    assert f"EngineUnavailableError: lost the Docker engine at {engine.host} while running ['true']" in output
    assert "left behind" in output  # teardown could not reach the engine: warned, not raised
    assert "Traceback" not in output

    engine.start()
    containers, networks = find_labelled(client, run)
    assert len(networks) == 1, "the dead run's network is still there"
    pytester.makeconftest("")
    pytester.makepyfile(test_in_flight="def test_next(docker_network):\n    pass\n")
    env["PYTEST_DOCKERNET_SWEEP"] = "1"
    next_run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "1 passed" in next_run.stdout, next_run.stdout
    assert f"swept 3 resources left by 1 dead runs ({run}) before starting" in next_run.stdout
    containers, networks = find_labelled(client)
    assert (containers, networks) == ([], [])
