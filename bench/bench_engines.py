"""One run spread over two engines against the same run on one (--dockernet-engine).

The second engine is a dockerd of the benchmark's own in a network namespace of its own
(``tests/second_engine.py``), on the same machine: both engines share its cores, so this
measures what placing workers on engines costs and saves here, not what two machines give.
A session of ``--tests`` units (a new network, three services with aliases started
together, one DNS lookup by exec, teardown) runs under ``-p xdist -n 2``: on one engine,
and with gw0 on the first engine and gw1 on the second. Plain docker-py doing the same
units with concurrent starts and removals, on one engine, split over two threads like the
two workers, is the reference. Prints wall times (median and range) and ratios.

    python bench/bench_engines.py [--rounds 3] [--tests 16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

from pytest_dockernet.engine import connection as engine_module
from pytest_dockernet.engine.images import import_busybox

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from second_engine import running_engine  # type: ignore[import-not-found]  # on the path above

IMAGE = "dockernet-test/busybox:1"

UNITS = f"""
import pytest

ALIASES = ("web", "cache", "db")

@pytest.mark.parametrize("n", range(UNITS_PER_SESSION))
def test_unit(docker_network, n):
    services = docker_network.run_many(
        [{{"image": {IMAGE!r}, "command": ["sleep", "300"], "alias": a}} for a in ALIASES]
    )
    assert services[0].exec(["nslookup", "db"]).ok
"""

PLAIN = f"""
import sys
from concurrent.futures import ThreadPoolExecutor
import docker

sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from plain import plain_network, unique

ALIASES = ("web", "cache", "db")
client = docker.from_env()

def unit(n):
    network_id = plain_network(client, f"e{{n}}")

    def start(alias):
        endpoint = client.api.create_endpoint_config(aliases=[alias])
        return client.containers.run({IMAGE!r}, ["sleep", "300"], detach=True, name=unique(f"e{{n}}-{{alias}}"),
                                     network=network_id, networking_config={{network_id: endpoint}})

    with ThreadPoolExecutor(3) as pool:
        containers = list(pool.map(start, ALIASES))
    assert containers[0].exec_run(["nslookup", "db"]).exit_code == 0
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda c: c.remove(force=True), containers))
    client.api.remove_network(network_id)

def worker(first):
    for n in range(first, int(sys.argv[1]), 2):
        unit(n)

with ThreadPoolExecutor(2) as pool:
    list(pool.map(worker, (0, 1)))
"""


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.monotonic()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{command} failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return time.monotonic() - started


def describe(times: list[float]) -> str:
    return f"{statistics.median(times):6.2f} s  ({min(times):.2f}-{max(times):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tests", type=int, default=16, help="units per session")
    args = parser.parse_args()
    main_url = engine_module.endpoint()
    import_busybox(docker.from_env(), IMAGE)
    with running_engine() as second, tempfile.TemporaryDirectory() as directory:
        import_busybox(docker.DockerClient(base_url=second.host), IMAGE)
        workdir = Path(directory)
        (workdir / "test_units.py").write_text(UNITS.replace("UNITS_PER_SESSION", str(args.tests)))
        (workdir / "plain_units.py").write_text(PLAIN)
        env = {**os.environ, "PYTEST_DOCKERNET_SWEEP": "0"}
        pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "xdist", "-n", "2"]
        variants = {
            "plain docker-py, one engine": [sys.executable, "plain_units.py", str(args.tests)],
            "plugin, one engine": [*pytest, "test_units.py"],
            "plugin, two engines": [
                *pytest,
                "test_units.py",
                "--dockernet-engine",
                main_url,
                "--dockernet-engine",
                second.host,
            ],
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for round_no in range(args.rounds):
            order = list(variants) if round_no % 2 == 0 else list(reversed(variants))
            for name in order:
                times[name].append(timed(variants[name], workdir, env))
    plain = statistics.median(times["plain docker-py, one engine"])
    one = statistics.median(times["plugin, one engine"])
    print(
        f"\n{args.tests} units under -n 2 (two threads for plain docker-py), wall time, median (range) of {args.rounds} rounds"
    )
    print(f"  {'variant':<30} {'wall time':>24}  {'÷ plain':>8}  {'÷ one engine':>12}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<30} {describe(values):>24}  {median / plain:8.2f}  {median / one:12.2f}")


if __name__ == "__main__":
    main()
