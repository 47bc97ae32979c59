"""Overlay networks (--dockernet-driver overlay) on a single-node swarm of a second engine.

The swarm is made on the test's own second dockerd (see second_engine.py), never on the
main engine. Its advertise address lives on a dummy interface (one end of a veth pair)
inside that engine's network namespace: no traffic leaves it.
"""

from __future__ import annotations

import signal
import subprocess

import docker
import pytest
from conftest import TEST_IMAGE, core_identity
from docker.types import IPAMConfig, IPAMPool
from test_reaper import HOLDING_TEST, kill_lingering, leftovers, ready_files, run_of, start, wait_for

from pytest_dockernet import NetworkManager
from pytest_dockernet.engine.images import import_busybox
from pytest_dockernet.engine.subnets import DEFAULT_POOLS, engine_subnets, free_subnets, host_routes

ADVERTISE = "10.254.254.1"


@pytest.fixture
def swarm(engine):
    """The second engine, made a single-node swarm manager."""
    in_netns = ["ip", "netns", "exec", engine.netns]
    # A veth pair with both ends inside the namespace (this kernel has no dummy device).
    subprocess.run([*in_netns, "ip", "link", "add", "dn0", "type", "veth", "peer", "name", "dn1"], check=True)
    subprocess.run([*in_netns, "ip", "addr", "add", f"{ADVERTISE}/32", "dev", "dn0"], check=True)
    for device in ("dn0", "dn1"):
        subprocess.run([*in_netns, "ip", "link", "set", device, "up"], check=True)
    client = docker.DockerClient(base_url=engine.host)
    client.swarm.init(advertise_addr=ADVERTISE, listen_addr=f"{ADVERTISE}:2377")
    import_busybox(client, TEST_IMAGE)
    try:
        yield engine, client
    finally:
        client.swarm.leave(force=True)


def test_overlay_networks_on_a_swarm_hold_services_reached_by_alias(swarm, tmp_path):
    _, client = swarm
    manager = NetworkManager.for_client(client, core_identity(), driver="overlay", state_dir=tmp_path)
    run = manager.identity.run
    with manager.create_network(test="t::overlay") as one, manager.create_network() as two:
        info = client.api.inspect_network(one.id)
        assert info["Driver"] == "overlay"
        assert info["Attachable"]
        assert info["Scope"] == "swarm"
        assert info["IPAM"]["Config"][0]["Subnet"] == str(one.subnet)
        assert not one.subnet.overlaps(two.subnet)
        server = one.run(TEST_IMAGE, ["httpd", "-f", "-p", "8080", "-h", "/www"], alias="web")
        probe = one.run(TEST_IMAGE, ["sleep", "60"], alias="probe")
        assert server.ip in one.subnet
        assert "404" in probe.exec(["wget", "-qO-", "http://web:8080/"]).output
        stranger = two.run(TEST_IMAGE, ["sleep", "60"], dns=["127.0.0.1"])
        assert not stranger.exec(["nslookup", "web"]).ok  # aliases stay on their network
    assert manager.close() == []
    assert manager.tally.failures == []
    assert leftovers(client, run) == []


def test_the_plugin_on_a_swarm_and_its_reaper_clean_overlay_networks(swarm, pytester):
    engine, client = swarm
    pytester.makepyfile(
        f"""
        def test_overlay(docker_network, docker_client):
            assert docker_client.api.inspect_network(docker_network.id)["Driver"] == "overlay"
            one = docker_network.run({TEST_IMAGE!r}, ["sleep", "60"], alias="one")
            assert one.exec(["nslookup", "one"]).ok
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "xdist", "-n", "2", "--dockernet-driver", "overlay", "--dockernet-engine", engine.host
    )
    result.assert_outcomes(passed=1)
    run = result.stdout.str().split("run ", 1)[1][:8]
    assert leftovers(client, run) == []


def test_a_bad_driver_is_one_sentence(pytester):
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_subprocess("--dockernet-driver", "macvlan")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: pytest-dockernet: --dockernet-driver: 'macvlan' is not a network driver the plugin uses;"
            " expected bridge or overlay"
        ]
    )


def test_the_reaper_removes_overlay_networks_after_a_sigkill(swarm, pytester):
    engine, client = swarm
    pytester.makepyfile(HOLDING_TEST)
    env = {"DOCKER_HOST": engine.host, "PYTEST_DOCKERNET_DRIVER": "overlay"}
    controller = start(pytester, "-p", "xdist", "-n", "2", env=env)
    workers: set[int] = set()
    try:
        ready = wait_for(lambda: ready_files(pytester.path, 2), 60, "both workers to hold a network")
        run = run_of(ready[0])
        workers = {int(path.name.split("-")[2]) for path in ready}
        assert len(leftovers(client, run)) == 4
        controller.send_signal(signal.SIGKILL)
        controller.wait()
        wait_for(lambda: not leftovers(client, run), 30, "the overlay run to be reaped")
    finally:
        controller.kill()
        controller.communicate()
        kill_lingering(workers)


def test_the_swarm_accepts_an_overlapping_subnet_so_the_allocator_avoids_every_listed_one(swarm, tmp_path):
    """Measured: a swarm manager of Docker 20.10 makes a second overlay network on a subnet
    another already has, without a word. The allocator's listing of the engine's networks,
    under the engine's lock, is what keeps the plugin's overlay networks apart."""
    _, client = swarm
    first = next(free_subnets(list(DEFAULT_POOLS), 26, [*engine_subnets(client), *host_routes()]))
    ipam = IPAMConfig(driver="default", pool_configs=[IPAMPool(subnet=str(first))])
    foreign = [
        client.api.create_network(f"dn-overlap-{n}", driver="overlay", attachable=True, ipam=ipam)
        for n in "ab"
    ]
    manager = NetworkManager.for_client(client, core_identity(), driver="overlay", state_dir=tmp_path)
    try:
        networks = [manager.create_network() for _ in range(2)]
        assert all(not network.subnet.overlaps(first) for network in networks)
    finally:
        manager.close()
        for network in foreign:
            client.api.remove_network(network["Id"])
