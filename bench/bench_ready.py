"""Time-to-ready of a service with each wait strategy, against the time it really needs.

The service prints a line, opens a port and turns healthy about one second after it
starts. For each strategy, pytest-dockernet's ``Network.run(..., wait=...)`` is timed
against plain docker-py starting the same container and polling the same condition as
tightly as it can (no sleep at all). Prints medians and the ratio (aim: within 10%).

The port is also waited for when it is published (``ports={8080: None}``): Docker's proxy
accepts on the host port long before the server listens, so a wait that counts the
proxy's accept returns ~1 s early (ratio well below 1). ``port/published`` probes the
container's address (a local engine on Linux); ``port/proxy`` takes the path of Docker
Desktop and remote engines, through the published port only. docker-py's side polls the
container's address: the moment the server really listens.

    python bench/bench_ready.py [--rounds 5] [--image IMAGE]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time
from collections.abc import Callable
from http import client as http_client

import docker
from docker.models.containers import Container
from plain import plain_network, unique

from pytest_dockernet import NetworkManager, RunIdentity, new_run_id, wait
from pytest_dockernet.core import wait as core_wait
from pytest_dockernet.engine.images import import_busybox

SERVICE = ["sh", "-c", "sleep 1; echo ready; touch /tmp/healthy; exec httpd -f -p 8080 -h /www"]
HEALTHCHECK = {"test": ["CMD", "test", "-e", "/tmp/healthy"], "interval": 50_000_000, "retries": 100}


def ip_of(container: Container) -> str:
    container.reload()
    return str(next(iter(container.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"])


def connects(address: str) -> bool:
    try:
        with socket.create_connection((address, 8080), timeout=1):
            return True
    except OSError:
        return False


def answers(address: str) -> bool:
    connection = http_client.HTTPConnection(address, 8080, timeout=1)
    try:
        connection.request("GET", "/")
        return connection.getresponse().status == 404
    except (OSError, http_client.HTTPException):
        return False
    finally:
        connection.close()


def health(container: Container) -> str:
    container.reload()
    return str(container.attrs["State"].get("Health", {}).get("Status"))


TIGHT: dict[str, Callable[[Container, str], bool]] = {
    "log": lambda c, ip: b"ready" in c.logs(),
    "port": lambda c, ip: connects(ip),
    "http": lambda c, ip: answers(ip),
    "healthy": lambda c, ip: health(c) == "healthy",
    "command": lambda c, ip: c.exec_run(["test", "-e", "/tmp/healthy"]).exit_code == 0,
}
STRATEGIES = {
    "log": lambda: wait.log("ready"),
    "port": lambda: wait.port(8080),
    "port/published": lambda: wait.port(8080),
    "port/proxy": lambda: wait.port(8080),
    "http": lambda: wait.http(8080, status=404),
    "healthy": lambda: wait.healthy(),
    "command": lambda: wait.command(["test", "-e", "/tmp/healthy"]),
}
TIGHT["port/published"] = TIGHT["port/proxy"] = TIGHT["port"]


def ports_of(kind: str) -> dict[str, None] | None:
    return {"8080/tcp": None} if kind.startswith("port/") else None


def plain(client: docker.DockerClient, network_id: str, image: str, kind: str, n: int) -> float:
    start = time.perf_counter()
    container = client.containers.run(
        image,
        SERVICE,
        detach=True,
        name=unique(f"ready-{kind.replace('/', '-')}-{n}"),
        network=network_id,
        healthcheck=HEALTHCHECK,
        ports=ports_of(kind),
    )
    ip = ip_of(container)
    while not TIGHT[kind](container, ip):
        pass
    elapsed = time.perf_counter() - start
    container.remove(force=True)
    return elapsed


def plugin(manager: NetworkManager, image: str, kind: str) -> float:
    network = manager.create_network()
    direct = core_wait.direct_probe_possible
    if kind == "port/proxy":
        core_wait.direct_probe_possible = lambda: False  # as with Docker Desktop or a remote engine
    try:
        start = time.perf_counter()
        network.run(image, SERVICE, healthcheck=HEALTHCHECK, ports=ports_of(kind), wait=STRATEGIES[kind]())
        elapsed = time.perf_counter() - start
    finally:
        core_wait.direct_probe_possible = direct
    manager.release(network)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--image", default=None)
    args = parser.parse_args()
    client = docker.from_env()
    image = args.image or import_busybox(client, "dockernet-test/busybox:1")
    manager = NetworkManager.for_client(client, RunIdentity(run=new_run_id(), worker="bench"))
    network_id = plain_network(client, "ready")
    print(f"time to ready (service needs ~1 s), median of {args.rounds} rounds")
    print(f"  {'strategy':<15} {'docker-py, tight poll':>22} {'pytest-dockernet':>17} {'ratio':>6}")
    try:
        for kind in STRATEGIES:
            tight = [plain(client, network_id, image, kind, n) for n in range(args.rounds)]
            ours = [plugin(manager, image, kind) for _ in range(args.rounds)]
            a, b = statistics.median(tight), statistics.median(ours)
            print(f"  {kind:<15} {a:>20.3f} s {b:>15.3f} s {b / a:>6.2f}")
    finally:
        client.api.remove_network(network_id)
        manager.close()


if __name__ == "__main__":
    main()
