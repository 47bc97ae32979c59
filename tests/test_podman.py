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
from conftest import TEST_IMAGE, core_identity
from docker.types import IPAMConfig, IPAMPool
from podman_engine import running_podman
from test_reaper import leftovers

from pytest_dockernet import NetworkManager
from pytest_dockernet.images import import_busybox
from pytest_dockernet.lease import engine_up_since, is_podman
from pytest_dockernet.subnets import is_overlap_refusal

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None or os.getuid() != 0, reason="needs podman, and root to run it rootful"
)


@pytest.fixture(scope="module")
def podman() -> Iterator[tuple[str, docker.DockerClient]]:
    with running_podman() as url:
        client = docker.DockerClient(base_url=url)
        import_busybox(client, TEST_IMAGE)
        yield url, client


def test_networks_addresses_exec_and_labels_on_podman(podman, tmp_path):
    _, client = podman
    assert is_podman(client)
    assert engine_up_since(client) is None  # podman says nothing of when it started
    manager = NetworkManager.for_client(client, core_identity(), state_dir=tmp_path)
    run = manager.identity.run
    with manager.create_network(test="t::podman") as one, manager.create_network() as two:
        assert not one.subnet.overlaps(two.subnet)
        assert client.api.inspect_network(one.id)["IPAM"]["Config"][0]["Subnet"] == str(one.subnet)
        server = one.run(TEST_IMAGE, ["httpd", "-f", "-p", "8080", "-h", "/www"], alias="web")
        probe = one.run(TEST_IMAGE, ["sleep", "60"], alias="probe")
        assert server.ip in one.subnet  # podman keys endpoints by network name
        assert "404" in probe.exec(["wget", "-qO-", f"http://{server.ip}:8080/"]).output
        echoed = probe.exec(["cat"], stdin="through stdin\n")
        assert echoed.exit_code == 0
        assert echoed.output == "through stdin\n"
        assert one.run_job(TEST_IMAGE, ["wget", "-qO-", f"http://{server.ip}:8080/"]).exit_code == 1  # a 404
        assert client.api.inspect_container(probe.id)["Config"]["Labels"]["pytest-dockernet.run"] == run
    assert manager.close() == []
    assert leftovers(client, run) == []


@pytest.mark.skipif(
    os.environ.get("DOCKERNET_TEST_PODMAN_DNS") != "1",
    reason="podman 4.3's alias resolution fails now and then under load (README.rst, Podman):"
    " set DOCKERNET_TEST_PODMAN_DNS=1 to run it",
)
def test_aliases_resolve_on_podman(podman, tmp_path):
    _, client = podman
    manager = NetworkManager.for_client(client, core_identity(), state_dir=tmp_path)
    with manager.create_network() as network:
        network.run(TEST_IMAGE, ["httpd", "-f", "-p", "8080", "-h", "/www"], alias="web")
        probe = network.run(TEST_IMAGE, ["sleep", "60"], alias="probe")
        assert "404" in probe.exec(["wget", "-qO-", "http://web:8080/"]).output
        assert network.run_job(TEST_IMAGE, ["nslookup", "web"]).ok
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
