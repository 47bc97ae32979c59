"""Runs sharing a subnet pool wait for each other's subnets, and say who holds it when they give up."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import SUITE_LABELS, TEST_IMAGE, core_identity, wait_until_gone
from test_plugin import RUN_LINE

from pytest_dockernet import NetworkManager, PoolExhaustedError, new_run_id
from pytest_dockernet.core.full_pool import FREED_SUBNET_SECONDS
from pytest_dockernet.engine.subnets import SubnetAllocator, parse_pools

# Another process of the plugin holding the pool's only subnet for HOLD seconds.
HOLDER = """
import sys, time
from pytest_dockernet import NetworkManager, RunIdentity
from pytest_dockernet.engine.subnets import parse_pools

run, pool, hold, labels = sys.argv[1], sys.argv[2], float(sys.argv[3]), dict([sys.argv[4].split("=")])
manager = NetworkManager.for_client(
    __import__("docker").from_env(), RunIdentity(run=run, worker="holder", extra_labels=labels),
    pools=parse_pools([pool]),
)
network = manager.create_network()
print("holding", network.subnet, flush=True)
time.sleep(hold)
manager.close()
print("released", flush=True)
"""


def hold_pool(pool: str, seconds: float) -> tuple[subprocess.Popen[str], str]:
    run = new_run_id()
    label = next(f"{key}={value}" for key, value in SUITE_LABELS.items())
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, run, pool, str(seconds), label], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().startswith("holding"), "the holder made its network"
    return holder, run


def test_a_pool_held_by_another_process_is_waited_for(docker_client):
    holder, run = hold_pool("10.198.12.0/26", 2)
    manager = NetworkManager.for_client(docker_client, core_identity(), pools=parse_pools(["10.198.12.0/26"]))
    try:
        started = time.monotonic()
        network = manager.create_network()
        waited = time.monotonic() - started
        assert str(network.subnet) == "10.198.12.0/26"
        assert 1 < waited < 30, waited
    finally:
        assert manager.close() == []
        holder.wait(30)
        wait_until_gone(docker_client, run)


def test_a_pool_still_held_when_the_wait_ends_names_who_holds_it(docker_client):
    holder, run = hold_pool("10.198.13.0/26", 60)
    manager = NetworkManager.for_client(
        docker_client, core_identity(), pools=parse_pools(["10.198.13.0/26"]), pool_timeout=1.5
    )
    try:
        started = time.monotonic()
        with pytest.raises(PoolExhaustedError) as caught:
            manager.create_network()
        assert 1.4 < time.monotonic() - started < 10
        message = str(caught.value)
        assert "subnet pool 10.198.13.0/26 is exhausted" in message
        assert "waited 1.5 s (--dockernet-pool-timeout) for networks of other processes" in message
        assert f"run {run} (process {holder.pid}" in message and ": 1 network)" in message  # noqa: PT018
    finally:
        holder.kill()
        holder.wait(30)
        assert manager.close() == []
        subprocess.run(
            [sys.executable, "-m", "pytest_dockernet", "prune", "--run", run, "--force"], check=True
        )


def test_a_pool_held_by_this_process_alone_fails_at_once(docker_client):
    manager = NetworkManager.for_client(docker_client, core_identity(), pools=parse_pools(["10.198.14.0/26"]))
    try:
        manager.create_network()
        started = time.monotonic()
        with pytest.raises(PoolExhaustedError, match="is exhausted") as caught:
            manager.create_network()
        assert time.monotonic() - started < 2
        assert "waited" not in str(caught.value)
    finally:
        assert manager.close() == []


SHARING = f"""
import pytest

@pytest.mark.parametrize("n", range(3))
def test_uses_a_network(docker_network, n):
    docker_network.run({TEST_IMAGE!r}, ["sleep", "300"], alias="box")
    import time; time.sleep(0.5)
"""


def test_concurrent_runs_sharing_a_small_pool_all_get_networks(pytester, image, docker_client):
    # Four runs of three tests, on a pool of two networks: each waits its turn.
    pytester.makepyfile(test_sharing=SHARING)
    env = {**os.environ, "PYTEST_DOCKERNET_SWEEP": "0"}
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--dockernet-no-prefetch",
            "--dockernet-pool", "10.198.16.0/25", "--dockernet-subnet-size", "26"]  # fmt: skip

    def one_run(_: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=pytester.path, capture_output=True, text=True, env=env, timeout=300)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one_run, range(4)))
    for done in results:
        assert done.returncode == 0, done.stdout[-3000:]
        assert "3 passed" in done.stdout, done.stdout[-3000:]
    for done in results:
        match = RUN_LINE.search(done.stdout)
        assert match, done.stdout
        wait_until_gone(docker_client, match.group(1))


def lingering_route(pool: str, reads: int):
    """Host routes where ``pool`` is routed for the first ``reads`` reads, then not: the route
    of a bridge another run just removed, going a moment after its network (seen in CI).
    Injected through ``routes=``: the host's own tables are not ours to change."""
    seen = []

    def routes():
        seen.append(1)
        return [ipaddress.ip_network(pool)] if len(seen) <= reads else []

    return routes, seen


def test_a_pool_full_only_through_a_route_that_goes_is_read_again(docker_client, tmp_path):
    routes, seen = lingering_route("10.198.17.0/26", reads=3)
    allocator = SubnetAllocator(
        docker_client, tmp_path / "l", parse_pools(["10.198.17.0/26"]), 26, routes=routes
    )
    manager = NetworkManager(docker_client, core_identity(), allocator)
    try:
        network = manager.create_network()
        assert str(network.subnet) == "10.198.17.0/26"
        assert len(seen) > 3, "the routes were read afresh until the pool had room"
    finally:
        assert manager.close() == []


def test_a_pool_full_through_a_route_that_stays_fails_after_a_short_grace(docker_client, tmp_path):
    routes, _ = lingering_route("10.198.18.0/26", reads=10**6)
    allocator = SubnetAllocator(
        docker_client, tmp_path / "l", parse_pools(["10.198.18.0/26"]), 26, routes=routes
    )
    manager = NetworkManager(docker_client, core_identity(), allocator, pool_timeout=60)
    try:
        started = time.monotonic()
        with pytest.raises(PoolExhaustedError, match=r"10\.198\.18\.0/26 is exhausted") as caught:
            manager.create_network()
        assert FREED_SUBNET_SECONDS - 1 < time.monotonic() - started < FREED_SUBNET_SECONDS + 10
        assert "waited" not in str(caught.value), "no other process held it: not the pool timeout"
    finally:
        assert manager.close() == []
