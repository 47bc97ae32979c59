"""The plugin on podman's Docker API (rootful; see podman_engine.py).

Skipped where podman is not installed; ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import docker
import docker.errors
import pytest
from conftest import TEST_IMAGE, core_identity, retrying_lost_lookups
from docker.types import IPAMConfig, IPAMPool
from podman_engine import running_podman
from test_reaper import leftovers

from pytest_dockernet import Network, NetworkError, NetworkManager, Service
from pytest_dockernet.engine.connection import engine_key
from pytest_dockernet.engine.images import import_busybox
from pytest_dockernet.engine.podman import is_podman
from pytest_dockernet.engine.subnets import is_overlap_refusal
from pytest_dockernet.runs.lease import engine_up_since
from pytest_dockernet.wait import command, healthy

HTTPD = ["httpd", "-f", "-p", "8080", "-h", "/www"]
# Checked inside the container: the test process is not in the test podman's network namespace.
LISTENING = command(["sh", "-c", "netstat -ltn | grep -q ':8080 '"])

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None or os.getuid() != 0, reason="needs podman, and root to run it rootful"
)


@pytest.fixture(scope="module")
def podman() -> Iterator[tuple[str, docker.DockerClient]]:
    with running_podman() as service:
        client = docker.DockerClient(base_url=service.url)
        import_busybox(client, TEST_IMAGE)
        yield service.url, client


def test_networks_addresses_exec_and_labels_on_podman(podman, tmp_path):
    _, client = podman
    assert is_podman(client)
    assert engine_up_since(client) is None  # podman says nothing of when it started
    manager = NetworkManager.for_client(client, core_identity(), state_dir=tmp_path)
    run = manager.identity.run
    with manager.create_network(test="t::podman") as one, manager.create_network() as two:
        assert not one.subnet.overlaps(two.subnet)
        assert client.api.inspect_network(one.id)["IPAM"]["Config"][0]["Subnet"] == str(one.subnet)
        server = one.run(TEST_IMAGE, HTTPD, alias="web", wait=LISTENING)
        probe = one.run(TEST_IMAGE, ["sleep", "60"], alias="probe")
        assert server.ip in one.subnet  # podman keys endpoints by network name
        assert "404" in probe.exec(["wget", "-qO-", f"http://{server.ip}:8080/"]).output
        # Measured, not wanted (README.rst, Podman): netavark 1.4 routes between podman's
        # networks, and podman 4.3's Docker API forgets a network's "isolate" option
        # whenever it lists or inspects networks. This test says when that changes.
        stranger = two.run(TEST_IMAGE, ["sleep", "60"])
        assert stranger.exec(["ping", "-c1", "-W1", str(server.ip)]).ok, (
            "podman 4.3 isolates its networks now"
        )
        assert not stranger.exec(["nslookup", "web"]).ok, "but aliases stay network-scoped"
        echoed = probe.exec(["cat"], stdin="through stdin\n")
        assert echoed.exit_code == 0
        assert echoed.output == "through stdin\n"
        assert one.run_job(TEST_IMAGE, ["wget", "-qO-", f"http://{server.ip}:8080/"]).exit_code == 1  # a 404
        assert client.api.inspect_container(probe.id)["Config"]["Labels"]["pytest-dockernet.run"] == run
    assert manager.close() == []
    assert leftovers(client, run) == []


def test_aliases_resolve_on_podman(podman, tmp_path):
    _, client = podman
    manager = NetworkManager.for_client(client, core_identity(), state_dir=tmp_path)
    with manager.create_network() as network:
        network.run(TEST_IMAGE, HTTPD, alias="web", wait=LISTENING)
        probe = network.run(TEST_IMAGE, ["sleep", "60"], alias="probe")
        # A lookup lost while aardvark-dns 1.4 reloads is tried again (conftest.py).
        assert "404" in retrying_lost_lookups(Service.exec)(probe, ["wget", "-O-", "http://web:8080/"]).output
        assert retrying_lost_lookups(Network.run_job)(network, TEST_IMAGE, ["nslookup", "web"]).ok
    assert manager.close() == []


def test_podmans_subnet_refusal_is_known_to_the_allocator(podman):
    _, client = podman
    ipam = IPAMConfig(driver="default", pool_configs=[IPAMPool(subnet="10.252.0.0/26", gateway="10.252.0.1")])
    first = client.api.create_network("dn-podman-a", driver="bridge", ipam=ipam)
    try:
        with pytest.raises(docker.errors.APIError) as refused:
            client.api.create_network("dn-podman-b", driver="bridge", ipam=ipam)
        assert "already used on the host or by another config" in str(refused.value)
        assert is_overlap_refusal(refused.value)
    finally:
        client.api.remove_network(first["Id"])


def test_podman_is_one_engine_to_the_locks_and_refuses_hermetic_networks(podman, tmp_path):
    url, client = podman
    # podman answers every info with a new random ID: the key must not use it.
    assert client.api.info()["ID"] != client.api.info()["ID"]
    assert engine_key(client) == engine_key(docker.DockerClient(base_url=url))
    manager = NetworkManager.for_client(client, core_identity(), state_dir=tmp_path)
    with pytest.raises(NetworkError, match="hermetic networks are not available on podman"):
        manager.create_network(hermetic=True)
    assert manager.close() == []
    assert leftovers(client, manager.identity.run) == []


def test_healthchecks_run_where_podman_runs_none(podman, tmp_path):
    _, client = podman
    manager = NetworkManager.for_client(client, core_identity(), state_dir=tmp_path)
    check = {"test": ["CMD", "test", "-e", "/tmp/ready"], "interval": 3_600_000_000_000, "retries": 3}
    with manager.create_network() as network:
        service = network.run(
            TEST_IMAGE,
            ["sh", "-c", "sleep 1; touch /tmp/ready; exec sleep 300"],
            healthcheck=check,
            wait=healthy(),
        )
        assert service.reload()["State"]["Health"]["Status"] == "healthy"
        assert service.image == TEST_IMAGE  # as given, where podman's inspect says docker.io/...
    assert manager.close() == []


def test_a_hermetic_run_on_podman_fails_at_once_with_the_reason(podman, pytester, monkeypatch):
    url, client = podman
    monkeypatch.setenv("DOCKER_HOST", url)
    pytester.makepyfile("def test_one(docker_network):\n    pass\n")
    result = pytester.runpytest_subprocess("--dockernet-hermetic")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*hermetic networks are not available on podman*--dockernet-hermetic*"])
    assert "Traceback" not in result.stdout.str()
    assert client.api.networks(filters={"label": ["pytest-dockernet.run"]}) == []
