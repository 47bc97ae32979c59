"""Readiness waits, published ports and faults a test causes on purpose, on the real engine."""

from __future__ import annotations

import socket
import time

import pytest
from conftest import NO_UPSTREAM_DNS, reaches

from pytest_dockernet import ServiceNotReadyError, ServiceStartError, wait
from pytest_dockernet.core.wait import until_ready

SLEEP = ["sleep", "300"]
# Starts listening (httpd on 8080) only after a pause, saying so in its log.
SLOW_HTTPD = ["sh", "-c", "sleep 1; echo starting httpd; exec httpd -f -p 8080 -h /www"]
QUIET_HTTPD = ["sh", "-c", "echo booting; exec sleep 300"]


@pytest.fixture
def net(manager):
    network = manager.create_network()
    yield network
    manager.release(network)


@pytest.mark.parametrize(
    "strategy",
    [
        wait.log(r"starting httpd"),
        wait.port(8080),
        wait.http(8080, "/", status=404),  # /www is empty: a 404 proves httpd answers
        wait.command(["sh", "-c", "nc 127.0.0.1 8080 </dev/null"]),
        wait.all_of(wait.log("starting"), wait.port(8080)),
    ],
    ids=["log", "port", "http", "command", "all_of"],
)
def test_each_wait_returns_once_ready(net, image, strategy):
    started = time.monotonic()
    server = net.run(image, SLOW_HTTPD, alias="web", wait=strategy)
    assert time.monotonic() - started >= 1
    with socket.create_connection((str(server.ip), 8080), timeout=2):
        pass


def test_a_list_of_waits_must_all_hold(net, image):
    server = net.run(image, SLOW_HTTPD, wait=[wait.log("starting"), wait.port(8080)])
    assert "starting httpd" in server.logs()


def test_healthcheck_wait(net, image):
    check = {"test": ["CMD", "test", "-e", "/tmp/ready"], "interval": 100_000_000, "retries": 30}
    net.run(
        image,
        ["sh", "-c", "sleep 1; touch /tmp/ready; exec sleep 300"],
        healthcheck=check,
        wait=wait.healthy(),
    )
    with pytest.raises(ServiceNotReadyError, match="has no HEALTHCHECK"):
        net.run(image, SLEEP, wait=wait.healthy())
    never = {"test": ["CMD", "false"], "interval": 100_000_000, "retries": 1000}
    with pytest.raises(
        ServiceNotReadyError, match=r"not ready after 1\.\d s waiting for the HEALTHCHECK to report healthy"
    ):
        net.run(image, QUIET_HTTPD, healthcheck=never, wait=wait.healthy(timeout=1))


@pytest.mark.parametrize(
    ("strategy", "described"),
    [
        (wait.log("never printed", timeout=1), "a log line matching 'never printed'"),
        (wait.port(9999, timeout=1), "a process to listen on TCP port 9999"),
        (wait.http(9999, timeout=1), "GET / on port 9999 to answer [200]"),
        (wait.command(["false"], timeout=1), "['false'] to succeed"),
    ],
    ids=["log", "port", "http", "command"],
)
def test_a_timeout_names_service_condition_time_and_logs(net, image, strategy, described):
    with pytest.raises(ServiceNotReadyError) as excinfo:
        net.run(image, QUIET_HTTPD, alias="slowpoke", wait=strategy)
    message = str(excinfo.value)
    assert f"{net.name}-slowpoke" in message
    assert "was not ready after 1." in message
    assert described in message
    assert message.endswith("its last log lines:\nbooting")
    assert len(net.services) == 1, "the service is still removed at teardown"


def test_a_container_exiting_during_a_wait_fails_at_once(net, image):
    started = time.monotonic()
    with pytest.raises(
        ServiceStartError,
        match=r"exited with status 3 while waiting for a process to listen on TCP port 80.*\n.*bad config",
    ):
        net.run(image, ["sh", "-c", "sleep 0.5; echo bad config; exit 3"], wait=wait.port(80, timeout=60))
    assert time.monotonic() - started < 10


def test_bad_wait_parameters_are_refused():
    with pytest.raises(ValueError, match="timeout must be more than 0"):
        wait.port(80, timeout=-1)
    with pytest.raises(ValueError, match="needs at least one strategy"):
        wait.all_of()


def test_published_port_on_loopback(net, image):
    server = net.run(
        image,
        ["httpd", "-f", "-p", "8080", "-h", "/www"],
        ports={8080: None},
        wait=wait.http(8080, status=404),
    )
    host, port = server.address(8080)
    assert host == "127.0.0.1"
    assert port == server.host_port(8080) > 0
    with socket.create_connection((host, port), timeout=2):
        pass
    with pytest.raises(LookupError, match=r"port 9090/tcp of .* is not published: pass ports=\{9090: None\}"):
        server.host_port(9090)


def test_stop_start_pause_kill_with_dns_checked_each_step(net, image):
    target = net.run(image, ["httpd", "-f", "-p", "8080", "-h", "/www"], alias="target")
    probe = net.run(image, SLEEP, alias="probe", **NO_UPSTREAM_DNS)

    def resolves() -> bool:
        return probe.exec(["nslookup", "target"]).ok

    def answers() -> bool:
        # At its current address: resolves() checks the name, and a lookup that podman's
        # DNS loses while a container starts (conftest.py) would end under nc's time-out
        # with nothing said, so it could not be told from a server that answers nothing.
        request = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 2 nc {target.ip} 8080"
        return "404 Not Found" in probe.exec(["sh", "-c", request]).output

    def start_listening() -> None:
        # start() returns once the process runs, and httpd listens a moment later: in the
        # podman job, the request right after start() got no answer once.
        target.start()
        until_ready(target, wait.port(8080))

    assert resolves()
    assert answers()
    target.stop(timeout=0)
    assert not resolves()
    start_listening()
    assert resolves()
    assert answers()
    target.pause()
    assert resolves(), "a paused service keeps its name"
    assert not answers(), "but answers nothing"
    target.unpause()
    assert answers()
    target.restart(timeout=0)
    assert resolves()
    target.kill()
    assert not resolves()
    start_listening()
    assert target.ip in net.subnet
    assert answers()


def test_partition_and_heal(net, image):
    node = net.run(image, SLEEP, alias="node")
    peer = net.run(image, SLEEP, alias="peer")
    net.disconnect(node)
    assert not peer.exec(["ping", "-c1", "-W1", str(node.ip)]).ok
    net.connect(node)
    assert peer.exec(["ping", "-c1", "-W2", "node"]).ok


def test_a_shared_alias_resolves_while_one_holder_is_up(net, image):
    first = net.run(image, SLEEP, alias="pool")
    second = net.run(image, SLEEP, alias="pool")
    client = net.run(image, SLEEP, **NO_UPSTREAM_DNS)
    answers = client.exec(["nslookup", "pool"]).output
    assert str(first.ip) in answers
    assert str(second.ip) in answers
    first.stop(timeout=0)
    answers = client.exec(["nslookup", "pool"]).output
    assert str(second.ip) in answers
    assert str(first.ip) not in answers
    second.stop(timeout=0)
    assert not client.exec(["nslookup", "pool"]).ok


def test_partition_into_groups_and_heal(manager, image):
    from pytest_dockernet import partition

    with manager.create_network() as net:
        a, b, c = (net.run(image, SLEEP, alias=name, **NO_UPSTREAM_DNS) for name in ("a", "b", "c"))
        outsider = net.run(image, SLEEP, alias="outsider", **NO_UPSTREAM_DNS)

        with partition(net, [[a, b], [c]], manager.create_network) as islands:
            assert len(islands) == 2
            assert reaches(a, "b")
            assert reaches(b, "a")
            # Addresses, not names: a name nobody knows makes the resolver wait seconds.
            assert not reaches(a, str(c.ip))
            assert not reaches(c, str(a.ip))
            assert not reaches(outsider, str(a.ip))
        for source, target in [(a, "c"), (c, "b"), (outsider, "a"), (b, "outsider")]:
            assert reaches(source, target), f"healed: {source.aliases[0]} reaches {target}"
        with (
            pytest.raises(ValueError, match="one group only"),
            partition(net, [[a], [a]], manager.create_network),
        ):
            pass


def test_an_underscored_alias_resolves_as_compose_names_do(net, image):
    db = net.run(image, SLEEP, alias=["my_db", "main_db.local"])
    client = net.run(image, SLEEP, alias="client", **NO_UPSTREAM_DNS)
    for name in ("my_db", "main_db.local"):
        found = client.exec(["nslookup", name])
        assert str(db.ip) in found.output, found.output


@pytest.mark.parametrize("action", ["stop", "restart"])
@pytest.mark.parametrize("timeout", [-1, 2.5, True])
def test_a_grace_period_docker_would_wait_on_for_ever_is_refused_at_once(net, image, action, timeout):
    service = net.run(image, SLEEP, alias="box")
    started = time.monotonic()
    with pytest.raises(
        ValueError, match=rf"{action}\(timeout=...\) takes whole seconds, 0 or more, not {timeout!r}"
    ):
        getattr(service, action)(timeout=timeout)
    assert time.monotonic() - started < 1
    assert service.reload()["State"]["Running"]
