"""How long after a SIGKILL of a pytest run are its networks and containers gone?

Starts ``pytest -p xdist -n 2`` on a suite whose two tests each hold a network and a
service, kills the controller with SIGKILL once both hold them, and times until the
engine has nothing left with that run's label. Prints the median of several rounds,
beside plain docker-py's figure for the same removals done directly (the floor), and
testcontainers' documented Ryuk delay (about 10 s).

    python bench/bench_reaper.py [--rounds 5] [--image IMAGE]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

from pytest_dockernet.engine.images import import_busybox
from pytest_dockernet.engine.processes import ProcessRef
from pytest_dockernet.runs.sweeper import remove_run

SUITE = """
import os, time
import pytest

@pytest.mark.parametrize("n", range(2))
def test_hold(docker_network, n):
    docker_network.run({image!r}, ["sleep", "300"], alias="held")
    with open(f"ready-{{n}}-{{os.getpid()}}", "w") as out:
        out.write(docker_network.name)
    time.sleep(120)
"""


def labelled(client: docker.DockerClient, run: str) -> int:
    filters = {"label": f"pytest-dockernet.run={run}"}
    return len(client.api.containers(all=True, filters=filters)) + len(client.api.networks(filters=filters))


def hold(
    client: docker.DockerClient, image: str, workdir: Path
) -> tuple[subprocess.Popen[bytes], str, set[int]]:
    for ready in workdir.glob("ready-*"):
        ready.unlink()
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "xdist", "-n", "2", "-p", "no:cacheprovider"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while len(list(workdir.glob("ready-*"))) < 2:
        if time.monotonic() > deadline:
            raise SystemExit("the suite did not start")
        time.sleep(0.05)
    files = list(workdir.glob("ready-*"))
    return process, files[0].read_text().split("-")[1], {int(f.name.split("-")[2]) for f in files}


def one_round(client: docker.DockerClient, image: str, workdir: Path, by_hand: bool) -> float:
    process, run, workers = hold(client, image, workdir)
    process.send_signal(signal.SIGKILL)
    process.wait()
    start = time.perf_counter()
    if by_hand:
        remove_run(client, run)  # the floor: the same removals, started at once
    while labelled(client, run):
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    for pid in workers:
        if ProcessRef(pid).alive():
            os.kill(pid, signal.SIGKILL)
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
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        (workdir / "test_hold.py").write_text(SUITE.format(image=image))
        reaper = [one_round(client, image, workdir, by_hand=False) for _ in range(args.rounds)]
        floor = [one_round(client, image, workdir, by_hand=True) for _ in range(args.rounds)]
    print(f"SIGKILL of a -n 2 run holding 2 networks + 2 containers; median of {args.rounds} rounds")
    print(
        f"  until the last resource is gone, by the reaper:         {statistics.median(reaper):6.2f} s"
        f"  (max {max(reaper):.2f} s)"
    )
    print(f"  the same removals by plain docker-py, started at once:  {statistics.median(floor):6.2f} s")
    print(
        f"  ratio reaper / docker-py:                               {statistics.median(reaper) / statistics.median(floor):6.2f}"
    )
    print("  testcontainers' Ryuk (documented):                     ~10 s after the process dies")


if __name__ == "__main__":
    main()
