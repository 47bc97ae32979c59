"""Faults between services that keep their addresses, shown with real clients (redis-py, ping, nc).

The helpers run the suite's own image (this host's iptables and tc, tests/imagekit.py).
Traffic goes only to containers of this test. This kernel has no sch_netem: delay and
jitter are shown to be one sentence here, and run where the kernel has it.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest
import redis
from conftest import NO_UPSTREAM_DNS, TEST_IMAGE, reaches, wait_until_gone
from imagekit import REDIS_COMMAND, fault_image, redis_image
from redis.backoff import NoBackoff
from redis.retry import Retry
from test_plugin import run_id

from pytest_dockernet import FaultError, partition, wait
from pytest_dockernet.core.faults import FAULT_IMAGE_ENV, active_faults

SLEEP = ["sleep", "300"]
NO_RETRY = Retry(NoBackoff(), 0)


@pytest.fixture(autouse=True)
def helper_image(docker_client, monkeypatch):
    monkeypatch.setenv(FAULT_IMAGE_ENV, fault_image(docker_client))


@pytest.fixture
def net(manager):
    network = manager.create_network()
    yield network
    for fault in network.faults:
        fault.heal()
    manager.release(network)


@pytest.fixture
def db(net, docker_client):
    return net.run(redis_image(docker_client), REDIS_COMMAND, alias="db", wait=wait.port(6379))


def test_a_cut_hangs_a_real_clients_connection_and_the_heal_resumes_it(net, db):
    # The test process reaches the network from its gateway: cut the database off it.
    # No retries (redis-py 6 retries a time-out on a new connection): the time-out itself is shown.
    client = redis.Redis(
        host=str(db.ip), port=6379, socket_timeout=1, socket_connect_timeout=1, retry=NO_RETRY
    )
    client.set("k", "before")
    address = db.ip
    with net.cut(db, str(net.gateway)) as fault:
        assert net.faults == [fault]
        started = time.monotonic()
        with pytest.raises(redis.exceptions.TimeoutError):  # a time-out, not a reset
            client.get("k")
        assert 0.9 < time.monotonic() - started < 5
    assert net.faults == []
    client.connection_pool.disconnect()  # the timed-out reply may still be in flight: a clean read
    assert client.get("k") == b"before"
    assert db.ip == address  # the same address, before, during and after


def test_a_command_sent_during_a_cut_completes_on_the_same_connection_after_the_heal(net, db):
    client = redis.Redis(
        host=str(db.ip), port=6379, socket_timeout=10, socket_connect_timeout=2, retry=NO_RETRY
    )
    client.set("k", "kept")
    connection = client.client_id()
    fault = net.cut(db, str(net.gateway))
    healer = threading.Timer(1.0, fault.heal)
    healer.start()
    started = time.monotonic()
    assert client.get("k") == b"kept"  # sent into the cut; TCP's retransmission delivers it
    assert time.monotonic() - started > 0.9
    healer.join()
    assert client.client_id() == connection  # the same connection: neither reset nor re-made


def echoes_received(service) -> int:
    """How many ICMP echo requests arrived in ``service``'s namespace (its /proc/net/snmp)."""
    lines = [line.split() for line in service.exec(["cat", "/proc/net/snmp"]).output.splitlines()]
    names, values = (line for line in lines if line[0] == "Icmp:")
    return int(values[names.index("InEchos")])


def test_a_one_way_cut_drops_one_direction_only_and_spares_a_third(net, image):
    a, b, c = (net.run(image, SLEEP, alias=name, **NO_UPSTREAM_DNS) for name in ("a", "b", "c"))

    def arrive(source, target) -> int:
        before = echoes_received(target)
        source.exec(["ping", "-c", "3", "-i", "0.1", "-W", "1", str(target.ip)])
        return echoes_received(target) - before

    assert arrive(a, b) == 3
    with net.cut(a, b, one_way=True):
        assert arrive(a, b) == 0, "a -> b is dropped"
        assert arrive(b, a) == 3, "b -> a arrives (a's answers, a -> b, do not)"
        assert reaches(c, str(a.ip)) and reaches(c, str(b.ip)) and reaches(a, str(c.ip))  # noqa: PT018
    assert arrive(a, b) == 3
    with pytest.raises(ValueError, match=r"a one-way cut toward .* needs a service at that end"):
        net.cut(a, str(net.gateway), one_way=True)


def test_loss_drops_the_fraction_asked_each_way(net, image):
    a, b = (net.run(image, SLEEP, alias=name) for name in ("a", "b"))
    probes = 300
    with net.impair(a, b, loss=0.3):
        output = a.exec(["ping", "-q", "-c", str(probes), "-i", "0.01", "-W", "1", str(b.ip)]).output
    received = int(output.split(" packets received")[0].rsplit(" ", 1)[-1])
    # A round trip survives 0.7 * 0.7 = 49 % of the time; +-10 points is over 3 standard deviations.
    assert 0.39 * probes <= received <= 0.59 * probes, output
    assert reaches(a, str(b.ip))


def test_a_rate_caps_a_transfer(net, image):
    a = net.run(image, SLEEP, alias="a")
    size = 300_000
    serve = f"mkdir -p /www && head -c {size} /dev/zero > /www/blob && exec httpd -f -p 8080 -h /www"
    b = net.run(image, ["sh", "-c", serve], alias="b", wait=wait.port(8080))

    def fetch() -> tuple[int, float]:
        started = time.monotonic()
        got = a.exec(["sh", "-c", "wget -qO- http://b:8080/blob | wc -c"]).output.strip()
        return int(got), time.monotonic() - started

    assert fetch()[0] == size
    with net.impair(a, b, rate="1mbit"):
        got, seconds = fetch()
    assert got == size
    mbits = size * 8 / seconds / 1e6
    # tbf/htb let a burst through first: a little over 1 Mbit/s over a transfer this short.
    assert 0.5 < mbits < 1.6, f"{mbits:.2f} Mbit/s over {seconds:.2f} s"
    assert fetch()[1] < seconds / 4, "healed: the transfer is fast again"


def test_resets_reach_a_real_client_as_a_reset(net, db):
    client = redis.Redis(
        host=str(db.ip), port=6379, socket_timeout=2, socket_connect_timeout=2, retry=NO_RETRY
    )
    assert client.ping()
    client.connection_pool.disconnect()
    with net.impair(db, str(net.gateway), reset=True):
        with pytest.raises(redis.exceptions.ConnectionError) as caught:
            client.ping()
        assert not isinstance(caught.value, redis.exceptions.TimeoutError)
        assert "refused" in str(caught.value).lower() or "reset" in str(caught.value).lower()
    assert client.ping()


def netem_missing(error: FaultError | None) -> bool:
    return error is not None and "kernel has no sch_netem" in str(error)


def test_delay_is_one_sentence_where_the_kernel_has_no_netem(net, image):
    a, b = (net.run(image, SLEEP, alias=name) for name in ("a", "b"))
    error: FaultError | None = None
    fault = None
    try:
        fault = net.impair(a, b, delay=0.2, jitter=0.05)
    except FaultError as exc:
        error = exc
    if netem_missing(error):
        assert "cut, loss, rate and reset work without it" in str(error)
        assert net.faults == []
        assert active_faults() == []
        assert reaches(a, str(b.ip))  # what the failed attempt put is taken back
        pytest.skip("this kernel has no sch_netem: delay and jitter cannot be shown here")
    assert fault is not None, error
    with fault:
        output = a.exec(["ping", "-c", "5", str(b.ip)]).output
    assert "time=2" in output or "time=1" in output, output


def test_wrong_arguments_are_one_sentence_before_anything_is_done(net, image):
    a = net.run(image, SLEEP, alias="a")
    wrong: list[tuple[dict[str, Any], str]] = [
        ({"loss": 1.5}, "loss is a fraction of packets above 0 and at most 1"),
        ({"rate": "fast"}, "rate takes bits per second"),
        ({"jitter": 0.1}, "jitter varies a delay"),
        ({}, "needs at least one of"),
    ]
    for kwargs, message in wrong:
        with pytest.raises(ValueError, match=message):
            net.impair(a, **kwargs)
    with pytest.raises(LookupError, match=r"no service 'nobody' on network .* \(its aliases: a\)"):
        net.cut(a, "nobody")
    assert active_faults() == []


def test_a_partition_keeps_addresses_and_holds_on_every_packet(net, image):
    a, b, c = (net.run(image, SLEEP, alias=name, **NO_UPSTREAM_DNS) for name in ("a", "b", "c"))
    addresses = [s.ip for s in (a, b, c)]
    with partition(net, [[a, b], [c]]) as islands:
        assert islands == []
        assert [s.ip for s in (a, b, c)] == addresses
        assert reaches(a, "b") and reaches(b, str(a.ip))  # noqa: PT018
        burst = a.exec(["ping", "-c", "20", "-i", "0.05", "-W", "1", str(c.ip)]).output
        assert " 0 packets received" in burst, burst
        before = echoes_received(a)
        c.exec(["ping", "-c", "10", "-i", "0.05", "-W", "1", str(a.ip)])
        assert echoes_received(a) == before, "not one packet from c arrives at a"
    assert reaches(a, str(c.ip)) and reaches(c, "b")  # noqa: PT018


def test_an_island_partition_gives_a_static_address_back(net, image, docker_network_factory_core):
    replica = net.run(image, SLEEP, alias="replica", ip=str(net.subnet[20]))
    primary = net.run(image, SLEEP, alias="primary")
    with partition(net, [[replica], [primary]], docker_network_factory_core):
        assert replica.ip_on(net) is None
    assert str(replica.ip) == str(net.subnet[20])


@pytest.fixture
def docker_network_factory_core(manager):
    made = []

    def make():
        made.append(manager.create_network())
        return made[-1]

    yield make
    for network in made:
        manager.release(network)


HEALED_AT_THE_END = f"""
import time

import pytest

from pytest_dockernet import service_fixture

IMAGE = {TEST_IMAGE!r}
a = service_fixture(IMAGE, ["sleep", "300"], alias="a", scope="module")
b = service_fixture(IMAGE, ["sleep", "300"], alias="b", scope="module")


def reaches(source, target):
    return "3 packets received" in source.exec(["ping", "-c3", "-i0.2", "-W1", str(target.ip)]).output


def test_cut_then_fail(a, b, dockernet_module_network):
    dockernet_module_network.cut(a, b)
    assert not reaches(a, b)
    assert False, "the test's own failure"


@pytest.mark.timeout(2)
def test_cut_then_time_out(a, b, dockernet_module_network):
    dockernet_module_network.cut(a, b)
    time.sleep(30)


def test_healed_for_the_next_test(a, b, dockernet_module_network):
    assert dockernet_module_network.faults == []
    assert reaches(a, b) and reaches(b, a)
"""


def test_faults_are_healed_when_their_test_fails_or_times_out(pytester, image, docker_client):
    pytester.makepyfile(test_healed=HEALED_AT_THE_END)
    result = pytester.runpytest_subprocess("-p", "timeout", "--timeout-method", "signal", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=2)
    text = result.stdout.str()
    assert "fault active: cut a <-> b" in text, text  # the failed test's report lists it
    wait_until_gone(docker_client, run_id(result))


TWO_WORKERS = f"""
import pytest

@pytest.mark.parametrize("n", range(4))
def test_own_network(docker_network, n):
    a = docker_network.run({TEST_IMAGE!r}, ["sleep", "300"], alias="a")
    b = docker_network.run({TEST_IMAGE!r}, ["sleep", "300"], alias="b")
    with docker_network.cut(a, b):
        assert " 0 packets received" in a.exec(["ping", "-c2", "-W1", str(b.ip)]).output
    assert "2 packets received" in a.exec(["ping", "-c2", "-W1", str(b.ip)]).output
"""


def test_faults_of_two_workers_never_touch_each_other(pytester, image, docker_client):
    pytester.makepyfile(test_two=TWO_WORKERS)
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=4)
    wait_until_gone(docker_client, run_id(result))


def test_sigkill_of_the_run_mid_fault_leaves_nothing(pytester, image, docker_client):
    pytester.makepyfile(
        test_killed=f"""
import os, signal

def test_killed(docker_network):
    a = docker_network.run({TEST_IMAGE!r}, ["sleep", "300"], alias="a")
    b = docker_network.run({TEST_IMAGE!r}, ["sleep", "300"], alias="b")
    docker_network.cut(a, b)
    print("RUN", docker_network.identity.run, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""
    )
    result = pytester.runpytest_subprocess("-s")
    run = result.stdout.str().split("RUN ", 1)[1].split()[0]
    wait_until_gone(docker_client, run)
    assert os.environ[FAULT_IMAGE_ENV]
