"""Network + 3 aliased services + one DNS lookup + teardown: pytest-dockernet vs plain docker-py.

Both do the same work in the same run, alternating, on the engine DOCKER_HOST points at.
Prints the median of each and the ratio (plugin / docker-py; below 1.0 is faster).

    python bench/bench_core.py [--rounds 7] [--image IMAGE]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import docker
from plain import plain_network, unique

from pytest_dockernet import NetworkManager, RunIdentity, new_run_id
from pytest_dockernet.images import import_busybox

ALIASES = ("web", "cache", "db")
IDLE = ["sleep", "300"]


def plain_docker_py(client: docker.DockerClient, image: str, round_no: int) -> float:
    """What a careful user writes by hand: explicit subnet, aliases, one lookup, removal."""
    start = time.perf_counter()
    network_id = plain_network(client, f"core-{round_no}")
    containers = []
    for alias in ALIASES:
        endpoint = client.api.create_endpoint_config(aliases=[alias])
        containers.append(
            client.containers.run(
                image,
                IDLE,
                detach=True,
                name=unique(f"core-{round_no}-{alias}"),
                network=network_id,
                networking_config={network_id: endpoint},
            )
        )
    exit_code, _ = containers[0].exec_run(["nslookup", "db"])
    assert exit_code == 0
    for container in containers:
        container.remove(force=True)
    client.api.remove_network(network_id)
    return time.perf_counter() - start


def with_plugin(manager: NetworkManager, image: str, concurrent: bool) -> float:
    start = time.perf_counter()
    network = manager.create_network()
    if concurrent:
        services = network.run_many([{"image": image, "command": IDLE, "alias": alias} for alias in ALIASES])
    else:
        services = [network.run(image, IDLE, alias=alias) for alias in ALIASES]
    assert services[0].exec(["nslookup", "db"]).exit_code == 0
    assert manager.release(network) == []  # removes the containers in parallel
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--image", default=None, help="image with sleep and nslookup (default: local busybox)"
    )
    args = parser.parse_args()
    client = docker.from_env()
    image = args.image or import_busybox(client, "dockernet-test/busybox:1")
    manager = NetworkManager.for_client(client, RunIdentity(run=new_run_id(), worker="bench"))
    steps: dict[str, Callable[[int], float]] = {
        "plain docker-py, sequential": lambda n: plain_docker_py(client, image, n),
        "pytest-dockernet, Network.run": lambda n: with_plugin(manager, image, concurrent=False),
        "pytest-dockernet, Network.run_many": lambda n: with_plugin(manager, image, concurrent=True),
    }
    runs: dict[str, list[float]] = {name: [] for name in steps}
    plain_docker_py(client, image, -1)  # warm-up: the first start on a cold engine is slower
    for round_no in range(args.rounds):
        order = list(steps) if round_no % 2 == 0 else list(reversed(steps))
        for name in order:
            runs[name].append(steps[name](round_no))
    medians = {name: statistics.median(times) for name, times in runs.items()}
    baseline = medians["plain docker-py, sequential"]
    print(
        f"network + {len(ALIASES)} aliased services + 1 DNS lookup + teardown; median of {args.rounds} rounds"
    )
    for name, median in medians.items():
        print(f"  {name:<36} {median:6.3f} s   ratio {median / baseline:.2f}")


if __name__ == "__main__":
    main()
