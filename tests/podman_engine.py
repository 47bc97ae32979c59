"""A rootful podman serving the Docker API, of the tests' own: in a network namespace of its
own (its bridges and routes stay there), entered with ``nsenter --net`` (``ip netns exec``
would hide the cgroup v1 mounts from runc), with a ``containers.conf`` whose default
ulimits stay below this machine's hard limits (podman's rootful defaults make runc fail
with "error setting rlimit")."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker

from pytest_dockernet.lease import LABEL_LEASE_OF
from pytest_dockernet.naming import LABEL_RUN

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=10000:10000", "nproc=4096:4096"]
[network]
network_backend = "netavark"
"""


@contextlib.contextmanager
def running_podman() -> Iterator[str]:
    """Start ``podman system service``; yield its ``unix://`` URL; stop it and remove what
    the plugin labelled on it (podman's storage outlives the service)."""
    root = Path(tempfile.mkdtemp(prefix="dnp-", dir="/tmp"))
    netns = root.name
    (root / "containers.conf").write_text(CONTAINERS_CONF)
    url = f"unix://{root}/podman.sock"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    subprocess.run(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"], check=True)
    with open(root / "service.log", "ab") as log:
        service = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{netns}", "podman", "system", "service", "--time=0", url],
            env={**os.environ, "CONTAINERS_CONF": str(root / "containers.conf")},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        client = _wait_for_service(url)
        yield url
        _remove_labelled(client)
    finally:
        service.terminate()
        try:
            service.wait(30)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()
        # aardvark-dns (podman's DNS) outlives the service, and a later podman would signal
        # this one, stuck in a namespace that is gone, rather than start its own.
        pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
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


def _remove_labelled(client: docker.DockerClient) -> None:
    for label in (LABEL_RUN, LABEL_LEASE_OF):
        for container in client.api.containers(all=True, filters={"label": [label]}):
            with contextlib.suppress(docker.errors.APIError):
                client.api.remove_container(container["Id"], force=True)
    for network in client.api.networks(filters={"label": [LABEL_RUN]}):
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_network(network["Id"])
