"""A rootful podman serving the Docker API, of the tests' own, sharing nothing with the host's:

- in a network namespace of its own (its bridges and routes stay there), entered with
  ``nsenter --net`` (``ip netns exec`` would hide the cgroup v1 mounts from runc);
- in a mount namespace of its own with a tmpfs on ``/run/containers``: rootful netavark
  keeps its IPAM database and aardvark-dns's configuration there whatever podman's
  ``--runroot`` says, and an aardvark-dns configuration left by an earlier podman that
  died (its containers never torn down) answers NXDOMAIN for a new network on the same
  gateway address;
- with storage, run root, tmp dir and network configs under a directory of its own;
- with a ``containers.conf`` whose default ulimits stay below this machine's hard limits
  (podman's rootful defaults make runc fail with "error setting rlimit").

``python tests/podman_engine.py COMMAND...`` runs COMMAND with ``DOCKER_HOST`` on such a
podman, the test image loaded (``.ci/run``'s podman job)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
from second_engine import stop_reapers_of

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=10000:10000", "nproc=4096:4096"]
[network]
network_backend = "netavark"
network_config_dir = "{root}/networks"
"""

# Run in the service's own mount namespace: /run/containers becomes a tmpfs of its own, and
# /etc/resolv.conf names only loopback, so aardvark-dns forwards no name it does not know to
# the host's resolvers (the netns has no route out either).
PRIVATE_RUN = (
    "mkdir -p /run/containers && mount -t tmpfs podman-test /run/containers"
    ' && mount --bind "$0/resolv.conf" /etc/resolv.conf && exec "$@"'
)


# Set for the command main() runs: the suite's tests of what only Docker does skip (conftest.py).
ENGINE_KIND_ENV = "DOCKERNET_TEST_ENGINE"


@dataclasses.dataclass(frozen=True)
class Podman:
    """A running podman service: its ``unix://`` URL, and its network namespace, where the
    addresses of its containers and its published ports are reached."""

    url: str
    netns: str

    def enter(self) -> list[str]:
        """The command prefix that runs a command in the service's network namespace."""
        return ["nsenter", f"--net=/run/netns/{self.netns}"]


@contextlib.contextmanager
def running_podman() -> Iterator[Podman]:
    """Start ``podman system service``; yield it; remove its containers (their processes
    live in namespaces of their own), stop it, and delete its storage."""
    root = Path(tempfile.mkdtemp(prefix="dnp-", dir="/tmp"))
    netns = root.name
    (root / "containers.conf").write_text(CONTAINERS_CONF.format(root=root))
    (root / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    podman = ["podman", "--root", f"{root}/storage", "--runroot", f"{root}/run", "--tmpdir", f"{root}/tmp"]
    service = Podman(f"unix://{root}/podman.sock", root.name)
    enter = [*service.enter(), "unshare", "--mount", "--propagation", "private"]
    subprocess.run(["ip", "netns", "add", netns], check=True)
    subprocess.run(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"], check=True)
    with open(root / "service.log", "ab") as log:
        process = subprocess.Popen(
            [
                *enter,
                "sh",
                "-c",
                PRIVATE_RUN,
                str(root),
                *podman,
                "system",
                "service",
                "--time=0",
                service.url,
            ],
            env={**os.environ, "CONTAINERS_CONF": str(root / "containers.conf")},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        client = _wait_for_service(service.url)
        yield service
        _remove_containers(client)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # aardvark-dns (podman's DNS) outlives the service, and a later podman would signal
        # this one, stuck in a namespace that is gone, rather than start its own.
        pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        stop_reapers_of(service.url)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        subprocess.run(["rm", "-rf", str(root)], capture_output=True)


def _wait_for_service(url: str) -> docker.DockerClient:
    deadline = time.monotonic() + 60
    while True:
        try:
            client = docker.DockerClient(base_url=url, timeout=10)
            client.ping()
            return client
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _remove_containers(client: docker.DockerClient) -> None:
    for container in client.api.containers(all=True):
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_container(container["Id"], force=True)


def main(command: list[str]) -> int:
    """Run ``command`` in a podman's network namespace with ``DOCKER_HOST`` on it, the test
    image loaded: as on a machine where podman is the engine."""
    from conftest import TEST_IMAGE

    from pytest_dockernet.engine.images import import_busybox

    with running_podman() as podman:
        import_busybox(docker.DockerClient(base_url=podman.url), TEST_IMAGE)
        env = {**os.environ, "DOCKER_HOST": podman.url, ENGINE_KIND_ENV: "podman"}
        return subprocess.run([*podman.enter(), *command], env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
