"""A small tour of pytest-dockernet: one test per feature.

Run it with ``pytest examples`` or, in parallel, ``pytest examples -p xdist -n 2``.
"""

from __future__ import annotations

import pytest

from pytest_dockernet import ServiceStartError, wait

HTTPD = ["httpd", "-f", "-p", "8080", "-h", "/www"]
IDLE = ["sleep", "3600"]


def test_client_reaches_server_by_alias(docker_network, busybox):
    server = docker_network.run(busybox, HTTPD, alias="web", wait=wait.port(8080))
    # exec with stdin: write the page the server will serve.
    server.exec(["sh", "-c", "cat > /www/index.html"], stdin="hello from web\n")
    client = docker_network.run(busybox, IDLE, alias="client")
    result = client.exec(["wget", "-qO-", "http://web:8080/"])
    assert result.exit_code == 0
    assert result.output == "hello from web\n"


def test_every_test_gets_its_own_network(docker_network, docker_network_factory, busybox):
    other = docker_network_factory()
    assert other.id != docker_network.id
    assert not other.subnet.overlaps(docker_network.subnet)
    docker_network.run(busybox, IDLE, alias="here")
    # dns=127.0.0.1: a name Docker does not know is not forwarded to the host's resolver.
    probe = other.run(busybox, IDLE, alias="probe", dns=["127.0.0.1"])
    assert probe.exec(["nslookup", "here"]).exit_code != 0, "aliases are network-scoped"


def test_one_network_per_worker_for_expensive_services(docker_worker_network, busybox):
    # Session-scoped: shared by every test this xdist worker runs.
    if not any("shared-cache" in s.aliases for s in docker_worker_network.services):
        docker_worker_network.run(busybox, IDLE, alias="shared-cache")
    assert docker_worker_network.services[0].exec(["hostname"]).exit_code == 0


def test_internal_network_for_services_that_must_not_reach_out(
    docker_network_factory, docker_client, busybox
):
    sealed = docker_network_factory(internal=True)
    assert docker_client.api.inspect_network(sealed.id)["Internal"] is True
    sealed.run(busybox, IDLE, alias="vault")
    inside = sealed.run(busybox, IDLE)
    # Services on it still reach each other by alias.
    assert inside.exec(["ping", "-c1", "-W2", "vault"]).exit_code == 0


def test_connect_a_service_to_a_second_network(docker_network, docker_network_factory, busybox):
    backend = docker_network_factory()
    db = backend.run(busybox, IDLE, alias="db")
    app = docker_network.run(busybox, IDLE, alias="app")
    docker_network.connect(db, aliases=["database"])
    assert app.exec(["ping", "-c1", "-W2", "database"]).exit_code == 0
    docker_network.disconnect(db)
    assert app.exec(["ping", "-c1", "-W1", "database"]).exit_code != 0


def test_a_crashing_service_fails_with_its_logs(docker_network, busybox):
    with pytest.raises(ServiceStartError, match="missing setting DB_URL"):
        # min_uptime: watch for a crash for up to 10 s (returns as soon as it exits).
        docker_network.run(
            busybox, ["sh", "-c", "echo missing setting DB_URL >&2; exit 1"], alias="app", min_uptime=10
        )
