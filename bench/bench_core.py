"""The unit of test work, timed inside real pytest sessions: pytest-dockernet against plain docker-py.

The unit: a new network, three services with aliases, one DNS lookup, teardown. Eight
variants, each a test file of ``--tests`` such tests:

- ``plain``: plain docker-py, one call after another, as a careful user writes it
  (an explicit free subnet, aliases, ``exec_run``, removals);
- ``floor``: plain docker-py with concurrent starts and removals: the floor to beat;
- ``floor_bg``: ``floor`` with the removals handed to a background thread;
- ``floor_job``: ``floor_bg`` with the lookup as a container of its own, run to completion
  and removed (what ``run_job`` does): the least engine work of the ``fixtures`` style;
- ``run``: ``docker_network.run`` one service after another;
- ``run_many``: ``docker_network.run_many``;
- ``fixtures``: three function-scoped ``service_fixture``s the test requests, and the
  lookup as ``docker_network.run_job`` — the way most users write it;
- ``fixtures_np``: ``fixtures`` with ``--dockernet-no-prefetch``, to show what prefetching does.

Each variant runs as its own pytest session, serially and under ``-p xdist -n 2``, the
variants interleaved within each round. A session's time is from its first test's setup
to its end (after the plugin's background teardown has drained), divided by the number of
tests. Prints the median and range per variant, and ratios against ``plain`` and ``floor``.

    python bench/bench_core.py [--rounds 3] [--tests 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import docker

from pytest_dockernet.engine.images import import_busybox

IMAGE = "dockernet-test/busybox:1"
VARIANTS = ("plain", "floor", "floor_bg", "floor_job", "run", "run_many", "fixtures", "fixtures_np")
# Variants that are another's test file with other options.
SAME_AS = {"fixtures_np": ("fixtures", ["--dockernet-no-prefetch"])}

CONFTEST = """
import json, os, time
import pytest

STARTED = []

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if not STARTED:
        STARTED.append(time.time())

@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    if STARTED:
        name = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(os.path.join(os.environ["BENCH_OUT"], f"{name}.json"), "w") as out:
            json.dump({"start": STARTED[0], "end": time.time()}, out)
"""

COMMON = f"""
import sys
from concurrent.futures import ThreadPoolExecutor
import pytest
from pytest_dockernet import service_fixture

sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from plain import plain_network, unique

IMAGE = {IMAGE!r}
IDLE = ["sleep", "300"]
ALIASES = ("web", "cache", "db")
TESTS = range(int(__import__("os").environ["BENCH_TESTS"]))
"""

# Plain docker-py with concurrent starts and removals; the removals may go to a background
# thread (``teardown``), drained before the session ends.
BACKGROUND = """
@pytest.fixture(scope="session")
def teardown():
    pool = ThreadPoolExecutor(2)
    yield pool
    pool.shutdown(wait=True)

def start_three(docker_client, n):
    network_id = plain_network(docker_client, f"u{n}")

    def start(alias):
        endpoint = docker_client.api.create_endpoint_config(aliases=[alias])
        return docker_client.containers.run(
            IMAGE, IDLE, detach=True, name=unique(f"u{n}-{alias}"), network=network_id,
            networking_config={network_id: endpoint})

    with ThreadPoolExecutor(3) as pool:
        return network_id, list(pool.map(start, ALIASES))

def remove_all(docker_client, network_id, containers):
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda c: c.remove(force=True), containers))
    docker_client.api.remove_network(network_id)
"""

BODIES = {
    "plain": """
@pytest.mark.parametrize("n", TESTS)
def test_unit(docker_client, n):
    network_id = plain_network(docker_client, f"u{n}")
    containers = []
    for alias in ALIASES:
        endpoint = docker_client.api.create_endpoint_config(aliases=[alias])
        containers.append(docker_client.containers.run(
            IMAGE, IDLE, detach=True, name=unique(f"u{n}-{alias}"), network=network_id,
            networking_config={network_id: endpoint}))
    assert containers[0].exec_run(["nslookup", "db"]).exit_code == 0
    for container in containers:
        container.remove(force=True)
    docker_client.api.remove_network(network_id)
""",
    "floor": BACKGROUND
    + """
@pytest.mark.parametrize("n", TESTS)
def test_unit(docker_client, n):
    network_id, containers = start_three(docker_client, n)
    assert containers[0].exec_run(["nslookup", "db"]).exit_code == 0
    remove_all(docker_client, network_id, containers)
""",
    "floor_bg": BACKGROUND
    + """
@pytest.mark.parametrize("n", TESTS)
def test_unit(docker_client, teardown, n):
    network_id, containers = start_three(docker_client, n)
    assert containers[0].exec_run(["nslookup", "db"]).exit_code == 0
    teardown.submit(remove_all, docker_client, network_id, containers)
""",
    "floor_job": BACKGROUND
    + """
@pytest.mark.parametrize("n", TESTS)
def test_unit(docker_client, teardown, n):
    network_id, containers = start_three(docker_client, n)
    job = docker_client.containers.run(IMAGE, ["nslookup", "db"], detach=True, name=unique(f"u{n}-job"),
                                       network=network_id)
    assert job.wait()["StatusCode"] == 0
    job.logs()
    job.remove(force=True)
    teardown.submit(remove_all, docker_client, network_id, containers)
""",
    "run": """
@pytest.mark.parametrize("n", TESTS)
def test_unit(docker_network, n):
    services = [docker_network.run(IMAGE, IDLE, alias=alias) for alias in ALIASES]
    assert services[0].exec(["nslookup", "db"]).ok
""",
    "run_many": """
@pytest.mark.parametrize("n", TESTS)
def test_unit(docker_network, n):
    services = docker_network.run_many([{"image": IMAGE, "command": IDLE, "alias": a} for a in ALIASES])
    assert services[0].exec(["nslookup", "db"]).ok
""",
    "fixtures": """
web = service_fixture(IMAGE, IDLE, alias="web")
cache = service_fixture(IMAGE, IDLE, alias="cache")
db = service_fixture(IMAGE, IDLE, alias="db")

@pytest.mark.parametrize("n", TESTS)
def test_unit(docker_network, web, cache, db, n):
    assert docker_network.run_job(IMAGE, ["nslookup", "db"]).ok
""",
}


def session_seconds_per_test(workdir: Path, variant: str, xdist: bool, tests: int) -> float:
    out = Path(tempfile.mkdtemp(prefix="bench-out-"))
    source, options = SAME_AS.get(variant, (variant, []))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"test_{source}.py", *options]
    if xdist:
        command += ["-p", "xdist", "-n", "2"]
    env = {**os.environ, "BENCH_OUT": str(out), "BENCH_TESTS": str(tests), "PYTEST_DOCKERNET_SWEEP": "0"}
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{done.stdout[-3000:]}")
    windows = [json.loads(path.read_text()) for path in out.glob("*.json")]
    return (max(w["end"] for w in windows) - min(w["start"] for w in windows)) / tests


def describe(times: list[float]) -> str:
    return f"{statistics.median(times):6.3f} s  ({min(times):.3f}-{max(times):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tests", type=int, default=8, help="tests per session")
    parser.add_argument("--serial-only", action="store_true", help="skip the -p xdist -n 2 half")
    args = parser.parse_args()
    import_busybox(docker.from_env(), IMAGE)
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        (workdir / "conftest.py").write_text(CONFTEST)
        for variant in BODIES:
            (workdir / f"test_{variant}.py").write_text(COMMON + BODIES[variant])
        for xdist in (False,) if args.serial_only else (False, True):
            times: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
            for round_no in range(args.rounds):
                order = VARIANTS if round_no % 2 == 0 else tuple(reversed(VARIANTS))
                for variant in order:
                    times[variant].append(session_seconds_per_test(workdir, variant, xdist, args.tests))
            plain, floor = statistics.median(times["plain"]), statistics.median(times["floor"])
            mode = "-p xdist -n 2" if xdist else "serial"
            print(
                f"\n{mode}: network + 3 aliased services + 1 DNS lookup + teardown, per test;"
                f" {args.tests} tests a session, median (range) of {args.rounds} rounds"
            )
            print(f"  {'variant':<12} {'per test':>26}  {'÷ plain':>8}  {'÷ floor':>8}")
            for variant in VARIANTS:
                median = statistics.median(times[variant])
                print(
                    f"  {variant:<12} {describe(times[variant]):>26}  {median / plain:8.2f}  {median / floor:8.2f}"
                )


if __name__ == "__main__":
    main()
