"""Time to put a network fault in place and to heal it, against plain docker-py doing the same.

A cut between two services is one helper container per end that joins the service's
network namespace and runs ``iptables`` (pytest-dockernet's ``Network.cut``); plain
docker-py's side runs the same helper with ``containers.run(..., remove=True)``. A group
partition of four services is timed both ways: by islands (each group gets a network of
its own, its members move there and back) and by filtering (``partition`` without
``make_network``: rules in each member's namespace; addresses kept). Prints medians.

    python bench/bench_faults.py [--rounds 5] [--fault-image IMAGE]

Without ``--fault-image``, the tests' image is built from this host's iptables and tc.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from imagekit import fault_image  # type: ignore[import-not-found]  # tests/, put on the path above

from pytest_dockernet import NetworkManager, RunIdentity, new_run_id, partition
from pytest_dockernet.core.faults import FAULT_IMAGE_ENV
from pytest_dockernet.engine.images import import_busybox

SLEEP = ["sleep", "300"]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fault-image", default=None)
    args = parser.parse_args()
    client = docker.from_env()
    image = import_busybox(client, "dockernet-test/busybox:1")
    helper = args.fault_image or fault_image(client)
    os.environ[FAULT_IMAGE_ENV] = helper
    manager = NetworkManager.for_client(client, RunIdentity(run=new_run_id(), worker="bench"))
    cut: list[float] = []
    heal: list[float] = []
    plain_apply: list[float] = []
    plain_heal: list[float] = []
    islands: list[float] = []
    filtering: list[float] = []
    try:
        net = manager.create_network()
        a, b, c, d = (net.run(image, SLEEP, alias=name) for name in "abcd")
        script = f"ln -sf /usr/sbin/xtables-nft-multi /tmp/iptables; /tmp/iptables -w 5 {{}} INPUT -s {b.ip}/32 -j DROP"
        for _ in range(args.rounds):
            started = time.perf_counter()
            fault = net.cut(a, b)
            cut.append(time.perf_counter() - started)
            started = time.perf_counter()
            fault.heal()
            heal.append(time.perf_counter() - started)
            for action, times in (("-I", plain_apply), ("-D", plain_heal)):
                started = time.perf_counter()
                client.containers.run(
                    helper,
                    ["sh", "-c", script.format(action)],
                    network_mode=f"container:{a.id}",
                    cap_add=["NET_ADMIN"],
                    remove=True,
                )
                times.append(time.perf_counter() - started)
            started = time.perf_counter()
            with partition(net, [[a, b], [c, d]], manager.create_network) as made:
                pass
            islands.append(time.perf_counter() - started)
            for island in made:
                manager.release(island)
            started = time.perf_counter()
            with partition(net, [[a, b], [c, d]]):
                pass
            filtering.append(time.perf_counter() - started)
        manager.release(net)
    finally:
        manager.close()
    print(f"rounds: {args.rounds}; helper image {helper}")
    print(f"cut a<->b (2 helpers)  apply {median(cut):.3f} s   heal {median(heal):.3f} s")
    print(f"plain docker-py, 1 helper: apply {median(plain_apply):.3f} s   heal {median(plain_heal):.3f} s")
    per_helper = (median(cut) + median(heal)) / 4
    plain_per_helper = (median(plain_apply) + median(plain_heal)) / 2
    print(
        f"per service (a cut's wall time over its two services, whose helpers run side by side):"
        f" plugin {per_helper:.3f} s, plain docker-py's one helper {plain_per_helper:.3f} s,"
        f" ratio {per_helper / plain_per_helper:.2f}"
    )
    print(f"partition of 4 into 2 groups, put and healed: islands {median(islands):.3f} s,"
          f" filtering {median(filtering):.3f} s (ratio {median(filtering) / median(islands):.2f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
