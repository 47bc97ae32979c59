"""Subnet allocation: pure logic first, then against the real engine."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from ipaddress import IPv4Network

import docker
import pytest
from conftest import core_identity, create_plain_network
from docker.types import IPAMConfig, IPAMPool

from pytest_dockernet import LockTimeoutError, NetworkManager, PoolExhaustedError
from pytest_dockernet.engine.podman import INTERFACE_RACE_TRIES
from pytest_dockernet.engine.subnets import (
    SubnetAllocator,
    free_subnets,
    main_table_routes,
    parse_pools,
)

N = IPv4Network


def test_free_subnets_skip_everything_taken():
    pool = [N("10.0.0.0/24")]
    taken = [N("10.0.0.0/26"), N("10.0.0.130/32"), N("0.0.0.0/1")]
    # 0.0.0.0/1 covers the whole pool: nothing is free.
    assert list(free_subnets(pool, 26, taken)) == []
    assert list(free_subnets(pool, 26, taken[:2])) == [N("10.0.0.64/26"), N("10.0.0.192/26")]


def test_free_subnets_across_several_pools():
    pools = [N("10.0.0.0/25"), N("10.9.0.0/25")]
    assert list(free_subnets(pools, 26, [N("10.0.0.0/26")])) == [
        N("10.0.0.64/26"),
        N("10.9.0.0/26"),
        N("10.9.0.64/26"),
    ]


def test_a_larger_taken_network_before_a_small_one_still_counts():
    taken = [N("10.0.0.0/16"), N("10.0.0.5/32")]
    assert list(free_subnets([N("10.0.0.0/15")], 16, taken)) == [N("10.1.0.0/16")]


def test_host_routes_are_read_without_the_default_route(tmp_path):
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
    )
    assert main_table_routes(str(table)) == [N("192.0.2.0/24"), N("172.17.0.0/16")]
    assert main_table_routes(str(tmp_path / "missing")) == []


@pytest.mark.skipif(os.getuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2")
def test_routes_of_every_routing_table_are_avoided():
    # In a network namespace of the test's own, so the host's tables are never touched:
    # a policy-routing table (as VPNs use) holds a route that /proc/net/route never shows.
    namespace = f"dn-routes-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        inside = ["ip", "netns", "exec", namespace]
        subprocess.run([*inside, "ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(
            [*inside, "ip", "route", "add", "10.198.77.0/24", "dev", "lo", "table", "100"], check=True
        )
        probe = "from pytest_dockernet.engine.subnets import host_routes, main_table_routes as m; print(host_routes(), m())"
        done = subprocess.run(
            [*inside, sys.executable, "-c", probe], capture_output=True, text=True, check=True
        )
        every_table, main_table = done.stdout.split("] [")
        assert "IPv4Network('10.198.77.0/24')" in every_table
        assert "10.198.77.0" not in main_table
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False)


def test_parse_pools_rejects_overlaps_and_junk():
    assert parse_pools(["10.1.0.0/16, 10.2.0.0/16"]) == (N("10.1.0.0/16"), N("10.2.0.0/16"))
    with pytest.raises(ValueError, match="overlap"):
        parse_pools(["10.1.0.0/16", "10.1.2.0/24"])
    with pytest.raises(ValueError, match="not an IPv4 CIDR"):
        parse_pools(["fd00::/64"])


# ---- against the engine -------------------------------------------------------------

# Each engine test carves from a /24 of its own: tests on other xdist workers never interfere.
POOLS = {
    "test_never_overlaps_a_network_someone_else_made": 1,
    "test_engine_refusal_moves_on_to_the_next_subnet": 2,
    "test_exhausted_pool_names_pool_size_and_use": 3,
    "test_host_routes_are_avoided": 4,
    "test_lock_timeout_names_the_lock_file": 5,
    "test_a_create_that_lost_podmans_interface_race_is_tried_again": 6,
    "test_a_lasting_interface_race_is_the_engines_refusal": 7,
}


@pytest.fixture
def pool(request) -> IPv4Network:
    return N(f"10.198.{POOLS[request.node.name]}.0/24")


@pytest.fixture
def foreign_network(docker_client):
    """Create unlabelled networks like another tool would; removed after the test."""
    made = []

    def create(subnet: IPv4Network) -> str:
        ipam = IPAMConfig(driver="default", pool_configs=[IPAMPool(subnet=str(subnet))])
        name = f"foreign-{time.monotonic_ns()}"
        made.append(create_plain_network(docker_client, name, driver="bridge", ipam=ipam))
        return made[-1]

    yield create
    for network_id in made:
        docker_client.api.remove_network(network_id)


def allocator(client, tmp_path, pool, size=26, **kwargs):
    return SubnetAllocator(client, tmp_path / "subnets.lock", [pool], size, routes=lambda: [], **kwargs)


def create_labelled(client):
    def create(subnet):
        ipam = IPAMConfig(driver="default", pool_configs=[IPAMPool(subnet=str(subnet))])
        return client.api.create_network(f"alloc-{subnet.network_address}", ipam=ipam)["Id"]

    return create


def test_never_overlaps_a_network_someone_else_made(docker_client, tmp_path, foreign_network, pool):
    foreign_network(next(pool.subnets(new_prefix=25)))
    network_id, subnet = allocator(docker_client, tmp_path, pool).allocate(create_labelled(docker_client))
    try:
        assert subnet == list(pool.subnets(new_prefix=26))[2]
    finally:
        docker_client.api.remove_network(network_id)


def test_engine_refusal_moves_on_to_the_next_subnet(docker_client, tmp_path, foreign_network, pool):
    """Another host on a shared engine takes our subnet between our look and our create."""
    attempts: list[IPv4Network] = []

    def create(subnet):
        if not attempts:
            foreign_network(subnet)  # races us to it, past our lock
        attempts.append(subnet)
        return create_labelled(docker_client)(subnet)

    network_id, subnet = allocator(docker_client, tmp_path, pool).allocate(create)
    quarters = list(pool.subnets(new_prefix=26))
    try:
        assert attempts == quarters[:2]
        assert subnet == quarters[1]
    finally:
        docker_client.api.remove_network(network_id)


INTERFACE_RACE = "route ip+net: no such network interface"


def test_a_create_that_lost_podmans_interface_race_is_tried_again(docker_client, tmp_path, pool):
    """A mock of the fault: podman's refusal when a host interface vanished while it read the
    host's addresses (seen once in the podman job) cannot be produced on demand."""
    attempts: list[IPv4Network] = []

    def create(subnet):
        attempts.append(subnet)
        if len(attempts) < 3:
            raise docker.errors.APIError("500 Server Error", explanation=INTERFACE_RACE)
        return create_labelled(docker_client)(subnet)

    network_id, subnet = allocator(docker_client, tmp_path, pool).allocate(create)
    try:
        assert attempts == [subnet] * 3, "the same subnet, tried again"
    finally:
        docker_client.api.remove_network(network_id)


def test_a_lasting_interface_race_is_the_engines_refusal(docker_client, tmp_path, pool):
    """Mocked, as above: an engine that keeps failing so is not retried for ever."""
    attempts: list[IPv4Network] = []

    def create(subnet):
        attempts.append(subnet)
        raise docker.errors.APIError("500 Server Error", explanation=INTERFACE_RACE)

    with pytest.raises(docker.errors.APIError, match="no such network interface"):
        allocator(docker_client, tmp_path, pool).allocate(create)
    assert len(attempts) == INTERFACE_RACE_TRIES


def test_exhausted_pool_names_pool_size_and_use(docker_client, tmp_path, foreign_network, pool):
    half = next(pool.subnets(new_prefix=25))
    foreign_network(half)
    small = allocator(docker_client, tmp_path, half, size=26)
    with pytest.raises(
        PoolExhaustedError, match=rf"pool {half} is exhausted: it holds 2 /26 networks and 2 of them"
    ):
        small.allocate(create_labelled(docker_client))


def test_host_routes_are_avoided(docker_client, tmp_path, pool):
    quarters = list(pool.subnets(new_prefix=26))
    routes = [quarters[0], next(quarters[1].hosts())]
    routed = SubnetAllocator(
        docker_client, tmp_path / "l", [pool], 26, routes=lambda: [N(r) for r in map(str, routes)]
    )
    network_id, subnet = routed.allocate(create_labelled(docker_client))
    docker_client.api.remove_network(network_id)
    assert subnet == quarters[2]


def test_lock_timeout_names_the_lock_file(docker_client, tmp_path, pool):
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(tmp_path / "subnets.lock")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        waiting = allocator(docker_client, tmp_path, pool, lock_timeout=0.3)
        with pytest.raises(LockTimeoutError, match=r"subnets\.lock within 0\.3 s"):
            waiting.allocate(create_labelled(docker_client))
        # A holder killed outright releases the lock with its process: no hang, no stale file.
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        network_id, _ = waiting.allocate(create_labelled(docker_client))
        docker_client.api.remove_network(network_id)
    finally:
        holder.kill()
        holder.wait()


LOCK_HOLDER = """
import sys, time, filelock
lock = filelock.FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_a_burst_of_100_networks_alive_at_once(docker_client):
    manager = NetworkManager.for_client(docker_client, _identity("burst"))
    try:
        networks = [manager.create_network() for _ in range(100)]
        assert len({n.name for n in networks}) == 100
        assert len({n.id for n in networks}) == 100
        for a, b in itertools.combinations(networks, 2):
            assert not a.subnet.overlaps(b.subnet)
        engine_view = {n["Id"] for n in docker_client.api.networks(filters={"label": "pytest-dockernet.run"})}
        assert {n.id for n in networks} <= engine_view
    finally:
        assert manager.close() == []
    assert manager.tally.networks_created == manager.tally.networks_removed == 100


def _identity(worker):
    return core_identity(worker)


def test_client_type(docker_client):
    assert isinstance(docker_client, docker.DockerClient)
